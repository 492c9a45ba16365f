"""Merchants, their API keys and their gateway accounts (the people who sign in are in app.models.team)."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
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


class Merchant(db.Model):
    __tablename__ = "merchants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: security.public_id("mer"))
    name: Mapped[str] = mapped_column(String(200))
    #: The merchant's contact email (its first owner's sign-in email when it was created).
    email: Mapped[str] = mapped_column(String(254), unique=True)
    #: Refund an extra charge of a double payment at once, without waiting for a person.
    auto_refund_double_payments: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Members without two-factor sign-in are sent to set it up before anything else.
    require_two_factor: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: The most a `support` member may refund at once, per currency, in minor units ({"VND": 500000});
    #: a currency not listed: support cannot refund in it.
    support_refund_limits = mapped_column(JSONType, default=dict, nullable=False, server_default="{}")
    created_at = mapped_column(DateTime, default=utcnow, nullable=False)

    api_keys = relationship("ApiKey", back_populates="merchant", lazy="dynamic")
    gateway_accounts = relationship("GatewayAccount", back_populates="merchant", lazy="selectin")
    #: Oldest first; the first is the one the old single-endpoint API and dashboard form manage.
    webhook_endpoints = relationship("WebhookEndpoint", order_by="WebhookEndpoint.id", viewonly=True)

    def support_refund_limit(self, currency):
        """The most a support member may refund at once in `currency` (minor units; 0 = none)."""
        return int((self.support_refund_limits or {}).get(currency, 0))

    @property
    def first_webhook_endpoint(self):
        return self.webhook_endpoints[0] if self.webhook_endpoints else None

    @property
    def webhook_url(self):
        """The first endpoint's URL (the old single-endpoint API); None when it has none."""
        endpoint = self.first_webhook_endpoint
        return endpoint.url if endpoint else None

    @property
    def webhook_secret(self):
        """The first endpoint's signing secret."""
        endpoint = self.first_webhook_endpoint
        return endpoint.secret if endpoint else None

    def gateway_account(self, code):
        return next((a for a in self.gateway_accounts if a.gateway == code), None)

    def __repr__(self):
        return f"<Merchant {self.public_id}>"


class ApiKey(db.Model):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: security.public_id("key", 8))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="Default")
    #: First characters of the key, shown in the dashboard to tell keys apart.
    prefix: Mapped[str] = mapped_column(String(20))
    #: SHA-256 of the key; the key itself is shown once and never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at = mapped_column(DateTime, default=utcnow, nullable=False)
    last_used_at = mapped_column(DateTime)
    revoked_at = mapped_column(DateTime)

    merchant = relationship("Merchant", back_populates="api_keys")


class GatewayAccount(db.Model):
    """A merchant's account at one gateway: on/off for checkout, sandbox or live, encrypted credentials."""

    __tablename__ = "gateway_accounts"
    __table_args__ = (UniqueConstraint("merchant_id", "gateway"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    #: Gateway code, the registry key (`testcard`, `vnpay`, …).
    gateway: Mapped[str] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: `sandbox` or `live`.
    mode: Mapped[str] = mapped_column(String(10), default="sandbox")
    #: Fernet-encrypted JSON of the gateway's credentials (keys differ per gateway).
    credentials_enc: Mapped[str | None] = mapped_column(Text)
    #: Display order on the checkout page.
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at = mapped_column(DateTime, default=utcnow, onupdate=utcnow, nullable=False)

    merchant = relationship("Merchant", back_populates="gateway_accounts")

    @property
    def credentials(self):
        return security.decrypt_json(self.credentials_enc)

    @credentials.setter
    def credentials(self, value):
        self.credentials_enc = security.encrypt_json(value or {})
