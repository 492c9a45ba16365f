"""The outbox of merchant webhook events and the record of every delivery attempt.

An OutboxEvent is written in the same transaction as the state change that causes it; delivery happens
afterwards from RQ (see app.services.webhooks), so a Redis outage delays events but never loses them.
"""

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import security
from app.extensions import db
from app.models.base import JSONType, utcnow


class OutboxEvent(db.Model):
    __tablename__ = "outbox_events"
    __table_args__ = (
        Index("ix_outbox_events_due", "delivery_status", "next_attempt_at"),
        Index("ix_outbox_events_merchant", "merchant_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: `evt_…`, sent as Paysmith-Event-Id; a resend keeps it.
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: security.public_id("evt"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), index=True)
    #: `payment.succeeded`, `refund.failed`, …
    type: Mapped[str] = mapped_column(String(64))
    #: The full event body as delivered: {id, type, created, data: {object: …}}.
    payload: Mapped[dict] = mapped_column(JSONType)
    #: `pending`, `delivered`, `failed` (attempts exhausted) or `skipped` (no webhook URL).
    delivery_status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at = mapped_column(DateTime, default=utcnow)
    #: A delivery in progress holds this lease so no two workers deliver one event at once.
    locked_until = mapped_column(DateTime)
    delivered_at = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at = mapped_column(DateTime, default=utcnow, nullable=False)

    attempts_log = relationship("WebhookAttempt", back_populates="event", order_by="WebhookAttempt.id", lazy="dynamic")


class WebhookAttempt(db.Model):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("outbox_events.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    #: First 1 KB of the response body.
    response_body: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at = mapped_column(DateTime, default=utcnow, nullable=False)

    event = relationship("OutboxEvent", back_populates="attempts_log")
