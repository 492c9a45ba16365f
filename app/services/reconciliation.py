"""Reconciliation: ask the gateway about attempts stuck open and apply its answer.

A lost IPN (the gateway's notification never arrived) leaves an attempt open although the shopper paid or
gave up. After RECONCILE_AFTER_SECONDS without a change the periodic job asks the gateway's status query
(`adapter.query()`, outside any transaction) and applies the answer exactly as a verified callback would be
applied (`app.services.callbacks.apply_result`, through the state machine), so a late or duplicate IPN
afterwards changes nothing.
"""

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.gateways import get_gateway
from app.gateways.base import GatewayError, Outcome, Reason
from app.models import PaymentAttempt, PaymentEvent, utcnow
from app.services.callbacks import apply_result, money_problem
from app.services.gateways import context_for, payment_info
from app.state_machine import ATTEMPT_OPEN, OPEN, AttemptStatus, transition_attempt

log = logging.getLogger(__name__)
BATCH = 200


def _note(attempt, message, data=None):
    db.session.add(PaymentEvent(payment_id=attempt.payment_id, attempt_id=attempt.id, kind="gateway_call",
                                gateway=attempt.gateway, message=f"Status query: {message} [reconciliation]",
                                data=data))


def reconcile_attempt(attempt):
    """Ask the attempt's gateway for its status now and apply the answer; return whether it changed the
    attempt or its payment. Commits.

    An open attempt of a payment that can no longer be paid (it expired or was cancelled), which its gateway
    knows nothing of, is expired: the shopper never paid it, and it is not asked about again.
    """
    payment = attempt.payment
    account = payment.merchant.gateway_account(attempt.gateway) if attempt.reference else None
    if account is None:
        db.session.rollback()
        return False
    gateway, attempt_id = get_gateway(attempt.gateway), attempt.id
    info, ctx = payment_info(payment, attempt), context_for(account)
    db.session.commit()  # no transaction held while the gateway answers
    try:
        result = gateway.query(info, ctx)
    except (GatewayError, NotImplementedError) as exc:
        attempt = db.session.get(PaymentAttempt, attempt_id)
        _note(attempt, f"failed: {exc}", getattr(exc, "raw", None))
        attempt.updated_at = utcnow()  # asked again after RECONCILE_AFTER_SECONDS, behind the others
        db.session.commit()
        return False
    attempt = db.session.get(PaymentAttempt, attempt_id)
    payment = attempt.payment
    problem = money_problem(attempt, result)
    if problem:
        _note(attempt, f"refused: {problem}", result.raw)
        attempt.updated_at = utcnow()
        db.session.commit()
        return False
    applied, _ack = apply_result(payment, attempt, result, source="reconciliation")
    if not applied and attempt.is_open and payment.status not in OPEN and result.outcome == Outcome.NONE:
        applied = transition_attempt(attempt, AttemptStatus.EXPIRED, source="reconciliation", reason=(
            f"the payment is {payment.status} and {attempt.gateway} has no payment for this attempt"),
            changes={"failure_reason": Reason.TIMED_OUT.value, "failure_code": "expired"})
    _note(attempt, f"{attempt.gateway} reports {result.outcome.value}" + ("" if applied else " (no change)"),
          result.raw)
    if not applied:
        attempt.updated_at = utcnow()
    db.session.commit()
    return applied


def reconcile_stuck(older_than_seconds=None):
    """Reconcile attempts open at their gateway for longer than `older_than_seconds` (default
    RECONCILE_AFTER_SECONDS) without news; return how many changed."""
    if older_than_seconds is None:
        older_than_seconds = current_app.config["RECONCILE_AFTER_SECONDS"]
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    ids = db.session.scalars(
        select(PaymentAttempt.id)
        .where(PaymentAttempt.status.in_([s.value for s in ATTEMPT_OPEN]), PaymentAttempt.updated_at <= cutoff,
               PaymentAttempt.reference.is_not(None))
        .order_by(PaymentAttempt.updated_at)
        .limit(BATCH)
    ).all()
    changed = 0
    for attempt_id in ids:
        attempt = db.session.get(PaymentAttempt, attempt_id)
        try:
            changed += bool(attempt is not None and attempt.is_open and reconcile_attempt(attempt))
        except Exception:  # one gateway's trouble must not stop the others
            db.session.rollback()
            log.exception("reconciling attempt %s failed", attempt_id)
    return changed


def reconcile_payment(payment):
    """Reconcile the payment's current attempt now (the dashboard's "ask the gateway"); see reconcile_attempt."""
    attempt = payment.current_attempt
    if attempt is None:
        db.session.rollback()
        return False
    return reconcile_attempt(attempt)
