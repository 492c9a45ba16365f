"""A merchant's day in a real (headless) browser: sign in, create a payment link, a shopper pays it on a
phone with the OTP test card, the merchant sees it succeeded in the list and the overview, opens it, refunds
part of it, reads the timeline and the webhook attempts, revokes an API key and signs out.
Screenshots of every page go to test-artifacts/screenshots/dashboard-*.png."""

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import ApiKey, Payment
from tests.helpers import reload
from tests.receiver import Receiver
from tests.web.dashboard.conftest import PASSWORD


def sign_in(page, merchant):
    page.goto("/dashboard/login")
    page.fill("input[name=email]", merchant.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Signed in as")


def shopper_pays(page, url):
    page.goto(url)
    page.check("input[name=method][value=testcard]")
    page.click("button.primary")
    page.fill("input[autocomplete=cc-number]", "4444 4444 4444 4444")
    page.fill("input[autocomplete=cc-exp]", "12/39")
    page.fill("input[autocomplete=cc-csc]", "123")
    page.fill("input[autocomplete=cc-name]", "Sari Dewi")
    page.click("button.primary")
    page.fill("input[autocomplete=one-time-code]", "123456")
    page.click("button.primary")
    page.wait_for_selector("text=Payment successful")


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_merchant_day(desktop_page, page, factories, run_jobs, live_url, receiver):
    merchant, _ = factories.merchant(name="Warung Sari", webhook_url=receiver.url)
    m = desktop_page
    m.goto("/dashboard/")
    assert "/dashboard/login" in m.url
    m.shot("dashboard-login")
    sign_in(m, merchant)
    m.shot("dashboard-overview-empty")

    # Create a payment link.
    m.click("text=New payment link")
    m.fill("input[name=amount]", "25.00")
    m.select_option("select[name=currency]", "USD")
    m.fill("input[name=reference]", "INV-1001")
    m.fill("input[name=description]", "Batik shirt, size M")
    m.fill("input[name=customer_email]", "sari@shop.example")
    m.fill("input[name=return_url]", "https://warung.example/thanks")
    m.shot("dashboard-new-link")
    m.click("button:has-text('Check the amount')")
    m.wait_for_selector("text=25.00 US dollars")  # the amount in words before the link is made
    m.shot("dashboard-new-link-confirm")
    m.click("button:has-text('Create link for $25.00')")
    m.wait_for_selector("text=Payment link created for $25.00")
    link = m.input_value("#checkout-url")
    assert link.startswith(live_url + "/pay/")
    m.shot("dashboard-link-created")

    # The shopper pays on a phone.
    shopper_pays(page, link)
    run_jobs(advance=5)  # the acquirer's webhook and our webhook to the merchant

    # The list shows it succeeded; the overview counts it.
    m.click("nav >> text=Payments")
    row = m.locator("table.payments tbody tr", has_text="INV-1001")
    assert "succeeded" in row.inner_text()
    m.shot("dashboard-payments")
    m.click("nav >> text=Overview")
    usd = m.locator("section", has=m.locator("#cur-USD"))
    assert "$25.00" in usd.locator(".stat").first.inner_text()
    assert "1 succeeded" in usd.locator(".stat").first.inner_text()
    m.shot("dashboard-overview")
    usd.locator(".stat-main a").first.click()  # the number leads to the list behind it
    assert m.locator("table.payments tbody tr").count() == 1

    # Open it and refund part of it, with confirmation.
    m.click("text=$25.00")
    m.wait_for_selector("h2:has-text('Timeline')")
    m.fill("input[name=amount]", "10.00")
    m.fill("input[name=reason]", "Wrong size")
    m.click("button:has-text('Refund…')")
    m.wait_for_selector("h1:has-text('Refund $10.00?')")
    m.shot("dashboard-refund-confirm")
    m.click("button:has-text('Refund $10.00')")
    m.wait_for_selector("text=Refund of $10.00 requested")
    run_jobs(advance=5)  # the refund job asks the acquirer; the webhooks follow
    m.reload()
    assert "partially refunded" in m.locator("h1").inner_text()
    timeline = m.locator("ol.timeline").inner_text()
    assert "callback" in timeline and "verified" in timeline
    assert "refund" in timeline and "webhook attempt" in timeline and "HTTP 200" in timeline
    m.locator("ol.timeline details summary").first.click()
    m.shot("dashboard-payment-detail")

    # Refunds list and webhooks page.
    m.click("nav >> text=Refunds")
    assert "Wrong size" in m.locator("table").inner_text() and "succeeded" in m.locator("table").inner_text()
    m.shot("dashboard-refunds")
    m.click("nav >> text=Webhooks")
    assert m.locator(".event").count() >= 3
    assert "HTTP 200" in m.locator(".events").inner_text()
    m.shot("dashboard-webhooks")

    # Revoke an API key.
    m.click("nav >> text=Settings")
    m.shot("dashboard-settings")
    m.click("button[aria-label='Revoke key Default']")
    m.wait_for_selector("text=revoked: requests with it are now refused")
    key = db.session.scalar(select(ApiKey).where(ApiKey.merchant_id == merchant.id))
    assert reload(key).revoked_at is not None

    # Sign out.
    m.click("button:has-text('Sign out')")
    m.wait_for_selector("text=Signed out.")
    m.goto("/dashboard/payments")
    assert "/dashboard/login" in m.url
    payment = db.session.scalar(select(Payment).where(Payment.reference == "INV-1001"))
    assert (payment.status, payment.amount_refunded) == ("partially_refunded", 1000)
