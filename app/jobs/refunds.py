"""Gateway refund jobs: one for a refund just requested, one per batch of due refunds, and the sweep."""

from app.services import refunds


def process(refund_id):
    """One gateway call for a pending refund that is due (schedules the next one itself when it fails)."""
    return refunds.process_refund(refund_id)


def process_due():
    """The gateway calls of due pending refunds, claimed in batches (asked for by the sweep)."""
    return refunds.process_due_refunds()


def sweep():
    """Ask for one batch job when pending refunds are due (periodic)."""
    return refunds.sweep_due_refunds()
