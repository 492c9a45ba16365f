"""Shopper receipts: written with the event, sent by the worker after the commit, in the shopper's language.

1. When `payment.succeeded` or `refund.succeeded` is emitted into the outbox (app.services.outbox.emit) for
   a payment with a customer email, `note_event` adds a Receipt row to the same session: it commits or rolls
   back with the state change. `dedupe_key` (kind, payment, refund) keeps it to one per success and refund.
2. After the commit, the relay below enqueues one `app.jobs.receipts.send` job per new receipt.
3. `send_receipt` takes a lease with a compare-and-set UPDATE (so no two workers send one receipt), builds
   the message (text and HTML, subject translated), hands it to app.mail with no transaction open, then marks
   it sent; a failure is tried again after 1, 4, 16… minutes, up to RECEIPT_MAX_ATTEMPTS, then `failed`.
4. The periodic sweep re-enqueues receipts that are due (Redis lost the job, a worker died mid-send).

Exactly once, nearly: a worker killed between the SMTP hand-over and marking the row sent sends it again once
its lease runs out; the Message-ID is the same both times (`<receipt-<id>@…>`), so mail clients fold them.
"""

import logging
from datetime import UTC, timedelta
from email.message import EmailMessage
from email.utils import format_datetime as rfc2822_date

from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session

from app import i18n, mail
from app.extensions import db
from app.gateways import get_gateway
from app.models import Payment, Receipt, Refund, utcnow

log = logging.getLogger(__name__)

#: Outbox event type → receipt kind.
RECEIPT_EVENTS = {"payment.succeeded": "payment", "refund.succeeded": "refund"}
SWEEP_BATCH = 1000


def shopper_locale(payment):
    """The language a payment's shopper reads: the one recorded at checkout (payments.locale, when that column
    exists), else the merchant's default."""
    return i18n._supported(payment.locale) or i18n.default_locale_for(payment)


def note_event(event_type, payment_id, obj):
    """Called by outbox.emit in the emitting transaction: add the receipt this event calls for, if any."""
    kind = RECEIPT_EVENTS.get(event_type)
    if kind is None or payment_id is None:
        return None
    session = db.session
    with session.no_autoflush:
        payment = session.get(Payment, payment_id)
        if payment is None or not payment.customer_email:
            return None
        refund_id = None
        if kind == "refund":
            refund_id = session.scalar(select(Refund.id).where(Refund.public_id == obj.get("id")))
            if refund_id is None:
                return None
        key = f"{kind}:{payment_id}:{refund_id or 0}"
        pending = session.info.setdefault("receipt_keys", set())
        if key in pending or session.scalar(select(Receipt.id).where(Receipt.dedupe_key == key)) is not None:
            return None  # this success or refund already has its receipt
        pending.add(key)
    receipt = Receipt(payment_id=payment_id, refund_id=refund_id, kind=kind, dedupe_key=key,
                      email=payment.customer_email, locale=shopper_locale(payment), status="pending",
                      attempts=0, next_attempt_at=utcnow())
    session.add(receipt)
    session.info.setdefault("receipts_added", []).append(receipt)
    return receipt


def register_receipt_relay(app):
    """After every commit, enqueue a send job for each receipt the transaction created."""
    if getattr(register_receipt_relay, "_done", False):
        return
    register_receipt_relay._done = True

    @event.listens_for(Session, "after_flush")
    def _note_receipt_ids(session, flush_context):
        added = session.info.pop("receipts_added", None)
        if added:
            session.info.setdefault("receipts_new", []).extend(r.id for r in added)

    @event.listens_for(Session, "after_commit")
    def _relay(session):
        session.info.pop("receipt_keys", None)
        ids = session.info.pop("receipts_new", None)
        if ids:
            from app.jobs import enqueue_receipts

            try:
                enqueue_receipts(current_app._get_current_object(), ids)
            except Exception:  # Redis down: the sweep sends them once it is back
                log.warning("could not enqueue %d receipt(s); the sweep will", len(ids), exc_info=True)

    @event.listens_for(Session, "after_rollback")
    def _forget(session):
        for key in ("receipts_added", "receipts_new", "receipt_keys"):
            session.info.pop(key, None)


# --- building ------------------------------------------------------------------------------------------

def build_message(receipt, config=None):
    """The EmailMessage for a receipt: subject, text and HTML in the receipt's language."""
    config = config or current_app.config
    payment = receipt.payment
    refund = receipt.refund
    language = receipt.locale or shopper_locale(payment)
    merchant = payment.merchant.name
    with force_locale(language):
        gateway = get_gateway(payment.gateway) if payment.gateway else None
        when = refund.updated_at if refund is not None else (payment.paid_at or payment.updated_at)
        context = {
            "kind": receipt.kind,
            "lang": language,
            "merchant": merchant,
            "reference": payment.reference,
            "payment_id": payment.public_id,
            "amount": i18n.format_shopper_money(payment.amount, payment.currency, language),
            "refund_amount": (i18n.format_shopper_money(refund.amount, refund.currency, language)
                              if refund is not None else None),
            "date": i18n.format_shopper_datetime(when, payment.currency, language),
            "method": i18n.translate(gateway.name) if gateway else (payment.gateway or "—"),
        }
        if receipt.kind == "refund":
            subject = _("Your refund from %(merchant)s", merchant=merchant)
        else:
            subject = _("Your receipt from %(merchant)s", merchant=merchant)
        context["subject"] = subject
        text = render_template("email/receipt.txt", **context)
        html = render_template("email/receipt.html", **context)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = config["MAIL_FROM"]
    message["To"] = receipt.email
    message["Date"] = rfc2822_date(utcnow().replace(tzinfo=UTC))
    message["Message-ID"] = f"<receipt-{receipt.id}@{_mail_domain(config)}>"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    message["Content-Language"] = language  # after the body: set_content drops Content-* headers
    return message


def _mail_domain(config):
    sender = config.get("MAIL_FROM") or ""
    return sender.rsplit("@", 1)[-1].strip("> ") or "paysmith.local"


# --- sending -------------------------------------------------------------------------------------------

def _take_lease(receipt_id, now, config):
    until = now + timedelta(seconds=config["RECEIPT_LEASE_SECONDS"])
    claimed = db.session.execute(
        update(Receipt)
        .where(Receipt.id == receipt_id, Receipt.status == "pending", Receipt.next_attempt_at <= now,
               or_(Receipt.locked_until.is_(None), Receipt.locked_until < now))
        .values(locked_until=until, attempts=Receipt.attempts + 1)
    ).rowcount
    db.session.commit()
    return claimed == 1


def retry_delay(attempts):
    """Seconds before the next try after `attempts` failed ones: 1, 4, 16, 64 minutes…"""
    return 60 * 4 ** max(0, attempts - 1)


def send_receipt(receipt_id):
    """One try at sending a receipt. Returns its status afterwards ('sent', 'pending', 'failed'), or None
    when another run holds it or it is not due."""
    config = current_app.config
    if not _take_lease(receipt_id, utcnow(), config):
        return None
    receipt = db.session.get(Receipt, receipt_id)
    try:
        message = build_message(receipt, config)
    except Exception as exc:  # a bug or missing data: keep the row, say why, try again later
        log.exception("could not build receipt %s", receipt_id)
        return _failed_try(receipt_id, f"build: {type(exc).__name__}: {exc}", config)
    db.session.commit()  # no transaction open while talking to the mail server
    try:
        mail.send(message, config)
    except mail.MailError as exc:
        log.warning("receipt %s not sent: %s", receipt_id, exc)
        return _failed_try(receipt_id, str(exc), config)
    db.session.execute(update(Receipt).where(Receipt.id == receipt_id)
                       .values(status="sent", sent_at=utcnow(), locked_until=None, last_error=None))
    db.session.commit()
    return "sent"


def _failed_try(receipt_id, error, config):
    db.session.rollback()
    receipt = db.session.get(Receipt, receipt_id)
    if receipt.attempts >= config["RECEIPT_MAX_ATTEMPTS"]:
        receipt.status = "failed"
    else:
        receipt.next_attempt_at = utcnow() + timedelta(seconds=retry_delay(receipt.attempts))
    receipt.locked_until = None
    receipt.last_error = error[:2000]
    db.session.commit()
    return receipt.status


def due_receipt_ids(limit=SWEEP_BATCH, now=None):
    now = now or utcnow()
    return list(db.session.scalars(
        select(Receipt.id)
        .where(Receipt.status == "pending", Receipt.next_attempt_at <= now,
               or_(Receipt.locked_until.is_(None), Receipt.locked_until < now))
        .order_by(Receipt.id).limit(limit)
    ))


def sweep_due_receipts(limit=SWEEP_BATCH):
    """Enqueue a send job for every due receipt (periodic); returns how many."""
    ids = due_receipt_ids(limit)
    db.session.commit()
    if ids:
        from app.jobs import enqueue_receipts

        enqueue_receipts(current_app._get_current_object(), ids)
    return len(ids)
