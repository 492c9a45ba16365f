"""A team in Chromium: the owner signs in with two-factor, invites a support member, who accepts in a second
browser (phone), refunds within the merchant's limit and cannot open the settings. Screenshots of the team,
audit and account security pages on desktop and phone: test-artifacts/screenshots/team-*.png."""

import pyotp

from app.extensions import db
from app.state_machine import Status
from tests.web.dashboard.conftest import PASSWORD, owner_of
from tests.web.dashboard.test_payments import _set
from tests.web.dashboard.test_team import _mailed_link

PHONE = {"width": 390, "height": 844}


def _fits_a_phone(page):
    return page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_two_factor_invite_accept_and_a_limited_support_member(app, desktop_page, page, factories):
    merchant, _ = factories.merchant(name="Toko Budi")
    owner = owner_of(merchant)
    secret = pyotp.random_base32()
    owner.totp_secret = secret  # set up earlier (the setup page is tested in tests/web/dashboard)
    merchant.support_refund_limits = {"USD": 5000}
    db.session.commit()
    paid = _set(factories.payment(merchant, currency="USD", amount=8000, reference="ORD-77"), Status.SUCCEEDED)
    db.session.rollback()

    owner_page = desktop_page
    owner_page.goto("/dashboard/login")
    owner_page.fill("input[name=email]", merchant.email)
    owner_page.fill("input[name=password]", PASSWORD)
    owner_page.click("button[type=submit]")
    owner_page.wait_for_selector("text=Two-factor sign-in")
    owner_page.fill("input[name=code]", pyotp.TOTP(secret).now())
    owner_page.click("button[type=submit]")
    owner_page.wait_for_selector("text=Signed in as")

    owner_page.goto("/dashboard/team")
    owner_page.fill("input[name=email]", "sara@example.test")
    owner_page.select_option("#role", "support")
    owner_page.click("text=Send invitation")
    owner_page.wait_for_selector("text=Invitation sent to sara@example.test as support")
    owner_page.shot("team-desktop-team")

    # The invitee, in another browser (own cookies), on a phone.
    page.goto(_mailed_link(app, "sara@example.test"))
    assert "Join Toko Budi" in page.locator("h1").inner_text()
    page.fill("input[name=display_name]", "Sara")
    page.fill("input[name=password]", "sara-password-1")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Signed in as sara@example.test")
    assert "Settings" not in page.locator("nav.mainnav").inner_text()
    page.goto(f"/dashboard/payments/{paid.public_id}")
    assert "your role may refund at most $50.00 at once" in page.content()
    page.fill("input[name=amount]", "60.00")
    page.click("text=Refund…")
    page.wait_for_selector("text=Refund refused: your role may refund at most $50.00 at once")
    page.fill("input[name=amount]", "10.00")
    page.click("text=Refund…")
    page.wait_for_selector("text=Refund $10.00?")
    page.locator("main form button[type=submit]").first.click()
    page.wait_for_selector("text=Refund of $10.00 requested")
    response = page.goto("/dashboard/settings")
    assert response.status == 403 and "Your role does not allow this." in page.content()
    page.shot("team-phone-support-refused-settings")

    # The owner sees who did it: in the audit log and on the payment's timeline.
    owner_page.goto("/dashboard/audit")
    audit = owner_page.locator("table.audit").inner_text()
    assert "Sara <sara@example.test>" in audit and "Requested a refund" in audit
    owner_page.shot("team-desktop-audit")
    owner_page.goto(f"/dashboard/payments/{paid.public_id}")
    assert "Requested a refund — Sara &lt;sara@example.test&gt;" in owner_page.content()
    owner_page.goto("/dashboard/account/security?setup=1")
    owner_page.shot("team-desktop-security")
    owner_page.set_viewport_size(PHONE)
    for path, name in [("/dashboard/team", "team"), ("/dashboard/audit", "audit"),
                       ("/dashboard/account/security", "security")]:
        owner_page.goto(path)
        assert _fits_a_phone(owner_page), path
        owner_page.shot(f"team-phone-{name}")
