"""A Bangladeshi shopper pays with bKash and with Nagad in a real (headless) browser on a phone-sized screen."""

import pytest

from app.extensions import db
from tests.helpers import reload


@pytest.mark.parametrize("method,wallet,summary", [("bkash", "01770618575", "bKash 01770618575"),
                                                    ("nagad", "01711428036", "Nagad 017****8036")])
def test_shopper_pays_with_a_wallet(page, factories, method, wallet, summary):
    merchant, _ = factories.merchant(name="Dhaka Books")
    payment = factories.payment(merchant, amount=125_050, currency="BDT")
    db.session.rollback()
    page.goto(f"/pay/{payment.checkout_token}")
    assert page.locator("[data-total]").inner_text() == "৳1,250.50"
    page.check(f"input[name=method][value={method}]")
    page.click("button.primary")
    page.wait_for_selector("input[name=wallet]")
    assert "৳1,250.50" in page.content()
    page.fill("input[name=wallet]", wallet)
    page.shot(f"{method}-wallet")
    page.click("button[name=outcome][value=success]")
    page.wait_for_selector("text=Payment successful")
    page.shot(f"checkout-result-{method}")
    assert reload(payment).status == "succeeded"
    assert payment.card_summary == summary
