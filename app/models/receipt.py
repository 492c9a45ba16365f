"""Receipts emailed to shoppers: one row per payment success or refund, written in the transaction that
emits the `payment.succeeded` / `refund.succeeded` event, delivered by the worker after the commit."""

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import utcnow


class Receipt(db.Model):
    __tablename__ = "receipts"
    __table_args__ = (
        #: The receipts sweep: pending receipts whose next try is due.
        Index("ix_receipts_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), index=True)
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id", ondelete="CASCADE"))
    #: payment | refund
    kind: Mapped[str] = mapped_column(String(16))
    #: "<kind>:<payment id>:<refund id or 0>": at most one receipt per payment success and per refund.
    dedupe_key: Mapped[str] = mapped_column(String(80), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    #: The shopper's language when the receipt was written (en, vi, id, ne, bn).
    locale: Mapped[str] = mapped_column(String(8))
    #: pending → sent, or failed after RECEIPT_MAX_ATTEMPTS
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at = mapped_column(DateTime, default=utcnow, nullable=False)
    #: A sender holds the receipt until then (a worker that dies mid-send frees it when this passes).
    locked_until = mapped_column(DateTime)
    sent_at = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at = mapped_column(DateTime, default=utcnow, nullable=False)

    payment = relationship("Payment")
    refund = relationship("Refund")

    def __repr__(self):
        return f"<Receipt {self.dedupe_key} {self.status}>"
