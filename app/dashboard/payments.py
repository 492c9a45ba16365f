"""Payments: the filtered list (keyset pages, streamed CSV), one payment's detail and timeline, its actions
(refund, cancel, ask the gateway, resend the webhook) and creating a payment link."""

import csv
import io
import json
from datetime import datetime

from flask import Response, abort, flash, redirect, render_template, request, stream_with_context, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app import money
from app.dashboard import bp, flash_form_errors, owned_or_404
from app.dashboard.access import current_can, current_merchant, dashboard_actor, requires
from app.dashboard.forms import ActionForm, PaymentLinkForm, RefundForm
from app.dashboard.queries import (
    PAGE_SIZE,
    STATUSES,
    PaymentFilters,
    decode_cursor,
    encode_cursor,
    payments_query,
)
from app.extensions import db
from app.gateways import REGISTRY, get_gateway
from app.i18n import parse_typed_amount
from app.models import AuditEvent, OutboxEvent, Payment, PaymentEvent, Refund, WebhookAttempt, utcnow
from app.serializers import checkout_url
from app.services.audit import ACTIONS
from app.services.errors import ServiceError
from app.services.review import attempt_in_review
from app.state_machine import OPEN, PAID

CSV_COLUMNS = ["id", "created_at", "status", "amount", "currency", "amount_refunded", "reference",
               "description", "gateway", "gateway_reference", "gateway_transaction_id", "customer_email",
               "fee_amount", "paid_at"]
#: Rows per keyset batch of the CSV export.
CSV_BATCH = 1000


@bp.get("/payments")
@requires("payments.read")
def payments():
    filters = PaymentFilters.from_args(request.args)
    for problem in filters.problems:
        flash(f"Ignored filter: {problem}.", "error")
    after = decode_cursor(request.args.get("after"))
    rows = db.session.scalars(payments_query(filters, current_merchant.id, after, limit=PAGE_SIZE + 1)).all()
    page, more = rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
    next_url = (url_for("dashboard.payments") + "?" + filters.query_string(after=encode_cursor(page[-1]))
                if more else None)
    return render_template(
        "dashboard/payments/list.html", payments=page, filters=filters, next_url=next_url, paged=bool(after),
        statuses=STATUSES, gateways=REGISTRY, currencies=sorted(money.EXPONENTS),
        export_url=url_for("dashboard.payments_csv") + "?" + filters.query_string(),
        first_url=url_for("dashboard.payments") + "?" + filters.query_string(),
    )


@bp.get("/payments.csv")
@requires("payments.read")
def payments_csv():
    """The whole filtered set as CSV, streamed in keyset batches so memory stays flat at any size."""
    filters = PaymentFilters.from_args(request.args)
    merchant_id = current_merchant.id

    def rows():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        after = None
        while True:
            batch = db.session.scalars(payments_query(filters, merchant_id, after, limit=CSV_BATCH)
                                       .options(selectinload(Payment.attempts))).all()
            for p in batch:
                writer.writerow([
                    p.public_id, p.created_at.isoformat(), p.status, money.format_plain(p.amount, p.currency),
                    p.currency, money.format_plain(p.amount_refunded, p.currency), _csv_safe(p.reference),
                    _csv_safe(p.description), p.gateway or "", p.gateway_reference or "",
                    p.gateway_transaction_id or "", _csv_safe(p.customer_email),
                    "" if p.fee_amount is None else money.format_plain(p.fee_amount, p.currency),
                    p.paid_at.isoformat() if p.paid_at else "",
                ])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(batch) < CSV_BATCH:
                break
            after = (batch[-1].created_at, batch[-1].id)
            db.session.expunge_all()

    stamp = datetime.now().strftime("%Y%m%d-%H%M")
    return Response(stream_with_context(rows()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="payments-{stamp}.csv"'})


def _csv_safe(value):
    """Text a spreadsheet would run as a formula gets a leading apostrophe (CSV injection)."""
    value = value or ""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def timeline(payment):
    """Everything that happened to a payment, oldest first: events, refunds and webhook attempts."""
    items = []
    for e in db.session.scalars(select(PaymentEvent).where(PaymentEvent.payment_id == payment.id)
                                .order_by(PaymentEvent.id)):
        items.append({"at": e.created_at, "kind": e.kind, "event": e, "payload": _pretty(e.data)})
    for r in db.session.scalars(select(Refund).where(Refund.payment_id == payment.id).order_by(Refund.id)):
        items.append({"at": r.created_at, "kind": "refund_record", "refund": r, "payload": None})
    # Who did it: the audit rows of this payment (refunds, cancel, the link) name the person or API key.
    for a in db.session.scalars(select(AuditEvent).where(AuditEvent.merchant_id == payment.merchant_id,
                                                         AuditEvent.target_type == "payment",
                                                         AuditEvent.target_id == payment.public_id)
                                .order_by(AuditEvent.id)):
        items.append({"at": a.created_at, "kind": "audit", "audit": a, "payload": None})
    attempts = db.session.execute(
        select(WebhookAttempt, OutboxEvent)
        .join(OutboxEvent, WebhookAttempt.event_id == OutboxEvent.id)
        .where(OutboxEvent.payment_id == payment.id, OutboxEvent.merchant_id == payment.merchant_id)
        .order_by(WebhookAttempt.id)
    ).all()
    for attempt, event in attempts:
        items.append({"at": attempt.created_at, "kind": "webhook_attempt", "attempt": attempt, "outbox": event,
                      "payload": attempt.response_body})
    items.sort(key=lambda i: i["at"])
    return items


def _pretty(data):
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) if data else None


@bp.get("/payments/<public_id>")
@requires("payments.read")
def payment_detail(public_id):
    payment = owned_or_404(Payment, public_id)
    refund_form = RefundForm(formdata=None, amount=money.format_plain(payment.refundable_amount, payment.currency))
    return _detail_page(payment, refund_form)


def _detail_page(payment, refund_form, status=200):
    events = db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.payment_id == payment.id, OutboxEvent.merchant_id == current_merchant.id)
        .order_by(OutboxEvent.id.desc())
    ).all()
    return render_template(
        "dashboard/payments/detail.html", payment=payment, timeline=timeline(payment), events=events,
        gateway=get_gateway(payment.gateway) if payment.gateway else None, refund_form=refund_form,
        action_form=ActionForm(), can_refund=payment.status in PAID and payment.refundable_amount > 0,
        can_cancel=payment.status in OPEN, checkout_url=checkout_url(payment), audit_actions=ACTIONS,
        review_attempt=attempt_in_review(payment),
        time_left=(payment.expires_at - utcnow()).total_seconds() if payment.status in OPEN else None,
    ), status


def _exceeds(amount, payment):
    return (f"{money.format_money(amount, payment.currency)} is more than the "
            f"{money.format_money(payment.refundable_amount, payment.currency)} still refundable.")


def _over_support_limit(payment, amount):
    """Why a member whose role refunds only up to the merchant's support limit may not refund `amount` (None:
    they may)."""
    if current_can("refunds.unlimited"):
        return None
    limit = current_merchant.support_refund_limit(payment.currency)
    if amount <= limit:
        return None
    if not limit:
        return f"your role may not refund in {payment.currency} (no support refund limit is set for it)."
    return (f"your role may refund at most {money.format_money(limit, payment.currency)} at once; "
            "ask an owner or admin.")


@bp.post("/payments/<public_id>/refund")
@requires("refunds.create")
def refund(public_id):
    """Two steps: the form shows a confirmation page; the confirmation page's button asks for the refund.
    An amount that cannot be refunded is refused on the form, before any confirmation."""
    payment = owned_or_404(Payment, public_id)
    form = RefundForm()
    back = url_for("dashboard.payment_detail", public_id=public_id)
    if not form.validate_on_submit():
        flash_form_errors(form)
        return redirect(back)
    try:
        amount = parse_typed_amount(form.amount.data, payment.currency)
        money.validate_amount(amount)
    except money.MoneyError as exc:
        form.amount.errors.append(f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
        amount = None
    if amount is not None and payment.status in PAID and amount > payment.refundable_amount:
        form.amount.errors.append(_exceeds(amount, payment))
    limited = amount is not None and not form.amount.errors and _over_support_limit(payment, amount)
    if limited:
        form.amount.errors.append(f"{limited[:1].upper()}{limited[1:]}")
    if form.amount.errors:
        flash(f"Refund refused: {form.amount.errors[0]}", "error")
        return _detail_page(payment, form, 422)
    if form.confirmed.data != "yes":
        form.confirmed.data = "yes"
        gateway = get_gateway(payment.gateway) if payment.gateway else None
        return render_template("dashboard/payments/refund_confirm.html", payment=payment, form=form, amount=amount,
                               gateway_name=gateway.name if gateway else "the gateway")
    from app.services.refunds import request_refund

    try:
        created = request_refund(payment, amount, form.reason.data or None, source=f"dashboard, {current_user.email}",
                                 actor=dashboard_actor())
    except ServiceError as exc:
        db.session.rollback()
        db.session.refresh(payment)
        message = exc.message
        if exc.code == "refund_exceeds_captured":
            message = _exceeds(amount, payment)
        flash(f"Refund refused: {message}", "error")
        return redirect(back, 303)
    flash(f"Refund of {money.format_money(created.amount, created.currency)} requested ({created.status}).",
          "success")
    return redirect(back, 303)


@bp.post("/payments/<public_id>/attempts/<attempt_id>/refund")
@requires("refunds.create")
def refund_attempt(public_id, attempt_id):
    """Refund what an extra attempt of a double payment took (all of what is left of it)."""
    from app.services.refunds import request_refund

    payment = owned_or_404(Payment, public_id)
    back = url_for("dashboard.payment_detail", public_id=public_id)
    attempt = next((a for a in payment.extra_attempts if a.public_id == attempt_id), None)
    if attempt is None:
        abort(404)
    if not ActionForm().validate_on_submit():
        flash("The form expired; please try again.", "error")
        return redirect(back, 303)
    limited = _over_support_limit(payment, attempt.amount - attempt.amount_refunded)
    if limited:
        flash(f"Refund refused: {limited}", "error")
        return redirect(back, 303)
    try:
        created = request_refund(payment, None, "Double payment", source=f"dashboard, {current_user.email}",
                                 attempt=attempt, actor=dashboard_actor())
    except ServiceError as exc:
        db.session.rollback()
        flash(f"Refund refused: {exc.message}", "error")
        return redirect(back, 303)
    flash(f"Refund of {money.format_money(created.amount, created.currency)} of attempt {attempt.number} "
          f"requested ({created.status}).", "success")
    return redirect(back, 303)


@bp.post("/payments/<public_id>/cancel")
@requires("payments.cancel")
def cancel(public_id):
    from app.services.payments import cancel_payment

    payment = owned_or_404(Payment, public_id)
    if ActionForm().validate_on_submit() and cancel_payment(payment, source="dashboard",
                                                            reason=f"Cancelled by {current_user.email}",
                                                            actor=dashboard_actor()):
        flash("Payment cancelled.", "success")
    else:
        flash(f"This payment is {payment.status.replace('_', ' ')} and can no longer be cancelled.", "error")
    return redirect(url_for("dashboard.payment_detail", public_id=public_id), 303)


@bp.post("/payments/<public_id>/review/<decision>")
@requires("payments.review")
def review(public_id, decision):
    """Approve or deny a payment its gateway's fraud detection holds for review (Midtrans' challenge)."""
    from app.services.review import DECISIONS, decide_review

    payment = owned_or_404(Payment, public_id)
    if decision not in DECISIONS:
        abort(404)
    back = redirect(url_for("dashboard.payment_detail", public_id=public_id), 303)
    if not ActionForm().validate_on_submit():
        flash("The form expired; please try again.", "error")
        return back
    try:
        decide_review(payment, decision, actor=dashboard_actor())
    except ServiceError as exc:
        db.session.rollback()
        flash(f"Review not decided: {exc.message}.", "error")
        return back
    db.session.refresh(payment)
    flash(f"{DECISIONS[decision]}: the payment is now {payment.status.replace('_', ' ')}.", "success")
    return back


@bp.post("/payments/<public_id>/reconcile")
@requires("payments.reconcile")
def reconcile(public_id):
    payment = owned_or_404(Payment, public_id)
    ActionForm().validate_on_submit()
    from app.services.reconciliation import reconcile_payment

    try:
        changed = reconcile_payment(payment)
    except ServiceError as exc:
        db.session.rollback()
        flash(f"Could not ask the gateway: {exc.message}", "error")
    else:
        db.session.refresh(payment)
        flash(f"The gateway was asked: the payment is now {payment.status.replace('_', ' ')}." if changed else
              f"The gateway was asked: nothing changed ({payment.status.replace('_', ' ')}).", "success")
    return redirect(url_for("dashboard.payment_detail", public_id=public_id), 303)


@bp.post("/payments/<public_id>/resend-webhook")
@requires("webhooks.resend")
def resend_latest_webhook(public_id):
    payment = owned_or_404(Payment, public_id)
    ActionForm().validate_on_submit()
    from app.services.webhooks import resend_event

    event = db.session.scalar(
        select(OutboxEvent).where(OutboxEvent.payment_id == payment.id, OutboxEvent.merchant_id == current_merchant.id)
        .order_by(OutboxEvent.id.desc()).limit(1)
    )
    if event is None:
        flash("This payment has no webhook event to resend.", "error")
    else:
        try:
            resend_event(event, actor=dashboard_actor())
        except ServiceError as exc:
            db.session.rollback()
            flash(f"Could not resend: {exc.message}", "error")
        else:
            flash(f"Webhook {event.type} ({event.public_id}) queued for delivery again.", "success")
    return redirect(url_for("dashboard.payment_detail", public_id=public_id), 303)


@bp.route("/payments/new", methods=["GET", "POST"])
@requires("payments.create")
def new_payment_link():
    from app.services.payments import check_new_payment, create_payment

    last = db.session.scalar(select(Payment.return_url).where(Payment.merchant_id == current_merchant.id)
                             .order_by(Payment.id.desc()).limit(1))
    form = PaymentLinkForm(return_url=last)
    preview = None
    if form.validate_on_submit():
        try:
            amount = parse_typed_amount(form.amount.data, form.currency.data)
            money.validate_amount(amount)
        except money.MoneyError as exc:
            form.amount.errors.append(str(exc))
        else:
            data, seen = _link_data(form, amount), f"{amount} {form.currency.data}"
            try:
                check_new_payment(current_merchant, data)  # the preview refuses what creating would
                if form.confirmed_amount.data == seen:
                    payment = create_payment(current_merchant, data, actor=dashboard_actor(),
                                             action="payment.link_created")
                    flash(f"Payment link created for {money.format_money(payment.amount, payment.currency)}. "
                          "Copy it and send it to your customer.", "success")
                    return redirect(url_for("dashboard.payment_detail", public_id=payment.public_id), 303)
            except ServiceError as exc:
                db.session.rollback()
                field = exc.field if exc.field in form._fields else "amount"
                getattr(form, field).errors.append(exc.message)
            else:
                # First the amount in words (no JavaScript needed); the link is made only for what was seen.
                form.confirmed_amount.data, preview = seen, amount
    if form.errors:
        form.confirmed_amount.data = ""
    return render_template("dashboard/payments/new.html", form=form, preview=preview), (422 if form.errors else 200)


def _link_data(form, amount):
    data = {"amount": amount, "currency": form.currency.data, "reference": form.reference.data,
            "description": form.description.data or None, "return_url": form.return_url.data,
            "expires_in": int(form.expires_in.data), "metadata": {"source": "dashboard_link"}}
    if form.customer_email.data:
        data["customer"] = {"email": form.customer_email.data}
    return data
