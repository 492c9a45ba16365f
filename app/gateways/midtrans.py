"""Midtrans Snap: create a Snap transaction, redirect to its page, take the HTTP notification, confirm it
with the Core API status before acting; status, cancel and refund through the Core API.

Wire protocol (served offline by app/sandbox/midtrans.py; the official `midtransclient` works against it):
- Auth: HTTP Basic, user = server key, empty password; JSON in and out.
- `POST {snap}/snap/v1/transactions` with transaction_details {order_id, gross_amount}, item_details (price ×
  quantity summing exactly to gross_amount; discounts are negative lines), customer_details, expiry
  {start_time "yyyy-MM-dd HH:mm:ss +0700", unit, duration}, callbacks.finish → 201 {token, redirect_url}.
  `X-Override-Notification` points the notifications of this transaction at our callback URL.
- Notification: POST JSON with `signature_key = sha512(order_id + status_code + gross_amount + server_key)`,
  gross_amount as Midtrans formats it ("10000.00"). We verify it, then ask `GET {core}/v2/<order_id>/status`
  and act only on that answer.
- The browser comes back to callbacks.finish with `?order_id&status_code&transaction_status`: unsigned, shown only.
- `POST {core}/v2/<order_id>/refund` {refund_key, amount, reason}; `POST {core}/v2/<order_id>/cancel`.
- Fraud review: a card capture with fraud_status `challenge` is approved or denied by the merchant:
  `POST {core}/v2/<order_id>/approve` / `/deny` (no body) → 200 with the transaction as it now is
  (capture/accept, or deny/deny); 412 for any other transaction; then the notification of the new status.
Snap and the Core API live on different hosts at Midtrans (app.… / api.…); our simulator serves both.
Amounts are whole rupiah, which is also our minor unit for IDR.
"""

import hashlib
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from app import money
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
    as_utc,
)
from app.security import constant_time_equals

WIB = timezone(timedelta(hours=7))
#: Snap host → Core API host at Midtrans; any other base (our simulator) serves both.
CORE_HOSTS = {"https://app.sandbox.midtrans.com": "https://api.sandbox.midtrans.com",
              "https://app.midtrans.com": "https://api.midtrans.com"}
NAME_LIMIT = 50


def signature_key(order_id, status_code, gross_amount, server_key):
    return hashlib.sha512(f"{order_id}{status_code}{gross_amount}{server_key}".encode()).hexdigest()


def verify_notification(body, server_key):
    """True if the notification's signature_key was made with `server_key` over its own fields."""
    given = body.get("signature_key")
    if not server_key or not isinstance(given, str):
        return False
    fields = [body.get(k) for k in ("order_id", "status_code", "gross_amount")]
    if not all(isinstance(f, str) for f in fields):
        return False
    return constant_time_equals(signature_key(*fields, server_key), given.lower())


def outcome_of(transaction_status, fraud_status):
    """(outcome, needs_review) for Midtrans' transaction_status × fraud_status."""
    if transaction_status == "capture":
        if fraud_status == "challenge":
            return Outcome.PROCESSING, True
        if fraud_status == "deny":
            return Outcome.FAILED, False
        return Outcome.SUCCEEDED, False
    return {
        "settlement": Outcome.SUCCEEDED,
        "pending": Outcome.PROCESSING,
        "authorize": Outcome.PROCESSING,
        "deny": Outcome.FAILED,
        "failure": Outcome.FAILED,
        "cancel": Outcome.CANCELLED,
        "expire": Outcome.EXPIRED,
        "refund": Outcome.REFUNDED,
        "partial_refund": Outcome.PARTIALLY_REFUNDED,
    }.get(transaction_status, Outcome.NONE), False


def parse_amount(value):
    """Midtrans' gross_amount ("10000.00", or a number) → whole rupiah; None if it is not one."""
    try:
        return money.to_minor(value, "IDR") if value is not None and not isinstance(value, bool) else None
    except money.MoneyError:
        return None


def item_lines(payment):
    """item_details whose price × quantity sum exactly to the payment amount."""
    lines = []
    for i, item in enumerate(payment.items or []):
        lines.append({
            "id": (item.get("sku") or f"{item.get('type', 'item')}-{i + 1}")[:NAME_LIMIT],
            "price": item["unit_amount"],
            "quantity": item["quantity"],
            "name": item["name"][:NAME_LIMIT],
            **({"category": item["type"]} if item.get("type") not in (None, "item") else {}),
        })
    if sum(line["price"] * line["quantity"] for line in lines) != payment.amount:
        lines = [{"id": "order", "price": payment.amount, "quantity": 1,
                  "name": (payment.description or payment.reference or "Order")[:NAME_LIMIT]}]
    return lines


def customer_details(customer):
    first, _, last = (customer.get("name") or "").partition(" ")
    details = {"first_name": first, "last_name": last, "email": customer.get("email"), "phone": customer.get("phone")}
    return {k: v for k, v in details.items() if v}


def expiry(expires_at, now=None):
    """Snap's expiry so that start_time + duration minutes is exactly our expires_at."""
    end = as_utc(expires_at)
    now = now or datetime.now(UTC)
    minutes = max(1, math.ceil((end - now).total_seconds() / 60))
    start = (end - timedelta(minutes=minutes)).astimezone(WIB)
    return {"start_time": start.strftime("%Y-%m-%d %H:%M:%S +0700"), "unit": "minute", "duration": minutes}


class MidtransGateway(Gateway):
    code = "midtrans"
    name = "Midtrans"
    currencies = frozenset({"IDR"})
    base_urls = {"sandbox": "https://app.sandbox.midtrans.com", "live": "https://app.midtrans.com"}
    credential_fields = {"server_key": "Server key", "client_key": "Client key"}
    browser_kinds = frozenset({"finish"})
    #: Midtrans docs (Refund Transactions): `refund_key` is the merchant's unique refund id; a retry with the
    #: same refund_key is the same refund request.
    refund_idempotent = True
    can_cancel = True
    can_review = True

    def _core(self, ctx):
        return CORE_HOSTS.get(ctx.base_url, ctx.base_url)

    def _call(self, method, url, ctx, **kwargs):
        response = self.http(method, url, auth=(ctx.credentials.get("server_key", ""), ""),
                             headers={"Accept": "application/json", **kwargs.pop("headers", {})}, **kwargs)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise GatewayError(f"Midtrans answered HTTP {response.status_code} without JSON")
        status_code = str(data.get("status_code", response.status_code))
        if response.status_code >= 400 or (status_code.isdigit() and int(status_code) >= 400
                                           and status_code != "407"):
            messages = data.get("error_messages") or [data.get("status_message") or f"HTTP {response.status_code}"]
            raise GatewayError("; ".join(map(str, messages)), code=status_code, raw=data)
        return data

    def start(self, payment, ctx):
        body = {
            "transaction_details": {"order_id": payment.order_id, "gross_amount": payment.amount},
            "item_details": item_lines(payment),
            "customer_details": customer_details(payment.customer),
            "expiry": expiry(payment.expires_at),
            "callbacks": {"finish": ctx.callback_url("finish")},
        }
        data = self._call("POST", f"{ctx.base_url}/snap/v1/transactions", ctx, json=body,
                          headers={"X-Override-Notification": ctx.callback_url("notification")})
        if not data.get("token") or not data.get("redirect_url"):
            raise GatewayError("Midtrans gave no Snap token", raw=data)
        return StartResult(Redirect(data["redirect_url"]), gateway_reference=payment.order_id,
                           gateway_data={"token": data["token"]}, raw={"request": body, "response": data})

    def identify(self, kind, req):
        if kind == "notification":
            body = req.json()
            if body is None or not body.get("order_id"):
                raise CallbackError(Ack.INVALID_REQUEST, "not a Midtrans notification")
            return Lookup(order_id=str(body["order_id"]))
        if kind == "finish":
            return Lookup(order_id=req.args.get("order_id"))
        raise CallbackError(Ack.NOT_FOUND, f"unknown callback {kind}")

    def verify_callback(self, kind, req, payment, ctx):
        if kind == "finish":  # unsigned browser parameters: shown, never applied
            outcome, review = outcome_of(req.args.get("transaction_status"), None)
            return CallbackResult(outcome, order_id=req.args.get("order_id"), trusted=False, raw=req.raw())
        body = req.json() or {}
        if not verify_notification(body, ctx.credentials.get("server_key")):
            raise CallbackError(Ack.INVALID_SIGNATURE, "signature_key does not match")
        if parse_amount(body.get("gross_amount")) != payment.amount:
            raise CallbackError(Ack.INVALID_AMOUNT, f"gross_amount {body.get('gross_amount')!r} is not ours")
        status = self._call("GET", f"{self._core(ctx)}/v2/{payment.order_id}/status", ctx)
        return self._result(status, raw={"notification": body, "status": status})

    def _result(self, data, raw=None):
        outcome, review = outcome_of(data.get("transaction_status"), data.get("fraud_status"))
        currency = data.get("currency") or "IDR"
        failed = outcome in (Outcome.FAILED, Outcome.CANCELLED, Outcome.EXPIRED)
        return CallbackResult(
            outcome=outcome,
            amount=parse_amount(data.get("gross_amount")),
            currency=currency,
            order_id=data.get("order_id"),
            gateway_reference=data.get("order_id"),
            gateway_transaction_id=data.get("transaction_id"),
            needs_review=review,
            failure_code=f"midtrans_{data.get('transaction_status')}" if failed else None,
            # deny: refused by Midtrans' fraud detection or the bank
            reason=Reason.BLOCKED if data.get("transaction_status") == "deny" or data.get("fraud_status") == "deny"
            else None,
            message=data.get("status_message") if failed or review else None,
            card_summary=(f"{data.get('bank', '').upper()} {data.get('masked_card', '')}".strip() or None)
            if data.get("masked_card") else None,
            raw=raw or data,
        )

    def query(self, payment, ctx):
        try:
            data = self._call("GET", f"{self._core(ctx)}/v2/{payment.order_id}/status", ctx)
        except GatewayError as exc:
            if exc.code == "404":  # no payment attempt yet on the Snap page
                return CallbackResult(Outcome.NONE, message=str(exc), raw=exc.raw)
            raise
        return self._result(data)

    def cancel(self, payment, ctx):
        """Cancel the order's transaction (pending, authorised or a capture held for review) and report
        Midtrans' status after it. An order with no transaction yet (the shopper never chose on Snap) has
        nothing to cancel: its status answer (404) comes back as Outcome.NONE."""
        try:
            self._call("POST", f"{self._core(ctx)}/v2/{payment.order_id}/cancel", ctx)
        except GatewayError as exc:
            if exc.code not in ("404", "412"):  # 412: settled or ended already; the status says which
                raise
        return self.query(payment, ctx)

    def review(self, payment, decision, ctx):
        if decision not in ("approve", "deny"):
            raise ValueError(f"unknown review decision {decision!r}")
        data = self._call("POST", f"{self._core(ctx)}/v2/{payment.order_id}/{decision}", ctx)
        return replace(self._result(data), message=data.get("status_message"))  # "Success, transaction is approved"

    def refund(self, payment, amount, refund_id, ctx):
        try:
            data = self._call("POST", f"{self._core(ctx)}/v2/{payment.order_id}/refund", ctx,
                              json={"refund_key": refund_id, "amount": amount, "reason": "Refund from Paysmith"})
        except GatewayError as exc:
            if exc.raw is not None:
                return RefundResult("failed", message=str(exc), raw=exc.raw)
            raise
        return RefundResult("succeeded", gateway_reference=str(data.get("refund_chargeback_id") or refund_id),
                            message=data.get("status_message"), raw=data)
