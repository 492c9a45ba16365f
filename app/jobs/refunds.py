"""Gateway refund jobs."""

from app.services import refunds


def process(refund_id):
    return refunds.process_refund(refund_id)
