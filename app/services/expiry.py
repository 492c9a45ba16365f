"""Payment expiry: a timer job per payment at its `expires_at`, and a periodic set-based sweep.

Both go through the state machine's compare-and-set, so a payment that a gateway confirmed a moment before
stays paid, and a payment expired by both the timer and the sweep expires once. The sweep works in batches:
one SELECT of overdue open payments (FOR UPDATE SKIP LOCKED on PostgreSQL, so several workers share the
work), one compare-and-set UPDATE, bulk inserts of the timeline and outbox rows, one commit per batch.
"""

from sqlalchemy import select

from app.extensions import db
from app.models import Payment, utcnow
from app.state_machine import OPEN, Status, transition, transition_many

REASON = "The payment expired before it was paid"
_CHANGES = {"failure_code": "expired", "failure_message": "The payment expired before it was paid."}


def expire_payment(payment_id):
    """Expire one payment if it is still open and overdue; return whether this call expired it. Commits."""
    payment = db.session.get(Payment, payment_id)
    if payment is None or payment.status not in OPEN or payment.expires_at > utcnow():
        db.session.rollback()
        return False
    applied = transition(payment, Status.EXPIRED, reason=REASON, source="expiry", changes=dict(_CHANGES))
    db.session.commit()
    return applied


def expire_overdue(batch_size=1000):
    """Expire every overdue pending/processing payment, `batch_size` per transaction; return how many."""
    total = 0
    while True:
        now = utcnow()
        query = (
            select(Payment.id, Payment.status, Payment.version)
            .where(Payment.status.in_([s.value for s in OPEN]), Payment.expires_at <= now)
            .order_by(Payment.expires_at, Payment.id)
            .limit(batch_size)
        )
        if db.engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=Payment)
        candidates = db.session.execute(query).all()
        if not candidates:
            db.session.rollback()
            return total
        moved = transition_many(candidates, Status.EXPIRED, reason=REASON, source="expiry",
                                changes=dict(_CHANGES))
        db.session.commit()
        total += len(moved)
        if len(candidates) < batch_size:
            return total
