"""Reconciliation: ask the gateway about payments stuck in `processing` and apply its answer.

A lost IPN (the gateway's notification never arrived) leaves a payment processing although the shopper paid
or gave up. After RECONCILE_AFTER_SECONDS without a change the periodic job asks the gateway's status query
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
from app.gateways.base import GatewayError
from app.models import Payment, PaymentEvent, utcnow
from app.services.callbacks import apply_result, money_problem
from app.services.gateways import context_for, payment_info
from app.state_machine import Status

log = logging.getLogger(__name__)
BATCH = 200


def _note(payment_id, code, message, data=None):
    db.session.add(PaymentEvent(payment_id=payment_id, kind="gateway_call", gateway=code,
                                message=f"Status query: {message} [reconciliation]", data=data))


def reconcile_payment(payment):
    """Ask the payment's gateway for its status now and apply the answer; return whether it changed the
    payment. Commits."""
    code = payment.gateway
    account = payment.merchant.gateway_account(code) if code and payment.gateway_reference else None
    if account is None:
        db.session.rollback()
        return False
    gateway, payment_id = get_gateway(code), payment.id
    info, ctx = payment_info(payment, code), context_for(account)
    db.session.commit()  # no transaction held while the gateway answers
    try:
        result = gateway.query(info, ctx)
    except (GatewayError, NotImplementedError) as exc:
        _note(payment_id, code, f"failed: {exc}", getattr(exc, "raw", None))
        db.session.commit()
        return False
    payment = db.session.get(Payment, payment_id)
    problem = money_problem(payment, result)
    if problem:
        _note(payment_id, code, f"refused: {problem}", result.raw)
        db.session.commit()
        return False
    applied, _ack = apply_result(payment, code, result, source="reconciliation")
    _note(payment_id, code, f"{code} reports {result.outcome.value}" + ("" if applied else " (no change)"),
          result.raw)
    db.session.commit()
    return applied


def reconcile_stuck(older_than_seconds=None):
    """Reconcile payments processing for longer than `older_than_seconds` (default RECONCILE_AFTER_SECONDS);
    return how many changed."""
    if older_than_seconds is None:
        older_than_seconds = current_app.config["RECONCILE_AFTER_SECONDS"]
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    ids = db.session.scalars(
        select(Payment.id)
        .where(Payment.status == Status.PROCESSING.value, Payment.updated_at <= cutoff,
               Payment.gateway_reference.is_not(None))
        .order_by(Payment.updated_at)
        .limit(BATCH)
    ).all()
    changed = 0
    for payment_id in ids:
        payment = db.session.get(Payment, payment_id)
        try:
            changed += bool(payment is not None and payment.status == Status.PROCESSING
                            and reconcile_payment(payment))
        except Exception:  # one gateway's trouble must not stop the others
            db.session.rollback()
            log.exception("reconciling payment %s failed", payment_id)
    return changed
