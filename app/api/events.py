"""Webhook events in the JSON API: list, retrieve (with every attempt and each endpoint's delivery), resend,
and the first endpoint's URL and signing secret as the old single-endpoint calls knew them (every endpoint:
app.api.webhook_endpoints)."""

from flask import g, jsonify, request
from sqlalchemy import select

from app.api import bp
from app.api.auth import api_actor, require_api_key
from app.api.errors import api_error, from_service_error
from app.api.pagination import page, page_limit
from app.api.payments import json_body
from app.extensions import db
from app.models import OutboxEvent, isoformat
from app.services import webhook_endpoints as endpoints
from app.services import webhooks
from app.services.errors import ServiceError

#: OutboxEvent.delivery_status values.
DELIVERY_STATUSES = ("pending", "delivered", "failed", "skipped")


def event_dict(event, attempts=False):
    data = {
        "id": event.public_id,
        "object": "webhook_event",
        "type": event.type,
        "delivery_status": event.delivery_status,
        "attempts": event.attempts,
        "next_attempt_at": isoformat(event.next_attempt_at) if event.delivery_status == "pending" else None,
        "delivered_at": isoformat(event.delivered_at),
        "last_error": event.last_error,
        "created_at": isoformat(event.created_at),
        "payload": event.payload,
    }
    if attempts:
        data["attempt_log"] = [
            {"at": isoformat(a.created_at), "url": a.url, "status_code": a.status_code, "latency_ms": a.latency_ms,
             "response_body": a.response_body, "error": a.error}
            for a in event.attempts_log
        ]
        data["deliveries"] = [
            {"endpoint": d.endpoint.public_id, "url": d.endpoint.url, "status": d.status, "attempts": d.attempts,
             "next_attempt_at": isoformat(d.next_attempt_at) if d.status == "pending" else None,
             "last_error": d.last_error}
            for d in event.deliveries
        ]
    return data


def _event_or_404(public_id):
    event = db.session.scalar(select(OutboxEvent).where(OutboxEvent.public_id == public_id,
                                                        OutboxEvent.merchant_id == g.merchant.id))
    if event is None:
        return None, api_error(404, "not_found", f"no event {public_id}")
    return event, None


@bp.get("/events")
@require_api_key
def list_events():
    # Out-of-range limits and unknown statuses are refused as in GET /payments (they were clamped and matched
    # nothing, so a typo read as "no events").
    limit, error = page_limit()
    if error:
        return error
    query = select(OutboxEvent).where(OutboxEvent.merchant_id == g.merchant.id)
    status = request.args.get("delivery_status")
    if status:
        if status not in DELIVERY_STATUSES:
            return api_error(400, "invalid_request", f"unknown delivery_status {status!r}", "delivery_status")
        query = query.where(OutboxEvent.delivery_status == status)
    if request.args.get("starting_after"):
        cursor, error = _event_or_404(request.args["starting_after"])
        if error:
            return api_error(400, "invalid_request", "starting_after is not one of your events", "starting_after")
        query = query.where(OutboxEvent.id < cursor.id)
    rows = db.session.scalars(query.order_by(OutboxEvent.id.desc()).limit(limit + 1)).all()
    return jsonify(page(rows, limit, event_dict))


@bp.get("/events/<public_id>")
@require_api_key
def get_event(public_id):
    event, error = _event_or_404(public_id)
    return error or jsonify(event_dict(event, attempts=True))


@bp.post("/events/<public_id>/resend")
@require_api_key
def resend_event(public_id):
    event, error = _event_or_404(public_id)
    if error:
        return error
    return jsonify(event_dict(webhooks.resend_event(event, actor=api_actor())))


@bp.get("/webhook_endpoint")
@require_api_key
def get_webhook_endpoint():
    return jsonify({"object": "webhook_endpoint", "url": g.merchant.webhook_url})


@bp.put("/webhook_endpoint")
@require_api_key
def set_webhook_endpoint():
    body = json_body()
    if body is None:
        return api_error(400, "invalid_json", "the request body must be a JSON object")
    if "url" not in body:
        return api_error(400, "missing_field", "send {\"url\": \"https://…\"} (null turns deliveries off)", "url")
    if body["url"] is not None and not isinstance(body["url"], str):
        # A list or a number is not a URL; without this, an empty one would have turned deliveries off.
        return api_error(400, "invalid_type", "url must be a string, or null to turn deliveries off", "url")
    try:
        url = endpoints.set_webhook_url(g.merchant, body["url"], actor=api_actor())
    except ServiceError as exc:
        return from_service_error(exc)
    return jsonify({"object": "webhook_endpoint", "url": url})


@bp.post("/webhook_endpoint/rotate_secret")
@require_api_key
def rotate_webhook_secret():
    endpoint = endpoints.first_endpoint(g.merchant, create=True)
    secret = endpoints.rotate_secret(endpoint, actor=api_actor())
    return jsonify({"object": "webhook_endpoint", "url": endpoint.url, "secret": secret,
                    "previous_secret_valid_until": isoformat(endpoint.previous_secret_until)})
