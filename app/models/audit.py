"""The audit log: one append-only row per change a person or an API key made (app.services.audit writes it,
in the transaction of the change). Rows are never updated or deleted by the app (the ORM refuses to)."""

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, event
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import JSONType, utcnow


class AuditEvent(db.Model):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_merchant_created", "merchant_id", "created_at"),
                      #: A payment's timeline finds who refunded or cancelled it.
                      Index("ix_audit_events_target", "target_type", "target_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: None only for a failed sign-in with an unknown email.
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    actor_api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    #: "Name <email>" or "API key Default (sk_test_ab…)", kept as it was when the action happened.
    actor_label: Mapped[str] = mapped_column(String(300))
    #: e.g. refund.requested, payment.cancelled, gateway.updated, team.role_changed (app.services.audit.ACTIONS).
    action: Mapped[str] = mapped_column(String(50), index=True)
    target_type: Mapped[str | None] = mapped_column(String(30))
    target_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    #: Non-secret fields before and after the change (for credentials: which fields changed, never a value).
    before = mapped_column(JSONType)
    after = mapped_column(JSONType)
    created_at = mapped_column(DateTime, default=utcnow, nullable=False)


@event.listens_for(AuditEvent, "before_update")
@event.listens_for(AuditEvent, "before_delete")
def _append_only(_mapper, _connection, _target):
    raise RuntimeError("audit events are append-only")
