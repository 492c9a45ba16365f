"""A page per webhook endpoint: its URL, event types, description, on/off (and why it is off), secret
(revealed on request, rotatable), "Send test event", replay of failed deliveries over a date range or of one
event, delete, and its deliveries log with every attempt. Adding an endpoint is on the webhooks page."""

from datetime import datetime, time, timedelta

from flask import flash, redirect, render_template, url_for
from sqlalchemy import select

from app.dashboard import bp, flash_form_errors, owned_or_404
from app.dashboard.access import current_merchant, dashboard_actor, requires
from app.dashboard.forms import ActionForm, EndpointForm, ReplayForm
from app.extensions import db
from app.models import OutboxEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.security import mask
from app.services import webhook_endpoints as endpoints
from app.services import webhooks
from app.services.errors import ServiceError

RECENT = 50


def _changes(form):
    return {"url": form.url.data, "description": form.description.data or "",
            "event_types": list(form.event_types.data or []) or None, "enabled": bool(form.enabled.data)}


def _page(endpoint, form=None, secret=None, status=200):
    rows = db.session.execute(
        select(WebhookDelivery, OutboxEvent).join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.endpoint_id == endpoint.id).order_by(WebhookDelivery.id.desc()).limit(RECENT)
    ).all()
    attempts = {}
    if rows:
        for a in db.session.scalars(select(WebhookAttempt).where(
                WebhookAttempt.delivery_id.in_([d.id for d, _ in rows])).order_by(WebhookAttempt.id)):
            attempts.setdefault(a.delivery_id, []).append(a)
    if form is None:
        form = EndpointForm(url=endpoint.url, description=endpoint.description,
                            event_types=endpoint.event_types or [], enabled=endpoint.enabled)
    return render_template("dashboard/webhooks/endpoint.html", endpoint=endpoint, form=form, rows=rows,
                           attempts=attempts, secret=secret, masked=mask(endpoint.secret, 4),
                           action_form=ActionForm(), replay_form=ReplayForm()), status


def _back(endpoint):
    return redirect(url_for("dashboard.webhook_endpoint", public_id=endpoint.public_id), 303)


@bp.post("/webhooks/endpoints")
@requires("webhooks.manage")
def add_webhook_endpoint():
    form = EndpointForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return redirect(url_for("dashboard.webhooks"), 303)
    try:
        changes = _changes(form)
        endpoint = endpoints.create_endpoint(current_merchant, changes["url"], event_types=changes["event_types"],
                                             description=changes["description"], enabled=changes["enabled"],
                                             actor=dashboard_actor())
    except ServiceError as exc:
        db.session.rollback()
        flash(f"The endpoint was not added: {exc.message}", "error")
        return redirect(url_for("dashboard.webhooks"), 303)
    flash("Endpoint added. Its signing secret is shown below, once.", "success")
    return _page(endpoint, secret=endpoint.secret)


@bp.get("/webhooks/endpoints/<public_id>")
@requires("payments.read")
def webhook_endpoint(public_id):
    return _page(owned_or_404(WebhookEndpoint, public_id))


@bp.post("/webhooks/endpoints/<public_id>")
@requires("webhooks.manage")
def update_webhook_endpoint(public_id):
    endpoint = owned_or_404(WebhookEndpoint, public_id)
    form = EndpointForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return _page(endpoint, form, status=422)
    try:
        endpoints.update_endpoint(endpoint, _changes(form), actor=dashboard_actor())
    except ServiceError as exc:
        db.session.rollback()
        flash(f"The endpoint was not saved: {exc.message}", "error")
        return _page(endpoint, form, status=422)
    flash("Endpoint saved.", "success")
    return _back(endpoint)


@bp.post("/webhooks/endpoints/<public_id>/secret")
@requires("webhooks.manage")
def reveal_webhook_endpoint_secret(public_id):
    """Shown in this response only (a POST, so it is never in a URL, the history or a flash cookie)."""
    endpoint = owned_or_404(WebhookEndpoint, public_id)
    ActionForm().validate_on_submit()
    return _page(endpoint, secret=endpoints.reveal_secret(endpoint, actor=dashboard_actor()))


@bp.post("/webhooks/endpoints/<public_id>/secret/rotate")
@requires("webhooks.manage")
def rotate_webhook_endpoint_secret(public_id):
    endpoint = owned_or_404(WebhookEndpoint, public_id)
    ActionForm().validate_on_submit()
    secret = endpoints.rotate_secret(endpoint, actor=dashboard_actor())
    flash("Signing secret rotated. The previous one keeps signing for a while so you can switch over; the new "
          "one is shown below, once.", "success")
    return _page(endpoint, secret=secret)


@bp.post("/webhooks/endpoints/<public_id>/ping")
@requires("webhooks.manage")
def ping_webhook_endpoint(public_id):
    endpoint = owned_or_404(WebhookEndpoint, public_id)
    ActionForm().validate_on_submit()
    try:
        event = webhooks.send_ping(endpoint)
    except ServiceError as exc:
        db.session.rollback()
        flash(f"No test event sent: {exc.message}", "error")
    else:
        flash(f"Test event ping ({event.public_id}) queued for this endpoint.", "success")
    return _back(endpoint)


@bp.post("/webhooks/endpoints/<public_id>/replay")
@requires("webhooks.resend")
def replay_webhook_endpoint(public_id):
    endpoint = owned_or_404(WebhookEndpoint, public_id)
    form = ReplayForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return _back(endpoint)
    since = datetime.combine(form.since.data, time.min)
    until = datetime.combine(form.until.data, time.min) + timedelta(days=1) - timedelta(microseconds=1)
    try:
        count = webhooks.replay_failed(endpoint, since, until, actor=dashboard_actor())
    except ServiceError as exc:
        db.session.rollback()
        flash(f"Nothing replayed: {exc.message}", "error")
    else:
        flash(f"{count} failed deliveries queued again.", "success")
    return _back(endpoint)


@bp.post("/webhooks/endpoints/<public_id>/events/<event_id>/replay")
@requires("webhooks.resend")
def replay_webhook_endpoint_event(public_id, event_id):
    endpoint = owned_or_404(WebhookEndpoint, public_id)
    event = owned_or_404(OutboxEvent, event_id)
    ActionForm().validate_on_submit()
    webhooks.replay_event(endpoint, event, actor=dashboard_actor())
    flash(f"Event {event.type} ({event.public_id}) queued again for this endpoint.", "success")
    return _back(endpoint)


@bp.post("/webhooks/endpoints/<public_id>/delete")
@requires("webhooks.manage")
def delete_webhook_endpoint(public_id):
    endpoint = owned_or_404(WebhookEndpoint, public_id)
    ActionForm().validate_on_submit()
    endpoints.delete_endpoint(endpoint, actor=dashboard_actor())
    flash("Endpoint deleted: it gets no more events.", "success")
    return redirect(url_for("dashboard.webhooks"), 303)
