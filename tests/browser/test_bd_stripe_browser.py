"""A shopper pays through Rocket (SSLCommerz's DBBL channel, whose return is an auto-submitted form POST)
and through Stripe Checkout, in a real headless browser."""

from app.extensions import db
from tests.helpers import reload


def _checkout(page, payment, method):
    db.session.rollback()
    page.goto(f"/pay/{payment.checkout_token}")
    page.check(f"input[name=method][value={method}]")
    page.click("button.primary")


def test_shopper_pays_with_rocket(page, factories):
    merchant, _ = factories.merchant(name="Dhaka Books")
    payment = factories.payment(merchant, amount=45_000, currency="BDT")
    _checkout(page, payment, "rocket")
    page.wait_for_selector("text=Pay with Rocket")
    page.shot("rocket-page")
    page.click("button[name=outcome][value=success]")
    page.wait_for_selector("text=Payment successful")  # the form POST back ran by itself
    assert reload(payment).status == "succeeded"
    assert payment.card_summary == "Dbbl Mobile Banking •••• 4455"


def test_shopper_pays_with_stripe(page, factories):
    merchant, _ = factories.merchant(name="Kedai Kopi")
    payment = factories.payment(merchant, amount=2_000, currency="USD")
    _checkout(page, payment, "stripe")
    page.wait_for_selector("button[name=outcome][value=success]")
    page.shot("stripe-page")
    page.click("button[name=outcome][value=success]")
    page.wait_for_selector("text=Payment successful")
    assert reload(payment).status == "succeeded"
