"""Khalti ePayment (KPG-2): initiate, redirect to Khalti's page, look the payment up when the shopper
returns, refund.

Wire protocol (served offline by app/sandbox/khalti.py):
- Auth: `Authorization: Key <secret key>`; JSON in and out.
- `POST {base}/api/v2/epayment/initiate/` {return_url, website_url, amount (paisa, at least 1000),
  purchase_order_id (our payment id), purchase_order_name, customer_info, amount_breakdown} →
  {pidx, payment_url, expires_at, expires_in}. Validation errors: {"<field>": ["…"], "error_key": …}.
- The shopper comes back to return_url with `?pidx&status&amount&total_amount&transaction_id&…`. Nothing
  in it is signed, so it is never trusted: we `POST {base}/api/v2/epayment/lookup/` {pidx} and act on that,
  requiring `Completed` and the exact amount. Lookup answers 200 for Completed/Pending/Initiated/Refunded/
  Partially Refunded and 400 for Expired/User canceled.
- `POST {base}/api/merchant-transaction/<transaction_id>/refund/`: empty body = full, {"amount"} = partial.
Khalti has no server-to-server notification for ePayment: the return plus the lookup is the only path,
and reconciliation (query) settles shoppers who never came back. NPR's minor unit is the paisa: no scaling.
"""

from dataclasses import replace

from app.gateways.base import (
    Ack,
    CallbackError,
    CallbackResult,
    Gateway,
    GatewayError,
    Lookup,
    Outcome,
    Redirect,
    RefundResult,
    StartResult,
)

MIN_AMOUNT = 1000  # paisa (Rs. 10)
STATUSES = {
    "Completed": Outcome.SUCCEEDED,
    "Pending": Outcome.PROCESSING,
    "Initiated": Outcome.PROCESSING,
    "Refunded": Outcome.REFUNDED,
    "Partially Refunded": Outcome.PARTIALLY_REFUNDED,
    "Partially refunded": Outcome.PARTIALLY_REFUNDED,  # the docs' lookup payload table spells it so
    "Expired": Outcome.EXPIRED,
    "User canceled": Outcome.CANCELLED,
    "Failed": Outcome.FAILED,
}


def result_from_lookup(data, payment_id=None):
    """A lookup answer → CallbackResult (amount only for what moved money)."""
    status = data.get("status")
    outcome = STATUSES.get(status, Outcome.NONE)
    amount = data.get("total_amount")
    amount = amount if isinstance(amount, int) and not isinstance(amount, bool) else None
    fee = data.get("fee")
    ended = outcome in (Outcome.FAILED, Outcome.CANCELLED, Outcome.EXPIRED)
    return CallbackResult(
        outcome=outcome,
        amount=amount if outcome in (Outcome.SUCCEEDED, Outcome.REFUNDED, Outcome.PARTIALLY_REFUNDED) else None,
        currency="NPR",
        order_id=payment_id,
        gateway_reference=data.get("pidx"),
        gateway_transaction_id=data.get("transaction_id") or None,
        fee_amount=fee if isinstance(fee, int) and not isinstance(fee, bool) and outcome == Outcome.SUCCEEDED else None,
        failure_code=f"khalti_{status.lower().replace(' ', '_')}" if ended and status else None,
        message=f"Khalti reports {status}" if ended else None,
        raw=data,
    )


class KhaltiGateway(Gateway):
    code = "khalti"
    name = "Khalti"
    currencies = frozenset({"NPR"})
    base_urls = {"sandbox": "https://dev.khalti.com", "live": "https://khalti.com"}
    credential_fields = {"secret_key": "Live secret key"}
    browser_kinds = frozenset({"return"})
    #: The refund API takes no id of ours: a repeated call is another refund.
    refund_idempotent = False

    def _call(self, ctx, path, body, *, ok_statuses=(200,)):
        response = self.http("POST", f"{ctx.base_url}{path}", json=body,
                             headers={"Authorization": f"Key {ctx.credentials.get('secret_key', '')}"})
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code not in ok_statuses or not isinstance(data, dict):
            raise GatewayError(_error_text(data, response.status_code), code=str(response.status_code), raw=data)
        return data

    def start(self, payment, ctx):
        customer = {k: payment.customer[k] for k in ("name", "email", "phone") if payment.customer.get(k)}
        body = {
            "return_url": ctx.callback_url("return"),
            "website_url": ctx.public_base_url,
            "amount": payment.amount,
            "purchase_order_id": payment.order_id,
            "purchase_order_name": (payment.description or payment.reference)[:100],
        }
        if customer:
            body["customer_info"] = customer
        lines = [i for i in payment.items or [] if i["unit_amount"] >= 0]
        if payment.items and len(lines) == len(payment.items):
            body["amount_breakdown"] = [{"label": i["name"][:100], "amount": i["unit_amount"] * i["quantity"]}
                                        for i in lines]
        data = self._call(ctx, "/api/v2/epayment/initiate/", body)
        if not data.get("pidx") or not data.get("payment_url"):
            raise GatewayError("Khalti gave no pidx", raw=data)
        return StartResult(Redirect(data["payment_url"]), gateway_reference=data["pidx"],
                           gateway_data={"expires_at": data.get("expires_at")}, raw={"request": body, "response": data})

    def identify(self, kind, req):
        if kind != "return":
            raise CallbackError(Ack.NOT_FOUND, f"unknown callback {kind}")
        if not req.args.get("purchase_order_id") and not req.args.get("pidx"):
            raise CallbackError(Ack.INVALID_REQUEST, "no purchase_order_id or pidx")
        return Lookup(order_id=req.args.get("purchase_order_id") or None, gateway_reference=req.args.get("pidx"))

    def verify_callback(self, kind, req, payment, ctx):
        # The query string is the shopper's word; only Khalti's lookup counts.
        if req.args.get("pidx") and req.args.get("pidx") != payment.gateway_reference:
            raise CallbackError(Ack.NOT_FOUND, "the pidx is not this payment's")
        result = self.query(payment, ctx)
        return replace(result, raw={"return": req.args, "lookup": result.raw})

    def query(self, payment, ctx):
        if not payment.gateway_reference:
            raise GatewayError("the payment has no Khalti pidx")
        data = self._call(ctx, "/api/v2/epayment/lookup/", {"pidx": payment.gateway_reference},
                          ok_statuses=(200, 400))
        if "status" not in data:  # a 400 without a status is an error, not an answer
            raise GatewayError(_error_text(data, 400), raw=data)
        return result_from_lookup(data, payment.order_id)

    def refund(self, payment, amount, refund_id, ctx):
        if not payment.gateway_transaction_id:
            return RefundResult("failed", message="no Khalti transaction id to refund")
        body = {} if amount == payment.amount else {"amount": amount}  # an empty body refunds it all
        try:
            data = self._call(ctx, f"/api/merchant-transaction/{payment.gateway_transaction_id}/refund/", body)
        except GatewayError as exc:
            if exc.raw is not None:
                return RefundResult("failed", message=str(exc), raw=exc.raw)
            raise
        return RefundResult("succeeded", message=data.get("detail"), raw=data)


def _error_text(data, status):
    if not isinstance(data, dict):
        return f"Khalti answered HTTP {status}"
    if data.get("detail"):
        return str(data["detail"])
    parts = [f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in data.items() if k != "error_key"]
    return "; ".join(parts) or f"Khalti answered HTTP {status}"
