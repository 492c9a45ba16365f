"""Simulator of Khalti ePayment (KPG-2): initiate, the hosted payment page, the browser redirect to
return_url with Khalti's (unsigned) query parameters, lookup, and the merchant refund API.

Khalti sends no server-to-server notification for ePayment, so neither does this simulator. The `failure`
button leaves the payment link unpaid until Khalti expires it (lookup answers `Expired`), which is how a
failed wallet/bank attempt ends at Khalti; ePayment has no separate failed state.

| path (under /sandbox/khalti) | method | answers |
|---|---|---|
| `/api/v2/epayment/initiate/` | POST | `pidx`, `payment_url`, `expires_at`, `expires_in` (or `{field: [msg], "error_key"}`) |
| `/api/v2/epayment/lookup/` | POST | the payment (`Expired` / `User canceled` with HTTP 400) |
| `/api/merchant-transaction/<transaction_id>/refund/` | POST | `{"detail": "Transaction refund successful."}` |
| anything else, or another method | any | DRF's `{"detail", "status_code"}` 404 / 405 |
| `/sandbox/khalti/?pidx=…` | GET, POST | the hosted payment page |

Not simulated: the legacy checkout (`/api/v2/payment/verify/`), KPG-1, bank-specific `modes`.
"""

import hmac
import secrets
import string
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, jsonify, redirect, render_template, request

from app.sandbox._common import METHOD_NOT_ALLOWED, NOT_FOUND, SERVER_ERROR, load, save

CODE = "khalti"
SANDBOX_CREDENTIALS = {"secret_key": "live_secret_key_paysmith_sandbox_68791341fdd94846a146f0457ff7b455"}
MIN_AMOUNT = 1000
LINK_SECONDS = 1800
NPT = timezone(timedelta(hours=5, minutes=45))
MOBILE = "9800000001"
#: Outcome button → status the shopper's choice leaves the payment in.
OUTCOMES = {"success": "Completed", "failure": "Expired", "cancel": "User canceled"}
#: Lookup answers HTTP 400 for these.
CLOSED = {"Expired", "User canceled"}

bp = Blueprint("sandbox_khalti", __name__)


def error_envelope(status, kind, message):
    """Khalti's API is Django REST framework: its default `{"detail"}` answers (with the `status_code` Khalti
    adds, as on its 401s) for unknown paths, wrong methods and server errors."""
    if kind == NOT_FOUND:
        status, message = 404, "Not found."
    elif kind == METHOD_NOT_ALLOWED:
        status, message = 405, f'Method "{request.method}" not allowed.'
    elif kind == SERVER_ERROR:
        message = "A server error occurred."
    return jsonify({"detail": message, "status_code": status}), status
_ALPHABET = string.ascii_letters + string.digits


def _id(n=22):
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def _auth_error():
    """Khalti's own 401 bodies, or None when the key is right."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "key" or not key:
        return jsonify({"detail": "Authentication credentials were not provided.", "status_code": 401}), 401
    if not hmac.compare_digest(key.strip().encode(), SANDBOX_CREDENTIALS["secret_key"].encode()):
        return jsonify({"detail": "Invalid token.", "status_code": 401}), 401
    return None


def _validation(errors):
    return jsonify({**errors, "error_key": "validation_error"}), 400


def _valid_url(value):
    parts = urlsplit(value) if isinstance(value, str) else None
    return bool(parts and parts.scheme in ("http", "https") and parts.netloc)


def _current(payment):
    if payment["status"] in ("Initiated", "Pending") and payment["expires"] <= datetime.now(UTC).timestamp():
        payment["status"] = "Expired"
        save(CODE, "payment", payment["pidx"], payment)
    return payment


@bp.post("/api/v2/epayment/initiate/")
def initiate():
    denied = _auth_error()
    if denied:
        return denied
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return _validation({"detail": ["Invalid JSON body."]})
    errors = {}
    for field in ("return_url", "website_url", "amount", "purchase_order_id", "purchase_order_name"):
        if data.get(field) in (None, ""):
            errors[field] = ["This field is required." if field not in data else "This field may not be blank."]
    for field in ("return_url", "website_url"):
        if field not in errors and not _valid_url(data[field]):
            errors[field] = ["Enter a valid URL."]
    amount = data.get("amount")
    if "amount" not in errors:
        try:
            amount = int(amount) if not isinstance(amount, (bool, float)) else None
        except (TypeError, ValueError):
            amount = None
        if amount is None:
            errors["amount"] = ["A valid integer is required."]
        elif amount < MIN_AMOUNT:
            errors["amount"] = ["Amount should be greater than Rs. 10, that is 1000 paisa."]
    breakdown = data.get("amount_breakdown")
    if breakdown is not None and "amount" not in errors:
        try:
            if sum(int(line["amount"]) for line in breakdown) != amount:
                errors["amount"] = ["Amount Breakdown mismatch."]
        except (KeyError, TypeError, ValueError):
            errors["amount_breakdown"] = ["Invalid amount breakdown."]
    if errors:
        return _validation(errors)
    pidx = _id()
    expires = datetime.now(UTC) + timedelta(seconds=LINK_SECONDS)
    save(CODE, "payment", pidx, {
        "pidx": pidx, "total_amount": amount, "status": "Initiated", "transaction_id": None, "fee": 0,
        "refunded": False, "refunded_amount": 0, "return_url": data["return_url"],
        "purchase_order_id": str(data["purchase_order_id"]), "purchase_order_name": str(data["purchase_order_name"]),
        "expires": expires.timestamp(), "customer_info": data.get("customer_info") or {},
    })
    return jsonify({"pidx": pidx, "payment_url": f"{request.url_root.rstrip('/')}/sandbox/{CODE}/?pidx={pidx}",
                    "expires_at": expires.astimezone(NPT).isoformat(), "expires_in": LINK_SECONDS})


@bp.route("/", methods=["GET", "POST"])
def pay_page():
    pidx = request.args.get("pidx", "")
    payment = load(CODE, "payment", pidx) if pidx else None
    if payment is None:
        return render_template("sandbox/khalti/closed.html", message="Payment link not found."), 404
    payment = _current(payment)
    if payment["status"] != "Initiated":
        return render_template("sandbox/khalti/closed.html", message=f"This payment is {payment['status']}."), 410
    outcome = request.form.get("outcome") if request.method == "POST" else None
    if outcome not in OUTCOMES:
        return render_template("sandbox/khalti/pay.html", payment=payment, mobile=MOBILE), (
            400 if request.method == "POST" else 200)
    payment["status"] = OUTCOMES[outcome]
    if outcome == "success":
        payment["transaction_id"] = _id()
        save(CODE, "transaction", payment["transaction_id"], pidx)
    save(CODE, "payment", pidx, payment)
    paid = outcome == "success"
    query = {
        "pidx": pidx, "transaction_id": payment["transaction_id"] or "", "tidx": payment["transaction_id"] or "",
        "txnId": payment["transaction_id"] or "", "amount": payment["total_amount"],
        "total_amount": payment["total_amount"], "mobile": MOBILE if paid else "", "status": payment["status"],
        "purchase_order_id": payment["purchase_order_id"], "purchase_order_name": payment["purchase_order_name"],
    }
    sep = "&" if "?" in payment["return_url"] else "?"
    return redirect(payment["return_url"] + sep + urlencode(query), code=302)


def _lookup_body(payment):
    return {"pidx": payment["pidx"], "total_amount": payment["total_amount"], "status": payment["status"],
            "transaction_id": payment["transaction_id"], "fee": payment["fee"], "refunded": payment["refunded"]}


@bp.post("/api/v2/epayment/lookup/")
def lookup():
    denied = _auth_error()
    if denied:
        return denied
    data = request.get_json(silent=True) or {}
    if not data.get("pidx"):
        return _validation({"pidx": ["This field is required."]})
    payment = load(CODE, "payment", str(data["pidx"]))
    if payment is None:
        return jsonify({"detail": "Not found.", "error_key": "validation_error"}), 404
    payment = _current(payment)
    return jsonify(_lookup_body(payment)), 400 if payment["status"] in CLOSED else 200


@bp.post("/api/merchant-transaction/<transaction_id>/refund/")
def refund(transaction_id):
    denied = _auth_error()
    if denied:
        return denied
    pidx = load(CODE, "transaction", transaction_id)
    payment = load(CODE, "payment", pidx) if pidx else None
    if payment is None:
        return jsonify({"detail": "Transaction not found.", "error_key": "validation_error"}), 404
    if payment["status"] not in ("Completed", "Partially Refunded"):
        return jsonify({"detail": "Transaction cannot be refunded.", "error_key": "validation_error"}), 400
    data = request.get_json(silent=True) or {}
    remaining = payment["total_amount"] - payment["refunded_amount"]
    amount = data.get("amount", remaining)
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= remaining:
        return jsonify({"detail": "Refund amount exceeds the refundable amount.", "error_key": "validation_error"}), 400
    payment["refunded_amount"] += amount
    payment["refunded"] = True
    payment["status"] = "Refunded" if payment["refunded_amount"] == payment["total_amount"] else "Partially Refunded"
    save(CODE, "payment", pidx, payment)
    return jsonify({"detail": "Transaction refund successful."})

