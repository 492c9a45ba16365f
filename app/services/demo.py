"""The demo merchant for the README's run command: sandbox gateways and payments in several states."""

from sqlalchemy import select

from app.extensions import db
from app.gateways.base import CallbackResult, Outcome
from app.models import Merchant, Payment
from app.services.callbacks import apply_result
from app.services.gateways import add_sandbox_accounts
from app.services.merchants import create_merchant
from app.services.payments import create_payment
from app.state_machine import Status, open_attempt, transition

DEMO_ORDERS = [
    ("DEMO-1001", 125_000, "VND", None),
    ("DEMO-1002", 2_499, "USD", Status.SUCCEEDED),
    ("DEMO-1003", 150_000, "IDR", Status.FAILED),
    ("DEMO-1004", 75_000, "BDT", Status.EXPIRED),
    ("DEMO-1005", 120_000, "NPR", Status.CANCELLED),
    ("DEMO-1006", 4_999, "USD", None),
    # Open orders in IDR and NPR, so Midtrans and Khalti show on a checkout page too (VNPay: DEMO-1001).
    ("DEMO-1007", 250_000, "IDR", None),
    ("DEMO-1008", 150_000, "NPR", None),
    # An open taka order: bKash, SSLCommerz, Rocket, Nagad and Stripe on one checkout page.
    ("DEMO-1009", 185_000, "BDT", None),
]


def pay_with_test_card(payment, *, source):
    """Pay `payment` through an attempt at the test acquirer, as a shopper would (demo and fuzz data). Commits."""
    attempt = open_attempt(payment, "testcard")
    apply_result(payment, attempt, CallbackResult(
        Outcome.SUCCEEDED, amount=payment.amount, currency=payment.currency, card_summary="Visa •••• 4242",
        message="Demo data"), source=source)
    db.session.commit()


def seed_demo(email, password):
    """Create the demo merchant once; return (merchant, api_key or None if it existed, its payments)."""
    merchant = db.session.scalar(select(Merchant).where(Merchant.email == email))
    key = None
    if merchant is None:
        merchant, key = create_merchant("Demo Shop", email, password)
        for reference, amount, currency, final in DEMO_ORDERS:
            discount, shipping = amount // 10, amount // 20
            items = [
                {"name": "Batik shirt", "quantity": 1, "unit_amount": amount + discount - shipping, "type": "item"},
                {"name": "Welcome discount", "quantity": 1, "unit_amount": -discount, "type": "discount"},
                {"name": "Shipping", "quantity": 1, "unit_amount": shipping, "type": "shipping"},
            ]
            payment = create_payment(merchant, {
                "amount": amount, "currency": currency, "reference": reference,
                "description": f"Order {reference}", "items": items,
                "customer": {"name": "Demo Shopper", "email": "shopper@example.com", "phone": "+8801700000000"},
                "return_url": "https://shop.example/orders/return", "cancel_url": "https://shop.example/cart",
                "expires_in": 7 * 24 * 3600,
            })
            if final == Status.SUCCEEDED:
                pay_with_test_card(payment, source="seed-demo")
            elif final is not None:
                transition(payment, final, reason="Demo data", source="seed-demo")
                db.session.commit()
    else:
        add_sandbox_accounts(merchant)  # gateways added since the demo was first seeded
        db.session.commit()
    payments = list(db.session.scalars(select(Payment).where(Payment.merchant_id == merchant.id).order_by(Payment.id)))
    return merchant, key, payments
