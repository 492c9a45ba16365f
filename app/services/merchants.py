"""Merchant accounts (each created with its first owner), merchant settings and API keys (webhook endpoints
and their secrets: app.services.webhook_endpoints)."""


from flask import current_app
from sqlalchemy import func, select

from app import security
from app.extensions import db
from app.models import ApiKey, Merchant, utcnow
from app.services import accounts, audit
from app.services.errors import ValidationError
from app.services.gateways import add_sandbox_accounts
from app.services.webhook_endpoints import first_endpoint
from app.services.webhooks import validate_webhook_url


def create_merchant(name, email, password, webhook_url=None, display_name=None):
    """Create a merchant with one API key and its owner, the user `email` (created with `password`, or an
    existing user whose password this is); return (merchant, api_key_plaintext). Commits."""
    from app.services.team import add_member

    email = accounts.normalize_email(email)
    if not name or not email or "@" not in email:
        raise ValidationError("a name and a valid email are required", field="email")
    accounts.validate_password(password)
    if db.session.scalar(select(func.count()).select_from(Merchant).where(Merchant.email == email)):
        raise ValidationError("a merchant with this email exists", field="email", code="email_taken")
    owner = accounts.user_by_email(email)
    if owner is not None and not owner.check_password(password):
        raise ValidationError("a user with this email exists and the password is not theirs", field="password",
                              code="email_taken")
    merchant = Merchant(name=name.strip(), email=email)
    db.session.add(merchant)
    db.session.flush()
    # The first endpoint always exists (with no URL until one is set), as the single webhook URL did.
    endpoint = first_endpoint(merchant, create=True)
    endpoint.url = validate_webhook_url(webhook_url) if webhook_url else None
    owner = owner or accounts.new_user(email, display_name or name, password)
    add_member(merchant, owner, "owner")
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


def api_key_for(plaintext):
    """The active ApiKey for this plaintext, updating its last use; None for unknown or revoked keys."""
    if not plaintext or not plaintext.startswith(security.API_KEY_PREFIX):
        return None
    key = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == security.hash_api_key(plaintext)))
    if key is None or key.revoked_at is not None:
        return None
    now = utcnow()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        key.last_used_at = now  # at most once a minute: no write on every request
        db.session.commit()
    return key


def merchant_for_api_key(plaintext):
    """The merchant owning an active key; None for unknown or revoked keys."""
    key = api_key_for(plaintext)
    return key.merchant if key else None


def add_api_key(merchant, name, *, actor=None):
    """Create an API key; return (ApiKey, plaintext). The plaintext is shown once and never stored. Commits."""
    plaintext = create_api_key(merchant, (name or "").strip()[:100] or "Default")
    key = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == security.hash_api_key(plaintext)))
    audit.record(merchant.id, "api_key.created", actor, target_type="api_key", target_id=key.public_id,
                 after={"name": key.name, "prefix": key.prefix})
    db.session.commit()
    return key, plaintext


def revoke_api_key(merchant, key_public_id, *, actor=None):
    """Revoke one of the merchant's API keys (another merchant's key is NotFound). Commits."""
    from app.services.errors import NotFound

    key = db.session.scalar(
        select(ApiKey).where(ApiKey.public_id == key_public_id, ApiKey.merchant_id == merchant.id)
    )
    if key is None:
        raise NotFound("no such API key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit.record(merchant.id, "api_key.revoked", actor, target_type="api_key", target_id=key.public_id,
                     before={"name": key.name, "prefix": key.prefix})
        db.session.commit()
    return key


#: Merchant settings an owner or admin changes from the settings page (app.dashboard.settings).
SETTINGS = ("auto_refund_double_payments", "require_two_factor", "support_refund_limits")


def update_settings(merchant, *, actor=None, **values):
    """Change merchant settings (keys of SETTINGS); the audit row holds what changed. Commits."""
    unknown = set(values) - set(SETTINGS)
    if unknown:
        raise ValueError(f"not merchant settings: {sorted(unknown)}")
    before = {name: getattr(merchant, name) for name in values}
    for name, value in values.items():
        setattr(merchant, name, value)
    old, new = audit.changed(before, values)
    if new:
        audit.record(merchant.id, "settings.changed", actor, target_type="merchant", target_id=merchant.public_id,
                     before=old, after=new)
    db.session.commit()


def set_auto_refund_double_payments(merchant, enabled, *, actor=None):
    """Whether an extra charge of a double payment is refunded at once (app.services.callbacks). Commits."""
    update_settings(merchant, auto_refund_double_payments=bool(enabled), actor=actor)
