"""The demo merchant for the README's run command: sandbox gateways, payments in several states, an owner
and one support member (who may refund up to DEMO_SUPPORT_LIMITS)."""

from sqlalchemy import select

from app.extensions import db
from app.gateways.base import CallbackResult, Outcome
from app.models import Merchant, Payment
from app.services import accounts, team
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


#: What the demo's support member may refund at once, per currency (minor units).
DEMO_SUPPORT_LIMITS = {"VND": 500_000, "IDR": 500_000, "BDT": 500_000, "NPR": 500_000, "USD": 5_000}


def _demo_support_member(merchant, email, password):
    """The demo's support member (created once, with the refund limits)."""
    user = accounts.user_by_email(email)
    if user is None:
        user = accounts.new_user(email, "Demo Support", password)
    if user.membership_of(merchant.id) is None:
        team.add_member(merchant, user, "support")
    if not merchant.support_refund_limits:
        merchant.support_refund_limits = dict(DEMO_SUPPORT_LIMITS)


def seed_demo(email, password, support_email=None, support_password=None):
    """Create the demo merchant once (owner `email`, support member `support_email`); return (merchant,
    api_key or None if it existed, its payments)."""
    merchant = db.session.scalar(select(Merchant).where(Merchant.email == email))
    key = None
    if merchant is None:
        merchant, key = create_merchant("Demo Shop", email, password, display_name="Demo Owner")
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
            if final == Status.SUCCEEDED:  # paid through an attempt at the test acquirer, as a shopper would
                attempt = open_attempt(payment, "testcard")
                apply_result(payment, attempt, CallbackResult(
                    Outcome.SUCCEEDED, amount=amount, currency=currency, card_summary="Visa •••• 4242",
                    message="Demo data"), source="seed-demo")
                db.session.commit()
            elif final is not None:
                transition(payment, final, reason="Demo data", source="seed-demo")
                db.session.commit()
    else:
        add_sandbox_accounts(merchant)  # gateways added since the demo was first seeded
    if support_email:
        _demo_support_member(merchant, support_email, support_password)
    db.session.commit()
    payments = list(db.session.scalars(select(Payment).where(Payment.merchant_id == merchant.id).order_by(Payment.id)))
    return merchant, key, payments
