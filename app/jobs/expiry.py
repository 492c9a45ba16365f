"""Payment expiry jobs: one timer per payment, plus the periodic set-based sweep."""

from app.services import expiry


def expire(payment_id):
    return expiry.expire_payment(payment_id)


def sweep():
    return expiry.expire_overdue()
