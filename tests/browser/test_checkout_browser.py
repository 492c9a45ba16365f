"""A shopper pays with the OTP test card in a real (headless) browser on a phone-sized screen."""

from app.extensions import db
from tests.helpers import reload


def test_shopper_pays_with_otp_card(page, factories):
    merchant, _ = factories.merchant(name="Warung Sari")
    payment = factories.payment(merchant, amount=2_500, currency="USD", items=[
        {"name": "Coffee beans", "quantity": 2, "unit_amount": 1_000},
        {"name": "Discount", "quantity": 1, "unit_amount": -200, "type": "discount"},
        {"name": "Shipping", "quantity": 1, "unit_amount": 700, "type": "shipping"},
    ])
    db.session.rollback()
    page.goto(f"/pay/{payment.checkout_token}")
    assert page.locator("[data-total]").inner_text() == "$25.00"
    assert page.locator("[data-countdown-text]").inner_text() != ""
    page.shot("checkout-pay")
    page.check("input[name=method][value=testcard]")
    page.click("button.primary")
    page.fill("input[autocomplete=cc-number]", "4444 4444 4444 4444")
    page.fill("input[autocomplete=cc-exp]", "12/39")
    page.fill("input[autocomplete=cc-csc]", "123")
    page.fill("input[autocomplete=cc-name]", "Sari Dewi")
    page.shot("testcard-card")
    page.click("button.primary")
    page.fill("input[autocomplete=one-time-code]", "123456")
    page.shot("testcard-otp")
    page.click("button.primary")
    page.wait_for_selector("text=Payment successful")
    page.shot("checkout-result-succeeded")
    reload(payment)
    assert payment.status == "succeeded"
    assert payment.card_summary == "Visa •••• 4444"
