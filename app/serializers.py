"""The JSON shape of payments, refunds and events: one shape for the API, webhooks and the dashboard."""

from flask import current_app

from app.models import isoformat


def checkout_url(payment):
    return f"{current_app.config['PUBLIC_BASE_URL']}/pay/{payment.checkout_token}"


def payment_dict(payment):
    return {
        "id": payment.public_id,
        "object": "payment",
        "status": payment.status,
        "amount": payment.amount,
        "currency": payment.currency,
        "amount_refunded": payment.amount_refunded,
        "reference": payment.reference,
        "description": payment.description,
        "items": payment.items or [],
        "customer": payment.customer or {},
        "metadata": payment.meta or {},
        "gateway": payment.gateway,
        "gateway_reference": payment.gateway_reference,
        "gateway_transaction_id": payment.gateway_transaction_id,
        "attempts": [attempt_dict(a) for a in payment.attempts],
        "double_payment": payment.double_payment,
        "card": payment.card_summary,
        "fee_amount": payment.fee_amount,
        "late_success": payment.late_success,
        "needs_review": payment.needs_review,
        "failure_code": payment.failure_code,
        "failure_message": payment.failure_message,
        "checkout_url": checkout_url(payment),
        "return_url": payment.return_url,
        "cancel_url": payment.cancel_url,
        "expires_at": isoformat(payment.expires_at),
        "created_at": isoformat(payment.created_at),
        "updated_at": isoformat(payment.updated_at),
        "paid_at": isoformat(payment.paid_at),
    }


def attempt_dict(attempt):
    return {
        "id": attempt.public_id,
        "object": "payment_attempt",
        "number": attempt.number,
        "gateway": attempt.gateway,
        "status": attempt.status,
        "amount": attempt.amount,
        "currency": attempt.currency,
        "gateway_reference": attempt.reference,
        "gateway_transaction_id": attempt.transaction_id,
        "failure_code": attempt.failure_code,
        "failure_reason": attempt.failure_reason,
        "failure_message": attempt.failure_message,
        "amount_refunded": attempt.amount_refunded,
        "created_at": isoformat(attempt.created_at),
        "updated_at": isoformat(attempt.updated_at),
        "finished_at": isoformat(attempt.finished_at),
    }


def attempt_failed_dict(attempt):
    """The body of `payment.attempt_failed`: the payment, with the attempt that failed."""
    body = payment_dict(attempt.payment)
    body["attempt"] = attempt_dict(attempt)
    return body


def refund_dict(refund):
    return {
        "id": refund.public_id,
        "object": "refund",
        "payment": refund.payment.public_id,
        "attempt": refund.attempt.public_id if refund.attempt else None,
        "amount": refund.amount,
        "currency": refund.currency,
        "status": refund.status,
        "reason": refund.reason,
        "gateway": refund.gateway,
        "gateway_reference": refund.gateway_reference,
        "failure_message": refund.failure_message,
        "created_at": isoformat(refund.created_at),
        "updated_at": isoformat(refund.updated_at),
    }
