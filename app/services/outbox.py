"""Writing merchant webhook events into the outbox, inside the caller's transaction, with one delivery per
endpoint that wants the event's type.

Delivery (signing, batches, retries) lives in app.services.webhook_delivery and the after-commit relay in
app.services.webhooks; this module only adds rows, so a state change, its event and the event's deliveries
commit or roll back together.
"""

import time

from sqlalchemy import insert, select, update

from app import security
from app.extensions import db
from app.models import OutboxEvent, WebhookDelivery, WebhookEndpoint, utcnow


def event_payload(public_id, event_type, obj, created=None):
    """The body a merchant receives: `{id, object: "event", type, created, data: {object}}`."""
    created = int(time.time()) if created is None else created
    return {"id": public_id, "object": "event", "type": event_type, "created": created, "data": {"object": obj}}


def _endpoints(merchant_ids):
    """Enabled endpoints with a URL, by merchant id."""
    found = {}
    with db.session.no_autoflush:
        for endpoint in db.session.scalars(select(WebhookEndpoint).where(
                WebhookEndpoint.merchant_id.in_(set(merchant_ids)), WebhookEndpoint.enabled.is_(True),
                WebhookEndpoint.url.is_not(None)).order_by(WebhookEndpoint.id)):
            found.setdefault(endpoint.merchant_id, []).append(endpoint)
    return found


def emit(event_type, merchant_id, obj, *, payment_id=None, endpoints=None):
    """Add an OutboxEvent `{id, object: "event", type, created, data: {object}}` and its deliveries to the
    session (`endpoints`: only these, e.g. a ping; default: every enabled endpoint that wants the type).

    No commit: the rows go in with the caller's next flush, together with the state change's other rows, and
    the relay hands them to the worker after the commit.
    """
    public_id = security.public_id("evt")
    event = OutboxEvent(
        public_id=public_id, merchant_id=merchant_id, payment_id=payment_id, type=event_type,
        payload=event_payload(public_id, event_type, obj),
    )
    if endpoints is None:
        endpoints = [e for e in _endpoints([merchant_id]).get(merchant_id, []) if e.wants(event_type)]
    now = utcnow()
    event.next_attempt_at = now
    event.deliveries = [WebhookDelivery(endpoint_id=e.id, next_attempt_at=now, status="pending", attempts=0)
                        for e in endpoints]
    event.delivery_status = "pending" if endpoints else "skipped"
    if not endpoints:
        event.last_error = "no webhook endpoint wants this event"
    db.session.add(event)
    db.session.info.setdefault("outbox_added", []).append(event)  # its id, once flushed, goes to the relay
    if event_type in ("payment.succeeded", "refund.succeeded"):
        from app.services.receipts import note_event

        note_event(event_type, payment_id, obj)  # the shopper's receipt, in this same transaction
    return event


def fan_out(events):
    """Deliveries for events inserted in bulk: `events` is [(event id, merchant id, type)]. Set-based: one
    SELECT of the endpoints, one INSERT of the deliveries, one UPDATE marking events nobody wants skipped."""
    if not events:
        return
    endpoints, now = _endpoints([m for _, m, _ in events]), utcnow()
    rows, skipped = [], []
    for event_id, merchant_id, event_type in events:
        wanted = [e for e in endpoints.get(merchant_id, []) if e.wants(event_type)]
        rows.extend({"event_id": event_id, "endpoint_id": e.id, "status": "pending", "attempts": 0,
                     "next_attempt_at": now, "created_at": now} for e in wanted)
        if not wanted:
            skipped.append(event_id)
    if rows:
        db.session.execute(insert(WebhookDelivery.__table__), rows)
    if skipped:
        db.session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(skipped)).values(
            delivery_status="skipped", last_error="no webhook endpoint wants this event")
            .execution_options(synchronize_session=False))
