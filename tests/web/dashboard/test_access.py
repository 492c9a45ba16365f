"""Every dashboard route: anonymous → sign-in; another merchant's id → 404; POST without or with a wrong CSRF
token → refused with nothing changed."""

import pytest
from sqlalchemy import func, select, update

from app.extensions import db
from app.models import ApiKey, Merchant, OutboxEvent, Payment, PaymentAttempt, Refund
from app.services import webhook_endpoints as endpoints
from app.services.outbox import emit
from tests.helpers import reload
from tests.web.dashboard.conftest import sign_in, token_of

# (method, path); {payment}, {paid}, {attempt}, {event}, {key}, {gateway}, {refund}, {endpoint} are filled with
# the owner's ids.
ROUTES = [
    ("GET", "/dashboard/"),
    ("GET", "/dashboard/account"),
    ("POST", "/dashboard/account"),
    ("POST", "/dashboard/logout"),
    ("GET", "/dashboard/payments"),
    ("GET", "/dashboard/payments.csv"),
    ("GET", "/dashboard/payments/new"),
    ("POST", "/dashboard/payments/new"),
    ("GET", "/dashboard/payments/{payment}"),
    ("POST", "/dashboard/payments/{payment}/refund"),
    ("POST", "/dashboard/payments/{payment}/cancel"),
    ("POST", "/dashboard/payments/{payment}/reconcile"),
    ("POST", "/dashboard/payments/{payment}/resend-webhook"),
    ("POST", "/dashboard/payments/{paid}/attempts/{attempt}/refund"),
    ("GET", "/dashboard/refunds"),
    ("POST", "/dashboard/refunds/{refund}/retry"),
    ("POST", "/dashboard/refunds/{refund}/fail"),
    ("POST", "/dashboard/refunds/{refund}/succeed"),
    ("GET", "/dashboard/webhooks"),
    ("POST", "/dashboard/webhooks/url"),
    ("POST", "/dashboard/webhooks/secret"),
    ("POST", "/dashboard/webhooks/secret/rotate"),
    ("POST", "/dashboard/webhooks/events/{event}/resend"),
    ("POST", "/dashboard/webhooks/endpoints"),
    ("GET", "/dashboard/webhooks/endpoints/{endpoint}"),
    ("POST", "/dashboard/webhooks/endpoints/{endpoint}"),
    ("POST", "/dashboard/webhooks/endpoints/{endpoint}/secret"),
    ("POST", "/dashboard/webhooks/endpoints/{endpoint}/secret/rotate"),
    ("POST", "/dashboard/webhooks/endpoints/{endpoint}/ping"),
    ("POST", "/dashboard/webhooks/endpoints/{endpoint}/replay"),
    ("POST", "/dashboard/webhooks/endpoints/{endpoint}/events/{event}/replay"),
    ("POST", "/dashboard/webhooks/endpoints/{endpoint}/delete"),
    ("GET", "/dashboard/settings"),
    ("POST", "/dashboard/settings/gateways/{gateway}"),
    ("POST", "/dashboard/settings/double-payments"),
    ("POST", "/dashboard/settings/api-keys"),
    ("POST", "/dashboard/settings/api-keys/{key}/revoke"),
]
OWNED = [r for r in ROUTES if any(k in r[1] for k in ("{payment}", "{event}", "{key}", "{refund}", "{attempt}",
                                                      "{endpoint}"))]
POSTS = [r for r in ROUTES if r[0] == "POST"]


def _ids(merchant, factories):
    payment = factories.payment(merchant)
    # Paid twice: the attempt that paid it, and an extra one (the double-payment refund applies to it).
    paid = factories.payment(merchant)
    for number in (1, 2):
        db.session.add(PaymentAttempt(payment_id=paid.id, merchant_id=merchant.id, number=number, gateway="testcard",
                                      status="succeeded", version=1, amount=paid.amount, currency=paid.currency,
                                      amount_refunded=0, data={}, reference=f"cs_{paid.public_id}_{number}"))
    db.session.flush()
    db.session.execute(update(Payment).where(Payment.id == paid.id).values(
        status="succeeded", succeeded_attempt_id=paid.attempts[0].id, double_payment=True))
    event = emit("payment.pending", merchant.id, {"id": payment.public_id}, payment_id=payment.id)
    db.session.commit()
    key = db.session.scalar(select(ApiKey).where(ApiKey.merchant_id == merchant.id))
    # A refund that waits for a person (both refund actions apply to it).
    refund = Refund(payment_id=payment.id, merchant_id=merchant.id, amount=100, currency=payment.currency,
                    status="pending", gateway="testcard", attempts=5, next_attempt_at=None)
    db.session.add(refund)
    db.session.commit()
    return {"payment": payment.public_id, "event": event.public_id, "key": key.public_id, "gateway": "testcard",
            "refund": refund.public_id, "attempt": paid.attempts[1].public_id,
            "paid": paid.public_id, "endpoint": endpoints.first_endpoint(merchant, create=True).public_id}


def _snapshot(merchant_id):
    """Everything a dashboard action could change for a merchant."""
    db.session.rollback()
    m = db.session.get(Merchant, merchant_id)
    payments = db.session.execute(select(Payment.public_id, Payment.status, Payment.amount_refunded, Payment.version)
                                  .where(Payment.merchant_id == merchant_id).order_by(Payment.id)).all()
    keys = db.session.execute(select(ApiKey.public_id, ApiKey.revoked_at).where(ApiKey.merchant_id == merchant_id)
                              .order_by(ApiKey.id)).all()
    events = db.session.scalar(select(func.count()).select_from(OutboxEvent)
                               .where(OutboxEvent.merchant_id == merchant_id))
    accounts = [(a.gateway, a.enabled, a.mode, a.credentials_enc) for a in m.gateway_accounts]
    refunds = db.session.execute(select(Refund.public_id, Refund.status, Refund.next_attempt_at, Refund.attempts)
                                 .where(Refund.merchant_id == merchant_id).order_by(Refund.id)).all()
    attempts = db.session.execute(select(PaymentAttempt.public_id, PaymentAttempt.status, PaymentAttempt.amount_refunded)
                                  .where(PaymentAttempt.merchant_id == merchant_id).order_by(PaymentAttempt.id)).all()
    endpoints = [(e.url, e.secret_enc, e.enabled) for e in m.webhook_endpoints]
    return (m.password_hash, endpoints, m.auto_refund_double_payments, payments, keys,
            events, accounts, refunds, attempts)


@pytest.mark.parametrize("method,path", ROUTES)
def test_anonymous_is_sent_to_sign_in(client, merchant, factories, method, path):
    ids = _ids(merchant, factories)
    # Anonymous POSTs are refused earlier, by the CSRF check; with a token they meet the login wall.
    client.get("/dashboard/login")
    with client.session_transaction() as session:
        assert "csrf_token" in session
    token = token_of(client, "/dashboard/login")
    r = client.open(path.format(**ids), method=method, data={"csrf_token": token} if method == "POST" else None)
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/dashboard/login?next=")


@pytest.mark.parametrize("method,path", OWNED)
def test_other_merchants_ids_are_404(client, merchant, other, factories, method, path):
    ids = _ids(other, factories)
    before = _snapshot(other.id)
    sign_in(client, merchant)
    data = {"csrf_token": token_of(client), "amount": "1", "confirmed": "yes", "name": "x"}
    r = client.open(path.format(**ids), method=method, data=data if method == "POST" else None)
    assert r.status_code == 404
    assert _snapshot(other.id) == before


@pytest.mark.parametrize("method,path", POSTS)
@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_posts_without_a_valid_csrf_token_change_nothing(client, merchant, factories, method, path, token):
    ids = _ids(merchant, factories)
    sign_in(client, merchant)
    before = _snapshot(merchant.id)
    data = {"amount": "1.00", "reason": "x", "confirmed": "yes", "name": "Evil key", "url": "https://evil.example/h",
            "current_password": "correct-horse-battery", "new_password": "new-password-123",
            "confirm": "new-password-123", "currency": "USD", "reference": "CSRF", "return_url": "https://a.example/",
            "expires_in": "3600", "testcard-enabled": "", "testcard-mode": "live"}
    if token:
        data["csrf_token"] = token
    r = client.open(path.format(**ids), method=method, data=data)
    assert r.status_code == 400
    assert "form expired" in r.text
    assert _snapshot(merchant.id) == before
    # Still signed in: a forged sign-out did nothing either.
    assert client.get("/dashboard/").status_code == 200


def test_lists_show_only_the_merchants_own_rows(signed_in, merchant, other, factories):
    mine = factories.payment(merchant, reference="MINE-1")
    theirs = factories.payment(other, reference="THEIRS-1", customer={"email": "x@shop.example"})
    emit("payment.pending", other.id, {"id": theirs.public_id}, payment_id=theirs.id)
    db.session.commit()
    for path in ["/dashboard/payments", "/dashboard/payments.csv", "/dashboard/webhooks", "/dashboard/refunds"]:
        text = signed_in.get(path).text
        assert "THEIRS-1" not in text and theirs.public_id not in text, path
    for q in ["THEIRS-1", theirs.public_id, "x@shop.example"]:
        assert "No payments match these filters." in signed_in.get("/dashboard/payments", query_string={"q": q}).text
        assert signed_in.get("/dashboard/payments.csv", query_string={"q": q}).text.count("\n") == 1  # header only
    assert "MINE-1" in signed_in.get("/dashboard/payments").text
    reload(mine)
