"""Payment use cases: validate and create a payment, start a checkout at a gateway, cancel, look up."""

import logging
import re
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import money
from app.extensions import db
from app.gateways import get_gateway
from app.gateways.base import GatewayError, Outcome, Reason
from app.models import Payment, PaymentAttempt, PaymentEvent, utcnow
from app.services.callbacks import after_attempt_ended
from app.services.errors import Conflict, MalformedRequest, NotFound, ValidationError
from app.services.gateways import context_for, enabled_accounts, payment_info
from app.state_machine import OPEN, PAID, AttemptStatus, Status, open_attempt, transition, transition_attempt

log = logging.getLogger(__name__)

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
    allow = data.get("allow_duplicate_reference", False)
    if not isinstance(allow, bool):
        raise MalformedRequest("allow_duplicate_reference must be a boolean", field="allow_duplicate_reference")
    clean["allow_duplicate_reference"] = allow
    return clean


def paid_payment_for_reference(merchant_id, reference):
    """A payment of this merchant's order `reference` that is paid, or whose attempt a gateway is still
    confirming (it may yet be paid); None if there is none."""
    confirming = select(PaymentAttempt.payment_id).where(
        PaymentAttempt.merchant_id == merchant_id, PaymentAttempt.status == AttemptStatus.PROCESSING.value)
    return db.session.scalar(
        select(Payment).where(Payment.merchant_id == merchant_id, Payment.reference == reference,
                              Payment.status.in_([s.value for s in PAID]) | Payment.id.in_(confirming))
        .order_by(Payment.id).limit(1))


def check_new_payment(merchant, data):
    """validate_new_payment, then the one-paid-payment-per-order guard (see build_payment); return clean values."""
    clean = validate_new_payment(data)
    if not clean["allow_duplicate_reference"]:
        paid = paid_payment_for_reference(merchant.id, clean["reference"])
        if paid is not None:
            state = "paid" if paid.status in PAID else "being confirmed by the gateway"
            raise Conflict(f"order {clean['reference']} already has a payment that is {state}: {paid.public_id}",
                           field="reference", code="reference_already_paid")
    return clean


def build_payment(merchant, data, *, actor=None, action="payment.created"):
    """Validate and add a payment to the session (flush, no commit).

    One paid payment per order: a `reference` that already has a paid payment (or one a gateway is still
    confirming) is refused with 409 `reference_already_paid` naming it, unless the request says
    `allow_duplicate_reference` (VNPay's integration guide asks merchants for exactly this "order already
    paid" guard). Two payments of one unpaid order may both be created; should both be paid, the second
    success is flagged as a double payment (app.services.callbacks).
    """
    clean = check_new_payment(merchant, data)
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
        customer_name=(clean["customer"].get("name") or "").lower() or None,
        meta=clean["metadata"],
        created_at=now,
        updated_at=now,
        attempt_count=0,
    )
    db.session.add(payment)
    db.session.flush()
    db.session.add(
        PaymentEvent(payment_id=payment.id, kind="note", to_status="pending", message="Payment created")
    )
    db.session.flush()
    db.session.info.setdefault("payments_created", []).append(payment.id)
    from app.services import audit

    # `actor` (app.services.audit.Actor): the API key or the person (`payment.link_created` from the dashboard).
    audit.record(merchant.id, action, actor, target_type="payment", target_id=payment.public_id,
                 after={"amount": payment.amount, "currency": payment.currency, "reference": payment.reference})
    return payment


def create_payment(merchant, data, *, actor=None, action="payment.created"):
    """Validate, create and commit a payment (see build_payment)."""
    payment = build_payment(merchant, data, actor=actor, action=action)
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


def start_checkout(payment, method, shopper_ip=None, locale=None):
    """Hand the shopper to gateway `method` as a new attempt; return the adapter's action (Redirect or
    FormPost).

    An attempt still open at a gateway is first settled so that no second charge can go unseen: ended at its
    gateway where the gateway can do that, else asked about (see `_settle_open_attempts`). The new attempt is
    numbered by a compare-and-set on the payment and committed before the gateway call (so a fast callback
    finds it); the call itself happens outside any transaction. A gateway that cannot start ends the attempt
    as failed, and the shopper may choose another method.
    """
    if not is_payable(payment):
        raise ValidationError("this payment can no longer be paid", code="payment_not_payable")
    accounts = {a.gateway: a for a in enabled_accounts(payment.merchant, payment.currency)}
    account = accounts.get(method)
    if account is None:
        raise ValidationError("choose one of the payment methods offered", field="method", code="invalid_method")
    _settle_open_attempts(payment)
    if not is_payable(payment) or payment.attempt_count >= current_app.config["CHECKOUT_MAX_ATTEMPTS"]:
        # settling found it paid, or it has used its last try
        raise ValidationError("this payment can no longer be paid", code="payment_not_payable")
    gateway = get_gateway(method)
    try:
        attempt = open_attempt(payment, method, locale=locale)
        db.session.commit()
    except IntegrityError:
        attempt = None
        db.session.rollback()
    if attempt is None:  # a concurrent start (a double click) took this turn
        raise _in_progress(gateway)
    info, ctx = payment_info(payment, attempt), context_for(account, shopper_ip)
    db.session.commit()  # hold no transaction (and on SQLite no write lock) across the gateway call
    try:
        result = gateway.start(info, ctx)
    except GatewayError as exc:
        db.session.add(PaymentEvent(payment_id=payment.id, attempt_id=attempt.id, kind="gateway_call",
                                    gateway=method, message=f"Starting {gateway.name} failed: {exc}", data=exc.raw))
        transition_attempt(attempt, AttemptStatus.FAILED, reason=f"{gateway.name} could not start: {exc}",
                           source="checkout", changes={"failure_reason": Reason.GATEWAY_UNAVAILABLE.value,
                                                        "failure_code": "gateway_unavailable",
                                                        "failure_message": str(exc)[:500]})
        after_attempt_ended(payment, attempt, reason=f"{gateway.name} could not start", source="checkout")
        db.session.commit()
        raise ValidationError(f"{gateway.name} is not available right now; try another method", field="method",
                              code="gateway_unavailable") from exc
    attempt.reference = result.gateway_reference
    attempt.data = dict(result.gateway_data or {})
    db.session.add(PaymentEvent(payment_id=payment.id, attempt_id=attempt.id, kind="gateway_call", gateway=method,
                                message=f"Attempt {attempt.number}: shopper sent to {gateway.name}", data=result.raw))
    if payment.status == Status.PENDING:
        transition(payment, Status.PROCESSING, reason=f"Shopper chose {gateway.name} (attempt {attempt.number})",
                   source="checkout", gateway=method, attempt=attempt)
    db.session.commit()
    return result.action


def _in_progress(gateway):
    return ValidationError(f"the last try with {gateway.name} is still being confirmed", code="attempt_in_progress",
                           details={"gateway": gateway.name})


def _settle_open_attempts(payment):
    """Before a new attempt, make sure no open one can still charge the shopper unseen. Commits.

    For each attempt still open at its gateway: where the gateway can end it (`can_cancel`: Midtrans, Stripe,
    the test acquirer; bKash, which moves money only when we execute), it is ended there and the gateway's
    answer applied. Elsewhere the gateway is asked: its answer is applied when it has one (paid, failed,
    …); an attempt that was only started and that the gateway knows nothing of is ended here (the shopper
    left the gateway's page), and should the gateway confirm it after all, it is recorded as a double
    payment, never dropped. An attempt the gateway holds as processing (a payment waiting for the bank, a
    fraud review) blocks a new one: ValidationError `attempt_in_progress`.
    """
    from app.services.callbacks import apply_result, money_problem

    for attempt in [a for a in payment.attempts if a.is_open]:
        gateway = get_gateway(attempt.gateway)
        account = payment.merchant.gateway_account(attempt.gateway)
        busy = _in_progress(gateway)
        if attempt.reference is None and attempt.created_at > utcnow() - timedelta(seconds=30):
            raise busy  # being handed to the gateway right now (a double click)
        result = None
        if account is not None and attempt.reference is not None:
            info, ctx = payment_info(payment, attempt), context_for(account)
            db.session.commit()
            try:
                result = gateway.cancel(info, ctx) if gateway.can_cancel else gateway.query(info, ctx)
            except (GatewayError, NotImplementedError) as exc:
                db.session.add(PaymentEvent(payment_id=payment.id, attempt_id=attempt.id, kind="gateway_call",
                                            gateway=attempt.gateway,
                                            message=f"Asking about attempt {attempt.number} failed: {exc}"))
                db.session.commit()
                if attempt.status == AttemptStatus.PROCESSING:
                    raise busy from exc
            db.session.refresh(attempt)
            db.session.refresh(payment)
        if result is not None and result.outcome != Outcome.NONE and not money_problem(attempt, result):
            apply_result(payment, attempt, result, source="checkout")
            db.session.commit()
            if attempt.is_open:  # still processing at the gateway
                raise busy
            continue
        if attempt.is_open:
            if attempt.status == AttemptStatus.PROCESSING:
                raise busy
            transition_attempt(attempt, AttemptStatus.CANCELLED, source="checkout", changes={
                "failure_reason": Reason.CANCELLED.value, "failure_code": "abandoned",
                "failure_message": f"The shopper chose again; {gateway.name} had not confirmed this attempt"},
                reason=f"the shopper chose again; {gateway.name} had not confirmed attempt {attempt.number}")
            after_attempt_ended(payment, attempt, reason="the shopper chose again", source="checkout")
            db.session.commit()


def cancel_payment(payment, *, source, reason="Cancelled", actor=None):
    """Cancel an open payment; return whether it was cancelled. Commits.

    Its open attempts end with it (at gateways that can end them, they are ended there first, so none can
    charge the shopper later; one that still does is recorded as a late success, never dropped).
    """
    if payment.status in OPEN:
        for attempt in [a for a in payment.attempts if a.is_open]:
            gateway, account = get_gateway(attempt.gateway), payment.merchant.gateway_account(attempt.gateway)
            if gateway.can_cancel and account is not None and attempt.reference is not None:
                info, ctx = payment_info(payment, attempt), context_for(account)
                db.session.commit()
                try:
                    gateway.cancel(info, ctx)
                except GatewayError as exc:
                    log.warning("could not end attempt %s at %s: %s", attempt.public_id, gateway.code, exc)
                db.session.refresh(attempt)
            transition_attempt(attempt, AttemptStatus.CANCELLED, reason=reason, source=source,
                               changes={"failure_reason": Reason.CANCELLED.value, "failure_code": "cancelled"})
    applied = transition(payment, Status.CANCELLED, reason=reason, source=source)
    if applied:
        from app.services import audit

        audit.record(payment.merchant_id, "payment.cancelled", actor, target_type="payment",
                     target_id=payment.public_id, after={"reason": reason})
    db.session.commit()
    return applied
