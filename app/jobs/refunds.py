"""Gateway refund jobs: one gateway call per job, plus the periodic sweep."""

from app.services import refunds


def process(refund_id):
    """One gateway call for a pending refund that is due (schedules the next one itself when it fails)."""
    return refunds.process_refund(refund_id)


def sweep():
    """Enqueue every pending refund whose next gateway call is due (periodic)."""
    return refunds.sweep_due_refunds()
