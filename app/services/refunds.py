"""Refunds: reserve the amount atomically, then ask the gateway from a job, then settle.

The refundable amount is the captured amount minus every refund that has not failed. Accepting a refund
reserves its amount with one compare-and-set UPDATE

    UPDATE payments SET amount_refunded = amount_refunded + :amt
    WHERE id = :id AND amount_refunded + :amt <= amount AND status IN ('succeeded', 'partially_refunded')

so of two requests that together exceed the amount exactly one is accepted, on PostgreSQL (the second
UPDATE waits for the first's row lock, then re-checks) and on SQLite (one writer at a time). The refund
stays `pending` until a job has called the gateway adapter's `refund()` (outside any transaction); then it
becomes `succeeded` (the payment moves to partially_refunded or refunded through the state machine) or
`failed` (the reservation is released), with a `refund.succeeded` / `refund.failed` event in the same commit.

`next_attempt_at` says when the next gateway call is due. A run first claims due refunds with one
compare-and-set UPDATE of a lease over them (one refund for the job of a refund just requested, a batch of
them for the sweep's job; FOR UPDATE SKIP LOCKED on PostgreSQL so two batch jobs take disjoint refunds)

    UPDATE refunds SET next_attempt_at = :now + REFUND_LEASE_SECONDS
    WHERE id IN (:ids | due refunds) AND status = 'pending' AND next_attempt_at <= :now
      AND NOT (in_call AND gateway IN (:gateways that do not de-duplicate))

and right before each gateway call starts it, checking the lease is still its own (and renewing it, so each
call has a whole lease however long the batch took)

    UPDATE refunds SET attempts = attempts + 1, in_call = true, next_attempt_at = :now + REFUND_LEASE_SECONDS
    WHERE id = :id AND status = 'pending' AND next_attempt_at = :claimed_lease

so only the run whose UPDATEs hit the row calls the gateway, and a duplicate job, or a retry racing the sweep,
changes nothing. A gateway that could not be reached is asked again after 1, 2, 4, … minutes (RQ
`enqueue_in` for the job of a refund just requested; the sweep's next run for a refund of a batch). The
periodic sweep (REFUND_SWEEP_SECONDS) asks for one batch job when refunds are due, which also covers refunds
accepted while Redis was down, lost retry jobs and workers that died mid-call (their lease runs out); a
refund claimed in a batch whose call had not started when the worker died is simply due again.

A refund waits for a person (pending, `next_attempt_at` NULL, `needs_attention`) after REFUND_MAX_ATTEMPTS
attempts, and after a call with an unknown outcome (a timeout, an answer that cannot say, like VNPay's 99, an
unexpected error, or a worker that died during the call: its lease ran out with `in_call` still set) at a
gateway whose refund API does not de-duplicate on our refund id (`Gateway.refund_idempotent`): sending it
again could refund twice. The person checks at the gateway, then retries it now, or marks it made or failed
(dashboard).
"""

import logging
import time
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, or_, select, update

from app.extensions import db
from app.gateways import get_gateway
from app.gateways.base import GatewayError
from app.models import Payment, PaymentAttempt, PaymentEvent, Refund, utcnow
from app.money import format_money
from app.serializers import refund_dict
from app.services import audit
from app.services.errors import MalformedRequest, NotFound, ValidationError
from app.services.gateways import context_for, payment_info
from app.services.outbox import emit
from app.state_machine import AttemptStatus, Status, transition

log = logging.getLogger(__name__)

REFUNDABLE = (Status.SUCCEEDED.value, Status.PARTIALLY_REFUNDED.value)
SWEEP_BATCH = 1000
#: Refunds claimed by one compare-and-set UPDATE of a batch job (their calls are made one after another).
REFUND_BATCH = 50
#: A refund call's worst case: an adapter makes up to three requests, each with 30 s connect and read timeouts.
_SLOWEST_CALL_SECONDS = 180


def _not_refundable(payment):
    return ValidationError(f"a {payment.status} payment cannot be refunded", code="payment_not_refundable")


def _exceeds(payment, amount):
    return ValidationError(
        f"the refund of {amount} exceeds the {max(payment.amount - payment.amount_refunded, 0)} "
        "still refundable on this payment", field="amount", code="refund_exceeds_captured")


def build_refund(payment, amount=None, reason=None, *, source, attempt=None, actor=None):
    """Validate and reserve a refund and add it to the session with its audit row for `actor` (no commit);
    see request_refund.

    attempt: an extra attempt of a double payment whose money goes back (its own amount is reserved, the
    payment's status does not change); by default the attempt that paid the payment.
    """
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)):
        raise MalformedRequest("amount must be an integer in minor units", field="amount")
    if amount is not None and amount < 1:
        raise ValidationError("amount must be positive", field="amount", code="invalid_amount")
    if reason is not None and not isinstance(reason, str):
        raise MalformedRequest("reason must be a string", field="reason")
    if reason is not None and len(reason) > 500:
        raise ValidationError("reason must be at most 500 characters", field="reason")
    db.session.refresh(payment)
    if attempt is not None and attempt.id != payment.succeeded_attempt_id:
        amount = _reserve_extra(attempt, amount)
    else:
        attempt = payment.succeeded_attempt
        amount = _reserve(payment, amount)
    refund = Refund(payment_id=payment.id, merchant_id=payment.merchant_id, amount=amount,
                    currency=payment.currency, reason=reason or None, status="pending", gateway=attempt.gateway,
                    attempt_id=attempt.id, attempts=0, next_attempt_at=utcnow())
    db.session.add(refund)
    db.session.flush()
    db.session.add(PaymentEvent(payment_id=payment.id, attempt_id=attempt.id, kind="refund", gateway=attempt.gateway,
                                message=f"Refund {refund.public_id} of {format_money(amount, refund.currency)} of attempt {attempt.number} "
                                        f"requested [{source}]",
                                data={"refund": refund.public_id, "amount": amount, "reason": reason}))
    db.session.flush()
    db.session.info.setdefault("refunds_created", []).append(refund.id)
    audit_refund(refund, "refund.requested", actor)
    return refund


def _reserve(payment, amount):
    """Reserve `amount` (default: all that is left) of a paid payment with a compare-and-set; return it."""
    if payment.status not in REFUNDABLE or payment.succeeded_attempt_id is None:
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
    return amount


def _reserve_extra(attempt, amount):
    """The same for an extra attempt of a double payment: its own amount, reserved on the attempt."""
    db.session.refresh(attempt)
    if attempt.status != AttemptStatus.SUCCEEDED:
        raise ValidationError(f"a {attempt.status} attempt cannot be refunded", code="attempt_not_refundable")
    left = attempt.amount - attempt.amount_refunded
    amount = left if amount is None else amount
    reserved = amount >= 1 and db.session.execute(
        update(PaymentAttempt)
        .where(PaymentAttempt.id == attempt.id, PaymentAttempt.amount_refunded + amount <= PaymentAttempt.amount,
               PaymentAttempt.status == AttemptStatus.SUCCEEDED.value)
        .values(amount_refunded=PaymentAttempt.amount_refunded + amount)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    db.session.refresh(attempt)
    if not reserved:
        raise ValidationError(f"the refund of {amount} exceeds the {max(left, 0)} still refundable on attempt "
                              f"{attempt.number}", field="amount", code="refund_exceeds_captured")
    return amount


def request_refund(payment, amount=None, reason=None, *, source, attempt=None, actor=None):
    """Accept a refund of `amount` (default: all that is left) and commit; the gateway is asked by a job
    enqueued after the commit. Raises ValidationError `refund_exceeds_captured` or `payment_not_refundable`.
    `actor` (app.services.audit.Actor): who asked, for the audit log."""
    try:
        refund = build_refund(payment, amount, reason, source=source, attempt=attempt, actor=actor)
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


def _not_deduplicating():
    """Codes of the gateways whose refund API does not de-duplicate on our refund id."""
    from app.gateways import REGISTRY

    return sorted(code for code, gateway in REGISTRY.items() if not gateway.refund_idempotent)


def _claim(refund_id, now, lease_until, *, limit=REFUND_BATCH):
    """Compare-and-set: hold due pending refunds until `lease_until` (`refund_id`, or with None up to `limit`
    of any, oldest first) and return the ids this call holds: of any number of concurrent runs exactly one
    gets each refund. A refund whose worker died during its call at a gateway that does not de-duplicate is
    never taken (sending it again could refund twice; see _stopped_mid_call)."""
    due = [Refund.status == "pending", Refund.next_attempt_at <= now,
           or_(Refund.in_call.is_(False), Refund.gateway.is_(None), Refund.gateway.not_in(_not_deduplicating()))]
    if refund_id is None:
        batch = select(Refund.id).where(*due).order_by(Refund.next_attempt_at, Refund.id).limit(limit)
        if db.engine.dialect.name == "postgresql":  # two batch jobs take disjoint refunds without waiting
            batch = batch.with_for_update(skip_locked=True)
        target = Refund.id.in_(batch.scalar_subquery())
    else:
        target = Refund.id == refund_id
    return db.session.execute(
        update(Refund).where(target, *due).values(next_attempt_at=lease_until).returning(Refund.id)
        .execution_options(synchronize_session=False)
    ).scalars().all()


def _start_call(refund_id, claimed_until):
    """Compare-and-set right before a held refund's gateway call: still ours (the lease `claimed_until` has
    not been taken over), count the attempt, mark the call in progress and renew the lease for it. Return
    the new lease's end, or None when the refund is no longer ours."""
    lease_until = utcnow() + timedelta(seconds=current_app.config["REFUND_LEASE_SECONDS"])
    started = db.session.execute(
        update(Refund)
        .where(Refund.id == refund_id, Refund.status == "pending", Refund.next_attempt_at == claimed_until)
        .values(attempts=Refund.attempts + 1, next_attempt_at=lease_until, in_call=True)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    return lease_until if started else None


def _stopped_mid_call(refund_id, now):
    """A run that claimed the refund died during its gateway call (its lease ran out with the call still
    marked): at a gateway that does not de-duplicate, sending again could refund twice, so the refund is
    left to a person and "pending" returned. None when that is not the case (the caller claims as usual)."""
    row = db.session.execute(select(Refund.in_call, Refund.next_attempt_at, Refund.attempts, Refund.gateway)
                             .where(Refund.id == refund_id, Refund.status == "pending")).first()
    if not row or not row.in_call or row.next_attempt_at is None or row.next_attempt_at > now:
        return None
    gateway = get_gateway(row.gateway) if row.gateway else None
    if gateway is None or gateway.refund_idempotent:
        return None
    return _release(refund_id, row.next_attempt_at, row.attempts, "the worker stopped during the gateway call",
                    wait=_unknown_outcome(gateway))


def _unknown_outcome(gateway):
    return (f"the outcome is unknown and {gateway.name} does not de-duplicate refund requests, so it is not sent "
            f"again automatically. It waits for a person: check this refund at {gateway.name}, then retry it, or "
            "mark it made or failed, on the dashboard")


def _lease(now):
    return now + timedelta(seconds=current_app.config["REFUND_LEASE_SECONDS"])


def process_refund(refund_id):
    """If the pending refund is due, claim it, ask the gateway once and settle it or plan what comes next;
    return the refund's status (None for an unknown id). Commits."""
    now = utcnow()
    stopped = _stopped_mid_call(refund_id, now)
    if stopped:
        return stopped
    lease_until = _lease(now)
    if not _claim(refund_id, now, lease_until):  # settled, held by another run, not due, or waiting for a person
        return _status_now(refund_id)
    return _call_gateway(refund_id, lease_until, retry_job=True) or _status_now(refund_id)


def _call_gateway(refund_id, claimed_until, *, retry_job):
    """Start the gateway call of a refund this run holds (until `claimed_until`), make it once, and settle the
    refund or plan what comes next; return its status, or None when the refund was no longer ours. A retry
    gets its own delayed job with `retry_job`, else the sweep finds it when due. Commits."""
    lease_until = _start_call(refund_id, claimed_until)
    if lease_until is None:
        db.session.rollback()
        return None
    refund = db.session.get(Refund, refund_id, populate_existing=True)
    payment = refund.payment
    account = payment.merchant.gateway_account(refund.gateway) if refund.gateway else None
    if account is None:
        return _settle(refund, "failed", message="the payment's gateway account no longer exists")
    gateway = get_gateway(refund.gateway)
    info, ctx, amount, key = payment_info(payment, refund.attempt), context_for(account), refund.amount, refund.public_id
    attempts = refund.attempts
    db.session.commit()  # the claim is visible; no transaction held during the gateway call
    try:
        result = gateway.refund(info, amount, key, ctx)
    except Exception as exc:  # an adapter's bug must not leave the refund held until its lease runs out
        if isinstance(exc, GatewayError):
            message, unknown = str(exc), exc.timeout
        else:  # it may have come after the gateway made the refund
            log.exception("refund %s: the %s adapter failed", key, gateway.code)
            message, unknown = f"the {gateway.name} adapter failed ({type(exc).__name__})", True
        return _not_settled(gateway, refund_id, lease_until, attempts, message, unknown=unknown,
                            retry_job=retry_job)
    if result.status == "pending":  # the gateway settles later: ask again (same idempotency key)
        return _not_settled(gateway, refund_id, lease_until, attempts, "the gateway reports the refund as pending",
                            reference=result.gateway_reference, retry_job=retry_job)
    if result.status == "unknown":  # as after a timeout
        return _not_settled(gateway, refund_id, lease_until, attempts, result.message or "the gateway could not say",
                            reference=result.gateway_reference, unknown=True, retry_job=retry_job)
    refund = db.session.get(Refund, refund_id)
    if result.gateway_reference:
        refund.gateway_reference = result.gateway_reference
    return _settle(refund, "succeeded" if result.status == "succeeded" else "failed",
                   message=result.message, raw=result.raw)


def _not_settled(gateway, refund_id, lease_until, attempts, message, *, reference=None, unknown=False,
                 retry_job=True):
    """After a call that did not settle the refund: a person decides when its outcome is unknown at a gateway
    that does not de-duplicate refunds (sending it again could refund twice); otherwise it is asked again."""
    if unknown and not gateway.refund_idempotent:
        return _release(refund_id, lease_until, attempts, message, reference=reference,
                        wait=_unknown_outcome(gateway))
    return _retry_later(refund_id, lease_until, attempts, message, reference=reference, retry_job=retry_job)


def _status_now(refund_id):
    """The refund's status as committed (after rolling back whatever this run had open)."""
    db.session.rollback()
    status = db.session.scalar(select(Refund.status).where(Refund.id == refund_id))
    db.session.rollback()
    return status


def _retry_later(refund_id, lease_until, attempts, message, reference=None, retry_job=True):
    """Plan the next gateway call after the current backoff (its own delayed job with `retry_job`, else the
    sweep's), or leave the refund to a person when the attempts are used up."""
    if attempts >= current_app.config["REFUND_MAX_ATTEMPTS"]:
        log.warning("refund %s still pending after %s attempts", refund_id, attempts)
        return _release(refund_id, lease_until, attempts, message, reference=reference, wait=(
            f"no more automatic attempts after {attempts}. It waits for a person: check this refund at the "
            "gateway, then retry it, or mark it made or failed, on the dashboard"))
    delay = 60 * 2 ** (attempts - 1)
    status = _release(refund_id, lease_until, attempts, message, reference=reference, delay=delay)
    if status == "pending" and retry_job:
        try:
            from app.jobs import enqueue_refund

            enqueue_refund(current_app._get_current_object(), refund_id, delay=delay)
        except Exception:
            log.warning("could not schedule refund %s again; the sweeper will", refund_id, exc_info=True)
    return status


def _release(refund_id, lease_until, attempts, message, *, reference=None, delay=None, wait=None):
    """Record a gateway call that did not settle the refund and end its lease: the next call is due in
    `delay` seconds, or (`wait`, the reason) none is planned and a person decides. Only the holder of the
    lease writes (one that ran out may have been taken over). Commits."""
    values = {"failure_message": message[:500], "in_call": False,
              "next_attempt_at": utcnow() + timedelta(seconds=delay) if delay else None}
    if reference:
        values["gateway_reference"] = reference
    moved = db.session.execute(
        update(Refund).where(Refund.id == refund_id, Refund.status == "pending",
                             Refund.next_attempt_at == lease_until)
        .values(**values).execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        return _status_now(refund_id)
    refund = db.session.get(Refund, refund_id, populate_existing=True)
    then = f"; next attempt in {delay // 60} min" if delay else f". Needs attention: {wait}."
    db.session.add(PaymentEvent(payment_id=refund.payment_id, kind="refund", gateway=refund.gateway,
                                message=f"Refund {refund.public_id}: attempt {attempts}: {message}{then}"))
    db.session.commit()
    return "pending"


def due_refund_ids(limit=SWEEP_BATCH, now=None):
    return db.session.scalars(
        select(Refund.id)
        .where(Refund.status == "pending", Refund.next_attempt_at <= (now or utcnow()))
        .order_by(Refund.next_attempt_at)
        .limit(limit)
    ).all()


def sweep_due_refunds(limit=SWEEP_BATCH):
    """Ask for one batch job (process_due_refunds) when pending refunds are due (not held by a run in
    progress, not waiting for a person); return how many are due, up to `limit`. No job per refund."""
    from app.jobs import enqueue_refund_batch

    due = len(due_refund_ids(limit))
    db.session.rollback()
    if due:
        enqueue_refund_batch(current_app._get_current_object())
    return due


def process_due_refunds(batch_size=REFUND_BATCH):
    """Claim due refunds `batch_size` at a time (one compare-and-set UPDATE per batch) and make each one's
    gateway call in turn, as process_refund does for one; return {status: count} of the refunds called.

    New calls start only while the job's time lets the slowest gateway call end before RQ stops the job
    (REFUND_LEASE_SECONDS - 60 s; see app.jobs); refunds claimed but not started by then are made due
    again at once for the next job. Commits.
    """
    started, outcomes = time.monotonic(), {}
    budget = current_app.config["REFUND_LEASE_SECONDS"] - 60 - _SLOWEST_CALL_SECONDS - 10
    while True:
        now = utcnow()
        for refund_id in _lapsed_mid_call(now):
            _stopped_mid_call(refund_id, now)  # left to a person at a gateway that does not de-duplicate
        claimed_until = _lease(now)
        held = _claim(None, now, claimed_until, limit=batch_size)
        db.session.commit()
        for position, refund_id in enumerate(held):
            if outcomes and time.monotonic() - started > budget:
                _give_back(held[position:], claimed_until)
                return outcomes
            status = _call_gateway(refund_id, claimed_until, retry_job=False)
            if status:
                outcomes[status] = outcomes.get(status, 0) + 1
        if len(held) < batch_size:
            return outcomes


def _lapsed_mid_call(now):
    """Due pending refunds still marked in a gateway call (their worker died during it) at gateways that do
    not de-duplicate: the claim leaves them alone, a person decides."""
    ids = db.session.scalars(select(Refund.id).where(
        Refund.status == "pending", Refund.next_attempt_at <= now, Refund.in_call.is_(True),
        Refund.gateway.in_(_not_deduplicating())).limit(SWEEP_BATCH)).all()
    db.session.rollback()
    return ids


def _give_back(refund_ids, claimed_until):
    """End this run's lease on claimed refunds whose call it did not start: due again now."""
    db.session.execute(
        update(Refund).where(Refund.id.in_(refund_ids), Refund.status == "pending",
                             Refund.next_attempt_at == claimed_until, Refund.in_call.is_(False))
        .values(next_attempt_at=utcnow()).execution_options(synchronize_session=False))
    db.session.commit()


def audit_refund(refund, action, actor):
    """The audit row of a refund action (named by the payment, so the payment's timeline finds it)."""
    audit.record(refund.merchant_id, action, actor, target_type="payment", target_id=refund.payment.public_id,
                 after={"refund": refund.public_id, "amount": refund.amount, "currency": refund.currency,
                        "reason": refund.reason})


def retry_now(refund, *, source, actor=None):
    """A person asks the gateway once more about a refund that waits for them (attempts keep counting; the
    job is enqueued after the commit, or found by the sweep). Return whether it was queued. Commits."""
    queued = db.session.execute(
        update(Refund).where(Refund.id == refund.id, Refund.status == "pending", Refund.next_attempt_at.is_(None))
        .values(next_attempt_at=utcnow()).execution_options(synchronize_session=False)
    ).rowcount == 1
    if not queued:
        db.session.rollback()
        return False
    db.session.add(PaymentEvent(payment_id=refund.payment_id, kind="refund", gateway=refund.gateway,
                                message=f"Refund {refund.public_id}: retry requested [{source}]"))
    audit_refund(refund, "refund.retried", actor)
    db.session.info.setdefault("refunds_created", []).append(refund.id)  # the relay enqueues it after commit
    db.session.commit()
    return True


#: What a person saw at the gateway before settling a refund that waits for them.
SEEN_AT_GATEWAY = {"failed": "the gateway shows no such refund", "succeeded": "the gateway shows the refund made"}


def mark_failed(refund, *, source, actor=None):
    """Settle a refund that waits for a person as failed, for when the gateway shows no such refund: the
    reserved amount is released and refund.failed emitted. Return whether it did. Commits."""
    return _settle_by_person(refund, "failed", source, actor)


def mark_succeeded(refund, *, source, actor=None):
    """Settle a refund that waits for a person as succeeded, for when the gateway shows it made the refund:
    the payment moves to partially_refunded or refunded and refund.succeeded is emitted. Return whether it
    did. Commits."""
    return _settle_by_person(refund, "succeeded", source, actor)


def _settle_by_person(refund, status, source, actor):
    db.session.refresh(refund)
    if not refund.needs_attention:
        db.session.rollback()
        return False
    message = f"marked {status} by a person: {SEEN_AT_GATEWAY[status]} [{source}]"
    return _settle(refund, status, waiting_only=True, message=message,
                   audited=(f"refund.marked_{status}", actor)) == status


def _settle(refund, status, *, message=None, raw=None, waiting_only=False, audited=None):
    """Move a pending refund (with `waiting_only`, only one that waits for a person) to succeeded/failed, the
    payment with it, and emit the refund event."""
    where = [Refund.id == refund.id, Refund.status == "pending"]
    if waiting_only:
        where.append(Refund.next_attempt_at.is_(None))
    moved = db.session.execute(
        update(Refund).where(*where)
        .values(status=status, failure_message=(message or None) if status == "failed" else None,
                next_attempt_at=None, in_call=False)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:  # settled by someone else meanwhile
        db.session.rollback()
        return db.session.get(Refund, refund.id).status
    payment = db.session.get(Payment, refund.payment_id)
    extra = refund.attempt_id is not None and refund.attempt_id != payment.succeeded_attempt_id
    if status == "failed":
        if extra:  # release what was reserved on the attempt of a double payment
            db.session.execute(
                update(PaymentAttempt).where(PaymentAttempt.id == refund.attempt_id)
                .values(amount_refunded=PaymentAttempt.amount_refunded - refund.amount)
                .execution_options(synchronize_session=False))
        else:
            db.session.execute(
                update(Payment).where(Payment.id == payment.id)
                .values(amount_refunded=Payment.amount_refunded - refund.amount)
                .execution_options(synchronize_session=False)
            )
        db.session.add(PaymentEvent(payment_id=payment.id, attempt_id=refund.attempt_id, kind="refund",
                                    gateway=refund.gateway, data=raw,
                                    message=f"Refund {refund.public_id} of {format_money(refund.amount, refund.currency)} failed: "
                                            f"{message or 'declined by the gateway'}"))
    elif extra:  # the double charge went back; the payment itself stays paid
        db.session.add(PaymentEvent(payment_id=payment.id, attempt_id=refund.attempt_id, kind="refund",
                                    gateway=refund.gateway, data=raw,
                                    message=f"Refund {refund.public_id} of {format_money(refund.amount, refund.currency)} of the double charge "
                                            "succeeded" + (f": {message}" if message else "")))
    else:
        succeeded = db.session.scalar(select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.payment_id == payment.id, Refund.status == "succeeded",
            (Refund.attempt_id == payment.succeeded_attempt_id) | Refund.attempt_id.is_(None)))
        target = Status.REFUNDED if succeeded >= payment.amount else Status.PARTIALLY_REFUNDED
        transition(payment, target, reason=f"Refund {refund.public_id} of {format_money(refund.amount, refund.currency)} succeeded"
                                           + (f": {message}" if message else ""),
                   source="refund", data=raw, gateway=refund.gateway)
    db.session.refresh(refund)
    db.session.refresh(payment)
    emit(f"refund.{status}", payment.merchant_id, refund_dict(refund), payment_id=payment.id)
    if audited:
        audit_refund(refund, *audited)
    db.session.commit()
    return status
