"""The payment state machine: the transition table and `transition()`, the only writer of a payment's status.

    pending ─▶ processing ─▶ succeeded ─▶ partially_refunded ─▶ refunded
       │            │ ╲
       └────────────┴──▶ failed | cancelled | expired

`transition()` is a compare-and-set: `UPDATE payments SET status=…, version=version+1 WHERE id=… AND status=…
AND version=…`. Of two racing callers exactly one sees its row updated; the other re-reads and, if the move is
no longer allowed, gets False. In the same transaction it writes the timeline event and the outbox event, so a
status change without its webhook (or the reverse) can never be committed. It flushes; the caller commits.

Terminal states (failed, cancelled, expired, refunded) have no way out, with one exception: a gateway that
confirms real money for a failed, cancelled or expired payment makes it `succeeded` with `late_success` set
(`late_success=True` must be passed explicitly), because a confirmed payment is never silently dropped.
"""

from enum import StrEnum

from sqlalchemy import update

from app.extensions import db
from app.models import Payment, PaymentEvent, utcnow


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
    S.PROCESSING: frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED, S.EXPIRED}),
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


def can_transition(current, target, *, late_success=False):
    current, target = Status(current), Status(target)
    if target in TRANSITIONS[current]:
        return True
    return late_success and target == S.SUCCEEDED and current in LATE_SUCCESS_FROM


def transition(payment, to, *, reason, source, data=None, late_success=False, changes=None, gateway=None):
    """Move `payment` to status `to` if the table allows it; return whether this call applied it.

    reason: a short sentence for the timeline. source: who asked (`api`, `checkout`, `callback:vnpay`,
    `expiry`, `refund`, …). data: raw context kept on the timeline event. late_success: allow failed,
    cancelled or expired → succeeded (a gateway confirmed money). changes: other columns to set in the same
    compare-and-set UPDATE (e.g. gateway_transaction_id, failure_message, amount_refunded).
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
        result = db.session.execute(
            update(Payment)
            .where(Payment.id == payment.id, Payment.status == current.value, Payment.version == version)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            db.session.refresh(payment)  # someone else moved it: re-read and re-decide
            continue
        db.session.refresh(payment)
        message = reason + (" (late success: confirmed after the payment had " + current.value + ")" if is_late else "")
        db.session.add(
            PaymentEvent(
                payment_id=payment.id,
                kind="status_change",
                from_status=current.value,
                to_status=to.value,
                gateway=gateway,
                message=f"{message} [{source}]",
                data=data,
            )
        )
        emit(f"payment.{to.value}", payment.merchant_id, payment_dict(payment), payment_id=payment.id)
        db.session.flush()
        return True
    return False
