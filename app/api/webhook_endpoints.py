"""Webhook endpoints in the JSON API: list, create, retrieve, update, delete, rotate the secret, send a test
event (`ping`), replay one event or every failed delivery over a time range, and the deliveries log."""

from datetime import UTC, datetime

from flask import g, jsonify, request
from sqlalchemy import select

from app.api import bp
from app.api.auth import api_actor, require_api_key
from app.api.errors import api_error, from_service_error
from app.api.events import DELIVERY_STATUSES
from app.api.pagination import page_limit
from app.api.payments import json_body
from app.extensions import db
from app.models import OutboxEvent, WebhookDelivery, isoformat
from app.services import webhook_endpoints as endpoints
from app.services import webhooks
from app.services.errors import ServiceError


def endpoint_dict(endpoint, secret=None):
    data = {
        "id": endpoint.public_id,
        "object": "webhook_endpoint",
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": endpoint.event_types or ["*"],
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "previous_secret_valid_until": isoformat(endpoint.previous_secret_until),
        "created_at": isoformat(endpoint.created_at),
    }
    if secret:
        data["secret"] = secret
    return data


def delivery_dict(delivery, event):
    return {
        "id": delivery.id, "object": "webhook_delivery", "event": event.public_id, "type": event.type,
        "status": delivery.status, "attempts": delivery.attempts,
        "next_attempt_at": isoformat(delivery.next_attempt_at) if delivery.status == "pending" else None,
        "delivered_at": isoformat(delivery.delivered_at), "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error, "created_at": isoformat(delivery.created_at),
    }


def _call(func, *args):
    try:
        result = func(*args)
    except ServiceError as exc:
        db.session.rollback()
        return None, from_service_error(exc)
    return result, None


def _endpoint_or_error(public_id):
    return _call(endpoints.get_endpoint, g.merchant, public_id)


@bp.get("/webhook_endpoints")
@require_api_key
def list_webhook_endpoints():
    return jsonify({"object": "list", "data": [endpoint_dict(e) for e in endpoints.list_endpoints(g.merchant)],
                    "has_more": False})


@bp.post("/webhook_endpoints")
@require_api_key
def create_webhook_endpoint():
    body = json_body()
    if body is None or "url" not in body:
        return api_error(400, "invalid_request", 'send {"url": "https://…", "event_types"?, "description"?}', "url")
    unknown = sorted(set(body) - {"url", "event_types", "description", "enabled"})
    if unknown:
        return api_error(400, "invalid_request", f"unknown field {unknown[0]}", unknown[0])
    endpoint, error = _call(lambda: endpoints.create_endpoint(
        g.merchant, body["url"], event_types=body.get("event_types"), description=body.get("description"),
        enabled=body.get("enabled", True) is not False, actor=api_actor()))
    if error:
        return error
    response = jsonify(endpoint_dict(endpoint, secret=endpoint.secret))
    response.status_code = 201
    return response


@bp.get("/webhook_endpoints/<public_id>")
@require_api_key
def get_webhook_endpoint_by_id(public_id):
    endpoint, error = _endpoint_or_error(public_id)
    return error or jsonify(endpoint_dict(endpoint))


@bp.patch("/webhook_endpoints/<public_id>")
@require_api_key
def update_webhook_endpoint(public_id):
    endpoint, error = _endpoint_or_error(public_id)
    if error:
        return error
    body = json_body()
    if body is None:
        return api_error(400, "invalid_json", "the request body must be a JSON object")
    endpoint, error = _call(lambda: endpoints.update_endpoint(endpoint, body, actor=api_actor()))
    return error or jsonify(endpoint_dict(endpoint))


@bp.delete("/webhook_endpoints/<public_id>")
@require_api_key
def delete_webhook_endpoint(public_id):
    endpoint, error = _endpoint_or_error(public_id)
    if error:
        return error
    endpoints.delete_endpoint(endpoint, actor=api_actor())
    return jsonify({"id": public_id, "object": "webhook_endpoint", "deleted": True})


@bp.post("/webhook_endpoints/<public_id>/rotate_secret")
@require_api_key
def rotate_webhook_endpoint_secret(public_id):
    endpoint, error = _endpoint_or_error(public_id)
    if error:
        return error
    secret = endpoints.rotate_secret(endpoint, actor=api_actor())
    return jsonify(endpoint_dict(endpoint, secret=secret))


@bp.post("/webhook_endpoints/<public_id>/ping")
@require_api_key
def ping_webhook_endpoint(public_id):
    endpoint, error = _endpoint_or_error(public_id)
    if error:
        return error
    event, error = _call(webhooks.send_ping, endpoint)
    if error:
        return error
    response = jsonify({"object": "webhook_event", "id": event.public_id, "type": "ping"})
    response.status_code = 202
    return response


def _utc(value, field):
    """An ISO 8601 time (`2026-12-01T10:00:00Z`; no zone means UTC) → naive UTC, or an error answer."""
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        return None, api_error(400, "invalid_request", f"{field} must be an ISO 8601 time", field)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed, None


@bp.post("/webhook_endpoints/<public_id>/replay")
@require_api_key
def replay_webhook_endpoint(public_id):
    """{"event": "evt_…"} replays one event; {"since", "until"} every failed delivery of events created then."""
    endpoint, error = _endpoint_or_error(public_id)
    if error:
        return error
    body = json_body()
    if body is None or not ({"event"} <= set(body) or {"since", "until"} <= set(body)):
        return api_error(400, "invalid_request", 'send {"event": "evt_…"} or {"since": …, "until": …}')
    if "event" in body:
        event = db.session.scalar(select(OutboxEvent).where(OutboxEvent.public_id == str(body["event"]),
                                                            OutboxEvent.merchant_id == g.merchant.id))
        if event is None:
            return api_error(404, "not_found", f"no event {body['event']}", "event")
        _, error = _call(lambda: webhooks.replay_event(endpoint, event, actor=api_actor()))
        return error or jsonify({"object": "replay", "replayed": 1})
    since, error = _utc(body["since"], "since")
    if error:
        return error
    until, error = _utc(body["until"], "until")
    if error:
        return error
    count, error = _call(lambda: webhooks.replay_failed(endpoint, since, until, actor=api_actor()))
    return error or jsonify({"object": "replay", "replayed": count})


@bp.get("/webhook_endpoints/<public_id>/deliveries")
@require_api_key
def list_webhook_endpoint_deliveries(public_id):
    endpoint, error = _endpoint_or_error(public_id)
    if error:
        return error
    limit, error = page_limit()
    if error:
        return error
    if request.args.get("status") and request.args["status"] not in DELIVERY_STATUSES:
        return api_error(400, "invalid_request", f"status must be one of {', '.join(DELIVERY_STATUSES)}", "status")
    query = (select(WebhookDelivery, OutboxEvent).join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
             .where(WebhookDelivery.endpoint_id == endpoint.id))
    if request.args.get("status"):
        query = query.where(WebhookDelivery.status == request.args["status"])
    rows = db.session.execute(query.order_by(WebhookDelivery.id.desc()).limit(limit + 1)).all()
    return jsonify({"object": "list", "data": [delivery_dict(d, e) for d, e in rows[:limit]],
                    "has_more": len(rows) > limit})
