"""Simulator of Midtrans Snap and the Core API it needs: create transaction, the Snap redirection page, the
finish redirect, HTTP notifications (signed with signature_key, retried per the merchant's HTTP answer as
Midtrans does), and /v2 status, cancel, expire and refund. Snap (`/snap/v1`) and Core (`/v2`) share one base
here; point midtransclient's `SNAP_SANDBOX_BASE_URL` at `<base>/snap/v1` and `CORE_SANDBOX_BASE_URL` at `<base>`.

| path (under /sandbox/midtrans) | method | answers |
|---|---|---|
| `/snap/v1/transactions` | POST | `{token, redirect_url}` (201) |
| `/snap/v4/redirection/<token>` | GET, POST | the Snap page (outcomes success, failure, challenge, pending, cancel) |
| `/v2/<order_id or transaction_id>/status` | GET | the transaction, as notified (404 before a payment attempt) |
| `/v2/<id>/cancel` | POST | pending/authorize/capture → cancel; else 412 |
| `/v2/<id>/expire` | POST | pending → expire (status_code 407); else 412 |
| `/v2/<id>/refund` | POST | refund by `refund_key` (a repeated key: the same refund) |
| `/v2/<id>/approve` | POST | capture + challenge → capture + accept ("Success, transaction is approved"); else 412 |
| `/v2/<id>/deny` | POST | capture + challenge → deny + deny ("Success, transaction is denied"); else 412 |
| anything else, or another method | any | 404 `{"status_code": "404", "status_message": "The requested resource is not found"}` |

Not simulated: Core API `/v2/charge`, `/v2/<id>/refund/online/direct`,
capture, Snap's partner checkout-session cancel; on a Snap order that has no transaction yet, cancel/expire
answer 404 (Transaction doesn't exist) and the Snap page stays open until its own expiry.

Simplifications, each marked: the `cancel` button makes a `cancel` transaction (at Midtrans a shopper who
leaves Snap leaves no transaction); card payments stay `capture` (no next-day settlement) and can be refunded.
"""

import hashlib
import hmac
import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta, timezone

from flask import Blueprint, current_app, jsonify, redirect, render_template, request

from app.sandbox._common import (
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    SERVER_ERROR,
    gateway_path,
    load,
    save,
    send_later,
)

CODE = "midtrans"
SANDBOX_CREDENTIALS = {"server_key": "SB-Mid-server-PaysmithSandbox2026", "client_key": "SB-Mid-client-PaysmithSandbox"}
MERCHANT_ID = "G141532850"
#: Retries of a notification not answered 2xx, each about this long after the previous failure, and how many
#: of them Midtrans makes after each answer (a timeout or any other status: all five); 307/308 are followed
#: with the same POST at most NOTIFICATION_REDIRECTS times, 301/302/303 are not followed and not retried.
#: Midtrans docs, "best practices to handle notification"; its HTTP timeout is 15 s (_common.SEND_TIMEOUT).
NOTIFICATION_RETRIES = [120, 600, 1800, 5400, 12600]
RETRIES_AFTER = {500: 1, 503: 4, 400: 2, 404: 2, 301: 0, 302: 0, 303: 0}
NOTIFICATION_REDIRECTS = 5
WIB = timezone(timedelta(hours=7))
#: Outcome button → (transaction_status, fraud_status, status_code, status_message).
OUTCOMES = {
    "success": ("capture", "accept", "200", "Success, Credit Card transaction is successful"),
    "challenge": ("capture", "challenge", "201", "Challenge by FDS"),
    "failure": ("deny", "deny", "202", "Deny by Bank [MANDIRI] with code [05] and message [Do not honour]"),
    "cancel": ("cancel", "accept", "200", "Success, transaction is canceled"),
    # the shopper leaves 3-D Secure unfinished: a card transaction waiting for the customer (the message is the
    # simulator's; Midtrans' code for pending is 201)
    "pending": ("pending", "accept", "201", "Success, Credit Card transaction is created, waiting for 3-D Secure"),
}
REFUNDABLE = {"capture", "settlement", "partial_refund"}
CANCELLABLE = {"pending", "authorize", "capture"}

bp = Blueprint("sandbox_midtrans", __name__)


def _now():
    return datetime.now(UTC).astimezone(WIB)


def _authorized():
    auth = request.authorization
    return bool(auth and auth.type == "basic" and hmac.compare_digest(
        (auth.username or "").encode(), SANDBOX_CREDENTIALS["server_key"].encode()))


def _snap_error(status, *messages):
    return jsonify({"error_messages": list(messages)}), status


def _core_error(status, message, order_id=None):
    body = {"status_code": str(status), "status_message": message}
    if order_id:
        body["id"] = str(uuid.uuid4())
    return jsonify(body), status


def error_envelope(status, kind, message):
    """Midtrans' answers to what it does not serve: Snap (`/snap/…`) in its `error_messages` list, the Core
    API in `status_code`/`status_message` (midtransclient raises MidtransAPIError on both). An unknown resource
    is 404 "The requested resource is not found" (veritrans-ruby's recorded cassettes, e.g. expire of
    "not-exists"); Midtrans' own failure is 500 with the message its API gives."""
    snap = gateway_path().startswith("/snap/")
    if kind in (NOT_FOUND, METHOD_NOT_ALLOWED):
        status, message = 404, "The requested resource is not found"
    elif kind == SERVER_ERROR:
        message = "Sorry. Our system is recovering from unexpected issues. Please retry."
    return _snap_error(status, message) if snap else _core_error(status, message)


UNAUTHORIZED_SNAP = ("Access denied due to unauthorized transaction, please check client or server key",
                     "Visit https://snap-docs.midtrans.com/#request-headers for more details")


def _gross(amount):
    return f"{amount}.00"


def _sign(order):
    return hashlib.sha512(f"{order['order_id']}{order['status_code']}{_gross(order['gross_amount'])}"
                          f"{SANDBOX_CREDENTIALS['server_key']}".encode()).hexdigest()


def _status_body(order):
    body = {
        "status_code": order["status_code"],
        "status_message": order["status_message"],
        "transaction_id": order["transaction_id"],
        "order_id": order["order_id"],
        "merchant_id": MERCHANT_ID,
        "gross_amount": _gross(order["gross_amount"]),
        "currency": "IDR",
        "payment_type": "credit_card",
        "transaction_time": order["transaction_time"],
        "transaction_status": order["transaction_status"],
        "fraud_status": order["fraud_status"],
        "masked_card": "48111111-1114",
        "bank": "mandiri",
        "card_type": "credit",
        "signature_key": _sign(order),
    }
    if order["refunds"]:
        body["refund_amount"] = _gross(sum(r["refund_amount"] for r in order["refunds"]))
        body["refunds"] = [{**r, "refund_amount": _gross(r["refund_amount"])} for r in order["refunds"]]
    if order["transaction_status"] == "settlement":
        body["settlement_time"] = order["transaction_time"]
    return body


def _notify(order, **override):
    """Send the order's notification (`override` sets status_code/status_message, signed as sent)."""
    body = json.dumps(_status_body({**order, **override})).encode()
    send_later("POST", order["notification_url"], delays=NOTIFICATION_RETRIES, data=body,
               retries="app.sandbox.midtrans.notification_retries", redirects=NOTIFICATION_REDIRECTS,
               headers={"Content-Type": "application/json", "Accept": "application/json"})


def notification_retries(response):
    """How many retries Midtrans makes after this unaccepted answer (None: a timeout or connection error)."""
    default = len(NOTIFICATION_RETRIES)
    return default if response is None else RETRIES_AFTER.get(response.status_code, default)


# --- Snap ---------------------------------------------------------------------------------------------------


@bp.post("/snap/v1/transactions")
def create_transaction():
    if not _authorized():
        return _snap_error(401, *UNAUTHORIZED_SNAP)
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return _snap_error(400, "Invalid JSON body")
    details = data.get("transaction_details") or {}
    order_id, gross = details.get("order_id"), details.get("gross_amount")
    errors = []
    if not order_id:
        errors.append("transaction_details.order_id is required")
    elif not isinstance(order_id, str) or len(order_id) > 50:
        errors.append("transaction_details.order_id too long")
    if gross is None:
        errors.append("transaction_details.gross_amount is required")
    elif isinstance(gross, bool) or not isinstance(gross, int) or gross < 1:
        errors.append("transaction_details.gross_amount must be an integer greater than or equal to 1")
    items = data.get("item_details")
    if not errors and items is not None:
        try:
            total = sum(int(i["price"]) * int(i["quantity"]) for i in items)
        except (KeyError, TypeError, ValueError):
            errors.append("item_details is invalid")
        else:
            if total != gross:
                errors.append("transaction_details.gross_amount is not equal to the sum of item_details")
    if errors:
        return _snap_error(400, *errors)
    existing = load(CODE, "order", order_id)
    if existing and existing["transaction_status"]:
        return _snap_error(400, "transaction_details.order_id sudah digunakan")
    expiry = data.get("expiry") or {}
    expires = _expires_at(expiry) if expiry else datetime.now(UTC) + timedelta(hours=24)
    if expires is None:
        return _snap_error(400, "expiry is invalid")
    token = str(uuid.uuid4())
    default_notification = f"{current_app.config['PUBLIC_BASE_URL']}/callbacks/{CODE}/notification"
    order = {
        "order_id": order_id, "gross_amount": gross, "token": token, "expires_at": expires.timestamp(),
        "finish_url": (data.get("callbacks") or {}).get("finish"), "items": items or [],
        "notification_url": request.headers.get("X-Override-Notification") or default_notification,
        "transaction_status": None, "fraud_status": None, "status_code": "404", "status_message": None,
        "transaction_id": None, "transaction_time": None, "refunds": [], "expiry": expiry,
    }
    save(CODE, "order", order_id, order)
    save(CODE, "token", token, order_id)
    return jsonify({"token": token, "redirect_url": f"{request.url_root.rstrip('/')}/sandbox/{CODE}/snap/v4/"
                                                    f"redirection/{token}"}), 201


def _expires_at(expiry):
    units = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
    try:
        start = datetime.strptime(expiry["start_time"], "%Y-%m-%d %H:%M:%S %z") if expiry.get("start_time") \
            else datetime.now(UTC)
        return start + timedelta(seconds=int(expiry["duration"]) * units[expiry["unit"]])
    except (KeyError, TypeError, ValueError):
        return None


@bp.route("/snap/v4/redirection/<token>", methods=["GET", "POST"])
def snap_page(token):
    order_id = load(CODE, "token", token)
    order = load(CODE, "order", order_id) if order_id else None
    if order is None or order["token"] != token:
        return render_template("sandbox/midtrans/closed.html", message="Transaction not found"), 404
    if order["transaction_status"] or order["expires_at"] <= datetime.now(UTC).timestamp():
        return render_template("sandbox/midtrans/closed.html",
                               message="This transaction has been completed or has expired"), 410
    outcome = request.form.get("outcome") if request.method == "POST" else None
    if outcome not in OUTCOMES:
        return render_template("sandbox/midtrans/pay.html", order=order, expires=datetime.fromtimestamp(
            order["expires_at"], WIB)), (400 if request.method == "POST" else 200)
    status, fraud, code, message = OUTCOMES[outcome]
    order.update(transaction_status=status, fraud_status=fraud, status_code=code, status_message=message,
                 transaction_id=str(uuid.uuid4()), transaction_time=_now().strftime("%Y-%m-%d %H:%M:%S"))
    save(CODE, "order", order_id, order)
    save(CODE, "transaction", order["transaction_id"], order_id)
    _notify(order)
    finish = order["finish_url"] or request.url_root
    sep = "&" if "?" in finish else "?"
    return redirect(f"{finish}{sep}order_id={order_id}&status_code={code}&transaction_status={status}", code=302)


# --- Core API -----------------------------------------------------------------------------------------------


def _order_or_error(order_id):
    if not _authorized():
        return None, _core_error(401, "Unknown Merchant server_key/id")
    order = load(CODE, "order", order_id)
    if order is None or not order["transaction_status"]:
        order = _by_transaction_id(order_id)
    if order is None:
        return None, _core_error(404, "Transaction doesn't exist.", order_id)
    return order, None


def _by_transaction_id(transaction_id):
    order_id = load(CODE, "transaction", transaction_id)
    return load(CODE, "order", order_id) if order_id else None


@bp.get("/v2/<order_id>/status")
def status(order_id):
    order, error = _order_or_error(order_id)
    return error or jsonify(_status_body(order))


@bp.post("/v2/<order_id>/cancel")
def cancel(order_id):
    order, error = _order_or_error(order_id)
    if error:
        return error
    if order["transaction_status"] not in CANCELLABLE:
        return _core_error(412, "Merchant cannot modify the status of the transaction")
    order.update(transaction_status="cancel", status_code="200", status_message="Success, transaction is canceled")
    save(CODE, "order", order["order_id"], order)
    _notify(order)
    return jsonify(_status_body(order))


@bp.post("/v2/<order_id>/expire")
def expire(order_id):
    """Midtrans' Expire API (docs.midtrans.com/reference/expire-api, "Expire transaction"): a transaction the
    customer has not paid (`pending`) becomes `expire`, answered HTTP 200 with status_code "407" "Success,
    transaction has expired" (midtransclient treats 407 as a success) and notified (the docs' notification
    sample: status_code "202", transaction_status "expire"); the order_id may then be used again. Anything else
    — settled, captured, challenged by FDS (approve/deny/cancel decide those), already expired or cancelled — is
    412 "Merchant cannot modify the status of the transaction", as the docs' error sample."""
    order, error = _order_or_error(order_id)
    if error:
        return error
    if order["transaction_status"] != "pending":
        return _core_error(412, "Merchant cannot modify the status of the transaction")
    order.update(transaction_status="expire", status_code="407", status_message="Success, transaction has expired")
    save(CODE, "order", order["order_id"], order)
    _notify(order, status_code="202", status_message="midtrans payment notification")
    return jsonify(_status_body(order))


@bp.post("/v2/<order_id>/refund")
def refund(order_id):
    order, error = _order_or_error(order_id)
    if error:
        return error
    data = request.get_json(silent=True) or {}
    key = data.get("refund_key") or secrets.token_hex(8)
    done = next((r for r in order["refunds"] if r["refund_key"] == key), None)
    if done is None:
        if order["transaction_status"] not in REFUNDABLE or order["fraud_status"] != "accept":
            return _core_error(412, "Transaction status cannot be updated.")
        remaining = order["gross_amount"] - sum(r["refund_amount"] for r in order["refunds"])
        amount = data.get("amount", remaining)
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= remaining:
            return _core_error(412, f"Refund amount must be between 1 and the refundable amount {remaining}")
        done = {"refund_chargeback_id": secrets.randbelow(10**6), "refund_amount": amount, "refund_key": key,
                "reason": str(data.get("reason") or "")[:255], "created_at": _now().strftime("%Y-%m-%d %H:%M:%S")}
        order["refunds"].append(done)
        order["transaction_status"] = "refund" if amount == remaining else "partial_refund"
        order["status_message"] = "Success, refund request is approved"
        save(CODE, "order", order["order_id"], order)
        _notify(order)
    return jsonify({**_status_body(order), "status_code": "200", "status_message": "Success, refund request is approved",
                    "refund_chargeback_id": done["refund_chargeback_id"], "refund_amount": _gross(done["refund_amount"]),
                    "refund_key": done["refund_key"]})


# --- fraud review: approve / deny a challenged card payment ------------------------------------------------

#: docs.midtrans.com "Approve Transaction" / "Deny Transaction" (reference-link/approve-transaction,
#: …/deny-transaction): POST /v2/{order_id or transaction_id}/approve|deny, no body, on a card payment
#: with fraud_status `challenge`; the answer is the transaction as it now is with status_code "200"; any
#: other transaction is 412 "Merchant cannot modify the status of the transaction". Midtrans then sends the
#: HTTP notification of the new status (capture/accept "200"; deny "202", as its deny notification sample).
REVIEW = {
    "approve": ("capture", "accept", "200", "Success, transaction is approved",
                "Success, Credit Card transaction is successful"),
    "deny": ("deny", "deny", "202", "Success, transaction is denied", "Deny by FDS"),
}


def _review(order_id, decision):
    order, error = _order_or_error(order_id)
    if error:
        return error
    if order["transaction_status"] != "capture" or order["fraud_status"] != "challenge":
        return _core_error(412, "Merchant cannot modify the status of the transaction")
    status, fraud, code, answer, notified = REVIEW[decision]
    order.update(transaction_status=status, fraud_status=fraud, status_code=code, status_message=notified)
    save(CODE, "order", order["order_id"], order)
    _notify(order)
    return jsonify({**_status_body(order), "status_code": "200", "status_message": answer})


@bp.post("/v2/<order_id>/approve")
def approve(order_id):
    return _review(order_id, "approve")


@bp.post("/v2/<order_id>/deny")
def deny(order_id):
    return _review(order_id, "deny")
