"""Idempotency keys of the merchant API: the first response to a key is stored and replayed for 24 h."""

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import utcnow


class IdempotencyKey(db.Model):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("merchant_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    #: `POST /api/v1/payments` — a key is bound to one endpoint.
    endpoint: Mapped[str] = mapped_column(String(300))
    #: SHA-256 of the canonical request body.
    request_hash: Mapped[str] = mapped_column(String(64))
    #: None while the first request is still running.
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at = mapped_column(DateTime, default=utcnow, nullable=False)
    expires_at = mapped_column(DateTime, nullable=False, index=True)
