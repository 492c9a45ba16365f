"""Every checkout page a shopper can land on, in a real browser on a 360 px phone screen: it renders, fits
the screen without sideways scrolling, loads nothing from outside this app, and is screenshotted."""

from datetime import timedelta

import pytest

from app.extensions import db
from app.models import utcnow
from app.state_machine import Status, transition

PHONE = {"width": 360, "height": 740}
ITEMS = [
    {"name": "Handwoven songket scarf, indigo", "quantity": 2, "unit_amount": 450_000},
    {"name": "Welcome discount", "quantity": 1, "unit_amount": -90_000, "type": "discount"},
    {"name": "Shipping (JNE Reguler)", "quantity": 1, "unit_amount": 40_000, "type": "shipping"},
]


@pytest.fixture
def phone(page, live_url):
    """The phone page, recording every request that leaves this app."""
    page.set_viewport_size(PHONE)
    page.outside = []
    page.on("request", lambda req: None if req.url.startswith(live_url) else page.outside.append(req.url))
    return page


@pytest.fixture
def payment(factories):
    merchant, _ = factories.merchant(name="Kain Nusantara")
    return factories.payment(merchant, amount=850_000, currency="IDR", items=ITEMS, expires_in=600)


def move(payment, *statuses, **changes):
    for status in statuses:
        assert transition(payment, status, reason="test", source="test", changes=changes)
    db.session.commit()


def reload_status(payment):
    db.session.rollback()
    db.session.refresh(payment)
    return payment.status


def visit(phone, path, name, *, status=200):
    response = phone.goto(path)
    assert response.status == status
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "sideways scrolling"
    phone.shot(name)
    assert phone.outside == []
    return phone


def test_pay_page(phone, payment):
    db.session.rollback()
    visit(phone, f"/pay/{payment.checkout_token}", "checkout-pay-360")
    assert phone.locator(".merchant-name").inner_text() == "Kain Nusantara"
    # English in Indonesia (CLDR en_ID; the browser asks for en-US): dots group, a no-break space after Rp.
    assert phone.locator("[data-total]").inner_text() == "Rp\xa0850.000"
    assert phone.locator(".item-discount td").inner_text() == "-Rp\xa090.000"
    assert phone.locator(".item-shipping td").inner_text() == "Rp\xa040.000"
    countdown = phone.locator("[data-countdown-text]")
    first = countdown.inner_text()
    assert first.startswith(("10:00", "9:5"))
    phone.wait_for_function("t => document.querySelector('[data-countdown-text]').textContent !== t", arg=first)


def test_countdown_reaching_zero_shows_the_expired_page(phone, factories):
    merchant, _ = factories.merchant(name="Kain Nusantara")
    payment = factories.payment(merchant, amount=850_000, currency="IDR", expires_in=2)
    db.session.rollback()
    visit(phone, f"/pay/{payment.checkout_token}", "checkout-pay-about-to-expire")
    phone.wait_for_selector("text=This payment link has expired", timeout=10_000)
    phone.shot("checkout-expired-after-countdown")


def test_paid_page(phone, payment):
    move(payment, Status.SUCCEEDED, card_summary="Visa •••• 4242")
    visit(phone, f"/pay/{payment.checkout_token}", "checkout-closed-paid")
    assert phone.locator("h1").inner_text() == "Already paid"


def test_expired_by_time_page(phone, payment):
    payment.expires_at = utcnow() - timedelta(seconds=5)
    db.session.commit()
    visit(phone, f"/pay/{payment.checkout_token}", "checkout-closed-expired", status=410)
    assert phone.locator("h1").inner_text() == "This payment link has expired"


def test_cancelled_page(phone, payment):
    move(payment, Status.CANCELLED)
    visit(phone, f"/pay/{payment.checkout_token}", "checkout-closed-cancelled", status=410)
    assert phone.locator("h1").inner_text() == "This payment was cancelled"


def test_failed_page(phone, payment):
    move(payment, Status.PROCESSING, Status.FAILED, failure_message="Your card has insufficient funds.")
    visit(phone, f"/pay/{payment.checkout_token}", "checkout-closed-failed", status=410)
    assert phone.locator("h1").inner_text() == "This payment failed"
    assert "insufficient funds" in phone.locator(".outcome p").first.inner_text()


def test_unknown_payment_page(phone):
    visit(phone, "/pay/this-token-does-not-exist", "checkout-unknown", status=404)
    assert "could not find this payment" in phone.locator("main").inner_text()


def test_result_processing_page_refreshes_itself(phone, payment):
    move(payment, Status.PROCESSING, gateway="testcard")
    visit(phone, f"/pay/{payment.checkout_token}/result", "checkout-result-processing")
    assert phone.locator("h1").inner_text() == "Waiting for confirmation…"
    move(payment, Status.SUCCEEDED, card_summary="Visa •••• 4242")
    phone.wait_for_selector("text=Payment successful", timeout=10_000)  # the page reloaded by itself
    phone.shot("checkout-result-succeeded-after-refresh")


def test_result_failed_page(phone, payment):
    move(payment, Status.PROCESSING, Status.FAILED, failure_message="Your card was declined.", gateway="testcard")
    visit(phone, f"/pay/{payment.checkout_token}/result", "checkout-result-failed")
    assert phone.locator("h1").inner_text() == "Payment failed"


def test_cancel_button_goes_to_the_shop(phone, payment):
    db.session.rollback()
    visit(phone, f"/pay/{payment.checkout_token}", "checkout-before-cancel")
    phone.click("text=Cancel and return to Kain Nusantara")
    phone.wait_for_selector("text=Cancel this payment?")  # asked first, without JavaScript
    phone.shot("checkout-cancel-confirm")
    db.session.rollback()
    assert reload_status(payment) == "pending"
    with phone.expect_request(lambda req: req.url.startswith("https://shop.example/cancel")) as request:
        phone.route("https://shop.example/**", lambda route: route.fulfill(status=200, body="shop"))
        phone.click("text=Yes, cancel the payment")
    assert f"payment_id={payment.public_id}&status=cancelled" in request.value.url
    db.session.rollback()
    db.session.refresh(payment)
    assert payment.status == "cancelled"


SHOWN = {  # language → (a word of the pay page, the total of 850,000 IDR as that shopper reads it)
    "en": ("Pay with", "Rp\xa0850.000"), "vi": ("Thanh toán bằng", "850.000\xa0Rp"),
    "id": ("Bayar dengan", "Rp\xa0850.000"), "ne": ("भुक्तानी विधि", "Rp\xa08,50,000"),
    "bn": ("পেমেন্টের মাধ্যম", "8,50,000\xa0Rp"),
}


@pytest.mark.parametrize("lang", list(SHOWN))
def test_every_page_in_each_language(phone, payment, factories, lang, tmp_path):
    """The switch's link (no JavaScript), then the cookie keeps the language on every page; screenshots."""
    db.session.rollback()
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(f"/pay/{payment.checkout_token}")
    phone.click(f".language-switch a[hreflang={lang}]")
    word, total = SHOWN[lang]
    phone.wait_for_selector(f"html[lang={lang}]")
    assert word in phone.locator("legend").inner_text()
    assert phone.locator("[data-total]").inner_text() == total
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390, "sideways scrolling"
    phone.screenshot(path=str(tmp_path / f"checkout-pay-{lang}.png"), full_page=True)
    phone.shot(f"checkout-pay-{lang}")
    phone.goto(f"/pay/{payment.checkout_token}/cancel")  # the cookie carries the language on
    assert phone.locator("html").get_attribute("lang") == lang
    phone.screenshot(path=str(tmp_path / f"checkout-cancel-{lang}.png"), full_page=True)
    phone.shot(f"checkout-cancel-{lang}")
    # Every other page a shopper lands on, in that language: waiting, paid, and a link that has expired.
    move(payment, Status.PROCESSING)
    phone.goto(f"/pay/{payment.checkout_token}/result")
    assert phone.locator("html").get_attribute("lang") == lang
    phone.shot(f"checkout-waiting-{lang}")
    move(payment, Status.SUCCEEDED)
    phone.goto(f"/pay/{payment.checkout_token}")
    assert phone.locator("html").get_attribute("lang") == lang
    phone.shot(f"checkout-paid-{lang}")
    other = factories.payment(payment.merchant, amount=850_000, currency="IDR")
    move(other, Status.EXPIRED)
    phone.goto(f"/pay/{other.checkout_token}")
    assert phone.locator("html").get_attribute("lang") == lang
    phone.shot(f"checkout-expired-{lang}")
    assert phone.outside == []
