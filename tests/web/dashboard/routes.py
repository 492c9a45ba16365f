"""Every dashboard route a signed-in member can call, and the objects to call it on: shared by the access test
(anonymous, other merchant's ids, CSRF) and the roles test (every role against every route)."""

from sqlalchemy import func, select, update

from app.extensions import db
from app.models import ApiKey, Merchant, OutboxEvent, Payment, PaymentAttempt, Refund
from app.services import webhook_endpoints as endpoints
from app.services.outbox import emit

#: Routes anyone may open: the sign-in steps and accepting an invitation.
PUBLIC = [("GET", "/dashboard/login"), ("POST", "/dashboard/login"), ("GET", "/dashboard/login/two-factor"),
          ("POST", "/dashboard/login/two-factor"), ("GET", "/dashboard/invitations/{token}"),
          ("POST", "/dashboard/invitations/{token}")]

# (method, path); {payment}, {paid}, {attempt}, {event}, {key}, {gateway}, {refund}, {member}, {invitation}, {endpoint} are
# filled with the owner's ids ({decision}: approve). tests/web/dashboard/test_roles.py checks that this list is every dashboard route.
ROUTES = [
    ("GET", "/dashboard/"),
    ("GET", "/dashboard/account"),
    ("POST", "/dashboard/account/security/password"),
    ("GET", "/dashboard/account/security"),
    ("POST", "/dashboard/account/security/two-factor/enable"),
    ("POST", "/dashboard/account/security/two-factor/disable"),
    ("POST", "/dashboard/account/security/sessions/end-others"),
    ("POST", "/dashboard/switch"),
    ("GET", "/dashboard/team"),
    ("POST", "/dashboard/team/invitations"),
    ("POST", "/dashboard/team/invitations/{invitation}/revoke"),
    ("POST", "/dashboard/team/members/{member}/role"),
    ("POST", "/dashboard/team/members/{member}/remove"),
    ("GET", "/dashboard/audit"),
    ("GET", "/dashboard/audit.csv"),
    ("POST", "/dashboard/settings/members"),
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
    ("POST", "/dashboard/payments/{payment}/review/{decision}"),
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


def route_ids(merchant, factories):
    from app.models import Invitation, utcnow

    viewer = factories.member(merchant, "viewer")
    invitation = Invitation(merchant_id=merchant.id, email="invitee@example.test", role="viewer",
                            expires_at=utcnow().replace(year=2100))
    db.session.add(invitation)
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
            "paid": paid.public_id, "member": viewer.membership_of(merchant.id).public_id,
            "invitation": invitation.public_id, "decision": "approve",
            "endpoint": endpoints.first_endpoint(merchant, create=True).public_id}


def snapshot(merchant_id):
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
    from app.models import Invitation, Membership, User

    team = db.session.execute(select(User.email, User.password_hash, User.totp_secret_enc, Membership.role)
                              .join(Membership, Membership.user_id == User.id)
                              .where(Membership.merchant_id == merchant_id).order_by(Membership.id)).all()
    invitations = db.session.execute(select(Invitation.public_id, Invitation.revoked_at)
                                     .where(Invitation.merchant_id == merchant_id).order_by(Invitation.id)).all()
    return (team, invitations, m.require_two_factor, m.support_refund_limits, [(e.url, e.secret_enc, e.enabled) for e in m.webhook_endpoints], m.auto_refund_double_payments, payments, keys,
            events, accounts, refunds, attempts)


