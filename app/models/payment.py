"""Payments, their attempts and their timeline.

A payment is what the merchant asked for; an attempt is one time the shopper was handed to one gateway (our
order id there, its reference, its own status). Both statuses are written only by `app.state_machine`.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import security
from app.extensions import db
from app.models.base import JSONType, utcnow


class Payment(db.Model):
    __tablename__ = "payments"
    __table_args__ = (
        # Dashboard list (newest first, keyset on (created_at, id)) and the overview's sums: on PostgreSQL the
        # included columns let the overview run as an index-only scan over a merchant's last 30 days.
        Index("ix_payments_merchant_created", "merchant_id", "created_at", "id",
              postgresql_include=["status", "currency", "amount", "gateway"]),
        # One per list filter, each still ordered for the keyset so a filtered page reads only its rows.
        Index("ix_payments_merchant_status_created", "merchant_id", "status", "created_at", "id"),
        Index("ix_payments_merchant_gateway_created", "merchant_id", "gateway", "created_at", "id"),
        Index("ix_payments_merchant_currency_created", "merchant_id", "currency", "created_at", "id"),
        # Dashboard search: exact match or prefix of any of these (public_id has its own unique index). On
        # PostgreSQL text_pattern_ops lets `LIKE 'abc%'` walk the index whatever the database's collation
        # (it also serves `=`); SQLite walks the plain index for a range `>= 'abc' AND < 'abd'`.
        Index("ix_payments_merchant_reference", "merchant_id", "reference",
              postgresql_ops={"reference": "text_pattern_ops"}),
        Index("ix_payments_merchant_customer_email", "merchant_id", "customer_email",
              postgresql_ops={"customer_email": "text_pattern_ops"}),
        Index("ix_payments_merchant_customer_name", "merchant_id", "customer_name",
              postgresql_ops={"customer_name": "text_pattern_ops"}),
        Index("ix_payments_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: security.public_id("pay"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    #: The merchant's own order reference.
    reference: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(500))
    #: Integer minor units of `currency` (see app.money).
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(24), default="pending")
    #: Bumped by every transition; the compare-and-set checks it with the status.
    version: Mapped[int] = mapped_column(Integer, default=0)
    #: Code of the gateway of the attempt that succeeded, else of the latest attempt (for lists and sums).
    gateway: Mapped[str | None] = mapped_column(String(32))
    #: How many attempts were made (each takes the next number; capped by CHECKOUT_MAX_ATTEMPTS).
    attempt_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The attempt that paid this payment.
    succeeded_attempt_id: Mapped[int | None] = mapped_column(
        ForeignKey("payment_attempts.id", use_alter=True, ondelete="SET NULL"))
    #: Money was confirmed twice: a second attempt succeeded, or another payment of the same order did.
    double_payment: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: The shopper's language when they last chose a method (receipts are written in it).
    locale: Mapped[str | None] = mapped_column(String(8))
    #: Secret part of the hosted checkout URL.
    checkout_token: Mapped[str] = mapped_column(String(64), unique=True)
    return_url: Mapped[str] = mapped_column(String(2000))
    cancel_url: Mapped[str | None] = mapped_column(String(2000))
    expires_at = mapped_column(DateTime, nullable=False)
    #: [{name, quantity, unit_amount, kind: item|discount|shipping}] summing to `amount`.
    items: Mapped[list] = mapped_column(JSONType, default=list)
    customer: Mapped[dict] = mapped_column(JSONType, default=dict)
    #: customer["email"] lower-cased, as a column so the dashboard search can use an index.
    customer_email: Mapped[str | None] = mapped_column(String(254))
    #: customer["name"] lower-cased, likewise for the search by the start of a name.
    customer_name: Mapped[str | None] = mapped_column(String(200))
    meta: Mapped[dict] = mapped_column("metadata", JSONType, default=dict)
    #: Sum of refunds that are not failed (reserved when a refund is accepted).
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Gateway fee in minor units, when the gateway reports it.
    fee_amount: Mapped[int | None] = mapped_column(BigInteger)
    #: Confirmed by the gateway after it had expired, failed or been cancelled here.
    late_success: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The gateway asked for a manual decision (e.g. Midtrans fraud_status=challenge).
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    #: Brand and last four digits for card payments; never more.
    card_summary: Mapped[str | None] = mapped_column(String(40))
    created_at = mapped_column(DateTime, default=utcnow, nullable=False)
    updated_at = mapped_column(DateTime, default=utcnow, onupdate=utcnow, nullable=False)
    paid_at = mapped_column(DateTime)

    merchant = relationship("Merchant")
    attempts = relationship("PaymentAttempt", back_populates="payment", order_by="PaymentAttempt.number",
                            foreign_keys="PaymentAttempt.payment_id")
    succeeded_attempt = relationship("PaymentAttempt", foreign_keys=[succeeded_attempt_id], viewonly=True)
    events = relationship("PaymentEvent", back_populates="payment", order_by="PaymentEvent.id", lazy="dynamic")
    refunds = relationship("Refund", back_populates="payment", order_by="Refund.id", lazy="dynamic")

    @property
    def refundable_amount(self):
        return self.amount - self.amount_refunded

    @property
    def current_attempt(self):
        """The attempt that succeeded, else the latest one (None before the shopper chose a method)."""
        if self.succeeded_attempt_id:
            return next((a for a in self.attempts if a.id == self.succeeded_attempt_id), None)
        return self.attempts[-1] if self.attempts else None

    @property
    def gateway_reference(self):
        attempt = self.current_attempt
        return attempt.reference if attempt else None

    @property
    def gateway_transaction_id(self):
        attempt = self.current_attempt
        return attempt.transaction_id if attempt else None

    @property
    def extra_attempts(self):
        """Attempts that took money although another one paid the payment (a double payment)."""
        return [a for a in self.attempts if a.status == "succeeded" and a.id != self.succeeded_attempt_id]

    def __repr__(self):
        return f"<Payment {self.public_id} {self.status}>"


class PaymentAttempt(db.Model):
    """One time the shopper was handed to a gateway. Callbacks, status queries and refunds find it first."""

    __tablename__ = "payment_attempts"
    __table_args__ = (
        #: Two starts of one payment cannot take the same number (a double click makes one attempt).
        UniqueConstraint("payment_id", "number"),
        #: A gateway's handle names one attempt.
        UniqueConstraint("gateway", "reference"),
        #: Callbacks that name only the gateway's transaction id.
        Index("ix_payment_attempts_gateway_transaction", "gateway", "transaction_id"),
        #: Dashboard search by a gateway's reference or transaction id, within one merchant.
        Index("ix_payment_attempts_merchant_reference", "merchant_id", "reference"),
        Index("ix_payment_attempts_merchant_transaction", "merchant_id", "transaction_id"),
        #: Reconciliation: open attempts that have not moved for a while.
        Index("ix_payment_attempts_status_updated", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Our order id at the gateway (`att_…`; for attempts made before attempts existed, the payment's id).
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: security.public_id("att"))
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    #: 1, 2, … within the payment.
    number: Mapped[int] = mapped_column(Integer)
    gateway: Mapped[str] = mapped_column(String(32))
    #: started | processing | succeeded | failed | cancelled | expired (see app.state_machine.AttemptStatus).
    status: Mapped[str] = mapped_column(String(16), default="started")
    version: Mapped[int] = mapped_column(Integer, default=0)
    #: Our handle at the gateway (Khalti pidx, Stripe session id, bKash paymentID, …).
    reference: Mapped[str | None] = mapped_column(String(200))
    #: The gateway's transaction id once it has one (VNPay TransactionNo, Midtrans transaction_id, …).
    transaction_id: Mapped[str | None] = mapped_column(String(200))
    #: What the adapter needs to remember between calls (e.g. VNPay's vnp_CreateDate).
    data: Mapped[dict] = mapped_column(JSONType, default=dict)
    #: In the payment's currency, minor units (what this attempt asked the gateway for).
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    #: Refunds of this attempt when it is not the one that paid the payment (a double payment).
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    #: What the shopper is told (an app.gateways.base.Reason); the gateway's own text is failure_message.
    failure_reason: Mapped[str | None] = mapped_column(String(32))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    created_at = mapped_column(DateTime, default=utcnow, nullable=False)
    updated_at = mapped_column(DateTime, default=utcnow, nullable=False)
    finished_at = mapped_column(DateTime)

    payment = relationship("Payment", back_populates="attempts", foreign_keys=[payment_id])

    @property
    def is_open(self):
        return self.status in ("started", "processing")

    def __repr__(self):
        return f"<PaymentAttempt {self.public_id} {self.gateway} {self.status}>"


class PaymentEvent(db.Model):
    """One line of a payment's timeline: a state change, a raw gateway callback, a webhook attempt, a note.

    Callbacks that match no payment are kept too (payment_id NULL) so nothing a gateway sent is lost.
    """

    __tablename__ = "payment_events"
    __table_args__ = (Index("ix_payment_events_payment", "payment_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"))
    #: The attempt it concerns, if any.
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("payment_attempts.id", ondelete="SET NULL"))
    #: `status_change`, `attempt`, `callback`, `gateway_call`, `refund`, `webhook`, `note`.
    kind: Mapped[str] = mapped_column(String(24))
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str | None] = mapped_column(String(24))
    gateway: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    #: Raw payload (callback body/query, gateway response); secrets are never put here.
    data: Mapped[dict | None] = mapped_column(JSONType)
    #: For callbacks: did the signature/amount/merchant check pass.
    verified: Mapped[bool | None] = mapped_column(Boolean)
    #: `<gateway>:<gateway event id>` for gateways that number their events (Stripe), so each applies once.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at = mapped_column(DateTime, default=utcnow, nullable=False)

    payment = relationship("Payment", back_populates="events")
