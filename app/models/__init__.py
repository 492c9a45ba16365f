"""All models, re-exported for Alembic autogenerate and the shell. One module per aggregate."""

from app.models.audit import AuditEvent
from app.models.base import isoformat, utcnow
from app.models.idempotency import IdempotencyKey
from app.models.merchant import ApiKey, GatewayAccount, Merchant
from app.models.payment import Payment, PaymentAttempt, PaymentEvent
from app.models.receipt import Receipt
from app.models.refund import Refund
from app.models.totals import PaymentDailyTotal, PaymentTotalChange
from app.models.team import Invitation, Membership, RecoveryCode, User, UserSession
from app.models.webhook import MAX_ENDPOINTS, OutboxEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiKey",
    "AuditEvent",
    "GatewayAccount",
    "IdempotencyKey",
    "Invitation",
    "Membership",
    "Merchant",
    "OutboxEvent",
    "Payment",
    "PaymentAttempt",
    "PaymentDailyTotal",
    "PaymentEvent",
    "PaymentTotalChange",
    "RecoveryCode",
    "Receipt",
    "Refund",
    "User",
    "UserSession",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "MAX_ENDPOINTS",
    "isoformat",
    "utcnow",
]
