"""Payment use cases: validate and create a payment, start a checkout at a gateway, cancel, look up."""

import re
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from app import money
from app.extensions import db
from app.gateways import get_gateway
from app.gateways.base import GatewayError
from app.models import Payment, PaymentEvent, utcnow
from app.services.errors import MalformedRequest, NotFound, ValidationError
from app.services.gateways import context_for, enabled_accounts, payment_info
from app.state_machine import OPEN, Status, transition

ITEM_TYPES = {"item", "discount", "shipping", "tax"}
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


def _text(data, name, *, required=False, max_len=500, field=None):
    field = field or name
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise MalformedRequest(f"{field} is required", field=field, code="missing_field")
        return None
    if not isinstance(value, str):
        raise MalformedRequest(f"{field} must be a string", field=field)
    value = value.strip()
    if len(value) > max_len:
        raise ValidationError(f"{field} must be at most {max_len} characters", field=field)
    if required and not value:
        raise MalformedRequest(f"{field} is required", field=field, code="missing_field")
    return value


def _url(data, name, *, required=False):
    value = _text(data, name, required=required, max_len=2000)
    if value is not None and not _URL.match(value):
        raise ValidationError(f"{name} must be an http(s) URL", field=name, code="invalid_url")
    return value


def _int(value, field):
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedRequest(f"{field} must be an integer", field=field)
    return value


def _optional(data, name, kind, default):
    """data[name] if present and not null, checked to be of JSON type `kind` (dict or list)."""
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise MalformedRequest(f"{name} must be {'an object' if kind is dict else 'a list'}", field=name)
    return value


def validate_new_payment(data):
    """Check a create-payment request (a dict from JSON or a form); return clean values or raise.

    Raises MalformedRequest (400) for a missing field or a wrong JSON type, ValidationError (422) for a
    well-formed value that is refused (see app.services.errors).
    """
    if not isinstance(data, dict):
        raise MalformedRequest("the request body must be a JSON object", code="invalid_json")
    if "amount" not in data:
        raise MalformedRequest("amount is required", field="amount", code="missing_field")
    _int(data["amount"], "amount")
    try:
        amount = money.validate_amount(data["amount"])
    except money.MoneyError as exc:
        raise ValidationError(str(exc), field="amount", code="invalid_amount") from exc
    if data.get("currency") is None:
        raise MalformedRequest("currency is required", field="currency", code="missing_field")
    if not isinstance(data["currency"], str):
        raise MalformedRequest("currency must be a string", field="currency")
    try:
        currency = money.normalize_currency(data["currency"])
    except money.MoneyError as exc:
        raise ValidationError(str(exc), field="currency", code="invalid_currency") from exc

    clean = {
        "amount": amount,
        "currency": currency,
        "reference": _text(data, "reference", required=True, max_len=100),
        "description": _text(data, "description"),
        "return_url": _url(data, "return_url", required=True),
        "cancel_url": _url(data, "cancel_url"),
    }

    config = current_app.config
    expires_in = data.get("expires_in")
    if expires_in is None:
        expires_in = config["PAYMENT_DEFAULT_EXPIRY_SECONDS"]
    _int(expires_in, "expires_in")
    low, high = config["PAYMENT_MIN_EXPIRY_SECONDS"], config["PAYMENT_MAX_EXPIRY_SECONDS"]
    if not low <= expires_in <= high:
        raise ValidationError(f"expires_in must be between {low} and {high} seconds", field="expires_in",
                              code="invalid_expires_in")
    clean["expires_in"] = expires_in

    clean_items = []
    for i, item in enumerate(_optional(data, "items", list, [])):
        field = f"items[{i}]"
        if not isinstance(item, dict):
            raise MalformedRequest(f"{field} must be an object", field=field)
        kind = item.get("type", "item")
        if kind not in ITEM_TYPES:
            raise ValidationError(f"{field}.type must be one of {sorted(ITEM_TYPES)}", field=f"{field}.type")
        name = _text(item, "name", required=True, max_len=200, field=f"{field}.name")
        quantity = _int(item.get("quantity", 1), f"{field}.quantity")
        if "unit_amount" not in item:
            raise MalformedRequest(f"{field}.unit_amount is required", field=f"{field}.unit_amount",
                                   code="missing_field")
        unit = _int(item["unit_amount"], f"{field}.unit_amount")
        if quantity < 1 or quantity > 10_000:
            raise ValidationError(f"{field}.quantity must be between 1 and 10000", field=f"{field}.quantity")
        if (kind == "discount") != (unit < 0):
            raise ValidationError(
                f"{field}.unit_amount must be negative for a discount and not negative otherwise",
                field=f"{field}.unit_amount",
            )
        if abs(unit) > money.MAX_AMOUNT:
            raise ValidationError(f"{field}.unit_amount is too large", field=f"{field}.unit_amount")
        entry = {"name": name, "quantity": quantity, "unit_amount": unit, "type": kind}
        sku = _text(item, "sku", max_len=100, field=f"{field}.sku")
        if sku is not None:
            entry["sku"] = sku
        clean_items.append(entry)
    if clean_items:
        total = sum(i["quantity"] * i["unit_amount"] for i in clean_items)
        if total != amount:
            raise ValidationError(
                f"items sum to {total}, not to the amount {amount}", field="items", code="items_mismatch"
            )
    clean["items"] = clean_items

    customer = _optional(data, "customer", dict, {})
    clean["customer"] = {}
    for key in ("name", "email", "phone", "address", "city", "postcode", "country"):
        value = _text(customer, key, max_len=200, field=f"customer.{key}")
        if value:
            clean["customer"][key] = value

    metadata = _optional(data, "metadata", dict, {})
    if len(metadata) > 50:
        raise ValidationError("metadata may have at most 50 keys", field="metadata")
    for key, value in metadata.items():
        if not isinstance(value, (str, int, bool)):
            raise MalformedRequest("metadata values must be strings, integers or booleans",
                                   field=f"metadata.{key}")
        if len(key) > 40 or len(str(value)) > 500:
            raise ValidationError("metadata keys are at most 40 and values at most 500 characters",
                                  field=f"metadata.{key}")
    clean["metadata"] = metadata
    return clean


def build_payment(merchant, data):
    """Validate and add a payment to the session (flush, no commit)."""
    clean = validate_new_payment(data)
    now = utcnow()
    payment = Payment(
        merchant_id=merchant.id,
        reference=clean["reference"],
        description=clean["description"],
        amount=clean["amount"],
        currency=clean["currency"],
        status=Status.PENDING.value,
        version=0,
        checkout_token=secrets.token_urlsafe(24),
        return_url=clean["return_url"],
        cancel_url=clean["cancel_url"],
        expires_at=now + timedelta(seconds=clean["expires_in"]),
        items=clean["items"],
        customer=clean["customer"],
        customer_email=(clean["customer"].get("email") or "").lower() or None,
        meta=clean["metadata"],
        created_at=now,
        updated_at=now,
        gateway_data={},
    )
    db.session.add(payment)
    db.session.flush()
    db.session.add(
        PaymentEvent(payment_id=payment.id, kind="note", to_status="pending", message="Payment created")
    )
    db.session.flush()
    db.session.info.setdefault("payments_created", []).append(payment.id)
    return payment


def create_payment(merchant, data):
    """Validate, create and commit a payment."""
    payment = build_payment(merchant, data)
    db.session.commit()
    return payment


def get_for_merchant(merchant, public_id):
    """A merchant's own payment by public id; another merchant's is NotFound like a missing one."""
    payment = db.session.scalar(
        select(Payment).where(Payment.public_id == public_id, Payment.merchant_id == merchant.id)
    )
    if payment is None:
        raise NotFound(f"no payment {public_id}")
    return payment


def by_checkout_token(token):
    if not token or len(token) > 64:
        return None
    return db.session.scalar(select(Payment).where(Payment.checkout_token == token))


def is_payable(payment):
    return payment.status in OPEN and payment.expires_at > utcnow()


def start_checkout(payment, method, shopper_ip=None):
    """Hand the shopper to gateway `method`; return the adapter's action (Redirect or FormPost).

    The gateway call happens outside any transaction; afterwards the payment records the gateway and its
    reference and, if it was pending, moves to processing.
    """
    if not is_payable(payment):
        raise ValidationError("this payment can no longer be paid", code="payment_not_payable")
    accounts = {a.gateway: a for a in enabled_accounts(payment.merchant, payment.currency)}
    account = accounts.get(method)
    if account is None:
        raise ValidationError("choose one of the payment methods offered", field="method", code="invalid_method")
    gateway = get_gateway(method)
    info, ctx = payment_info(payment, method), context_for(account, shopper_ip)
    db.session.commit()  # hold no transaction (and on SQLite no write lock) across the gateway call
    try:
        result = gateway.start(info, ctx)
    except GatewayError as exc:
        db.session.add(
            PaymentEvent(
                payment_id=payment.id, kind="gateway_call", gateway=method,
                message=f"Starting {gateway.name} failed: {exc}", data=exc.raw,
            )
        )
        db.session.commit()
        raise ValidationError(f"{gateway.name} is not available right now; try another method",
                              field="method", code="gateway_unavailable") from exc
    payment.gateway = method
    payment.gateway_reference = result.gateway_reference
    payment.gateway_data = {**(payment.gateway_data or {}), method: result.gateway_data}
    payment.gateway_transaction_id = None
    db.session.add(
        PaymentEvent(
            payment_id=payment.id, kind="gateway_call", gateway=method,
            message=f"Shopper sent to {gateway.name}", data=result.raw,
        )
    )
    if payment.status == Status.PENDING:
        transition(payment, Status.PROCESSING, reason=f"Shopper chose {gateway.name}", source="checkout",
                   gateway=method)
    db.session.commit()
    return result.action


def cancel_payment(payment, *, source, reason="Cancelled"):
    """Cancel an open payment; return whether it was cancelled. Commits."""
    applied = transition(payment, Status.CANCELLED, reason=reason, source=source)
    db.session.commit()
    return applied
