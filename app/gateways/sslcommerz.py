"""SSLCommerz (API v4): Bangladesh's card and mobile-banking aggregator (served offline by app/sandbox/sslcommerz.py).

Wire protocol (developer.sslcommerz.com v4; the official PHP/Python libraries; ../shared/gateways.md §5):
- Session: `POST /gwprocess/v4/api.php`, form-encoded, `store_id` + `store_passwd` in the body,
  `total_amount` as a decimal string, `tran_id` = our payment id → `{"status":"SUCCESS","sessionkey",
  "GatewayPageURL"}` or `{"status":"FAILED","failedreason"}`. The shopper is redirected to GatewayPageURL.
- IPN: a form POST to our `ipn_url` signed with `verify_sign` = md5 of the fields named in `verify_key`
  plus `store_passwd=md5(password)`, sorted and joined `k=v&…` (and `verify_sign_sha2`, the same with
  sha256). A signed IPN is still only a claim: a VALID one is confirmed with the order validation API by
  `val_id` (`VALID` the first time, `VALIDATED` after) before anything is applied; other statuses are
  confirmed with the transaction query API.
- The shopper's browser comes back with a form POST to success/fail/cancel URLs carrying the same fields;
  we never act on them, we ask SSLCommerz (transaction query by `tran_id`).
- Refund and refund status are GETs on `/validator/api/merchantTransIDvalidationAPI.php`, like the transaction
  query. Refund: `bank_tran_id`, `refund_trans_id` (our refund id, ≤ 30 characters), `refund_amount`,
  `refund_remarks`, `refe_id` (optional) → `APIConnect`, `bank_tran_id`, `trans_id`, `refund_ref_id`, `status` (success / failed /
  processing), `errorReason`. Refund status: `refund_ref_id` → `APIConnect`, `bank_tran_id`, `tran_id`,
  `refund_ref_id`, `initiated_on`, `refunded_on`, `status` (refunded / processing / cancelled), `errorReason`.
  Those two status lists and APIConnect's values (DONE / FAILED / INACTIVE / INVALID_REQUEST) are written from
  memory of SSLCommerz's official docs, not checked against a copy.
  Is `refund_trans_id` required, and what does a repeated one get? Not decisive: the official clients never
  send it (sslcommerz-lib 1.0 `init_refund`; sslcommerz-lts 1.2.0 `initiateRefund`, "officially supported by
  SSLCommerz Integration Team", drops it even when given), while integrations written since say SSLCommerz
  made it mandatory ("mandatory since Feb 2024", a TypeScript port of sslcommerz-lts; "string(30) max -
  Mandatory parameter introduced 24/02/2025", a C# integration). We always send it, which suits both. No
  source shows the answer to a repeated refund_trans_id, so we do not count on SSLCommerz de-duplicating:
  `refund_idempotent` is False (an unknown outcome waits for a person rather than risking a second refund).
Amounts travel as decimal strings in major units; non-BDT payments are settled in BDT, and SSLCommerz
reports the original currency and amount as `currency_type`/`currency_amount` (the official PHP library
checks those for non-BDT payments, as we do).
"""

import hashlib

from app import money
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
from app.security import constant_time_equals

SESSION_PATH = "/gwprocess/v4/api.php"
VALIDATION_PATH = "/validator/api/validationserverAPI.php"
TRANSACTION_PATH = "/validator/api/merchantTransIDvalidationAPI.php"

#: Fields an IPN signature must cover before we rely on it (a signature over less proves too little).
REQUIRED_SIGNED = frozenset({"tran_id", "val_id", "amount", "currency", "status", "store_id"})

_STATUSES = {
    "VALID": Outcome.SUCCEEDED,
    "VALIDATED": Outcome.SUCCEEDED,
    "PENDING": Outcome.PROCESSING,
    "FAILED": Outcome.FAILED,
    "CANCELLED": Outcome.CANCELLED,
    "EXPIRED": Outcome.EXPIRED,
    "UNATTEMPTED": Outcome.NONE,
}


def _md5(text):
    return hashlib.md5(text.encode()).hexdigest()


def _sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def signing_string(fields, password_hash):
    """The string SSLCommerz signs: the `verify_key` fields (raw values) + store_passwd, sorted, `k=v&…`.

    Returns None when `verify_key` names a field that is not there (the official Python library fails on it).
    """
    keys = [k for k in (fields.get("verify_key") or "").split(",") if k]
    if not keys or any(k not in fields for k in keys):
        return None
    data = {k: fields[k] for k in keys}
    data["store_passwd"] = password_hash
    return "&".join(f"{k}={data[k]}" for k in sorted(data))


def verify_sign(fields, store_passwd):
    """True if `verify_sign` (md5) — and `verify_sign_sha2` (sha256) when present — sign `fields`."""
    if not store_passwd or not fields.get("verify_sign"):
        return False
    text = signing_string(fields, _md5(store_passwd))
    if text is None or not constant_time_equals(_md5(text), str(fields["verify_sign"])):
        return False
    if fields.get("verify_sign_sha2"):
        text2 = signing_string(fields, _sha256(store_passwd))
        return constant_time_equals(_sha256(text2), str(fields["verify_sign_sha2"]))
    return True


def _card_summary(tx):
    """"VISA •••• 6675", "Dbbl Mobile Banking •••• 4455" (from card_brand/card_type and the masked card_no)."""
    brand, kind = tx.get("card_brand") or "", tx.get("card_type") or ""
    if not brand or brand == "MOBILEBANKING":
        brand = kind.split("-", 1)[-1]
    last4 = "".join(ch for ch in str(tx.get("card_no") or "") if ch.isdigit())[-4:]
    text = f"{brand} •••• {last4}" if brand and last4 else brand
    return text[:40] or None


class SSLCommerzGateway(Gateway):
    code = "sslcommerz"
    name = "SSLCommerz (cards, mobile banking)"
    #: BDT, and the foreign currencies SSLCommerz converts to BDT that Paysmith supports.
    currencies = frozenset({"BDT", "USD", "EUR", "SGD", "INR", "MYR"})
    base_urls = {"sandbox": "https://sandbox.sslcommerz.com", "live": "https://securepay.sslcommerz.com"}
    credential_fields = {"store_id": "Store ID", "store_passwd": "Store password"}
    browser_kinds = frozenset({"success", "fail", "cancel"})
    #: A refund carries our refund id as `refund_trans_id`, but nothing we found says how SSLCommerz answers a
    #: repeated one (the official libraries do not even send it; see the module docstring), so a refund call
    #: whose outcome is unknown is not sent again: it waits for a person.
    refund_idempotent = False
    #: `multi_card_name`: restrict the hosted page to these channels (empty = every channel of the store).
    channel = ""

    # --- calls ----------------------------------------------------------------------------------------------

    def _auth(self, ctx):
        return {"store_id": ctx.credentials.get("store_id", ""), "store_passwd": ctx.credentials.get("store_passwd", "")}

    def _json(self, response):
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400 or not isinstance(data, dict):
            raise GatewayError(f"{self.name} answered HTTP {response.status_code}", raw=data)
        return data

    def _get(self, ctx, path, **params):
        data = self._json(self.http("GET", f"{ctx.base_url}{path}",
                                    params={**params, **self._auth(ctx), "v": 1, "format": "json"}))
        if data.get("APIConnect") not in (None, "DONE"):
            # INVALID_REQUEST, FAILED (authentication), INACTIVE (store) — from memory of the official docs
            raise GatewayError(f"{self.name} refused the call: {data['APIConnect']}", code=data["APIConnect"],
                               raw=data)
        return data

    # --- start --------------------------------------------------------------------------------------------

    def session_fields(self, payment, ctx):
        """The session request (without credentials)."""
        customer = payment.customer
        goods = [i for i in payment.items if i.get("type", "item") == "item"]
        fields = {
            "total_amount": money.format_plain(payment.amount, payment.currency),
            "currency": payment.currency,
            "tran_id": payment.order_id,
            "success_url": ctx.callback_url("success"),
            "fail_url": ctx.callback_url("fail"),
            "cancel_url": ctx.callback_url("cancel"),
            "ipn_url": ctx.callback_url("ipn"),
            "product_name": (", ".join(i["name"] for i in goods) or payment.description or payment.reference)[:255],
            "product_category": "general",
            "product_profile": "general",
            "num_of_item": sum(i["quantity"] for i in goods) or 1,
            "shipping_method": "NO",
            # SSLCommerz requires these customer fields; we send what the merchant gave us.
            "cus_name": customer.get("name") or "Customer",
            "cus_email": customer.get("email") or "customer@example.invalid",
            "cus_phone": customer.get("phone") or "N/A",
            "cus_add1": customer.get("address") or "N/A",
            "cus_city": customer.get("city") or "Dhaka",
            "cus_postcode": customer.get("postcode") or "",
            "cus_country": customer.get("country") or "Bangladesh",
            "value_a": payment.reference[:255],
        }
        if self.channel:
            fields["multi_card_name"] = self.channel
        return fields

    def start(self, payment, ctx):
        data = self._json(self.http("POST", f"{ctx.base_url}{SESSION_PATH}",
                                    data={**self.session_fields(payment, ctx), **self._auth(ctx)}))
        if data.get("status") != "SUCCESS" or not data.get("GatewayPageURL"):
            raise GatewayError(data.get("failedreason") or f"{self.name} did not open a session", raw=data)
        return StartResult(Redirect(data["GatewayPageURL"]), gateway_reference=data.get("sessionkey"),
                           raw={k: data.get(k) for k in ("status", "sessionkey", "GatewayPageURL")})

    # --- callbacks ----------------------------------------------------------------------------------------

    def identify(self, kind, req):
        if kind != "ipn" and kind not in self.browser_kinds:
            raise CallbackError(Ack.NOT_FOUND, f"unknown callback {kind}")
        tran_id = req.form.get("tran_id")
        if not tran_id:
            raise CallbackError(Ack.INVALID_REQUEST, "no tran_id in the form")
        return Lookup(order_id=tran_id)

    def verify_callback(self, kind, req, payment, ctx):
        if kind in self.browser_kinds:
            # The shopper's browser brought these fields: ask SSLCommerz what really happened.
            return self.query(payment, ctx)
        fields = req.form
        if not verify_sign(fields, ctx.credentials.get("store_passwd")):
            raise CallbackError(Ack.INVALID_SIGNATURE, "missing or invalid verify_sign")
        signed = set(fields["verify_key"].split(","))
        if not REQUIRED_SIGNED <= signed:
            raise CallbackError(Ack.INVALID_SIGNATURE, "verify_key does not cover " +
                                ", ".join(sorted(REQUIRED_SIGNED - signed)))
        if fields["store_id"] != ctx.credentials.get("store_id"):
            raise CallbackError(Ack.INVALID_SIGNATURE, "the IPN is for another store")
        if fields["status"] not in ("VALID", "VALIDATED"):
            return self.query(payment, ctx)  # failed/cancelled/…: confirm with the transaction query
        data = self._get(ctx, VALIDATION_PATH, val_id=fields["val_id"])
        if data.get("status") not in ("VALID", "VALIDATED"):
            raise CallbackError(Ack.NOT_FOUND, f"the validation API says {data.get('status')}", raw=data)
        if data.get("tran_id") != payment.order_id:
            raise CallbackError(Ack.NOT_FOUND, "val_id belongs to another transaction", raw=data)
        if (data.get("amount"), data.get("currency")) != (fields["amount"], fields["currency"]):
            raise CallbackError(Ack.INVALID_AMOUNT, "the IPN's amount differs from the validated one", raw=data)
        return self._result(data, raw={"ipn": fields, "validation": data})

    def acknowledge(self, kind, ack):
        """SSLCommerz only looks at the HTTP status of our IPN answer (2xx = received)."""
        status = {Ack.OK: 200, Ack.DUPLICATE: 200, Ack.NOT_FOUND: 404, Ack.INVALID_SIGNATURE: 400,
                  Ack.INVALID_AMOUNT: 400, Ack.INVALID_REQUEST: 400, Ack.ERROR: 500}[ack]
        body = "IPN received" if status == 200 else f"IPN refused: {ack.value}"
        return body, status, {"Content-Type": "text/plain; charset=utf-8"}

    # --- query and refunds --------------------------------------------------------------------------------

    def query(self, payment, ctx):
        data = self._get(ctx, TRANSACTION_PATH, tran_id=payment.order_id)
        elements = [e for e in (data.get("element") or []) if isinstance(e, dict)]
        paid = [e for e in elements if e.get("status") in ("VALID", "VALIDATED")]
        if not elements:
            return CallbackResult(Outcome.NONE, order_id=payment.order_id, message="SSLCommerz has no transaction yet",
                                  raw=data)
        return self._result(paid[0] if paid else elements[-1], raw=data)

    def _result(self, tx, *, raw):
        status = str(tx.get("status") or "").upper()
        outcome = _STATUSES.get(status, Outcome.NONE)
        # The payment's own currency and amount: currency_type/currency_amount (BDT settlement in `amount`).
        currency = tx.get("currency_type") or tx.get("currency")
        value = tx.get("currency_amount") if tx.get("currency_type") else tx.get("amount")
        amount = fee = None
        if value not in (None, ""):
            try:
                amount = money.to_minor(value, currency)
                if currency == "BDT" == tx.get("currency") and tx.get("store_amount"):
                    fee = amount - money.to_minor(tx["store_amount"], "BDT")
            except (money.MoneyError, KeyError) as exc:
                raise CallbackError(Ack.INVALID_AMOUNT, f"unusable amount {value!r} {currency!r}", raw=raw) from exc
        needs_review = False
        if outcome == Outcome.SUCCEEDED and str(tx.get("risk_level", "0")) == "1":
            # SSLCommerz flags it risky: hold it for a person to check (the WHMCS module refuses those).
            outcome, needs_review = Outcome.PROCESSING, True
        card = _card_summary(tx)
        return CallbackResult(
            outcome=outcome,
            amount=amount,
            currency=currency,
            order_id=tx.get("tran_id"),
            gateway_transaction_id=tx.get("bank_tran_id") or None,
            needs_review=needs_review,
            failure_code=status.lower() if outcome in (Outcome.FAILED, Outcome.CANCELLED, Outcome.EXPIRED) else None,
            message=tx.get("error") or tx.get("risk_title") if needs_review or outcome == Outcome.FAILED else None,
            fee_amount=fee if fee is not None and fee >= 0 else None,
            card_summary=card,
            raw=raw,
        )

    def refund(self, payment, amount, refund_id, ctx):
        bank_tran_id = payment.gateway_transaction_id or self.query(payment, ctx).gateway_transaction_id
        if not bank_tran_id:
            raise GatewayError("the payment has no SSLCommerz bank transaction to refund")
        data = self._get(ctx, TRANSACTION_PATH, bank_tran_id=bank_tran_id, refund_trans_id=refund_id,
                         refund_amount=money.format_plain(amount, payment.currency),
                         refund_remarks=f"Refund {refund_id} of {payment.reference}"[:255], refe_id=refund_id)
        if data.get("status") not in ("success", "processing") or not data.get("refund_ref_id"):
            return RefundResult("failed", message=data.get("errorReason") or "SSLCommerz refused the refund",
                                raw=data)
        return self.refund_status(data["refund_ref_id"], ctx, initiated=data)

    def refund_status(self, refund_ref_id, ctx, initiated=None):
        """Ask SSLCommerz how a refund it accepted is going (refunded / processing / cancelled)."""
        data = self._get(ctx, TRANSACTION_PATH, refund_ref_id=refund_ref_id)
        status = {"refunded": "succeeded", "processing": "pending"}.get(data.get("status"), "failed")
        return RefundResult(status, gateway_reference=refund_ref_id,
                            message=data.get("errorReason") or None,
                            raw={"initiated": initiated, "status": data} if initiated else data)
