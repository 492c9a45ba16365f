"""Handling a gateway's callback: find the payment, verify, record raw, check money, apply exactly once.

Order of checks (VNPay's official order, applied to every gateway): the payment exists → the adapter verifies
the signature (and, for gateways that want it, confirms with the gateway's API) → the amount and currency
match → the state machine applies the outcome with a compare-and-set, so a duplicate or concurrent callback
applies once and is answered as a duplicate. Every callback is kept raw on the timeline with its verdict,
including ones that match no payment. What a browser brought back (`trusted=False`) is shown, never applied.
"""

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager

from app.extensions import db
from app.gateways import get_gateway
from app.gateways.base import Ack, CallbackError, CallbackResult, GatewayError, Outcome
from app.models import GatewayAccount, Merchant, Payment, PaymentEvent
from app.services.gateways import context_for, payment_info
from app.state_machine import PAID, Status, transition

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Handled:
    ack: Ack
    payment: Payment | None = None
    result: CallbackResult | None = None
    applied: bool = False


def _record(payment, code, kind, raw, *, verified, message, dedupe_key=None):
    db.session.add(
        PaymentEvent(
            payment_id=payment.id if payment else None,
            kind="callback",
            gateway=code,
            verified=verified,
            message=f"{kind}: {message}",
            data=raw,
            dedupe_key=dedupe_key,
        )
    )


def find_payment(code, lookup):
    """(payment, the merchant's `code` account) for what a callback claims, in one query; (None, None) if unknown.

    The merchant comes in the same row; of the merchant's gateway accounts only the one for `code` is read.
    """
    if lookup.order_id:
        where = Payment.public_id == lookup.order_id
    elif lookup.gateway_reference:
        where = (Payment.gateway == code) & (Payment.gateway_reference == lookup.gateway_reference)
    elif lookup.gateway_transaction_id:
        where = (Payment.gateway == code) & (Payment.gateway_transaction_id == lookup.gateway_transaction_id)
    else:
        return None, None
    query = (
        select(Payment, GatewayAccount)
        .join(Payment.merchant)
        .outerjoin(GatewayAccount, (GatewayAccount.merchant_id == Payment.merchant_id) & (GatewayAccount.gateway == code))
        .where(where)
        .options(contains_eager(Payment.merchant).lazyload(Merchant.gateway_accounts))
    )
    row = db.session.execute(query).first()
    return (row[0], row[1]) if row else (None, None)


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

    payment, account = find_payment(code, lookup)
    if payment is None or account is None:
        _record(None, code, kind, raw, verified=False, message="no such payment")
        db.session.commit()
        return Handled(Ack.NOT_FOUND)

    info, ctx = payment_info(payment, code), context_for(account)
    if kind not in gateway.local_kinds:
        _end_read_transaction()  # no transaction held while the adapter calls the gateway
    try:
        result = gateway.verify_callback(kind, req, info, ctx)
    except CallbackError as exc:
        _record(payment, code, kind, exc.raw or raw, verified=False, message=f"refused: {exc}")
        db.session.commit()
        return Handled(exc.ack, payment)
    except GatewayError as exc:
        _record(payment, code, kind, raw, verified=False, message=f"could not confirm with the gateway: {exc}")
        db.session.commit()
        return Handled(Ack.ERROR, payment)

    problem = money_problem(payment, result)
    if problem:
        _record(payment, code, kind, result.raw or raw, verified=False, message=f"refused: {problem}")
        db.session.commit()
        return Handled(Ack.INVALID_AMOUNT, payment, result)

    if not result.trusted:
        _record(payment, code, kind, raw, verified=None,
                message=f"browser return says {result.outcome.value} (not trusted, not applied)")
        db.session.commit()
        return Handled(Ack.OK, payment, result)

    dedupe_key = f"{code}:{result.event_id}" if result.event_id else None
    applied, ack = apply_result(payment, code, result, source=f"callback:{code}")
    _record(payment, code, kind, result.raw or raw, verified=True, dedupe_key=dedupe_key,
            message=result.outcome.value + ("" if applied else " (already applied, no change)"))
    try:
        db.session.commit()
    except IntegrityError:  # the same gateway event was applied by another request: undo ours
        db.session.rollback()
        _record(payment, code, kind, result.raw or raw, verified=True, message="duplicate event, ignored")
        db.session.commit()
        return Handled(Ack.DUPLICATE, payment, result)
    return Handled(ack, payment, result, applied)


def money_problem(payment, result):
    """Why a verified gateway result must not be applied to `payment` (wrong payment, amount or currency), or None."""
    if result.order_id and result.order_id != payment.public_id:
        return f"the callback is for {result.order_id}, not {payment.public_id}"
    if result.outcome == Outcome.SUCCEEDED and result.amount is None:
        return "a success without an amount"
    if result.amount is not None and result.amount != payment.amount:
        return f"amount {result.amount} does not match {payment.amount}"
    if result.currency is not None and result.currency != payment.currency:
        return f"currency {result.currency} does not match {payment.currency}"
    return None


def apply_result(payment, code, result, *, source):
    """Apply a verified gateway result through the state machine (no commit). Returns (applied, ack).

    Shared by callbacks and by reconciliation (status queries), so both paths decide alike.
    """
    changes = {}
    if result.gateway_transaction_id:
        changes["gateway_transaction_id"] = result.gateway_transaction_id
    if result.fee_amount is not None:
        changes["fee_amount"] = result.fee_amount
    if result.card_summary:
        changes["card_summary"] = result.card_summary
    outcome = result.outcome
    reason = result.message or f"{code} reports {outcome.value}"
    data = {"gateway": code, "outcome": outcome.value}

    if outcome == Outcome.SUCCEEDED:
        changes["needs_review"] = False
        if payment.gateway != code:
            changes["gateway"] = code
        applied = transition(payment, Status.SUCCEEDED, reason=reason, source=source, data=data,
                             late_success=True, changes=changes, gateway=code)
        return applied, Ack.OK if applied else Ack.DUPLICATE
    if outcome in (Outcome.FAILED, Outcome.CANCELLED, Outcome.EXPIRED):
        if result.failure_code:
            changes["failure_code"] = result.failure_code[:64]
        changes["failure_message"] = (result.message or outcome.value)[:500]
        target = {Outcome.FAILED: Status.FAILED, Outcome.CANCELLED: Status.CANCELLED,
                  Outcome.EXPIRED: Status.EXPIRED}[outcome]
        applied = transition(payment, target, reason=reason, source=source, data=data, changes=changes,
                             gateway=code)
        return applied, Ack.OK if applied else Ack.DUPLICATE
    if outcome == Outcome.PROCESSING:
        if result.needs_review and not payment.needs_review:
            payment.needs_review = True
        if payment.status == Status.PENDING:
            applied = transition(payment, Status.PROCESSING, reason=reason, source=source, data=data,
                                 gateway=code)
            return applied, Ack.OK
        return False, Ack.OK
    if outcome in (Outcome.REFUNDED, Outcome.PARTIALLY_REFUNDED):
        # Refunds we asked for are settled by the refund service; this is the gateway's confirmation.
        return False, Ack.OK if payment.status in PAID else Ack.DUPLICATE
    return False, Ack.OK
