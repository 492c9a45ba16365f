"""The demo merchant for the README's run command: sandbox gateways, payments in several states, an owner
and one support member (who may refund up to DEMO_SUPPORT_LIMITS).

The links `./dev run` prints stay valid across restarts: each currency has one open demo order, kept as long
as nobody has used it (no attempt yet, still pending, more than a day left), else replaced by a new one
(`DEMO-1001-2`, `DEMO-1001-3`, …) at the next seed.
"""

from datetime import timedelta

from sqlalchemy import select

from app.extensions import db
from app.gateways.base import CallbackResult, Outcome
from app.models import Merchant, Payment
from app.models.base import utcnow
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

DEMO_EXPIRES_IN = 7 * 24 * 3600
#: A demo order with less time left than this is replaced at the next seed.
DEMO_MIN_TIME_LEFT = timedelta(days=1)


def pay_with_test_card(payment, *, source):
    """Pay `payment` through an attempt at the test acquirer, as a shopper would (demo and fuzz data). Commits."""
    attempt = open_attempt(payment, "testcard")
    apply_result(payment, attempt, CallbackResult(
        Outcome.SUCCEEDED, amount=payment.amount, currency=payment.currency, card_summary="Visa •••• 4242",
        message="Demo data"), source=source)
    db.session.commit()


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
    """Create the demo merchant once (owner `email`, support member `support_email`) and keep one open
    order per currency; return (merchant, api_key or None if it existed, {currency: open demo payment})."""
    merchant = db.session.scalar(select(Merchant).where(Merchant.email == email))
    key = None
    if merchant is None:
        merchant, key = create_merchant("Demo Shop", email, password, display_name="Demo Owner")
        for reference, amount, currency, final in DEMO_ORDERS:
            payment = _create_order(merchant, reference, amount, currency)
            if final == Status.SUCCEEDED:
                pay_with_test_card(payment, source="seed-demo")
            elif final is not None:
                transition(payment, final, reason="Demo data", source="seed-demo")
                db.session.commit()
    else:
        add_sandbox_accounts(merchant)  # gateways added since the demo was first seeded
    if support_email:
        _demo_support_member(merchant, support_email, support_password)
    db.session.commit()
    return merchant, key, open_orders(merchant)


def open_orders(merchant):
    """{currency: payment}: each open demo order that is still unused, or a new one in its place."""
    orders = {}
    for reference, amount, currency, final in DEMO_ORDERS:
        if final is not None or currency in orders:
            continue
        series = list(db.session.scalars(
            select(Payment).where(Payment.merchant_id == merchant.id, Payment.currency == currency,
                                  (Payment.reference == reference) | Payment.reference.like(f"{reference}-%"))
            .order_by(Payment.id.desc())))
        if series and _unused(series[0]):
            orders[currency] = series[0]
        else:  # paid, expired, cancelled, tried or about to expire: a new order keeps the printed link working
            name = f"{reference}-{len(series) + 1}" if series else reference
            orders[currency] = _create_order(merchant, name, amount, currency)
    return orders


def _unused(payment):
    return (payment.status == Status.PENDING and not payment.attempt_count
            and payment.expires_at > utcnow() + DEMO_MIN_TIME_LEFT)


def _create_order(merchant, reference, amount, currency):
    discount, shipping = amount // 10, amount // 20
    items = [
        {"name": "Batik shirt", "quantity": 1, "unit_amount": amount + discount - shipping, "type": "item"},
        {"name": "Welcome discount", "quantity": 1, "unit_amount": -discount, "type": "discount"},
        {"name": "Shipping", "quantity": 1, "unit_amount": shipping, "type": "shipping"},
    ]
    return create_payment(merchant, {
        "amount": amount, "currency": currency, "reference": reference,
        "description": f"Order {reference}", "items": items,
        "customer": {"name": "Demo Shopper", "email": "shopper@example.com", "phone": "+8801700000000"},
        "return_url": "https://shop.example/orders/return", "cancel_url": "https://shop.example/cart",
        "expires_in": DEMO_EXPIRES_IN,
    })
