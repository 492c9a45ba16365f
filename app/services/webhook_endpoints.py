"""A merchant's webhook endpoints: create, change, delete (up to MAX_ENDPOINTS each), rotate a secret, and
the first endpoint as the old single-endpoint API and dashboard form knew it (`set_webhook_url`).

Every endpoint has its own secret (`whsec_` + base64 of 24 random bytes, the Standard Webhooks form), its
event types (None: all, see EVENT_TYPES) and an enabled flag with the reason it was turned off (by the
merchant, or by a `410 Gone` from the endpoint: app.services.webhook_delivery).
"""

import base64
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select

from app.extensions import db
from app.models import MAX_ENDPOINTS, WebhookEndpoint, utcnow
from app.services import audit
from app.services.errors import MalformedRequest, NotFound, ValidationError

#: Every event type an endpoint can ask for (`ping` is sent only by "Send test event", to that endpoint).
EVENT_TYPES = (
    "payment.processing", "payment.succeeded", "payment.failed", "payment.expired", "payment.cancelled",
    "payment.partially_refunded", "payment.refunded", "payment.attempt_failed", "payment.double_payment",
    "refund.succeeded", "refund.failed",
)
DESCRIPTION_MAX = 500


def new_webhook_secret():
    """`whsec_` + standard base64 of 24 random bytes: what Standard Webhooks libraries expect."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def signing_secrets(endpoint, now=None):
    """The secrets to sign with: the current one, plus the previous one during its grace period."""
    now = now or utcnow()
    found = [endpoint.secret]
    if endpoint.previous_secret_enc and endpoint.previous_secret_until and endpoint.previous_secret_until > now:
        from app import security

        found.append(security.decrypt(endpoint.previous_secret_enc))
    return found


def _url(value):
    from app.services.webhooks import validate_webhook_url

    return validate_webhook_url(value)


def _event_types(value):
    """None / "*" / [] → None (every type); else a sorted list of known types."""
    if value is None or value == "*" or value == ["*"]:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError('event_types must be a list of event types, or "*" for all', field="event_types",
                              code="invalid_event_types")
    unknown = sorted(set(value) - set(EVENT_TYPES))
    if unknown:
        raise ValidationError(f"unknown event types: {', '.join(unknown)}", field="event_types",
                              code="invalid_event_types")
    return sorted(set(value)) or None


def _description(value):
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError("description must be a string", field="description")
    if len(value) > DESCRIPTION_MAX:
        raise ValidationError(f"description must be at most {DESCRIPTION_MAX} characters", field="description")
    return value.strip()


def _forget_cached(merchant):
    db.session.expire(merchant, ["webhook_endpoints"])


def list_endpoints(merchant):
    return db.session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.merchant_id == merchant.id)
                              .order_by(WebhookEndpoint.id)).all()


def get_endpoint(merchant, public_id):
    """The merchant's endpoint with this id (another merchant's is NotFound)."""
    endpoint = db.session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.public_id == public_id,
                                                              WebhookEndpoint.merchant_id == merchant.id))
    if endpoint is None:
        raise NotFound(f"no webhook endpoint {public_id}")
    return endpoint


def _audited(endpoint, action, actor, before=None, after=None):
    """One audit row for a change to `endpoint` (its URL, events, description, on/off; never its secret)."""
    audit.record(endpoint.merchant_id, action, actor, target_type="webhook_endpoint", target_id=endpoint.public_id,
                 before=before, after=after)


def _settings(endpoint):
    return {"url": endpoint.url, "event_types": endpoint.event_types, "description": endpoint.description,
            "enabled": endpoint.enabled}


def create_endpoint(merchant, url, *, event_types=None, description=None, enabled=True, commit=True, actor=None):
    """Add an endpoint with a new secret; refuses the 17th. Commits (unless `commit` is False)."""
    url = _url(url)
    types, description = _event_types(event_types), _description(description)
    count = db.session.scalar(select(func.count()).select_from(WebhookEndpoint)
                              .where(WebhookEndpoint.merchant_id == merchant.id))
    if count >= MAX_ENDPOINTS:
        raise ValidationError(f"a merchant can have at most {MAX_ENDPOINTS} webhook endpoints",
                              code="too_many_endpoints")
    endpoint = WebhookEndpoint(merchant_id=merchant.id, url=url, event_types=types, description=description,
                               enabled=bool(enabled), disabled_reason=None if enabled else "disabled by you")
    endpoint.secret = new_webhook_secret()
    db.session.add(endpoint)
    db.session.flush()
    _forget_cached(merchant)
    _audited(endpoint, "webhook.endpoint_changed", actor, before={}, after=_settings(endpoint))
    if commit:
        db.session.commit()
    return endpoint


def update_endpoint(endpoint, changes, *, actor=None):
    """Change url, event_types, description and/or enabled (re-enabling clears the reason). Commits."""
    unknown = sorted(set(changes) - {"url", "event_types", "description", "enabled"})
    if unknown:
        raise MalformedRequest(f"unknown field {unknown[0]}", field=unknown[0], code="invalid_request")
    before = _settings(endpoint)
    if "url" in changes:
        endpoint.url = _url(changes["url"])
    if "event_types" in changes:
        endpoint.event_types = _event_types(changes["event_types"])
    if "description" in changes:
        endpoint.description = _description(changes["description"])
    if "enabled" in changes:
        if not isinstance(changes["enabled"], bool):
            raise ValidationError("enabled must be true or false", field="enabled")
        if changes["enabled"] and not endpoint.enabled:
            endpoint.enabled, endpoint.disabled_reason, endpoint.slow_until = True, None, None
        elif not changes["enabled"] and endpoint.enabled:
            endpoint.enabled, endpoint.disabled_reason = False, "disabled by you"
    old, new = audit.changed(before, _settings(endpoint))
    if new:
        _audited(endpoint, "webhook.endpoint_changed", actor, before=old, after=new)
    db.session.commit()
    return endpoint


def delete_endpoint(endpoint, *, actor=None):
    """Delete the endpoint with its deliveries (events and their other deliveries stay). Commits."""
    from app.models import Merchant

    merchant = db.session.get(Merchant, endpoint.merchant_id)
    _audited(endpoint, "webhook.endpoint_changed", actor, before=_settings(endpoint), after={"deleted": True})
    db.session.delete(endpoint)
    db.session.flush()
    _forget_cached(merchant)
    db.session.commit()


def rotate_secret(endpoint, *, actor=None):
    """Give the endpoint a new secret and return it; the old one keeps signing (a second signature in both
    headers) for WEBHOOK_SECRET_GRACE_SECONDS. Commits."""
    secret = new_webhook_secret()
    endpoint.previous_secret_enc = endpoint.secret_enc
    endpoint.previous_secret_until = utcnow() + timedelta(seconds=current_app.config["WEBHOOK_SECRET_GRACE_SECONDS"])
    endpoint.secret = secret
    _audited(endpoint, "webhook.secret_rotated", actor)
    db.session.commit()
    return secret


def reveal_secret(endpoint, *, actor=None):
    """The endpoint's current signing secret, for showing once; the audit log keeps who looked. Commits."""
    _audited(endpoint, "webhook.secret_revealed", actor)
    db.session.commit()
    return endpoint.secret


# --- the first endpoint, as the old single-endpoint API and dashboard form saw it ----------------------------


def first_endpoint(merchant, *, create=False):
    """The merchant's first (oldest) endpoint; with `create`, a URL-less one is added when there is none."""
    endpoint = db.session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.merchant_id == merchant.id)
                                 .order_by(WebhookEndpoint.id).limit(1))
    if endpoint is None and create:
        endpoint = WebhookEndpoint(merchant_id=merchant.id, url=None)
        endpoint.secret = new_webhook_secret()
        db.session.add(endpoint)
        db.session.flush()
        _forget_cached(merchant)
    return endpoint


def set_webhook_url(merchant, url, *, actor=None):
    """Set the first endpoint's URL (None or "" stops its deliveries). Commits."""
    url = _url(url) if url else None
    endpoint = first_endpoint(merchant, create=True)
    if endpoint.url != url:
        _audited(endpoint, "webhook.endpoint_changed", actor, before={"url": endpoint.url}, after={"url": url})
    endpoint.url = url
    db.session.commit()
    return url


def rotate_webhook_secret(merchant, *, actor=None):
    """Rotate the first endpoint's secret (see rotate_secret)."""
    return rotate_secret(first_endpoint(merchant, create=True), actor=actor)


def reveal_webhook_secret(merchant, *, actor=None):
    """The first endpoint's secret (see reveal_secret)."""
    return reveal_secret(first_endpoint(merchant, create=True), actor=actor)
