"""Refunds of a payment, full or partial."""

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import security
from app.extensions import db
from app.models.base import utcnow


class Refund(db.Model):
    __tablename__ = "refunds"
    #: The dashboard's refunds list: a merchant's newest first.
    __table_args__ = (Index("ix_refunds_merchant_id_desc", "merchant_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: security.public_id("re"))
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(String(500))
    #: `pending` until the gateway answers, then `succeeded` or `failed`.
    status: Mapped[str] = mapped_column(String(16), default="pending")
    gateway: Mapped[str | None] = mapped_column(String(32))
    gateway_reference: Mapped[str | None] = mapped_column(String(200))
    failure_message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at = mapped_column(DateTime, default=utcnow, nullable=False)
    updated_at = mapped_column(DateTime, default=utcnow, onupdate=utcnow, nullable=False)

    payment = relationship("Payment", back_populates="refunds")
