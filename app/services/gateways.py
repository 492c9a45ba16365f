"""Bridging our models and the DB-free gateway adapters: contexts, payment snapshots, sandbox accounts."""

import importlib

from flask import current_app

from app.extensions import db
from app.gateways import REGISTRY, get_gateway
from app.gateways.base import GatewayContext, PaymentInfo
from app.models import GatewayAccount


def base_url_for(code, mode):
    """Setting override, else our simulator when the sandbox switch is on, else the gateway's own host."""
    config = current_app.config
    if code in config["GATEWAY_BASE_URLS"]:
        return config["GATEWAY_BASE_URLS"][code].rstrip("/")
    if config["SANDBOX"]:
        return f"{config['PUBLIC_BASE_URL']}/sandbox/{code}"
    return get_gateway(code).base_urls.get(mode, "")


def context_for(account, shopper_ip="127.0.0.1"):
    """A GatewayContext for a merchant's gateway account."""
    return GatewayContext(
        code=account.gateway,
        credentials=account.credentials,
        mode=account.mode,
        base_url=base_url_for(account.gateway, account.mode),
        public_base_url=current_app.config["PUBLIC_BASE_URL"],
        shopper_ip=shopper_ip or "127.0.0.1",
    )


def payment_info(payment, attempt=None):
    """A DB-free snapshot of `payment` as `attempt` (default: the current one, if any) put it to its gateway."""
    attempt = attempt or payment.current_attempt
    own = attempt is None or attempt.id == payment.succeeded_attempt_id
    return PaymentInfo(
        id=payment.public_id,
        amount=payment.amount,
        currency=payment.currency,
        reference=payment.reference,
        description=payment.description,
        items=list(payment.items or []),
        customer=dict(payment.customer or {}),
        created_at=payment.created_at,
        expires_at=payment.expires_at,
        checkout_token=payment.checkout_token,
        gateway_reference=attempt.reference if attempt else None,
        gateway_transaction_id=attempt.transaction_id if attempt else None,
        gateway_data=dict(attempt.data or {}) if attempt else {},
        amount_refunded=payment.amount_refunded if own else attempt.amount_refunded,
        merchant_name=payment.merchant.name if payment.merchant else "",
        order_id=attempt.public_id if attempt else "",
        locale=payment.locale or "en",
    )


def sandbox_credentials(code):
    """The credentials the simulator for `code` accepts, or None when it has none."""
    try:
        module = importlib.import_module(f"app.sandbox.{code}")
    except ModuleNotFoundError:
        return None
    return getattr(module, "SANDBOX_CREDENTIALS", None)


def add_sandbox_accounts(merchant):
    """Give a new merchant every gateway on sandbox credentials (like Stripe's test mode). No commit."""
    for position, code in enumerate(REGISTRY):
        creds = sandbox_credentials(code)
        if creds is None or merchant.gateway_account(code):
            continue
        account = GatewayAccount(gateway=code, enabled=True, mode="sandbox", position=position)
        account.credentials = creds
        merchant.gateway_accounts.append(account)
    db.session.flush()


def enabled_accounts(merchant, currency):
    """The merchant's enabled gateway accounts that take `currency`, in checkout order."""
    accounts = []
    for code, gateway in REGISTRY.items():
        account = merchant.gateway_account(code)
        if account and account.enabled and gateway.supports(currency):
            accounts.append(account)
    return accounts


def update_gateway_account(merchant, code, *, enabled, mode, credentials, actor=None):
    """Save a merchant's settings for gateway `code`. Commits.

    credentials: only the fields the merchant typed; blank ones keep their stored value (the dashboard
    never shows credentials back, so an empty field means "unchanged").
    """
    from app.services.errors import NotFound, ValidationError

    gateway = get_gateway(code)
    if gateway is None:
        raise NotFound(f"no gateway {code}")
    if mode not in ("sandbox", "live"):
        raise ValidationError("mode must be sandbox or live", field="mode")
    unknown = set(credentials) - set(gateway.credential_fields)
    if unknown:
        raise ValidationError(f"unknown credential fields: {', '.join(sorted(unknown))}", field="credentials")
    account = merchant.gateway_account(code)
    stored = account.credentials if account else {}
    before = {"enabled": account.enabled, "mode": account.mode} if account else {"enabled": None, "mode": None}
    changed_fields = sorted(k for k, v in credentials.items() if v and v.strip() and v.strip() != stored.get(k))
    stored.update({k: v.strip() for k, v in credentials.items() if v and v.strip()})
    if enabled:
        missing = [label for f, label in gateway.credential_fields.items() if not stored.get(f)]
        if missing:
            raise ValidationError(f"enter {', '.join(missing)} before enabling {gateway.name}", field="enabled")
    if account is None:
        account = GatewayAccount(gateway=code, position=list(REGISTRY).index(code))
        merchant.gateway_accounts.append(account)
    account.enabled = bool(enabled)
    account.mode = mode
    account.credentials = stored
    from app.services import audit

    old, new = audit.changed(before, {"enabled": account.enabled, "mode": account.mode})
    if changed_fields:
        new["credential_fields_changed"] = changed_fields  # names only: a value never reaches the log
    audit.record(merchant.id, "gateway.updated", actor, target_type="gateway", target_id=code, before=old, after=new)
    db.session.commit()
    return account
