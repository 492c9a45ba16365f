"""Merchant webhooks: the after-commit relay from the outbox to the worker, URL safety, resend and replay,
and the test event (`ping`).

Delivery itself is in app.services.webhook_delivery (batches, leases, kept-alive pinned connections);
endpoints and their secrets in app.services.webhook_endpoints. After a commit that wrote events the relay asks
for a delivery job (one per lane, not one per event); the periodic sweep (every WEBHOOK_SWEEP_SECONDS) asks
again whenever deliveries are due, which covers events committed while Redis was down, retries whose job was
lost and batches whose worker died (their lease runs out).
"""

import ipaddress
import logging
import socket
from datetime import datetime
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from app import webhooks as merchant_side
from app.extensions import db
from app.models import OutboxEvent, Payment, PaymentEvent, WebhookDelivery, WebhookEndpoint, utcnow
from app.services import audit
from app.services.errors import ValidationError

log = logging.getLogger(__name__)



def register_outbox_relay(app):
    """After every commit, ask for a delivery job if it wrote events, and enqueue the jobs for the payments and
    refunds created in it.

    Enqueueing only after the commit means a job never sees a row that is not there yet; a Redis outage
    only delays the jobs, because the periodic sweeps find everything that is due in the database.
    """
    if getattr(register_outbox_relay, "_done", False):
        return
    register_outbox_relay._done = True

    @event.listens_for(Session, "before_commit")
    def _note_expiry_times(session):
        # after_commit may not query, so take the payments' expiry times while the transaction is open.
        ids = session.info.pop("payments_created", None)
        if ids:
            times = session.info.setdefault("payment_expiry", [])
            for payment_id in ids:
                payment = session.get(Payment, payment_id)
                if payment is not None:
                    times.append((payment_id, payment.expires_at))

    @event.listens_for(Session, "after_flush")
    def _note_outbox_ids(session, flush_context):
        added = session.info.pop("outbox_added", None)
        if added:
            session.info.setdefault("outbox_new", []).extend(e.id for e in added)

    @event.listens_for(Session, "after_commit")
    def _relay(session):
        events = session.info.pop("outbox_new", None) or session.info.pop("webhooks_kick", None)
        session.info.pop("webhooks_kick", None)
        payments = session.info.pop("payment_expiry", None)
        refunds = session.info.pop("refunds_created", None)
        if not (events or payments or refunds):
            return
        try:
            from app.jobs import after_commit

            after_commit(current_app._get_current_object(), bool(events), payments or [], refunds or [])
        except Exception:  # Redis down: the sweeps will pick these up
            log.warning("could not enqueue jobs after commit; the sweeper will retry", exc_info=True)

    @event.listens_for(Session, "after_rollback")
    def _forget(session):
        for key in ("outbox_added", "outbox_new", "payments_created", "payment_expiry", "refunds_created",
                    "webhooks_kick"):
            session.info.pop(key, None)


# --- signing -----------------------------------------------------------------------------------------------


def sign_payload(secret, timestamp, body):
    """Hex HMAC-SHA256 of "<timestamp>.<raw body>" with `secret` (the v1 of Paysmith-Signature)."""
    return merchant_side.sign(secret, timestamp, body)


# --- URL safety --------------------------------------------------------------------------------------------


def _forbidden_address(ip):
    ip = ipaddress.ip_address(ip)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or ip == ipaddress.ip_address("169.254.169.254"))


def validate_webhook_url(url, *, resolve=True):
    """Return the URL if it is an http(s) URL we may POST to, else raise ValidationError.

    Unless ALLOW_PRIVATE_WEBHOOK_URLS is on, a host that is, or resolves to, a loopback, private,
    link-local (cloud metadata) or otherwise reserved address is refused. `resolve=False` checks only
    literal IP hosts (no DNS lookup).
    """
    return _check_target(url, resolve=resolve)[0]


def _refuse(message):
    raise ValidationError(message, field="webhook_url", code="invalid_webhook_url")


def _resolve(host, port):
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        _refuse(f"the webhook host {host} does not resolve")
    return list(dict.fromkeys(info[4][0].split("%")[0] for info in infos))


def _check_target(url, *, resolve=True):
    """(url, the checked addresses to connect to) after the checks of validate_webhook_url; the addresses
    are empty when the host is a name that was not resolved (`resolve` False, or private addresses allowed)."""
    if not isinstance(url, str) or not url.strip():
        _refuse("the webhook URL is required")
    url = url.strip()
    if len(url) > 2000:
        _refuse("the webhook URL must be at most 2000 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        _refuse("the webhook URL is not a valid URL")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        _refuse("the webhook URL must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        _refuse("the webhook URL must not contain a user name or password")
    private_ok, host = current_app.config["ALLOW_PRIVATE_WEBHOOK_URLS"], parts.hostname
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        if private_ok:
            return url, []
        if host.lower() in ("localhost", "metadata.google.internal") or host.lower().endswith(".localhost"):
            _refuse("the webhook URL must not point at this machine or a private network")
        if not resolve:
            return url, []
        addresses = _resolve(host, port or (443 if parts.scheme == "https" else 80))
    if not private_ok and any(_forbidden_address(a) for a in addresses):
        _refuse("the webhook URL must not point at this machine or a private network")
    return url, addresses


def post_pinned(url, body, headers, timeout):
    """POST `body` to `url`, connecting only to the addresses checked just now: (status code, first KB).

    `requests` would resolve the host name again when it connects, so a name that answered with a public
    address for the check could answer with 127.0.0.1 for the connection (DNS rebinding). Here urllib3 connects
    to the checked address itself, sending the URL's host in `Host` and, over HTTPS, in SNI, with the
    certificate verified against that host name (app.services.webhook_delivery.post, which batches use too).
    Raises ValidationError for a refused URL, and urllib3's TimeoutError / HTTPError when no address answers.
    """
    from app.services.webhook_delivery import post, resolve_target

    status, _, content = post(resolve_target(url), body, headers, connect_timeout=timeout, read_timeout=timeout)
    return status, content


# --- resend, replay, ping ------------------------------------------------------------------------------------


def _timeline(payment_id, message, data=None):
    if payment_id:
        db.session.add(PaymentEvent(payment_id=payment_id, kind="webhook", message=message, data=data))


def _relay_soon():
    db.session.info["webhooks_kick"] = True


def _reopen(query):
    """Make the deliveries `query` selects pending again with fresh attempts; return the event ids touched.

    A delivery in progress keeps its lease: it is reopened for after that attempt, never raced."""
    from app.services.webhook_delivery import summarise_events

    now = utcnow()
    query = query.where(WebhookDelivery.endpoint_id.in_(  # never to an endpoint whose URL was removed
        select(WebhookEndpoint.id).where(WebhookEndpoint.url.is_not(None))))
    event_ids = db.session.execute(
        query.values(status="pending", attempts=0, next_attempt_at=now, delivered_at=None, last_error=None)
        .returning(WebhookDelivery.event_id).execution_options(synchronize_session=False)).scalars().all()
    summarise_events(set(event_ids))
    _relay_soon()
    return set(event_ids)


def resend_event(event, *, actor=None):
    """Deliver an event again to every endpoint it went to (or, if it went nowhere, to the endpoints that want
    it now), with the same event id and a fresh set of attempts. Commits."""
    has_deliveries = db.session.scalar(select(WebhookDelivery.id).where(WebhookDelivery.event_id == event.id)
                                       .limit(1)) is not None
    if not has_deliveries:
        from app.services.outbox import _endpoints

        wanted = [e for e in _endpoints([event.merchant_id]).get(event.merchant_id, []) if e.wants(event.type)]
        now = utcnow()
        for endpoint in wanted:
            db.session.add(WebhookDelivery(event_id=event.id, endpoint_id=endpoint.id, next_attempt_at=now,
                                           status="pending", attempts=0))
        db.session.flush()
    if not _reopen(update(WebhookDelivery).where(WebhookDelivery.event_id == event.id)):
        event.delivery_status, event.last_error = "skipped", "no webhook endpoint wants this event"
    _timeline(event.payment_id, f"Webhook {event.type} ({event.public_id}) resent on request")
    audit.record(event.merchant_id, "webhook.resent", actor, target_type="event", target_id=event.public_id,
                 after={"type": event.type})
    db.session.commit()
    db.session.refresh(event)
    return event


def replay_event(endpoint, event, *, actor=None):
    """Deliver one event again to one endpoint (adding the delivery if it never went there). Commits."""
    if event.merchant_id != endpoint.merchant_id:
        from app.services.errors import NotFound

        raise NotFound(f"no event {event.public_id}")
    delivery = db.session.scalar(select(WebhookDelivery).where(WebhookDelivery.event_id == event.id,
                                                               WebhookDelivery.endpoint_id == endpoint.id))
    if delivery is None:
        db.session.add(WebhookDelivery(event_id=event.id, endpoint_id=endpoint.id, next_attempt_at=utcnow(),
                                       status="pending", attempts=0))
        db.session.flush()
    _reopen(update(WebhookDelivery).where(WebhookDelivery.event_id == event.id,
                                          WebhookDelivery.endpoint_id == endpoint.id))
    _timeline(event.payment_id, f"Webhook {event.type} ({event.public_id}) replayed to {endpoint.url}")
    audit.record(event.merchant_id, "webhook.resent", actor, target_type="event", target_id=event.public_id,
                 after={"type": event.type, "endpoint": endpoint.public_id})
    db.session.commit()
    return event


def replay_failed(endpoint, since, until, *, actor=None):
    """Deliver again every failed delivery of the endpoint whose event was created in [since, until]; return
    how many. Set-based: one UPDATE. Commits."""
    if not isinstance(since, datetime) or not isinstance(until, datetime) or since > until:
        raise ValidationError("give a time range: since before until", field="since")
    event_ids = select(OutboxEvent.id).where(OutboxEvent.merchant_id == endpoint.merchant_id,
                                             OutboxEvent.created_at >= since, OutboxEvent.created_at <= until)
    touched = _reopen(update(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id,
                                                    WebhookDelivery.status == "failed",
                                                    WebhookDelivery.event_id.in_(event_ids)))
    audit.record(endpoint.merchant_id, "webhook.resent", actor, target_type="webhook_endpoint",
                 target_id=endpoint.public_id, after={"failed_since": since.isoformat(),
                                                      "failed_until": until.isoformat(), "events": len(touched)})
    db.session.commit()
    return len(touched)


def send_ping(endpoint):
    """"Send test event": a `ping` event to this endpoint only (even one that is disabled). Commits."""
    from app.services.outbox import emit

    if not endpoint.url:
        raise ValidationError("set the endpoint's URL first", field="url", code="invalid_webhook_url")
    event = emit("ping", endpoint.merchant_id, {"object": "webhook_endpoint", "id": endpoint.public_id,
                                                "url": endpoint.url, "message": "A test event from Paysmith"},
                 endpoints=[endpoint])
    db.session.commit()
    return event


def sweep_due_events():
    """Ask for a delivery job in every lane that has deliveries due (periodic); return how many are due."""
    from app.jobs import kick_deliveries
    from app.services.webhook_delivery import due_lanes, pending_count

    lanes, due = due_lanes(), pending_count()
    db.session.rollback()
    if lanes:  # even if a job seems queued: it may have been lost with its mark kept
        kick_deliveries(current_app._get_current_object(), lanes, force=True)
    return due
