"""A merchant's team: people who sign in (User), what they may do at which merchant (Membership), invitations
to join, their signed-in sessions and their two-factor recovery codes.

A user belongs to one or more merchants; the role of each membership is a key of `app.permissions.ROLES`.
"""

from flask_login import UserMixin
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from app import security
from app.extensions import db
from app.models.base import utcnow
from app.permissions import ROLES

_ROLE_CHECK = "role IN (" + ", ".join(f"'{r}'" for r in ROLES) + ")"


class User(UserMixin, db.Model):
    """A person who signs in to the dashboard (the Flask-Login user)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: security.public_id("usr"))
    #: Stored lower-case; the sign-in name.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(300))
    #: Fernet-encrypted base32 TOTP secret; None = two-factor sign-in is off.
    totp_secret_enc: Mapped[str | None] = mapped_column(Text)
    #: The RFC 6238 time step of the last accepted code: a code is never accepted twice.
    totp_last_counter: Mapped[int | None] = mapped_column(BigInteger)
    created_at = mapped_column(DateTime, default=utcnow, nullable=False)

    memberships = relationship("Membership", back_populates="user", lazy="selectin",
                               order_by="Membership.id", cascade="all, delete-orphan")

    def get_id(self):
        return self.public_id

    def set_password(self, password):
        from flask import current_app

        # scrypt (werkzeug's default) unless PASSWORD_HASH_METHOD says otherwise (tests only).
        self.password_hash = generate_password_hash(password, method=current_app.config.get("PASSWORD_HASH_METHOD")
                                                    or "scrypt")

    def check_password(self, password):
        return check_password_hash(self.password_hash, password)

    @property
    def two_factor_enabled(self):
        return self.totp_secret_enc is not None

    @property
    def totp_secret(self):
        return security.decrypt(self.totp_secret_enc) if self.totp_secret_enc else None

    @totp_secret.setter
    def totp_secret(self, value):
        self.totp_secret_enc = security.encrypt(value) if value else None

    def membership_of(self, merchant_id):
        return next((m for m in self.memberships if m.merchant_id == merchant_id), None)

    @property
    def label(self):
        """How the audit log and the timeline name this person."""
        return f"{self.display_name} <{self.email}>"

    def __repr__(self):
        return f"<User {self.public_id}>"


class Membership(db.Model):
    """One user's role at one merchant."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "merchant_id"), CheckConstraint(_ROLE_CHECK, name="role"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: security.public_id("mem"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    #: owner, admin, developer, support or viewer (app.permissions.ROLES).
    role: Mapped[str] = mapped_column(String(20))
    created_at = mapped_column(DateTime, default=utcnow, nullable=False)

    user = relationship("User", back_populates="memberships")
    merchant = relationship("Merchant", lazy="joined")


class Invitation(db.Model):
    """An invitation by email to join a merchant with a role; the emailed link is signed and used once."""

    __tablename__ = "invitations"
    __table_args__ = (CheckConstraint(_ROLE_CHECK, name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: security.public_id("inv"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(20))
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at = mapped_column(DateTime, default=utcnow, nullable=False)
    expires_at = mapped_column(DateTime, nullable=False)
    #: Set once, by compare-and-set, when the link is used (or the invitation withdrawn).
    accepted_at = mapped_column(DateTime)
    accepted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    revoked_at = mapped_column(DateTime)

    merchant = relationship("Merchant", lazy="joined")
    invited_by = relationship("User", foreign_keys=[invited_by_id])

    @property
    def open(self):
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > utcnow()


class UserSession(db.Model):
    """One signed-in browser: the session cookie carries its token, whose hash is kept here. A request whose
    session has ended (signed out elsewhere, password or two-factor changed) is signed out."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: security.public_id("ses"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: SHA-256 of the random token in the session cookie.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    created_at = mapped_column(DateTime, default=utcnow, nullable=False)
    last_seen_at = mapped_column(DateTime, default=utcnow, nullable=False)
    ended_at = mapped_column(DateTime)


class RecoveryCode(db.Model):
    """A single-use two-factor recovery code, stored as the SHA-256 of the code (the code is random, 50 bits)."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at = mapped_column(DateTime)
