"""Handling a gateway's callback: find the attempt, verify, record raw, check money, apply exactly once.

Order of checks (VNPay's official order, applied to every gateway): the attempt exists → the adapter verifies
the signature (and, for gateways that want it, confirms with the gateway's API) → the amount and currency
match → the state machine applies the outcome with a compare-and-set, so a duplicate or concurrent callback
applies once and is answered as a duplicate. Every callback is kept raw on the timeline with its verdict,
including ones that match no payment. What a browser brought back (`trusted=False`) is shown, never applied.
"""

import logging
from dataclasses import dataclass
from functools import cache

from flask import current_app
from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager
from sqlalchemy.orm.attributes import set_committed_value

from app import money
from app.extensions import db
from app.gateways import get_gateway
from app.gateways.base import Ack, CallbackError, CallbackResult, GatewayError, Outcome, Reason
from app.models import GatewayAccount, Merchant, Payment, PaymentAttempt, PaymentEvent
from app.ops import logs
from app.safe_text import storable, storable_text
from app.serializers import attempt_failed_dict
from app.services.errors import ValidationError
from app.services.gateways import context_for, payment_info
from app.services.outbox import emit
from app.state_machine import (
    ATTEMPT_OPEN,
    PAID,
    AttemptStatus,
    Status,
    flag_double_payment,
    transition,
    transition_attempt,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Handled:
    ack: Ack
    payment: Payment | None = None
    result: CallbackResult | None = None
    applied: bool = False


def _record(attempt, code, kind, raw, *, verified, message, dedupe_key=None):
    db.session.add(
        PaymentEvent(
            payment_id=attempt.payment_id if attempt else None,
            attempt_id=attempt.id if attempt else None,
            kind="callback",
            gateway=code,
            verified=verified,
            message=storable_text(f"{kind}: {message}"),
            data=storable(raw),  # an adapter's own raw record too: always storable
            dedupe_key=dedupe_key,
        )
    )


def record_unhandled(code, kind, req):
    """Keep the raw callback whose handling failed unexpectedly (the caller rolled back). Commits."""
    _record(None, code, kind, req.raw(), verified=False, message="internal error, not applied")
    db.session.commit()


def find_attempt(code, lookup):
    """(attempt, its payment, the merchant's `code` account) for what a callback claims, in one query; None
    for each part that is unknown.

    An attempt is found by our order id, else by our handle at the gateway, else by the gateway's
    transaction id, always at gateway `code` (a callback of one gateway never touches another's attempt).
    Its payment and merchant come in the same row; of the merchant's accounts only the one for `code`.
    """
    column, value = next(((c, v) for c, v in (("public_id", lookup.order_id), ("reference", lookup.gateway_reference),
                                                ("transaction_id", lookup.gateway_transaction_id)) if v), (None, None))
    if value is None:
        return None, None, None
    row = db.session.execute(_find_statement(column), {"value": value, "code": code}).first()
    if row is None:
        return None, None, None
    attempt, payment, account = row
    if payment.attempt_count == 1 and attempt.number == 1 and "attempts" not in payment.__dict__:
        # Its only attempt is this one: the event body's list of attempts needs no query of its own.
        set_committed_value(payment, "attempts", [attempt])
    return attempt, payment, account


@cache
def _find_statement(column):
    """find_attempt's query by attempt `column`, built once per process (building it was a third of its cost)."""
    return (
        select(PaymentAttempt, Payment, GatewayAccount)
        .join(PaymentAttempt.payment)
        .join(Payment.merchant)
        .outerjoin(GatewayAccount, (GatewayAccount.merchant_id == Payment.merchant_id)
                   & (GatewayAccount.gateway == bindparam("code")))
        .where(getattr(PaymentAttempt, column) == bindparam("value"), PaymentAttempt.gateway == bindparam("code"))
        .options(contains_eager(PaymentAttempt.payment).contains_eager(Payment.merchant)
                 .lazyload(Merchant.gateway_accounts))
    )


def _end_read_transaction():
    """Commit the read-only transaction without expiring what it loaded (so nothing is read twice).

    Stale data is harmless here: the amount and currency never change, and the state machine's
    compare-and-set re-reads the payment if its status moved meanwhile.
    """
    session = db.session()
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True


def handle_callback(code, kind, req):
    """Verify and apply one callback; return Handled(ack, payment, result, applied). Commits."""
    gateway = get_gateway(code)
    raw = req.raw()
    try:
        lookup = gateway.identify(kind, req)
    except CallbackError as exc:
        _record(None, code, kind, raw, verified=False, message=str(exc))
        db.session.commit()
        return Handled(exc.ack)
    except Exception:  # a malformed body must never become a 500
        log.warning("unparseable %s %s callback", code, kind)
        _record(None, code, kind, raw, verified=False, message="unparseable request")
        db.session.commit()
        return Handled(Ack.INVALID_REQUEST)

    attempt, payment, account = find_attempt(code, lookup)
    logs.note(payment=payment)  # now, while its public id is loaded (after a commit it would be read again)
    if attempt is None or account is None:
        _record(None, code, kind, raw, verified=False, message="no such payment")
        db.session.commit()
        return Handled(Ack.NOT_FOUND)
    if not attempt.is_open and gateway.captures_on_callback:
        # We never capture money for an attempt we ended (the shopper moved on): it cannot charge them.
        _record(attempt, code, kind, raw, verified=None, message=(
            f"attempt {attempt.number} is {attempt.status} "
            + ("(already applied, no change)" if attempt.status == AttemptStatus.SUCCEEDED
               else "(ended here: not captured, no change)")))
        db.session.commit()
        return Handled(Ack.DUPLICATE, payment)

    info, ctx = payment_info(payment, attempt), context_for(account)
    if kind not in gateway.local_kinds:
        _end_read_transaction()  # no transaction held while the adapter calls the gateway
    try:
        result = gateway.verify_callback(kind, req, info, ctx)
    except CallbackError as exc:
        _record(attempt, code, kind, exc.raw or raw, verified=False, message=f"refused: {exc}")
        db.session.commit()
        return Handled(exc.ack, payment)
    except GatewayError as exc:
        _record(attempt, code, kind, raw, verified=False, message=f"could not confirm with the gateway: {exc}")
        db.session.commit()
        return Handled(Ack.ERROR, payment)

    problem = money_problem(attempt, result)
    if problem:
        _record(attempt, code, kind, result.raw or raw, verified=False, message=f"refused: {problem}")
        db.session.commit()
        return Handled(Ack.INVALID_AMOUNT, payment, result)

    if not result.trusted:
        _record(attempt, code, kind, raw, verified=None,
                message=f"browser return says {result.outcome.value} (not trusted, not applied)")
        db.session.commit()
        return Handled(Ack.OK, payment, result)

    dedupe_key = f"{code}:{result.event_id}" if result.event_id else None
    applied, ack = apply_result(payment, attempt, result, source=f"callback:{code}")
    _record(attempt, code, kind, result.raw or raw, verified=True, dedupe_key=dedupe_key,
            message=result.outcome.value + ("" if applied else " (already applied, no change)"))
    try:
        db.session.commit()
    except IntegrityError:  # the same gateway event was applied by another request: undo ours
        db.session.rollback()
        _record(attempt, code, kind, result.raw or raw, verified=True, message="duplicate event, ignored")
        db.session.commit()
        return Handled(Ack.DUPLICATE, payment, result)
    return Handled(ack, payment, result, applied)


def _shown(amount, currency):
    """An amount as people read it on the timeline (a gateway's odd value or currency as it came)."""
    try:
        return money.format_money(amount, currency)
    except (money.MoneyError, TypeError):
        return f"{amount} {currency}"


def money_problem(attempt, result):
    """Why a verified gateway result must not be applied to `attempt` (wrong order, amount or currency), or None."""
    if result.order_id and result.order_id != attempt.public_id:
        return f"the callback is for {result.order_id}, not {attempt.public_id}"
    if result.outcome == Outcome.SUCCEEDED and result.amount is None:
        return "a success without an amount"
    if result.amount is not None and result.amount != attempt.amount:
        return f"amount {_shown(result.amount, result.currency or attempt.currency)} does not match " \
               f"{_shown(attempt.amount, attempt.currency)}"
    if result.currency is not None and result.currency != attempt.currency:
        return f"currency {result.currency} does not match {attempt.currency}"
    return None


_ENDED = {Outcome.FAILED: AttemptStatus.FAILED, Outcome.CANCELLED: AttemptStatus.CANCELLED,
          Outcome.EXPIRED: AttemptStatus.EXPIRED}
_DEFAULT_REASON = {Outcome.FAILED: Reason.FAILED, Outcome.CANCELLED: Reason.CANCELLED,
                   Outcome.EXPIRED: Reason.TIMED_OUT}


def apply_result(payment, attempt, result, *, source):
    """Apply a verified gateway result to `attempt`, then to its payment, through the state machine (no
    commit). Returns (applied, ack).

    Shared by callbacks, reconciliation (status queries) and the checkout (settling an open attempt before
    a new one), so every path decides alike:
    - succeeded: the attempt succeeds; the payment succeeds through it, unless another attempt (or another
      payment of the same order) already paid: then this one is recorded and the payment flagged
      `double_payment`, never dropped.
    - failed / cancelled / expired: the attempt ends (`payment.attempt_failed`); the payment stays open for
      another try (back to pending) unless it has used CHECKOUT_MAX_ATTEMPTS tries (then failed).
    - processing: the attempt (and a pending payment) is processing; a review flag is kept.
    """
    code = attempt.gateway
    outcome = result.outcome
    reason = result.message or f"{code} reports {outcome.value}"
    data = {"gateway": code, "outcome": outcome.value, "attempt": attempt.public_id}

    if outcome == Outcome.SUCCEEDED:
        changes = {}
        if result.gateway_transaction_id:
            changes["transaction_id"] = result.gateway_transaction_id
        if not transition_attempt(attempt, AttemptStatus.SUCCEEDED, reason=reason, source=source, data=data,
                                  changes=changes):
            return False, Ack.DUPLICATE
        _pay(payment, attempt, result, reason=reason, source=source, data=data)
        return True, Ack.OK
    if outcome in _ENDED:
        why = result.reason or _DEFAULT_REASON[outcome]
        changes = {"failure_reason": Reason(why).value, "failure_message": (result.message or outcome.value)[:500]}
        if result.failure_code:
            changes["failure_code"] = result.failure_code[:64]
        if result.gateway_transaction_id:
            changes["transaction_id"] = result.gateway_transaction_id
        if not transition_attempt(attempt, _ENDED[outcome], reason=reason, source=source, data=data,
                                  changes=changes):
            return False, Ack.DUPLICATE
        payment.needs_review = False  # the attempt held for review (if any) is decided: nothing waits now
        after_attempt_ended(payment, attempt, reason=reason, source=source)
        return True, Ack.OK
    if outcome == Outcome.PROCESSING:
        if result.needs_review and not payment.needs_review:
            payment.needs_review = True
        applied = False
        if attempt.status == AttemptStatus.STARTED:
            changes = {"transaction_id": result.gateway_transaction_id} if result.gateway_transaction_id else None
            applied = transition_attempt(attempt, AttemptStatus.PROCESSING, reason=reason, source=source,
                                         data=data, changes=changes)
        if payment.status == Status.PENDING:
            applied = transition(payment, Status.PROCESSING, reason=reason, source=source, data=data,
                                 gateway=code, attempt=attempt) or applied
        return applied, Ack.OK
    if outcome in (Outcome.REFUNDED, Outcome.PARTIALLY_REFUNDED):
        # Refunds we asked for are settled by the refund service; this is the gateway's confirmation.
        return False, Ack.OK if attempt.status == AttemptStatus.SUCCEEDED else Ack.DUPLICATE
    return False, Ack.OK


def _pay(payment, attempt, result, *, reason, source, data):
    """The payment succeeds through `attempt`, or, if it was already paid, is flagged as paid twice."""
    other = _paid_payment_of_same_order(payment)
    changes = {"succeeded_attempt_id": attempt.id, "gateway": attempt.gateway, "needs_review": False}
    if result.fee_amount is not None:
        changes["fee_amount"] = result.fee_amount
    if result.card_summary:
        changes["card_summary"] = result.card_summary
    if payment.succeeded_attempt_id is None and transition(
            payment, Status.SUCCEEDED, reason=reason, source=source, data=data, late_success=True,
            changes=changes, gateway=attempt.gateway, attempt=attempt):
        if other is not None:
            flag_double_payment(payment, attempt, source=source, other_payment=other,
                                reason=f"order {payment.reference} was already paid by {other.public_id}")
            _maybe_refund_extra(payment, attempt, other_paid=True)
        return
    paid_by = payment.succeeded_attempt
    flag_double_payment(payment, attempt, source=source, reason=(
        f"attempt {attempt.number} ({attempt.gateway}) succeeded after attempt "
        f"{paid_by.number if paid_by else '?'} had paid the payment; refund attempt {attempt.number}"))
    _maybe_refund_extra(payment, attempt)


def _paid_payment_of_same_order(payment):
    """(id, public_id) of another payment of the merchant's same order reference that is already paid, or None.
    Two columns, not the entity, and no autoflush: this runs for every success, and the rows added so far go in
    with the rest at the commit (one round trip)."""
    with db.session.no_autoflush:
        return db.session.execute(
            select(Payment.id, Payment.public_id).where(
                Payment.merchant_id == payment.merchant_id, Payment.reference == payment.reference,
                Payment.id != payment.id, Payment.status.in_([s.value for s in PAID])).limit(1)).first()


def _maybe_refund_extra(payment, attempt, other_paid=False):
    """With the merchant's auto_refund_double_payments setting, refund the extra charge at once."""
    if not payment.merchant.auto_refund_double_payments:
        return
    from app.services.refunds import build_refund

    try:
        if other_paid:  # the whole of this payment repeats an order already paid
            build_refund(payment, None, "Automatic refund of a double payment", source="double_payment")
        else:
            build_refund(payment, None, "Automatic refund of a double payment", source="double_payment",
                         attempt=attempt)
    except ValidationError as exc:
        log.warning("automatic refund of double payment %s not possible: %s", payment.public_id, exc)


def after_attempt_ended(payment, attempt, *, reason, source):
    """After an attempt failed, was cancelled or expired: an open payment with no other attempt open goes
    back to pending for another try, or fails once it has used its tries; then `payment.attempt_failed`
    tells the merchant (with the payment as it now is). No commit."""
    _decide_after_attempt(payment, attempt, reason=reason, source=source)
    emit("payment.attempt_failed", payment.merchant_id, attempt_failed_dict(attempt), payment_id=payment.id)


def _decide_after_attempt(payment, attempt, *, reason, source):
    if payment.status not in (Status.PENDING, Status.PROCESSING):
        return
    others_open = db.session.scalar(
        select(func.count()).select_from(PaymentAttempt).where(
            PaymentAttempt.payment_id == payment.id, PaymentAttempt.id != attempt.id,
            PaymentAttempt.status.in_([s.value for s in ATTEMPT_OPEN])))
    if others_open:
        return
    if payment.attempt_count >= current_app.config["CHECKOUT_MAX_ATTEMPTS"]:
        transition(payment, Status.FAILED, source=source, gateway=attempt.gateway, attempt=attempt,
                   reason=f"{reason} (attempt {attempt.number} of {payment.attempt_count}: no tries left)",
                   changes={"failure_code": attempt.failure_code, "failure_message": attempt.failure_message})
    elif payment.status == Status.PROCESSING:
        transition(payment, Status.PENDING, source=source, gateway=attempt.gateway, attempt=attempt, event=False,
                   reason=f"attempt {attempt.number} ended ({attempt.status}); the shopper may try again")
