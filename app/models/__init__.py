"""All models, re-exported for Alembic autogenerate and the shell. One module per aggregate."""

from app.models.base import isoformat, utcnow
from app.models.idempotency import IdempotencyKey
from app.models.merchant import ApiKey, GatewayAccount, Merchant
from app.models.payment import Payment, PaymentAttempt, PaymentEvent
from app.models.receipt import Receipt
from app.models.refund import Refund
from app.models.webhook import MAX_ENDPOINTS, OutboxEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiKey",
    "GatewayAccount",
    "IdempotencyKey",
    "Merchant",
    "OutboxEvent",
    "Payment",
    "PaymentAttempt",
    "PaymentEvent",
    "Receipt",
    "Refund",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "MAX_ENDPOINTS",
    "isoformat",
    "utcnow",
]
