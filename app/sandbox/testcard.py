"""Simulator of the built-in test acquirer: its API, its hosted card page with a one-time-code step, and
its signed webhooks (see app/gateways/testcard.py for the protocol).

Test cards (any future expiry, any CVC):
- 4444 4444 4444 4444 asks for a one-time code; in the sandbox the code is 123456. Three wrong codes fail.
- 4000 0000 0000 0002 is declined (`card_declined`).
- 4000 0000 0000 9995 fails with insufficient funds (`insufficient_funds`).
- 4000 0000 0000 0341 succeeds, but refunds of it are declined by the acquirer.
- Any other number that passes the Luhn check succeeds without a code; others are refused as invalid.
Only the brand and the last four digits are ever kept.

| path (under /sandbox/testcard) | method | answers |
|---|---|---|
| `/v1/checkout_sessions` | POST | a session with its hosted `url` |
| `/v1/checkout_sessions/<id>` | GET | the session |
| `/v1/checkout_sessions/<id>/refunds` | POST | a refund (Idempotency-Key honoured) |
| anything else under /v1/, or another method | any | 404 `{"error": {"type", "message"}}` |
| `/pay/<id>`, `/pay/<id>/otp` | GET, POST | the card page and the one-time-code page |
"""

import hmac
import json
import secrets
import time
from datetime import datetime

from flask import Blueprint, abort, jsonify, redirect, render_template, request

from app.gateways.testcard import SIGNATURE_HEADER, sign
from app.sandbox._common import (
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    SERVER_ERROR,
    gateway_path,
    load,
    save,
    send_later,
)

CODE = "testcard"
SANDBOX_CREDENTIALS = {
    "secret_key": "tc_sk_sandbox_51HcQ2eZvKYlo2C0aqHVAJ8",
    "webhook_secret": "tc_whsec_sandbox_8f14e45fceea167a",
}
OTP_CODE = "123456"
OTP_CARD = "4444444444444444"
DECLINED = {"4000000000000002": ("card_declined", "Your card was declined."),
            "4000000000009995": ("insufficient_funds", "Your card has insufficient funds.")}
REFUND_DECLINED_CARD = "4000000000000341"
TEST_CARDS = {OTP_CARD, REFUND_DECLINED_CARD, *DECLINED}
MAX_OTP_ATTEMPTS = 3
#: Webhook retry intervals after each failed attempt (seconds).
WEBHOOK_RETRIES = [10, 60, 300, 1800, 7200]

bp = Blueprint("sandbox_testcard", __name__, template_folder=None)


def luhn_ok(number):
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, digit in enumerate(reversed(number)):
        d = int(digit)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def brand(number):
    if number.startswith("4"):
        return "Visa"
    if number[:2] in {"51", "52", "53", "54", "55"} or "2221" <= number[:4] <= "2720":
        return "Mastercard"
    if number[:2] in {"34", "37"}:
        return "Amex"
    return "Card"


def expiry_ok(value, now=None):
    """'MM/YY' (or 'MM / YY', 'MM/YYYY') not in the past."""
    parts = value.replace(" ", "").split("/")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return False
    month, year = int(parts[0]), int(parts[1])
    year += 2000 if year < 100 else 0
    if not 1 <= month <= 12:
        return False
    now = now or datetime.utcnow()
    return (year, month) >= (now.year, now.month)


def _error(status, message, code=None, kind="invalid_request_error"):
    body = {"type": kind, "message": message}
    if code:
        body["code"] = code
    return jsonify({"error": body}), status


def error_envelope(status, kind, message):
    """The acquirer's API answers in its `{"error": {"type", "message"}}` envelope; its pages keep the app's."""
    if not gateway_path().startswith("/v1/"):
        return None
    if kind in (NOT_FOUND, METHOD_NOT_ALLOWED):
        return _error(404, f"Unrecognized request URL ({request.method}: {gateway_path()})")
    if kind == SERVER_ERROR:
        return _error(500, "An unknown error occurred", kind="api_error")
    return _error(status, message)


def _authorized():
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.startswith("Bearer ") else ""
    return hmac.compare_digest(token.encode(), SANDBOX_CREDENTIALS["secret_key"].encode())


def _public(session):
    return {k: v for k, v in session.items() if k not in {"otp_attempts", "refund_declined", "refund_keys"}}


def _session_or_404(session_id):
    session = load(CODE, "session", session_id)
    if session is None:
        abort(404)
    if session["status"] in ("open", "requires_otp") and session["expires_at"] <= time.time():
        session["status"] = "expired"
        save(CODE, "session", session_id, session)
    return session


@bp.post("/v1/checkout_sessions")
def create_session():
    if not _authorized():
        return _error(401, "Invalid API key provided.", kind="authentication_error")
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return _error(400, "The body must be a JSON object.")
    for field in ("amount", "currency", "reference", "return_url", "notify_url", "expires_at"):
        if data.get(field) in (None, ""):
            return _error(400, f"Missing required param: {field}.", "parameter_missing")
    if not isinstance(data["amount"], int) or isinstance(data["amount"], bool) or data["amount"] < 1:
        return _error(400, "amount must be a positive integer in minor units.", "parameter_invalid_integer")
    session = {
        "id": "cs_test_" + secrets.token_hex(12),
        "object": "checkout_session",
        "amount": data["amount"],
        "currency": str(data["currency"]).upper(),
        "reference": str(data["reference"]),
        "description": data.get("description") or "",
        "merchant_name": data.get("merchant_name") or "",
        "return_url": data["return_url"],
        "notify_url": data["notify_url"],
        "expires_at": int(data["expires_at"]),
        "created": int(time.time()),
        "status": "open",
        "card": None,
        "charge": None,
        "failure_code": None,
        "failure_message": None,
        "amount_refunded": 0,
        "refunds": [],
        "otp_attempts": 0,
        "refund_keys": {},
    }
    session["url"] = f"{request.url_root.rstrip('/')}/sandbox/{CODE}/pay/{session['id']}"
    save(CODE, "session", session["id"], session)
    return jsonify(_public(session))


@bp.get("/v1/checkout_sessions/<session_id>")
def get_session(session_id):
    if not _authorized():
        return _error(401, "Invalid API key provided.", kind="authentication_error")
    session = load(CODE, "session", session_id)
    if session is None:
        return _error(404, f"No such checkout session: '{session_id}'", "resource_missing")
    return jsonify(_public(_session_or_404(session_id)))


@bp.post("/v1/checkout_sessions/<session_id>/expire")
def expire_session(session_id):
    """End an open session (as Stripe's expire does): it can no longer be paid. 400 once it is not open."""
    if not _authorized():
        return _error(401, "Invalid API key provided.", kind="authentication_error")
    session = load(CODE, "session", session_id)
    if session is None:
        return _error(404, f"No such checkout session: '{session_id}'", "resource_missing")
    session = _session_or_404(session_id)
    if session["status"] not in ("open", "requires_otp"):
        return _error(400, f"Only an open session can be expired; this one is {session['status']}.",
                      "session_not_open")
    session["status"] = "expired"
    save(CODE, "session", session_id, session)
    _notify(session)
    return jsonify(_public(session))


@bp.post("/v1/checkout_sessions/<session_id>/refunds")
def create_refund(session_id):
    if not _authorized():
        return _error(401, "Invalid API key provided.", kind="authentication_error")
    session = load(CODE, "session", session_id)
    if session is None:
        return _error(404, f"No such checkout session: '{session_id}'", "resource_missing")
    key = request.headers.get("Idempotency-Key")
    if key and key in session["refund_keys"]:
        refund = next(r for r in session["refunds"] if r["id"] == session["refund_keys"][key])
        return jsonify(refund)
    data = request.get_json(silent=True) or {}
    if session["status"] not in ("succeeded", "partially_refunded"):
        return _error(400, "This session has no successful charge to refund.", "charge_not_refundable")
    remaining = session["amount"] - session["amount_refunded"]
    amount = data.get("amount", remaining)
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
        return _error(400, "amount must be a positive integer.", "parameter_invalid_integer")
    if amount > remaining:
        return _error(400, f"Refund amount ({amount}) is greater than unrefunded amount ({remaining}).",
                      "amount_too_large")
    refund = {"id": "rf_test_" + secrets.token_hex(10), "object": "refund", "amount": amount,
              "currency": session["currency"], "status": "succeeded", "failure_reason": None,
              "created": int(time.time())}
    if session.get("refund_declined"):
        refund.update(status="failed", failure_reason="The card issuer declined the refund.")
    else:
        session["amount_refunded"] += amount
        session["status"] = "refunded" if session["amount_refunded"] == session["amount"] else "partially_refunded"
    session["refunds"].append(refund)
    if key:
        session["refund_keys"][key] = refund["id"]
    save(CODE, "session", session_id, session)
    return jsonify(refund)


# --- the shopper's pages ------------------------------------------------------------------------------------


def _finish(session, status, failure=None):
    session["status"] = status
    if status == "succeeded":
        session["charge"] = "ch_test_" + secrets.token_hex(10)
    if failure:
        session["failure_code"], session["failure_message"] = failure
    save(CODE, "session", session["id"], session)
    _notify(session)
    return redirect(f"{session['return_url']}?session_id={session['id']}", code=303)


def _notify(session):
    event = {"id": "evt_test_" + secrets.token_hex(10), "object": "event",
             "type": f"checkout_session.{session['status']}", "created": int(time.time()),
             "data": {"object": _public(session)}}
    body = json.dumps(event, separators=(",", ":")).encode()
    send_later("POST", session["notify_url"], delays=WEBHOOK_RETRIES, data=body,
               sign="app.sandbox.testcard.signed_headers")


def signed_headers(body):
    """Sign at send time, as a real acquirer does on every attempt."""
    return {"Content-Type": "application/json",
            SIGNATURE_HEADER: sign(SANDBOX_CREDENTIALS["webhook_secret"], body)}


@bp.route("/pay/<session_id>", methods=["GET", "POST"])
def card_page(session_id):
    session = _session_or_404(session_id)
    if session["status"] == "requires_otp":
        return redirect(f"/sandbox/{CODE}/pay/{session_id}/otp", code=303)
    if session["status"] != "open":
        return render_template("sandbox/testcard/done.html", session=session), 409
    errors, values = {}, {}
    if request.method == "POST":
        if request.form.get("outcome") == "cancel":
            return _finish(session, "cancelled", ("cancelled", "The shopper cancelled at the acquirer."))
        number = "".join(ch for ch in request.form.get("card_number", "") if ch.isdigit())
        values = {"name": request.form.get("name", "")[:100], "exp": request.form.get("exp", "")[:10]}
        # AcquireMock's 4444… card fails the Luhn check; test cards are known numbers, everything else must pass.
        if number not in TEST_CARDS and not luhn_ok(number):
            errors["card_number"] = "This card number is not valid."
        if not expiry_ok(values["exp"]):
            errors["exp"] = "Enter a future expiry date as MM/YY."
        cvc = request.form.get("cvc", "")
        if not (cvc.isdigit() and 3 <= len(cvc) <= 4):
            errors["cvc"] = "Enter the 3 or 4 digit security code."
        if not values["name"].strip():
            errors["name"] = "Enter the name on the card."
        if not errors:
            session["card"] = {"brand": brand(number), "last4": number[-4:]}
            session["refund_declined"] = number == REFUND_DECLINED_CARD
            if number in DECLINED:
                return _finish(session, "failed", DECLINED[number])
            if number == OTP_CARD:
                session["status"] = "requires_otp"
                save(CODE, "session", session_id, session)
                return redirect(f"/sandbox/{CODE}/pay/{session_id}/otp", code=303)
            return _finish(session, "succeeded")
    return render_template("sandbox/testcard/card.html", session=session, errors=errors, values=values), (
        422 if errors else 200)


@bp.route("/pay/<session_id>/otp", methods=["GET", "POST"])
def otp_page(session_id):
    session = _session_or_404(session_id)
    if session["status"] != "requires_otp":
        return redirect(f"/sandbox/{CODE}/pay/{session_id}", code=303)
    error = None
    if request.method == "POST":
        if request.form.get("outcome") == "cancel":
            return _finish(session, "cancelled", ("cancelled", "The shopper cancelled at the acquirer."))
        if hmac.compare_digest(request.form.get("otp", "").strip().encode(), OTP_CODE.encode()):
            return _finish(session, "succeeded")
        session["otp_attempts"] += 1
        if session["otp_attempts"] >= MAX_OTP_ATTEMPTS:
            return _finish(session, "failed", ("authentication_failed", "Too many wrong one-time codes."))
        save(CODE, "session", session_id, session)
        left = MAX_OTP_ATTEMPTS - session["otp_attempts"]
        error = f"That code is not right. {left} attempt{'s' if left > 1 else ''} left."
    return render_template("sandbox/testcard/otp.html", session=session, error=error, otp_hint=OTP_CODE), (
        422 if error else 200)
