"""Merchant webhooks: the outbox of events, the endpoints that receive them, one delivery per event and
endpoint, and the record of every delivery attempt.

An OutboxEvent is written in the same transaction as the state change that causes it, together with one
WebhookDelivery per endpoint that wants its type; the worker delivers them afterwards in batches (see
app.services.webhook_delivery), so a Redis outage delays events but never loses them.
"""

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import security
from app.extensions import db
from app.models.base import JSONType, utcnow

#: A merchant may have at most this many endpoints.
MAX_ENDPOINTS = 16


class OutboxEvent(db.Model):
    __tablename__ = "outbox_events"
    __table_args__ = (
        Index("ix_outbox_events_due", "delivery_status", "next_attempt_at"),
        Index("ix_outbox_events_merchant", "merchant_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: `evt_…`, sent as Paysmith-Event-Id and webhook-id; a resend or replay keeps it.
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: security.public_id("evt"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), index=True)
    #: `payment.succeeded`, `refund.failed`, … or `ping` (an endpoint's test event).
    type: Mapped[str] = mapped_column(String(64))
    #: The full event body as delivered: {id, type, created, data: {object: …}}.
    payload: Mapped[dict] = mapped_column(JSONType)
    #: A summary of its deliveries: `pending` (one still to go), `delivered` (all), `failed` (one gave up) or
    #: `skipped` (no endpoint wanted it).
    delivery_status: Mapped[str] = mapped_column(String(16), default="pending")
    #: The most attempts any of its deliveries made.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: The earliest next attempt of its pending deliveries.
    next_attempt_at = mapped_column(DateTime, default=utcnow)
    delivered_at = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at = mapped_column(DateTime, default=utcnow, nullable=False)

    attempts_log = relationship("WebhookAttempt", back_populates="event", order_by="WebhookAttempt.id", lazy="dynamic")
    deliveries = relationship("WebhookDelivery", back_populates="event", order_by="WebhookDelivery.id")


class WebhookEndpoint(db.Model):
    """One URL of a merchant that receives signed events: the types it wants (None: all), its own secret."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: `we_…`
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: security.public_id("we"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    #: None only for a merchant's first endpoint before a URL is set (the old single-endpoint API).
    url: Mapped[str | None] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(500), default="")
    #: Event types sent here, e.g. ["payment.succeeded"]; None means every type.
    event_types: Mapped[list | None] = mapped_column(JSONType)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    #: Why it was disabled (`410 Gone from the endpoint`, or by the merchant).
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    #: Fernet-encrypted signing secret (`whsec_` + base64).
    secret_enc: Mapped[str] = mapped_column(Text)
    #: The previous secret, still signing (a second signature) until `previous_secret_until`.
    previous_secret_enc: Mapped[str | None] = mapped_column(Text)
    previous_secret_until = mapped_column(DateTime)
    #: Slow or failing lately: its deliveries go to the slow lane until then (or its next quick success).
    slow_until = mapped_column(DateTime)
    created_at = mapped_column(DateTime, default=utcnow, nullable=False)
    updated_at = mapped_column(DateTime, default=utcnow, onupdate=utcnow, nullable=False)

    @property
    def secret(self):
        return security.decrypt(self.secret_enc)

    @secret.setter
    def secret(self, value):
        self.secret_enc = security.encrypt(value)

    def wants(self, event_type):
        """Whether a new event of this type is delivered here."""
        if not self.enabled or not self.url:
            return False
        return event_type == "ping" or self.event_types is None or event_type in self.event_types


class WebhookDelivery(db.Model):
    """One event to one endpoint: its own attempts, retries and lease."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("outbox_events.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    #: `pending`, `delivered` or `failed` (attempts used up, or the endpoint was disabled).
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at = mapped_column(DateTime, default=utcnow, nullable=False)
    #: The worker batch delivering it now, and until when (a batch whose worker dies is taken over then).
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until = mapped_column(DateTime)
    delivered_at = mapped_column(DateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at = mapped_column(DateTime, default=utcnow, nullable=False)

    event = relationship("OutboxEvent", back_populates="deliveries")
    endpoint = relationship("WebhookEndpoint")


class WebhookAttempt(db.Model):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("outbox_events.id", ondelete="CASCADE"), index=True)
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
                                                    index=True)
    url: Mapped[str] = mapped_column(String(2000))
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    #: First 1 KB of the response body.
    response_body: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at = mapped_column(DateTime, default=utcnow, nullable=False)

    event = relationship("OutboxEvent", back_populates="attempts_log")
