"""Merchant accounts and API keys (webhook endpoints and their secrets: app.services.webhook_endpoints)."""

from flask import current_app
from sqlalchemy import func, select

from app import security
from app.extensions import db
from app.models import ApiKey, Merchant, utcnow
from app.services.errors import ValidationError
from app.services.gateways import add_sandbox_accounts
from app.services.webhook_endpoints import first_endpoint
from app.services.webhooks import validate_webhook_url


def create_merchant(name, email, password, webhook_url=None):
    """Create a merchant with one API key; return (merchant, api_key_plaintext). Commits."""
    email = (email or "").strip().lower()
    if not name or not email or "@" not in email:
        raise ValidationError("a name and a valid email are required", field="email")
    if not password or len(password) < 8:
        raise ValidationError("the password needs at least 8 characters", field="password")
    if db.session.scalar(select(func.count()).select_from(Merchant).where(Merchant.email == email)):
        raise ValidationError("a merchant with this email exists", field="email", code="email_taken")
    merchant = Merchant(name=name.strip(), email=email)
    merchant.set_password(password)
    db.session.add(merchant)
    db.session.flush()
    # The first endpoint always exists (with no URL until one is set), as the single webhook URL did.
    endpoint = first_endpoint(merchant, create=True)
    endpoint.url = validate_webhook_url(webhook_url) if webhook_url else None
    key = create_api_key(merchant, "Default")
    if current_app.config["SANDBOX"]:
        add_sandbox_accounts(merchant)
    db.session.commit()
    return merchant, key


def create_api_key(merchant, name):
    """Add an API key; return its plaintext (shown once). No commit."""
    plaintext, prefix, digest = security.new_api_key()
    db.session.add(ApiKey(merchant_id=merchant.id, name=name or "Default", prefix=prefix, key_hash=digest))
    db.session.flush()
    return plaintext


def merchant_for_api_key(plaintext):
    """The merchant owning an active key, updating its last use; None for unknown or revoked keys."""
    if not plaintext or not plaintext.startswith(security.API_KEY_PREFIX):
        return None
    key = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == security.hash_api_key(plaintext)))
    if key is None or key.revoked_at is not None:
        return None
    now = utcnow()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        key.last_used_at = now  # at most once a minute: no write on every request
        db.session.commit()
    return key.merchant


def change_password(merchant, current, new):
    """Change a merchant's password after checking the current one. Commits."""
    if not merchant.check_password(current or ""):
        raise ValidationError("the current password is wrong", field="current_password", code="wrong_password")
    if not new or len(new) < 8:
        raise ValidationError("the new password needs at least 8 characters", field="new_password")
    merchant.set_password(new)
    db.session.commit()


def add_api_key(merchant, name):
    """Create an API key; return (ApiKey, plaintext). The plaintext is shown once and never stored. Commits."""
    plaintext = create_api_key(merchant, (name or "").strip()[:100] or "Default")
    key = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == security.hash_api_key(plaintext)))
    db.session.commit()
    return key, plaintext


def revoke_api_key(merchant, key_public_id):
    """Revoke one of the merchant's API keys (another merchant's key is NotFound). Commits."""
    from app.services.errors import NotFound

    key = db.session.scalar(
        select(ApiKey).where(ApiKey.public_id == key_public_id, ApiKey.merchant_id == merchant.id)
    )
    if key is None:
        raise NotFound("no such API key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        db.session.commit()
    return key



def set_auto_refund_double_payments(merchant, enabled):
    """Whether an extra charge of a double payment is refunded at once (app.services.callbacks). Commits."""
    merchant.auto_refund_double_payments = bool(enabled)
    db.session.commit()
