"""Writing merchant webhook events into the outbox, inside the caller's transaction.

Delivery (signing, retries, the after-commit relay to RQ) lives in app.services.webhooks; this module only
adds rows, so a state change and the event it causes commit or roll back together.
"""

import time

from app import security
from app.extensions import db
from app.models import OutboxEvent


def event_payload(public_id, event_type, obj, created=None):
    """The body a merchant receives: `{id, object: "event", type, created, data: {object}}`."""
    created = int(time.time()) if created is None else created
    return {"id": public_id, "object": "event", "type": event_type, "created": created, "data": {"object": obj}}


def emit(event_type, merchant_id, obj, *, payment_id=None):
    """Add an OutboxEvent `{id, object: "event", type, created, data: {object}}` to the session.

    No flush and no commit: the row goes in with the caller's next flush, together with the state change's other
    rows, and its id reaches the after-commit relay then.
    """
    public_id = security.public_id("evt")
    event = OutboxEvent(
        public_id=public_id, merchant_id=merchant_id, payment_id=payment_id, type=event_type,
        payload=event_payload(public_id, event_type, obj),
    )
    db.session.add(event)
    db.session.info.setdefault("outbox_added", []).append(event)  # its id, once flushed, goes to the relay
    if event_type in ("payment.succeeded", "refund.succeeded"):
        from app.services.receipts import note_event

        note_event(event_type, payment_id, obj)  # the shopper's receipt, in this same transaction
    return event
