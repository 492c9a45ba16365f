"""Fraud review: a person approves or denies a payment its gateway's fraud detection holds for review
(Midtrans' `challenge`), through that gateway's API.

The decision is sent outside any transaction and written on the timeline (who, what, the gateway's
answer); the result then comes in like any other: the gateway's status query is applied through
`app.services.callbacks.apply_result` (reconciliation's path), and its notification afterwards changes
nothing more. Approved → the attempt and the payment succeed; denied → the attempt fails as blocked and the
payment goes back to pending for another try, or fails once it has used its tries (the attempts rules).
"""

from sqlalchemy import select

from app.extensions import db
from app.gateways import get_gateway
from app.gateways.base import GatewayError
from app.models import PaymentAttempt, PaymentEvent
from app.services import audit
from app.services.errors import ValidationError
from app.services.gateways import context_for, payment_info
from app.services.reconciliation import reconcile_attempt
from app.state_machine import ATTEMPT_OPEN

DECISIONS = {"approve": "Approved", "deny": "Denied"}


def attempt_in_review(payment):
    """The open attempt of `payment` that its gateway holds for review and can decide by API, or None."""
    if not payment.needs_review:
        return None
    attempts = db.session.scalars(select(PaymentAttempt).where(
        PaymentAttempt.payment_id == payment.id,
        PaymentAttempt.status.in_([s.value for s in ATTEMPT_OPEN])).order_by(PaymentAttempt.id.desc()))
    return next((a for a in attempts if getattr(get_gateway(a.gateway), "can_review", False)), None)


def decide_review(payment, decision, *, actor):
    """Approve or deny (`decision`) the payment held for review, as `actor` (an audit Actor: named on the
    timeline, and the decision sent is one audit row, whatever the gateway answers); return
    whether the payment or its attempt changed. Commits. Raises ValidationError when nothing is held for
    review or the gateway refuses or cannot be reached (written on the timeline too)."""
    if decision not in DECISIONS:
        raise ValidationError("decide approve or deny", field="decision")
    attempt = attempt_in_review(payment)
    account = payment.merchant.gateway_account(attempt.gateway) if attempt else None
    if attempt is None or account is None:
        raise ValidationError("this payment is not held for review", code="not_in_review")
    gateway, attempt_id = get_gateway(attempt.gateway), attempt.id
    info, ctx = payment_info(payment, attempt), context_for(account)
    db.session.commit()  # no transaction held while the gateway answers
    try:
        answer = gateway.review(info, decision, ctx)
    except GatewayError as exc:
        attempt = db.session.get(PaymentAttempt, attempt_id)
        _note(attempt, f"{decision.capitalize()} refused by {gateway.name}: {exc}", actor, getattr(exc, "raw", None),
              decision, accepted=False)
        db.session.commit()
        raise ValidationError(f"{gateway.name} did not take the decision: {exc}", code="review_refused") from exc
    attempt = db.session.get(PaymentAttempt, attempt_id)
    _note(attempt, f"{DECISIONS[decision]} at {gateway.name}"
          + (f": {answer.message}" if answer.message else ""), actor, answer.raw, decision, accepted=True)
    db.session.commit()
    return reconcile_attempt(attempt)


def _note(attempt, message, actor, data, decision, *, accepted):
    """The timeline entry and the audit row of a decision sent to the gateway (same transaction)."""
    db.session.add(PaymentEvent(payment_id=attempt.payment_id, attempt_id=attempt.id, kind="review",
                                gateway=attempt.gateway, message=f"Fraud review: {message} [by {actor.label}]"[:1000],
                                data=data))
    audit.record(attempt.payment.merchant_id, f"payment.review_{decision}", actor, target_type="payment",
                 target_id=attempt.payment.public_id, after={"gateway": attempt.gateway, "accepted": accepted})
