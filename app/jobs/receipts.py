"""Receipt email jobs."""

from app.services import receipts


def send(receipt_id):
    """One try at sending a shopper's receipt (a failed try is picked up again by the sweep when due)."""
    return receipts.send_receipt(receipt_id)


def sweep():
    """Enqueue every due, unsent receipt (periodic)."""
    return receipts.sweep_due_receipts()
