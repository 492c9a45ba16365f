"""The payment state machine: the transition tables, `transition()` and `transition_attempt()`, the only
writers of a payment's and an attempt's status.

    pending ─▶ processing ─▶ succeeded ─▶ partially_refunded ─▶ refunded
       │  ◀─────────┤ ╲
       └────────────┴──▶ failed | cancelled | expired

A payment is `processing` while an attempt is open at a gateway; when that attempt fails it goes back to
`pending` (the shopper may try again) until CHECKOUT_MAX_ATTEMPTS tries have failed (then `failed`). An
attempt moves on its own:

    started ─▶ processing ─▶ succeeded
       └──────────┴──────▶ failed | cancelled | expired ─▶ succeeded (the gateway confirmed money after all)

`transition()` is a compare-and-set: `UPDATE payments SET status=…, version=version+1 WHERE id=… AND status=…
AND version=…`. Of two racing callers exactly one sees its row updated; the other re-reads and, if the move is
no longer allowed, gets False. In the same transaction it writes the timeline event and the outbox event, so a
status change without its webhook (or the reverse) can never be committed. The UPDATE runs at once; the two
new rows go with the caller's next flush or commit (one round trip for all of them), and the caller commits.

Terminal states (failed, cancelled, expired, refunded) have no way out, with one exception: a gateway that
confirms real money for a failed, cancelled or expired payment makes it `succeeded` with `late_success` set
(`late_success=True` must be passed explicitly), because a confirmed payment is never silently dropped.
"""

from enum import StrEnum

from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import ClauseElement

from app.extensions import db
from app.models import Payment, PaymentEvent, utcnow
from app.ops import metrics


class Status(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


S = Status
TRANSITIONS = {
    S.PENDING: frozenset({S.PROCESSING, S.SUCCEEDED, S.FAILED, S.CANCELLED, S.EXPIRED}),
    # Back to pending: the attempt at the gateway failed and the shopper may try again.
    S.PROCESSING: frozenset({S.PENDING, S.SUCCEEDED, S.FAILED, S.CANCELLED, S.EXPIRED}),
    S.SUCCEEDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    # A second partial refund moves partially_refunded to itself (a new version, a new event).
    S.PARTIALLY_REFUNDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
    S.EXPIRED: frozenset(),
    S.REFUNDED: frozenset(),
}
TERMINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets)
#: States a gateway's confirmation of real money can still turn into `succeeded` (late success).
LATE_SUCCESS_FROM = frozenset({S.FAILED, S.CANCELLED, S.EXPIRED})
#: The shopper may still pay.
OPEN = frozenset({S.PENDING, S.PROCESSING})
#: Money was captured.
PAID = frozenset({S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED})

_MAX_RETRIES = 5


class AttemptStatus(StrEnum):
    STARTED = "started"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


A = AttemptStatus
ATTEMPT_ENDED = frozenset({A.FAILED, A.CANCELLED, A.EXPIRED})
ATTEMPT_TRANSITIONS = {
    A.STARTED: frozenset({A.PROCESSING, A.SUCCEEDED, A.FAILED, A.CANCELLED, A.EXPIRED}),
    A.PROCESSING: frozenset({A.SUCCEEDED, A.FAILED, A.CANCELLED, A.EXPIRED}),
    A.SUCCEEDED: frozenset(),
    # Money the gateway confirms is never dropped, whatever we had concluded before.
    **{ended: frozenset({A.SUCCEEDED}) for ended in ATTEMPT_ENDED},
}
#: The gateway may still confirm it.
ATTEMPT_OPEN = frozenset({A.STARTED, A.PROCESSING})


def _cas(model, row_id, status, version, values):
    """The compare-and-set: `UPDATE <table> SET … WHERE id = … AND status = … AND version = …`.

    On the table, not the ORM entity: a Core statement skips the ORM's bulk-update machinery and does not
    autoflush, so the rows a transition adds go in together at the commit (a quarter of a callback's time
    went to those two)."""
    table = model.__table__
    return (update(table).where(table.c.id == row_id, table.c.status == status, table.c.version == version)
            .values(**values))


def can_transition(current, target, *, late_success=False):
    current, target = Status(current), Status(target)
    if target in TRANSITIONS[current]:
        return True
    return late_success and target == S.SUCCEEDED and current in LATE_SUCCESS_FROM


def transition(payment, to, *, reason, source, data=None, late_success=False, changes=None, gateway=None,
               event=True, attempt=None):
    """Move `payment` to status `to` if the table allows it; return whether this call applied it.

    reason: a short sentence for the timeline. source: who asked (`api`, `checkout`, `callback:vnpay`,
    `expiry`, `refund`, …). data: raw context kept on the timeline event. late_success: allow failed,
    cancelled or expired → succeeded (a gateway confirmed money). changes: other columns to set in the same
    compare-and-set UPDATE (e.g. failure_message, succeeded_attempt_id). event: False writes no merchant
    event (the attempt's own event tells the story). attempt: the attempt it concerns, for the timeline.
    """
    from app.serializers import payment_dict
    from app.services.outbox import emit

    to = Status(to)
    for _ in range(_MAX_RETRIES):
        current, version = Status(payment.status), payment.version
        if not can_transition(current, to, late_success=late_success):
            return False
        is_late = to == S.SUCCEEDED and current in LATE_SUCCESS_FROM
        values = dict(changes or {})
        values.update(status=to.value, version=version + 1, updated_at=utcnow())
        if to == S.SUCCEEDED:
            values.setdefault("paid_at", utcnow())
            values["late_success"] = is_late
        result = db.session.execute(_cas(Payment, payment.id, current.value, version, values))
        if result.rowcount != 1:
            db.session.refresh(payment)  # someone else moved it: re-read and re-decide
            continue
        metrics.payment_transition(current, to)  # counted when (and only if) this transaction commits
        if any(isinstance(v, ClauseElement) for v in values.values()):
            db.session.refresh(payment)
        else:  # we know every value we wrote: no need to read the row back
            for key, value in values.items():
                set_committed_value(payment, key, value)
        message = reason + (" (late success: confirmed after the payment had " + current.value + ")" if is_late else "")
        db.session.add(
            PaymentEvent(
                payment_id=payment.id,
                kind="status_change",
                from_status=current.value,
                to_status=to.value,
                gateway=gateway,
                attempt_id=attempt.id if attempt is not None else None,
                message=f"{message} [{source}]",
                data=data,
            )
        )
        if event:
            emit(f"payment.{to.value}", payment.merchant_id, payment_dict(payment), payment_id=payment.id)
        return True
    return False


def can_transition_attempt(current, target):
    return AttemptStatus(target) in ATTEMPT_TRANSITIONS[AttemptStatus(current)]


def transition_attempt(attempt, to, *, reason, source, data=None, changes=None):
    """Move `attempt` to status `to` if its table allows it; return whether this call applied it.

    The same compare-and-set as `transition()` (on the attempt's status and version), with a timeline event
    in the same transaction. The payment's own status, and the merchant's `payment.attempt_failed` event
    for an attempt that ended, are the caller's next step (app.services.callbacks.after_attempt_ended).
    """
    from app.models import PaymentAttempt

    to = AttemptStatus(to)
    for _ in range(_MAX_RETRIES):
        current, version = AttemptStatus(attempt.status), attempt.version
        if not can_transition_attempt(current, to):
            return False
        now = utcnow()
        values = dict(changes or {})
        values.update(status=to.value, version=version + 1, updated_at=now)
        if to != A.PROCESSING:
            values["finished_at"] = now
        result = db.session.execute(_cas(PaymentAttempt, attempt.id, current.value, version, values))
        if result.rowcount != 1:
            db.session.refresh(attempt)
            continue
        metrics.attempt_transition(attempt.gateway, current, to)  # counted on commit only
        for key, value in values.items():
            set_committed_value(attempt, key, value)
        late = " (confirmed after it had " + current.value + ")" if to == A.SUCCEEDED and current in ATTEMPT_ENDED else ""
        db.session.add(PaymentEvent(
            payment_id=attempt.payment_id, attempt_id=attempt.id, kind="attempt", gateway=attempt.gateway,
            message=f"Attempt {attempt.number} ({attempt.gateway}) {current.value} → {to.value}: {reason}{late} [{source}]",
            data=data,
        ))
        return True
    return False


def open_attempt(payment, gateway, *, locale=None):
    """Number and add a new attempt of `payment` at `gateway` (no commit), or None if the payment moved.

    A compare-and-set on the payment (its status and version, bumping attempt_count) makes two starts racing
    for one payment (a double click) produce one attempt; the unique (payment, number) backs it up.
    """
    from app.models import PaymentAttempt

    if Status(payment.status) not in OPEN:
        return None
    number, version = payment.attempt_count + 1, payment.version
    now = utcnow()
    values = {"attempt_count": number, "version": version + 1, "updated_at": now, "gateway": gateway}
    if locale:
        values["locale"] = locale
    moved = db.session.execute(_cas(Payment, payment.id, payment.status, version, values)).rowcount
    if moved != 1:
        db.session.refresh(payment)
        return None
    for key, value in values.items():
        set_committed_value(payment, key, value)
    attempt = PaymentAttempt(payment_id=payment.id, merchant_id=payment.merchant_id, number=number,
                             gateway=gateway, status=A.STARTED.value, version=0, amount=payment.amount,
                             currency=payment.currency, amount_refunded=0, data={}, created_at=now,
                             updated_at=now)
    db.session.add(attempt)
    db.session.flush()
    return attempt


def flag_double_payment(payment, attempt, *, reason, source, other_payment=None):
    """Record that money was confirmed twice for one order (no commit): the payment is flagged
    `double_payment` and `payment.double_payment` goes out naming the extra attempt. Returns whether this
    call flagged it (a payment is flagged once; every extra attempt gets its timeline line)."""
    from app.serializers import payment_dict
    from app.services.outbox import emit

    flagged = db.session.execute(
        update(Payment).where(Payment.id == payment.id, Payment.double_payment.is_(False))
        .values(double_payment=True).execution_options(synchronize_session=False)
    ).rowcount == 1
    set_committed_value(payment, "double_payment", True)
    db.session.add(PaymentEvent(payment_id=payment.id, attempt_id=attempt.id, kind="note", gateway=attempt.gateway,
                                message=f"Double payment: {reason} [{source}]"))
    body = payment_dict(payment)
    body["double_payment_attempt"] = attempt.public_id
    if other_payment is not None:
        body["double_payment_of"] = other_payment.public_id
    emit("payment.double_payment", payment.merchant_id, body, payment_id=payment.id)
    return flagged


def transition_many(candidates, to, *, reason, source, changes=None):
    """Set-based `transition()` for batches (the expiry sweep): same compare-and-set, timeline and outbox.

    candidates: (payment id, status, version) as read by the caller. One UPDATE moves every row that still
    has that status and version and may go to `to`; rows that changed meanwhile are left alone. For each
    moved payment a timeline event and an outbox event are written, in bulk. Flushes; the caller commits.
    Returns the ids moved.
    """
    from datetime import UTC

    from sqlalchemy import insert, select, tuple_
    from sqlalchemy.orm import selectinload

    from app import security
    from app.models import OutboxEvent
    from app.serializers import payment_dict
    from app.services.outbox import event_payload, fan_out

    to = Status(to)
    allowed = [(pid, Status(s), v) for pid, s, v in candidates if can_transition(s, to)]
    if not allowed:
        return []
    now = utcnow()
    values = dict(changes or {})
    values.update(status=to.value, version=Payment.version + 1, updated_at=now)
    moved = db.session.execute(
        update(Payment)
        .where(tuple_(Payment.id, Payment.status, Payment.version).in_(
            [(pid, s.value, v) for pid, s, v in allowed]))
        .values(**values)
        .returning(Payment.id)
        .execution_options(synchronize_session=False)
    ).scalars().all()
    if not moved:
        return []
    before = {pid: s for pid, s, _ in allowed}
    for pid in moved:
        metrics.payment_transition(before[pid], to)  # counted on commit only
    # Core inserts on the tables: the ORM's bulk-insert bookkeeping was a third of the sweep's time (bench/expiry.py).
    db.session.execute(insert(PaymentEvent.__table__), [
        {"payment_id": pid, "kind": "status_change", "from_status": before[pid].value, "to_status": to.value,
         "message": f"{reason} [{source}]", "created_at": now} for pid in moved
    ])
    created = int(now.replace(tzinfo=UTC).timestamp())
    rows = []
    payments = db.session.scalars(
        select(Payment).where(Payment.id.in_(moved)).options(selectinload(Payment.attempts))
        .execution_options(populate_existing=True)
    ).all()
    for payment in payments:
        event_id = security.public_id("evt")
        rows.append({
            "public_id": event_id, "merchant_id": payment.merchant_id, "payment_id": payment.id,
            "type": f"payment.{to.value}", "delivery_status": "pending", "attempts": 0,
            "next_attempt_at": now, "created_at": now,
            "payload": event_payload(event_id, f"payment.{to.value}", payment_dict(payment), created),
        })
    table = OutboxEvent.__table__
    event_ids = db.session.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True),
                                   rows).scalars().all()
    fan_out([(event_id, row["merchant_id"], row["type"]) for event_id, row in zip(event_ids, rows, strict=True)])
    db.session.info.setdefault("outbox_new", []).extend(event_ids)
    return moved
