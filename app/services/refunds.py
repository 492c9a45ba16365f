"""Refunds: reserve the amount atomically, then ask the gateway from a job, then settle.

The refundable amount is the captured amount minus every refund that has not failed. Accepting a refund
reserves its amount with one compare-and-set UPDATE

    UPDATE payments SET amount_refunded = amount_refunded + :amt
    WHERE id = :id AND amount_refunded + :amt <= amount AND status IN ('succeeded', 'partially_refunded')

so of two requests that together exceed the amount exactly one is accepted, on PostgreSQL (the second
UPDATE waits for the first's row lock, then re-checks) and on SQLite (one writer at a time). The refund
stays `pending` until the job has called the gateway adapter's `refund()` (outside any transaction); then it
becomes `succeeded` (the payment moves to partially_refunded or refunded through the state machine) or
`failed` (the reservation is released), with a `refund.succeeded` / `refund.failed` event in the same commit.
"""

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select, update

from app.extensions import db
from app.gateways import get_gateway
from app.gateways.base import GatewayError
from app.models import Payment, PaymentEvent, Refund
from app.serializers import refund_dict
from app.services.errors import NotFound, ValidationError
from app.services.gateways import context_for, payment_info
from app.services.outbox import emit
from app.state_machine import Status, transition

log = logging.getLogger(__name__)

REFUNDABLE = (Status.SUCCEEDED.value, Status.PARTIALLY_REFUNDED.value)


def _not_refundable(payment):
    return ValidationError(f"a {payment.status} payment cannot be refunded", code="payment_not_refundable")


def _exceeds(payment, amount):
    return ValidationError(
        f"the refund of {amount} exceeds the {max(payment.amount - payment.amount_refunded, 0)} "
        "still refundable on this payment", field="amount", code="refund_exceeds_captured")


def build_refund(payment, amount=None, reason=None, *, source):
    """Validate and reserve a refund and add it to the session (no commit); see request_refund."""
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)):
        raise ValidationError("amount must be an integer in minor units", field="amount", code="invalid_type")
    if amount is not None and amount < 1:
        raise ValidationError("amount must be positive", field="amount", code="invalid_amount")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
        raise ValidationError("reason must be a string of at most 500 characters", field="reason")
    db.session.refresh(payment)
    if payment.status not in REFUNDABLE:
        raise _not_refundable(payment)
    if amount is None:
        amount = payment.amount - payment.amount_refunded
        if amount < 1:
            raise _exceeds(payment, amount)
    reserved = db.session.execute(
        update(Payment)
        .where(Payment.id == payment.id, Payment.amount_refunded + amount <= Payment.amount,
               Payment.status.in_(REFUNDABLE))
        .values(amount_refunded=Payment.amount_refunded + amount)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(payment)
    if reserved != 1:
        raise _not_refundable(payment) if payment.status not in REFUNDABLE else _exceeds(payment, amount)
    refund = Refund(payment_id=payment.id, merchant_id=payment.merchant_id, amount=amount,
                    currency=payment.currency, reason=reason or None, status="pending", gateway=payment.gateway,
                    attempts=0)
    db.session.add(refund)
    db.session.flush()
    db.session.add(PaymentEvent(payment_id=payment.id, kind="refund", gateway=payment.gateway,
                                message=f"Refund {refund.public_id} of {amount} requested [{source}]",
                                data={"refund": refund.public_id, "amount": amount, "reason": reason}))
    db.session.flush()
    db.session.info.setdefault("refunds_created", []).append(refund.id)
    return refund


def request_refund(payment, amount=None, reason=None, *, source):
    """Accept a refund of `amount` (default: all that is left) and commit; the gateway is asked by a job
    enqueued after the commit. Raises ValidationError `refund_exceeds_captured` or `payment_not_refundable`."""
    try:
        refund = build_refund(payment, amount, reason, source=source)
    except ValidationError:
        db.session.rollback()
        raise
    db.session.commit()
    return refund


def get_for_merchant(merchant, public_id):
    refund = db.session.scalar(select(Refund).where(Refund.public_id == public_id,
                                                    Refund.merchant_id == merchant.id))
    if refund is None:
        raise NotFound(f"no refund {public_id}")
    return refund


def process_refund(refund_id):
    """Ask the gateway to refund a pending refund and settle it; return the refund's status. Commits."""
    refund = db.session.get(Refund, refund_id)
    if refund is None or refund.status != "pending":
        db.session.rollback()
        return refund.status if refund else None
    payment = refund.payment
    account = payment.merchant.gateway_account(refund.gateway) if refund.gateway else None
    if account is None:
        return _settle(refund, "failed", message="the payment's gateway account no longer exists")
    gateway = get_gateway(refund.gateway)
    info, ctx, amount, key = payment_info(payment, refund.gateway), context_for(account), refund.amount, refund.public_id
    refund.attempts += 1
    attempts = refund.attempts
    db.session.commit()  # no transaction held during the gateway call
    try:
        result = gateway.refund(info, amount, key, ctx)
    except GatewayError as exc:
        return _retry_later(refund_id, attempts, str(exc))
    refund = db.session.get(Refund, refund_id)
    if result.gateway_reference:
        refund.gateway_reference = result.gateway_reference
    if result.status == "pending":  # the gateway settles later: ask again (same idempotency key)
        return _retry_later(refund_id, attempts, "the gateway reports the refund as pending")
    return _settle(refund, "succeeded" if result.status == "succeeded" else "failed",
                   message=result.message, raw=result.raw)


def _retry_later(refund_id, attempts, message):
    refund = db.session.get(Refund, refund_id)
    refund.failure_message = message[:500]
    db.session.add(PaymentEvent(payment_id=refund.payment_id, kind="refund", gateway=refund.gateway,
                                message=f"Refund {refund.public_id}: attempt {attempts}: {message}"))
    db.session.commit()
    if attempts >= current_app.config["REFUND_MAX_ATTEMPTS"]:
        log.warning("refund %s still pending after %s attempts", refund.public_id, attempts)
        return "pending"  # left pending with its reservation: a person must look at it
    try:
        from app.extensions import get_queue

        get_queue("default").enqueue_in(timedelta(seconds=60 * 2 ** (attempts - 1)), "app.jobs.refunds.process",
                                        refund_id, result_ttl=0)
    except Exception:
        log.warning("could not schedule refund %s again", refund.public_id, exc_info=True)
    return "pending"


def _settle(refund, status, *, message=None, raw=None):
    """Move a pending refund to succeeded/failed, the payment with it, and emit the refund event."""
    moved = db.session.execute(
        update(Refund).where(Refund.id == refund.id, Refund.status == "pending")
        .values(status=status, failure_message=(message or None) if status == "failed" else None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:  # settled by someone else meanwhile
        db.session.rollback()
        return db.session.get(Refund, refund.id).status
    payment = db.session.get(Payment, refund.payment_id)
    if status == "failed":
        db.session.execute(
            update(Payment).where(Payment.id == payment.id)
            .values(amount_refunded=Payment.amount_refunded - refund.amount)
            .execution_options(synchronize_session=False)
        )
        db.session.add(PaymentEvent(payment_id=payment.id, kind="refund", gateway=refund.gateway,
                                    message=f"Refund {refund.public_id} of {refund.amount} failed: "
                                            f"{message or 'declined by the gateway'}", data=raw))
    else:
        succeeded = db.session.scalar(select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.payment_id == payment.id, Refund.status == "succeeded"))
        target = Status.REFUNDED if succeeded >= payment.amount else Status.PARTIALLY_REFUNDED
        transition(payment, target, reason=f"Refund {refund.public_id} of {refund.amount} succeeded",
                   source="refund", data=raw, gateway=refund.gateway)
    db.session.refresh(refund)
    db.session.refresh(payment)
    emit(f"refund.{status}", payment.merchant_id, refund_dict(refund), payment_id=payment.id)
    db.session.commit()
    return status
