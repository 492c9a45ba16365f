"""Refunds of a payment, full or partial."""

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import security
from app.extensions import db
from app.models.base import utcnow


class Refund(db.Model):
    __tablename__ = "refunds"
    __table_args__ = (
        #: The dashboard's refunds list: a merchant's newest first.
        Index("ix_refunds_merchant_id_desc", "merchant_id", "id"),
        #: The refunds sweep: pending refunds whose next gateway call is due.
        Index("ix_refunds_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: security.public_id("re"))
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    #: The attempt whose money is returned: the one that paid the payment, or an extra one of a double payment.
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("payment_attempts.id", ondelete="SET NULL"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(String(500))
    #: `pending` until the gateway answers, then `succeeded` or `failed`.
    status: Mapped[str] = mapped_column(String(16), default="pending")
    gateway: Mapped[str | None] = mapped_column(String(32))
    gateway_reference: Mapped[str | None] = mapped_column(String(200))
    failure_message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: When the next gateway call is due; while a call is in flight, the end of its lease. NULL once settled,
    #: and for a pending refund that waits for a person (see `needs_attention`).
    next_attempt_at = mapped_column(DateTime, default=utcnow)
    #: True from a run's claim until the outcome of its gateway call is recorded. Found True once the lease
    #: has run out, it means the worker stopped during the call: the gateway may have made the refund.
    in_call: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at = mapped_column(DateTime, default=utcnow, nullable=False)
    updated_at = mapped_column(DateTime, default=utcnow, onupdate=utcnow, nullable=False)

    payment = relationship("Payment", back_populates="refunds")
    attempt = relationship("PaymentAttempt")

    @property
    def needs_attention(self):
        """Pending with no gateway call planned: the outcome is unknown or the attempts ran out, and a person
        decides (retry now, or mark it failed)."""
        return self.status == "pending" and self.next_attempt_at is None
