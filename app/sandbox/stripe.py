"""Simulator of the part of Stripe's API that app/gateways/stripe.py calls through the official SDK, its
hosted Checkout page, and its signed webhooks.

API (form-encoded bodies with Stripe's bracket notation, secret key as Bearer or Basic user), at the API
version stripe-python pins (API_VERSION):

| path (under /sandbox/stripe) | method | answers |
|---|---|---|
| `/v1/checkout/sessions` | POST | a Checkout Session |
| `/v1/checkout/sessions` | GET | `checkout.Session.list`: `payment_intent`, `status`, `limit`, `starting_after` filters |
| `/v1/checkout/sessions/<id>` | GET | the session (`expand[]=payment_intent`, `payment_intent.latest_charge`) |
| `/v1/checkout/sessions/<id>/expire` | POST | expires an open session (else 400 checkout_session_not_expirable) |
| `/v1/payment_intents/<id>` | GET | the PaymentIntent (`expand[]=latest_charge`; `charges` refused: gone since 2022-11-15) |
| `/v1/coupons` | POST | a fixed-amount coupon |
| `/v1/refunds` | POST | a refund of a PaymentIntent or Charge |
| `/v1/refunds/<id>` | GET | the refund |
| anything else, or another method | any | 404 `Unrecognized request URL (METHOD: path)` |
| `/c/pay/<session id>` | GET, POST | the hosted Checkout page |

Not simulated: PaymentIntents created directly, Customers, Prices/Products, Payment Links, Events API,
`payment_intents` search/list, Charges retrieve.
Errors have Stripe's shape `{"error": {"type", "code", "message", "param"}}` and status codes (400 invalid
request, 401 bad key, 404 missing object, 409 idempotency key in use). POSTs honour `Idempotency-Key` as
docs.stripe.com/idempotency says: a replay returns the first answer; other parameters → idempotency_error;
validation failures are not stored.

Hosted page (`/c/pay/<session id>`): buttons named `outcome` — `success` (card paid at once), `delayed`
(a bank debit that settles a few seconds later), `failure` (a bank debit that fails later: Stripe leaves
card declines on its page, so a failure reaches the merchant as `checkout.session.async_payment_failed`),
and `cancel` (back to `cancel_url`; the session stays open, as at Stripe).

Webhooks go to the sandbox account's endpoint (this app's /callbacks/stripe/webhook, as one registers it in
Stripe's dashboard), signed `Stripe-Signature: t=…,v1=HMAC-SHA256(whsec, "t.body")` at every attempt,
retried on WEBHOOK_RETRIES (Stripe retries test-mode deliveries a few times over some hours).
"""

import base64
import hashlib
import hmac
import json
import secrets
import time
from datetime import timedelta
from decimal import Decimal

from flask import Blueprint, current_app, jsonify, make_response, redirect, render_template, request, url_for

from app.extensions import get_queue, get_redis
from app.sandbox._common import (
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    SERVER_ERROR,
    gateway_path,
    load,
    save,
    send_later,
)

CODE = "stripe"
SANDBOX_CREDENTIALS = {
    "secret_key": "sk_test_51PaysmithSandbox0Q8mVx3dRk2LhTz",
    "webhook_secret": "whsec_paysmith_sandbox_9c4f1e7a2b6d",
}
API_VERSION = "2026-10-28.endive"
WEBHOOK_RETRIES = [600, 3600, 3 * 3600]
#: How long a delayed (bank debit) payment takes to settle in the sandbox.
ASYNC_SETTLE_SECONDS = 5
PRIVATE = "_private"
ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf",
                "xof", "xpf"}

bp = Blueprint("sandbox_stripe", __name__)


# --- protocol plumbing --------------------------------------------------------------------------------------


def error(status, message, *, code=None, param=None, kind="invalid_request_error"):
    body = {"type": kind, "message": message}
    if code:
        body["code"] = code
        body["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    if param:
        body["param"] = param
    return make_response(jsonify({"error": body}), status)


def error_envelope(status, kind, message):
    """Stripe answers a path it does not serve, or a method the path does not take, with 404
    `Unrecognized request URL (METHOD: /v1/…)` (the SDK raises InvalidRequestError), and its own failures
    with 500 `api_error`."""
    if kind in (NOT_FOUND, METHOD_NOT_ALLOWED):
        return error(404, f"Unrecognized request URL ({request.method}: {gateway_path()}). Please see "
                          "https://stripe.com/docs or we can help at https://support.stripe.com/.")
    if kind == SERVER_ERROR:
        return error(500, "An unknown error occurred", kind="api_error")
    return error(status, message)


def _api_key():
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:]
    if header.startswith("Basic "):
        try:
            return base64.b64decode(header[6:]).decode().split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            return ""
    return ""


def nested(pairs):
    """Stripe's bracket notation (`a[b][0][c]=v`, `expand[]=x`) → nested dicts and lists."""
    root = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = root
        for i, part in enumerate(parts):
            if part == "":
                part = str(sum(1 for k in node if k.isdigit()))
            if i == len(parts) - 1:
                node[part] = value
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise ValueError(key)
    return _lists(root)


def _lists(node):
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_lists(node[k]) for k in sorted(node, key=int)]
    return {k: _lists(v) for k, v in node.items()}


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _public(obj):
    return {k: v for k, v in obj.items() if k != PRIVATE}


def _id(prefix):
    return f"{prefix}_test_{secrets.token_urlsafe(18).replace('-', 'a').replace('_', 'b')}"


def _masked(key):
    return f"{key[:8]}{'*' * 4}{key[-4:]}" if len(key) > 12 else "****"


@bp.before_request
def _authenticate():
    if not request.path.startswith(f"/sandbox/{CODE}/v1/"):
        return None
    key = _api_key()
    if not key:
        return error(401, "You did not provide an API key. You need to provide your API key in the Authorization "
                          "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').")
    if not hmac.compare_digest(key.encode(), SANDBOX_CREDENTIALS["secret_key"].encode()):
        return error(401, f"Invalid API Key provided: {_masked(key)}")
    if request.method != "POST":
        return None
    try:
        request.stripe_params = nested(request.form.items(multi=True))
    except ValueError as exc:
        return error(400, f"Invalid array or hash: {exc}", param=str(exc))
    return _replay()


def _idem_key():
    key = request.headers.get("Idempotency-Key")
    return f"{hashlib.sha256(_api_key().encode()).hexdigest()[:16]}:{key}" if key else None


def _fingerprint():
    return hashlib.sha256(json.dumps([request.path, request.stripe_params], sort_keys=True).encode()).hexdigest()


def _replay():
    key = _idem_key()
    if key is None:
        return None
    stored = load(CODE, "idem", key)
    if stored:
        if stored["fingerprint"] != _fingerprint():
            return error(400, "Keys for idempotent requests can only be used with the same parameters they were "
                              f"first used with. Try using a key other than '{request.headers['Idempotency-Key']}' "
                              "if you meant to execute a different request.", kind="idempotency_error")
        response = make_response(stored["body"], stored["status"])
        response.headers.update({"Content-Type": "application/json", "Idempotent-Replayed": "true"})
        return response
    if not get_redis().set(f"sandbox:{CODE}:idem-lock:{key}", "1", nx=True, ex=60):
        return error(409, "There is currently another in-progress request using this Idempotent Key (that probably "
                          "means you submitted twice, and the other request is still going through): "
                          f"{request.headers['Idempotency-Key']}. Please try again later.", kind="idempotency_error")
    request.stripe_idem = key
    return None


@bp.after_request
def _remember(response):
    key = getattr(request, "stripe_idem", None)
    if key:
        if response.status_code < 400 or response.status_code >= 500:  # validation failures are not kept
            save(CODE, "idem", key, {"fingerprint": _fingerprint(), "status": response.status_code,
                                     "body": response.get_data(as_text=True)})
        get_redis().delete(f"sandbox:{CODE}:idem-lock:{key}")
    response.headers.setdefault("Request-Id", "req_" + secrets.token_hex(7))
    return response


# --- objects ---------------------------------------------------------------------------------------------


def _display(amount, currency):
    """Stripe minor units as text ("20.00 USD"); zero-decimal currencies have no minor unit."""
    digits = 0 if currency in ZERO_DECIMAL else 2
    return f"{Decimal(amount).scaleb(-digits):.{digits}f} {currency.upper()}"


def _load_session(session_id):
    session = load(CODE, "session", session_id)
    if session and session["status"] == "open" and session["expires_at"] <= time.time():
        session["status"] = "expired"
        _save_session(session)
        _notify("checkout.session.expired", _public(session))
    return session


def _save_session(session):
    save(CODE, "session", session["id"], session)


#: What each object lets `expand[]` replace by the object it names (at the API version the SDK pins:
#: a PaymentIntent has `latest_charge`, no `charges` list since 2022-11-15).
EXPANDABLE = {"checkout.session": {"payment_intent": "pi"}, "payment_intent": {"latest_charge": "charge"},
              "charge": {"payment_intent": "pi"}, "refund": {"charge": "charge", "payment_intent": "pi"}}


def _expand_paths(list_prefix=False):
    """The request's `expand[]` values (also `expand[0]`…); for a list, without its leading `data.`."""
    paths = request.args.getlist("expand[]") + [v for k, v in request.args.items(multi=True)
                                                if k.startswith("expand[") and k != "expand[]"]
    if not list_prefix:
        return paths, None
    for path in paths:
        if not path.startswith("data."):
            return None, error(400, f"This property cannot be expanded ({path}).", param="expand")
    return [p[len("data."):] for p in paths], None


def _expand(obj, paths, shown=""):
    """`obj` with each dotted path in `paths` expanded, or a Stripe error for one that cannot be."""
    obj = dict(obj)
    for path in paths:
        field, _, rest = path.partition(".")
        kind = EXPANDABLE.get(obj.get("object"), {}).get(field)
        if kind is None:
            return None, error(400, f"This property cannot be expanded ({shown}{path}).", param="expand")
        value = obj.get(field)
        if isinstance(value, str):
            value = load(CODE, kind, value)
        if isinstance(value, dict) and rest:
            value, problem = _expand(value, [rest], f"{shown}{field}.")
            if problem:
                return None, problem
        obj[field] = value
    return obj, None


def _expanded(session):
    paths, _ = _expand_paths()
    return _expand(_public(session), paths)


def _line_items(params):
    items = params.get("line_items")
    if not isinstance(items, list) or not items:
        return None, error(400, "line_items is required in payment mode.", code="parameter_missing", param="line_items")
    lines = []
    for i, item in enumerate(items):
        where = f"line_items[{i}]"
        data = item.get("price_data") if isinstance(item, dict) else None
        if not isinstance(data, dict):
            return None, error(400, "You must specify either `price` or `price_data`.", param=where)
        unit, quantity = _int(data.get("unit_amount")), _int(item.get("quantity"))
        if unit is None or unit < 0:
            return None, error(400, "Invalid non-negative integer", code="parameter_invalid_integer",
                               param=f"{where}[price_data][unit_amount]")
        if quantity is None or quantity < 1:
            return None, error(400, "Quantity must be at least 1.", param=f"{where}[quantity]")
        name = (data.get("product_data") or {}).get("name")
        if not name:
            return None, error(400, "Missing required param: line_items[][price_data][product_data][name].",
                               code="parameter_missing", param=f"{where}[price_data][product_data][name]")
        lines.append({"name": name, "unit_amount": unit, "quantity": quantity,
                      "currency": str(data.get("currency", "")).lower()})
    return lines, None


@bp.post("/v1/checkout/sessions")
def create_session():
    params = request.stripe_params
    if params.get("mode") != "payment":
        return error(400, "Missing required param: mode.", code="parameter_missing", param="mode")
    if not params.get("success_url"):
        return error(400, "Missing required param: success_url.", code="parameter_missing", param="success_url")
    lines, problem = _line_items(params)
    if problem:
        return problem
    currencies = {line["currency"] for line in lines}
    if len(currencies) != 1 or not next(iter(currencies)):
        return error(400, "All line items must use the same currency.", param="line_items")
    currency = currencies.pop()
    now = int(time.time())
    expires_at = _int(params.get("expires_at", now + 86400))
    if expires_at is None or expires_at < now + 1800:
        return error(400, "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.",
                     param="expires_at")
    if expires_at > now + 86400:
        return error(400, "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
                     param="expires_at")
    subtotal = sum(line["unit_amount"] * line["quantity"] for line in lines)
    discount = shipping = 0
    for i, entry in enumerate(params.get("discounts") or []):
        coupon = load(CODE, "coupon", (entry or {}).get("coupon", ""))
        if coupon is None:
            return error(400, f"No such coupon: '{(entry or {}).get('coupon')}'", code="resource_missing",
                         param=f"discounts[{i}][coupon]")
        if coupon.get("currency") and coupon["currency"] != currency:
            return error(400, "The coupon's currency does not match the session's.", param=f"discounts[{i}][coupon]")
        discount += min(coupon.get("amount_off") or 0, subtotal - discount)
    for i, option in enumerate(params.get("shipping_options") or []):
        rate = (option or {}).get("shipping_rate_data") or {}
        amount = _int((rate.get("fixed_amount") or {}).get("amount"))
        if rate.get("type") != "fixed_amount" or amount is None or amount < 0 or not rate.get("display_name"):
            return error(400, "Invalid shipping_rate_data.", param=f"shipping_options[{i}][shipping_rate_data]")
        if i == 0:
            shipping = amount  # the first option is preselected
    session = {
        "id": _id("cs"), "object": "checkout.session", "mode": "payment", "status": "open",
        "payment_status": "unpaid", "currency": currency, "amount_subtotal": subtotal,
        "amount_total": subtotal - discount + shipping,
        "total_details": {"amount_discount": discount, "amount_shipping": shipping, "amount_tax": 0},
        "client_reference_id": params.get("client_reference_id"), "customer_email": params.get("customer_email"),
        "metadata": params.get("metadata") or {}, "payment_intent": None, "success_url": params["success_url"],
        "cancel_url": params.get("cancel_url"), "expires_at": expires_at, "created": now, "livemode": False,
        PRIVATE: {"lines": lines, "pi_metadata": (params.get("payment_intent_data") or {}).get("metadata") or {}},
    }
    session["url"] = url_for(".hosted_page", session_id=session["id"], _external=True)
    _save_session(session)
    redis = get_redis()  # newest first, for checkout.Session.list
    redis.lpush(f"sandbox:{CODE}:sessions", session["id"])
    redis.ltrim(f"sandbox:{CODE}:sessions", 0, 999)
    return jsonify(_public(session))


@bp.get("/v1/checkout/sessions/<session_id>")
def get_session(session_id):
    session = _load_session(session_id)
    if session is None:
        return error(404, f"No such checkout.session: '{session_id}'", code="resource_missing", param="session")
    data, problem = _expanded(session)
    return problem or jsonify(data)


@bp.get("/v1/checkout/sessions")
def list_sessions():
    """`checkout.Session.list`: newest first, filtered by `payment_intent` or `status`, `limit` 1-100 (10),
    `starting_after`; Stripe's list envelope `{"object": "list", "data", "has_more", "url"}`."""
    limit = _int(request.args.get("limit", 10))
    if limit is None or not 1 <= limit <= 100:
        return error(400, "This value must be greater than or equal to 1 and less than or equal to 100.",
                     code="parameter_invalid_integer", param="limit")
    paths, problem = _expand_paths(list_prefix=True)
    if problem:
        return problem
    if request.args.get("payment_intent"):
        found = load(CODE, "pi-session", request.args["payment_intent"])
        ids = [found] if found else []
    else:
        ids = [raw.decode() for raw in get_redis().lrange(f"sandbox:{CODE}:sessions", 0, -1)]
    status = request.args.get("status")
    if status and status not in ("open", "complete", "expired"):
        return error(400, "Invalid status: must be one of open, complete, or expired", param="status")
    after = request.args.get("starting_after")
    if after:
        if after not in ids:
            return error(400, f"No such checkout.session: '{after}'", code="resource_missing",
                         param="starting_after")
        ids = ids[ids.index(after) + 1:]
    data = []
    for session_id in ids:
        session = _load_session(session_id)
        if session is None or (status and session["status"] != status):
            continue
        item, problem = _expand(_public(session), paths, "data.")
        if problem:
            return problem
        data.append(item)
        if len(data) > limit:
            break
    return jsonify({"object": "list", "data": data[:limit], "has_more": len(data) > limit,
                    "url": "/v1/checkout/sessions"})


@bp.get("/v1/payment_intents/<intent_id>")
def get_payment_intent(intent_id):
    """`PaymentIntent.retrieve`, with `expand[]=latest_charge` (and `charges`, gone at this API version,
    refused as Stripe refuses an unknown expansion)."""
    intent = load(CODE, "pi", intent_id)
    if intent is None:
        return error(404, f"No such payment_intent: '{intent_id}'", code="resource_missing", param="intent")
    paths, _ = _expand_paths()
    data, problem = _expand(intent, paths)
    return problem or jsonify(data)


@bp.post("/v1/checkout/sessions/<session_id>/expire")
def expire_session(session_id):
    session = _load_session(session_id)
    if session is None:
        return error(404, f"No such checkout.session: '{session_id}'", code="resource_missing", param="session")
    if session["status"] != "open":
        return error(400, f"Only Checkout Sessions with a status in [\"open\"] can be expired. This session has "
                          f"status '{session['status']}'.", code="checkout_session_not_expirable")
    session["status"] = "expired"
    _save_session(session)
    _notify("checkout.session.expired", _public(session))
    return jsonify(_public(session))


@bp.post("/v1/coupons")
def create_coupon():
    params = request.stripe_params
    amount_off = _int(params.get("amount_off"))
    if amount_off is None or amount_off < 1 or not params.get("currency"):
        return error(400, "Coupons need a positive amount_off and a currency (or percent_off).", param="amount_off")
    coupon = {"id": params.get("id") or secrets.token_hex(4), "object": "coupon", "amount_off": amount_off,
              "currency": params["currency"].lower(), "duration": params.get("duration", "once"),
              "max_redemptions": _int(params.get("max_redemptions")), "name": params.get("name"),
              "percent_off": None, "times_redeemed": 0, "valid": True, "metadata": params.get("metadata") or {},
              "created": int(time.time()), "livemode": False}
    save(CODE, "coupon", coupon["id"], coupon)
    return jsonify(coupon)


@bp.post("/v1/refunds")
def create_refund():
    params = request.stripe_params
    intent = load(CODE, "pi", params.get("payment_intent", "")) if params.get("payment_intent") else None
    if intent is None and params.get("charge"):
        charge = load(CODE, "charge", params["charge"])
        intent = load(CODE, "pi", charge["payment_intent"]) if charge else None
    if intent is None:
        which = "payment_intent" if params.get("payment_intent") else "charge"
        return error(400 if which == "charge" and not params.get("charge") else 404,
                     f"No such {which}: '{params.get(which, '')}'", code="resource_missing", param=which)
    charge = load(CODE, "charge", intent.get("latest_charge") or "")
    if intent["status"] != "succeeded" or charge is None:
        return error(400, f"This PaymentIntent ({intent['id']}) does not have a successful charge to refund.",
                     code="charge_not_refundable", param="payment_intent")
    remaining = charge["amount"] - charge["amount_refunded"]
    if remaining == 0:
        return error(400, f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
    amount = _int(params.get("amount", remaining))
    if amount is None or amount < 1:
        return error(400, "Invalid positive integer", code="parameter_invalid_integer", param="amount")
    if amount > remaining:
        return error(400, f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
                     code="amount_too_large", param="amount")
    refund = {"id": _id("re"), "object": "refund", "amount": amount, "charge": charge["id"],
              "currency": charge["currency"], "payment_intent": intent["id"], "status": "succeeded",
              "reason": params.get("reason"), "metadata": params.get("metadata") or {}, "failure_reason": None,
              "created": int(time.time())}
    save(CODE, "refund", refund["id"], refund)
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] == charge["amount"]
    save(CODE, "charge", charge["id"], charge)
    _notify("charge.refunded", charge)
    return jsonify(refund)


@bp.get("/v1/refunds/<refund_id>")
def get_refund(refund_id):
    refund = load(CODE, "refund", refund_id)
    if refund is None:
        return error(404, f"No such refund: '{refund_id}'", code="resource_missing", param="id")
    return jsonify(refund)


# --- the shopper's page ------------------------------------------------------------------------------------


def _pay(session, intent_status):
    """Create the PaymentIntent (and, once it succeeds, its charge) for a completed session. Its metadata is
    the session's `payment_intent_data.metadata`; the session's own `metadata` stays on the session."""
    meta = session[PRIVATE]["pi_metadata"]
    intent = {"id": _id("pi"), "object": "payment_intent", "amount": session["amount_total"],
              "amount_received": 0, "capture_method": "automatic_async", "confirmation_method": "automatic",
              "currency": session["currency"], "status": intent_status, "latest_charge": None, "metadata": meta,
              "payment_method_types": ["card"], "created": int(time.time()), "livemode": False}
    save(CODE, "pi-session", intent["id"], session["id"])
    session.update(status="complete", payment_intent=intent["id"],
                   payment_status="paid" if intent_status == "succeeded" else "unpaid")
    if intent_status == "succeeded":
        _charge(intent)
    save(CODE, "pi", intent["id"], intent)
    _save_session(session)


def _charge(intent):
    """Stripe copies the PaymentIntent's metadata onto the Charge once, when it creates it."""
    charge = {"id": _id("ch"), "object": "charge", "amount": intent["amount"], "amount_refunded": 0,
              "currency": intent["currency"], "payment_intent": intent["id"], "paid": True, "refunded": False,
              "status": "succeeded", "metadata": dict(intent["metadata"]), "created": int(time.time()),
              "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}}}
    save(CODE, "charge", charge["id"], charge)
    intent.update(latest_charge=charge["id"], amount_received=intent["amount"])


def settle_delayed(session_id, succeeded):
    """RQ job: the bank answers about a delayed payment; Stripe tells the merchant."""
    session = load(CODE, "session", session_id)
    intent = load(CODE, "pi", session["payment_intent"])
    if intent["status"] != "processing":
        return
    if succeeded:
        intent["status"] = "succeeded"
        _charge(intent)
        session["payment_status"] = "paid"
    else:
        intent["status"] = "requires_payment_method"
    save(CODE, "pi", intent["id"], intent)
    _save_session(session)
    kind = "succeeded" if succeeded else "failed"
    _notify(f"checkout.session.async_payment_{kind}", _public(session))


@bp.route("/c/pay/<session_id>", methods=["GET", "POST"])
def hosted_page(session_id):
    session = _load_session(session_id)
    if session is None:
        return render_template("sandbox/stripe/closed.html", message="Something went wrong"), 404
    if session["status"] != "open":
        message = "Your payment is complete" if session["status"] == "complete" else "This session has expired"
        return render_template("sandbox/stripe/closed.html", message=message), 409
    outcome = request.form.get("outcome") if request.method == "POST" else None
    if outcome == "cancel":
        return redirect(session["cancel_url"] or session["success_url"], code=303)
    if outcome not in ("success", "delayed", "failure"):
        return render_template("sandbox/stripe/pay.html", session=session, lines=session[PRIVATE]["lines"],
                               total=_display(session["amount_total"], session["currency"]))
    _pay(session, "succeeded" if outcome == "success" else "processing")
    _notify("checkout.session.completed", _public(session))
    if outcome != "success":
        get_queue("sandbox").enqueue_in(timedelta(seconds=ASYNC_SETTLE_SECONDS), settle_delayed, session["id"],
                                        outcome == "delayed")
    return redirect(session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"]), code=303)


# --- webhooks ----------------------------------------------------------------------------------------------


def _notify(event_type, obj):
    event = {"id": _id("evt"), "object": "event", "api_version": API_VERSION, "created": int(time.time()),
             "livemode": False, "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
             "type": event_type, "data": {"object": obj}}
    body = json.dumps(event, indent=2).encode()
    endpoint = f"{current_app.config['PUBLIC_BASE_URL']}/callbacks/{CODE}/webhook"
    send_later("POST", endpoint, delays=WEBHOOK_RETRIES, data=body, sign="app.sandbox.stripe.signed_headers")


def signature_header(body, secret, timestamp):
    signed = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signed}"


def signed_headers(body):
    """Signed at every attempt with a fresh timestamp, as Stripe does."""
    return {"Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": signature_header(body, SANDBOX_CREDENTIALS["webhook_secret"], int(time.time()))}
