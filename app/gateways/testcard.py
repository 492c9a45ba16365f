"""The built-in test acquirer (`testcard`): a card acquirer in the style of AcquireMock and Stripe.

Wire protocol (served offline by app/sandbox/testcard.py):
- `POST /v1/checkout_sessions` (Bearer secret key, JSON) → `{id: "cs_test_…", url, status}`; the shopper
  enters a card at `url`; 4444 4444 4444 4444 asks for a one-time code.
- The shopper's browser comes back to our return URL with `?session_id=…`; we never trust that, we ask
  `GET /v1/checkout_sessions/<id>` instead.
- Webhooks to our notify URL: JSON event `{id: "evt_…", type: "checkout_session.<status>", data: {object}}`
  signed `Testcard-Signature: t=<unix>,v1=<hex HMAC-SHA256(webhook_secret, "<t>.<raw body>")>`.
- `POST /v1/checkout_sessions/<id>/refunds` `{amount}` with an `Idempotency-Key` header.
Amounts are our own minor units; no scaling.
"""

import time

from app.gateways.base import (
    Ack,
    CallbackError,
    CallbackResult,
    Gateway,
    GatewayError,
    Lookup,
    Outcome,
    Reason,
    Redirect,
    RefundResult,
    StartResult,
    unix_seconds,
)
from app.security import constant_time_equals, hmac_sha256_hex

SIGNATURE_HEADER = "Testcard-Signature"
TOLERANCE_SECONDS = 300

_OUTCOMES = {
    "succeeded": Outcome.SUCCEEDED,
    "failed": Outcome.FAILED,
    "expired": Outcome.EXPIRED,
    "cancelled": Outcome.CANCELLED,
    "open": Outcome.NONE,  # the shopper has not submitted a card: nothing the acquirer could still confirm
    "requires_otp": Outcome.PROCESSING,
}
#: The acquirer's failure codes → what the shopper is told.
REASONS = {
    "card_declined": Reason.DECLINED,
    "insufficient_funds": Reason.INSUFFICIENT_FUNDS,
    "authentication_failed": Reason.WRONG_CODE,
    "cancelled": Reason.CANCELLED,
}


def sign(secret, body, timestamp=None):
    """The Testcard-Signature header value for a raw body."""
    t = int(timestamp if timestamp is not None else time.time())
    return f"t={t},v1={hmac_sha256_hex(secret, f'{t}.'.encode() + body)}"


def verify_signature(secret, body, header, now=None, tolerance=TOLERANCE_SECONDS):
    """True if any v1 in the header signs `body` with `secret` and t is within the tolerance."""
    if not header or not secret:
        return False
    timestamp, candidates = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    expected = hmac_sha256_hex(secret, f"{timestamp}.".encode() + body)
    if not any(constant_time_equals(expected, c) for c in candidates):
        return False
    return abs((now or time.time()) - timestamp) <= tolerance


class TestCardGateway(Gateway):
    code = "testcard"
    name = "Card (test acquirer)"
    base_urls = {}  # only ever the built-in simulator
    credential_fields = {"secret_key": "Secret key", "webhook_secret": "Webhook signing secret"}
    local_kinds = frozenset({"webhook"})  # Testcard-Signature only
    #: Refunds carry our refund id as Idempotency-Key; the acquirer answers a repeat with the first refund.
    refund_idempotent = True
    can_cancel = True

    def _auth(self, ctx):
        return {"Authorization": f"Bearer {ctx.credentials.get('secret_key', '')}"}

    def _call(self, method, ctx, path, **kwargs):
        headers = {**self._auth(ctx), **kwargs.pop("headers", {})}
        response = self.http(method, f"{ctx.base_url}{path}", headers=headers, **kwargs)
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400 or not isinstance(data, dict):
            error = (data or {}).get("error", {}) if isinstance(data, dict) else {}
            raise GatewayError(error.get("message") or f"HTTP {response.status_code}",
                               code=error.get("code"), raw=data)
        return data

    def start(self, payment, ctx):
        session = self._call("POST", ctx, "/v1/checkout_sessions", json={
            "amount": payment.amount,
            "currency": payment.currency,
            "reference": payment.order_id,
            "description": payment.description or payment.reference,
            "merchant_name": payment.merchant_name,
            "return_url": ctx.callback_url("return"),
            "notify_url": ctx.callback_url("webhook"),
            "expires_at": unix_seconds(payment.expires_at),
        })
        return StartResult(Redirect(session["url"]), gateway_reference=session["id"], raw=session)

    def identify(self, kind, req):
        if kind == "return":
            return Lookup(gateway_reference=req.args.get("session_id"))
        if kind == "webhook":
            body = req.json() or {}
            session = (body.get("data") or {}).get("object") or {}
            return Lookup(order_id=session.get("reference"), gateway_reference=session.get("id"))
        raise CallbackError(Ack.NOT_FOUND, f"unknown callback {kind}")

    def verify_callback(self, kind, req, payment, ctx):
        if kind == "return":
            # The browser's word is nothing: ask the acquirer, server to server.
            return self.query(payment, ctx)
        header = req.headers.get(SIGNATURE_HEADER)
        if not verify_signature(ctx.credentials.get("webhook_secret"), req.body, header):
            raise CallbackError(Ack.INVALID_SIGNATURE, "missing or invalid Testcard-Signature")
        event = req.json() or {}
        session = (event.get("data") or {}).get("object") or {}
        if session.get("id") != payment.gateway_reference and session.get("reference") != payment.order_id:
            raise CallbackError(Ack.NOT_FOUND, "the event is for another session")
        return self._result(session, event_id=event.get("id"), raw=event)

    def query(self, payment, ctx):
        if not payment.gateway_reference:
            raise GatewayError("the payment has no test acquirer session")
        session = self._call("GET", ctx, f"/v1/checkout_sessions/{payment.gateway_reference}")
        return self._result(session, raw=session)

    def cancel(self, payment, ctx):
        if not payment.gateway_reference:
            raise GatewayError("the attempt has no test acquirer session")
        try:
            session = self._call("POST", ctx, f"/v1/checkout_sessions/{payment.gateway_reference}/expire")
        except GatewayError as exc:
            if exc.code != "session_not_open":
                raise
            return self.query(payment, ctx)  # paid, failed or expired meanwhile: say which
        return self._result(session, raw=session)

    def _result(self, session, *, event_id=None, raw=None):
        outcome = _OUTCOMES.get(session.get("status"), Outcome.NONE)
        if session.get("status") in ("refunded", "partially_refunded"):
            outcome = Outcome.SUCCEEDED  # it was paid; refunds are tracked by our refund records
        card = session.get("card") or {}
        amount = session.get("amount")
        return CallbackResult(
            outcome=outcome,
            amount=amount if isinstance(amount, int) and not isinstance(amount, bool) else None,
            currency=session.get("currency"),
            order_id=session.get("reference"),
            gateway_reference=session.get("id"),
            gateway_transaction_id=session.get("charge"),
            failure_code=session.get("failure_code"),
            reason=REASONS.get(session.get("failure_code")),
            message=session.get("failure_message"),
            card_summary=f"{card['brand']} •••• {card['last4']}" if card.get("last4") else None,
            event_id=event_id,
            raw=raw,
        )

    def refund(self, payment, amount, refund_id, ctx):
        try:
            data = self._call("POST", ctx, f"/v1/checkout_sessions/{payment.gateway_reference}/refunds",
                              json={"amount": amount}, headers={"Idempotency-Key": refund_id})
        except GatewayError as exc:
            if exc.raw is not None:  # the acquirer answered with a refusal
                return RefundResult("failed", message=str(exc), raw=exc.raw)
            raise
        return RefundResult(data.get("status", "failed"), gateway_reference=data.get("id"),
                            message=data.get("failure_reason"), raw=data)
