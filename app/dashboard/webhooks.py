"""The webhooks page: every endpoint (with why one is disabled) and a form to add one, the first endpoint's URL
and signing secret (revealed on demand, rotatable) as before, recent events with every delivery attempt,
resend. Each endpoint's own page is app.dashboard.webhook_endpoints."""

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select

from app.dashboard import bp, flash_form_errors, owned_or_404
from app.dashboard.access import current_merchant, dashboard_actor, requires
from app.dashboard.forms import ActionForm, EndpointForm, WebhookUrlForm
from app.extensions import db
from app.models import MAX_ENDPOINTS, OutboxEvent, Payment, WebhookAttempt
from app.security import mask
from app.services.errors import ServiceError
from app.services.webhook_endpoints import list_endpoints

RECENT = 30


def _page(form=None, secret=None, status=200):
    events = db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.merchant_id == current_merchant.id)
        .order_by(OutboxEvent.id.desc()).limit(RECENT)
    ).all()
    attempts = {}
    if events:
        for a in db.session.scalars(select(WebhookAttempt).where(WebhookAttempt.event_id.in_([e.id for e in events]))
                                    .order_by(WebhookAttempt.id)):
            attempts.setdefault(a.event_id, []).append(a)
    payment_ids = {e.payment_id for e in events if e.payment_id}
    payments = dict(db.session.execute(
        select(Payment.id, Payment.public_id).where(Payment.id.in_(payment_ids), Payment.merchant_id == current_merchant.id)
    ).all()) if payment_ids else {}
    return render_template(
        "dashboard/webhooks/index.html", payments=payments, form=form or WebhookUrlForm(url=current_merchant.webhook_url),
        action_form=ActionForm(), events=events, attempts=attempts, secret=secret,
        masked=mask(current_merchant.webhook_secret or "", 4), endpoints=list_endpoints(current_merchant),
        endpoint_form=EndpointForm(formdata=None), max_endpoints=MAX_ENDPOINTS,
    ), status


@bp.get("/webhooks")
@requires("payments.read")
def webhooks():
    return _page()


@bp.post("/webhooks/url")
@requires("webhooks.manage")
def webhook_url():
    form = WebhookUrlForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return _page(form, status=422)
    from app.services.webhook_endpoints import set_webhook_url

    try:
        set_webhook_url(current_merchant, form.url.data, actor=dashboard_actor())
    except ServiceError as exc:
        db.session.rollback()
        form.url.errors.append(exc.message)
        flash(f"The endpoint was not saved: {exc.message}", "error")
        return _page(form, status=422)
    flash("Webhook endpoint saved." if current_merchant.webhook_url else
          "Webhook endpoint removed: events are no longer sent.", "success")
    return redirect(url_for("dashboard.webhooks"), 303)


@bp.post("/webhooks/secret")
@requires("webhooks.manage")
def reveal_webhook_secret():
    """Shown in this response only (a POST, so it is never in a URL, the history or a flash cookie)."""
    from app.services.webhook_endpoints import reveal_webhook_secret as reveal

    ActionForm().validate_on_submit()
    return _page(secret=reveal(current_merchant, actor=dashboard_actor()))



@bp.post("/webhooks/secret/rotate")
@requires("webhooks.manage")
def rotate_secret():
    from app.services.webhook_endpoints import rotate_webhook_secret

    ActionForm().validate_on_submit()
    secret = rotate_webhook_secret(current_merchant, actor=dashboard_actor())
    flash("Signing secret rotated. The previous one keeps working for a while so you can switch over; "
          "the new one is shown below, once.", "success")
    return _page(secret=secret)


@bp.post("/webhooks/events/<public_id>/resend")
@requires("webhooks.resend")
def resend_webhook(public_id):
    event = owned_or_404(OutboxEvent, public_id)
    ActionForm().validate_on_submit()
    from app.services.webhooks import resend_event

    try:
        resend_event(event, actor=dashboard_actor())
    except ServiceError as exc:
        db.session.rollback()
        flash(f"Could not resend {event.public_id}: {exc.message}", "error")
    else:
        flash(f"Event {event.type} ({event.public_id}) queued for delivery again.", "success")
    target = request.form.get("back")
    if target and target.startswith("/dashboard/") and not target.startswith("//"):
        return redirect(target, 303)
    return redirect(url_for("dashboard.webhooks"), 303)
