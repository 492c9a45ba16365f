"""Nagad merchant checkout (API v-0.2.0).

Wire protocol (served offline by app/sandbox/nagad.py), JSON under `<base>/api/dfs/` (the sandbox base is
`http://sandbox.mynagad.com:10080/remote-payment-gateway-1.0`), headers `X-KM-Api-Version: v-0.2.0`,
`X-KM-IP-V4: <shopper ip>`, `X-KM-Client-Type: PC_WEB`:
- Sensitive JSON is sent as `sensitiveData = base64(RSA-PKCS#1 v1.5 encrypt(Nagad's public key, json))` with
  `signature = base64(SHA256withRSA(merchant's private key, json))`; Nagad answers the same way the other
  way round, and we verify its signature with Nagad's public key before using anything in it. Keys are base64
  DER (SPKI public, PKCS#8 private) as Nagad issues them; PEM is accepted too.
- `POST check-out/initialize/{merchantId}/{orderId}` `{accountNumber?, dateTime, sensitiveData, signature}` over
  `{merchantId, datetime (YmdHis, Asia/Dhaka), orderId, challenge}` → `{paymentReferenceId, challenge,
  acceptDateTime}`.
- `POST check-out/complete/{paymentReferenceId}` over `{merchantId, orderId, currencyCode "050", amount
  "12.50", challenge}` plus `merchantCallbackURL` → `{status: "Success", callBackUrl}`: the shopper goes there.
- The shopper returns to our callback with `merchant, order_id, payment_ref_id, status` (Success, Aborted, …),
  `status_code` (e.g. 00_0000_000), `message, payment_dt, issuer_payment_ref` (unsigned). We never act on it:
  we call `GET verify/payment/{payment_ref_id}`. That answer is plain JSON —
  Nagad does not sign it (its official sample reads it as is) — so what we check is that it came from Nagad's
  API, and names our merchantId, our orderId and the paymentRefId Nagad gave us in its *signed* initialize
  answer, with our exact amount, before applying its `status`.
- Refund: `POST purchase/cancel?paymentRefId=…&orderId=…` `{sensitiveDataCancelRequest, signature}` sealing
  `{merchantId, originalRequestDate (yyyyMMdd, Bangladesh time: the date of this cancel request, as every
  client sends it — codeboxrcodehub/nagad Refund.php `date("Ymd")` and others), originalAmount, cancelAmount, referenceNo,
  referenceMessage}`; the sealed answer holds `status` (Refunded / PartialRefunded / Cancelled /
  PartialCancelled), `originalAmount`, `cancelAmount`, `cancelTrxId`. Nagad has not published this: it follows
  the community clients (codeboxrcodehub/nagad src/Payment/Refund.php, and an F# client).
Errors are `{reason, message}`. Nagad's timestamps are Bangladesh time (UTC+6, no DST) whatever our zone.
"""

import base64
import binascii
import json
import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

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
from app.money import MoneyError, format_plain, to_minor

API_PATH = "/api/dfs"
API_VERSION = "v-0.2.0"
DHAKA = timezone(timedelta(hours=6), "Asia/Dhaka")
#: ISO 4217 numeric code of BDT, as Nagad wants it.
CURRENCY_CODE = "050"
#: RSA-2048 with PKCS#1 v1.5 padding takes at most 245 bytes of plaintext.
MAX_PLAINTEXT = 245

#: verify's `status`. Success and Aborted are seen in callbacks; the rest is the enum of one community client
#: (Nagad publishes none). A refunded or partly cancelled payment was paid: its refunds are tracked by us.
_STATUS = {
    "Success": Outcome.SUCCEEDED,
    "Refunded": Outcome.SUCCEEDED,
    "PartialRefunded": Outcome.SUCCEEDED,
    "PartialCancelled": Outcome.SUCCEEDED,
    "Aborted": Outcome.CANCELLED,
    "Cancelled": Outcome.CANCELLED,
    "Failed": Outcome.FAILED,
    "Fraud": Outcome.FAILED,
    "InvalidRequest": Outcome.FAILED,
    "Expired": Outcome.EXPIRED,
    "OrderInitiated": Outcome.PROCESSING,
    "Ready": Outcome.PROCESSING,
    "InProgress": Outcome.PROCESSING,
}
#: purchase/cancel's `status` when the refund was made.
REFUND_DONE = frozenset({"Refunded", "PartialRefunded", "Cancelled", "PartialCancelled"})


def dhaka_now(fmt="%Y%m%d%H%M%S", now=None):
    """Nagad's timestamp format in Bangladesh time, whatever the server's time zone."""
    return (now or datetime.now(UTC)).astimezone(DHAKA).strftime(fmt)


def _key_bytes(text):
    text = (text or "").strip()
    if "-----BEGIN" in text:
        return text.encode(), True
    try:
        return base64.b64decode("".join(text.split()), validate=True), False
    except (binascii.Error, ValueError) as exc:
        raise GatewayError("the Nagad key is neither PEM nor base64 DER") from exc


def load_public_key(text):
    data, pem = _key_bytes(text)
    try:
        return serialization.load_pem_public_key(data) if pem else serialization.load_der_public_key(data)
    except ValueError as exc:
        raise GatewayError("the Nagad public key cannot be read") from exc


def load_private_key(text):
    data, pem = _key_bytes(text)
    try:
        if pem:
            return serialization.load_pem_private_key(data, password=None)
        return serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise GatewayError("the merchant's Nagad private key cannot be read") from exc


def seal(plain, recipient_public, sender_private):
    """(sensitiveData, signature) for a plain JSON string, as Nagad's sample code builds them."""
    data = plain.encode()
    if len(data) > MAX_PLAINTEXT:
        raise GatewayError(f"Nagad sensitive data is {len(data)} bytes; RSA-2048 takes {MAX_PLAINTEXT}")
    sensitive = recipient_public.encrypt(data, padding.PKCS1v15())
    signature = sender_private.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(sensitive).decode(), base64.b64encode(signature).decode()


def open_sealed(sensitive, signature, recipient_private, sender_public):
    """The plain JSON inside `sensitive` if `signature` is the sender's over it; raises ValueError otherwise."""
    try:
        plain = recipient_private.decrypt(base64.b64decode(sensitive, validate=True), padding.PKCS1v15())
        sender_public.verify(base64.b64decode(signature, validate=True), plain, padding.PKCS1v15(),
                             hashes.SHA256())
    except (ValueError, TypeError, binascii.Error, InvalidSignature) as exc:
        raise ValueError("sensitiveData does not decrypt, or its signature is not the sender's") from exc
    return plain.decode()


def _compact(data):
    return json.dumps(data, separators=(",", ":"))


class NagadGateway(Gateway):
    code = "nagad"
    name = "Nagad"
    currencies = frozenset({"BDT"})
    base_urls = {"sandbox": "http://sandbox.mynagad.com:10080/remote-payment-gateway-1.0",
                 "live": "https://api.mynagad.com"}
    credential_fields = {"merchant_id": "Merchant ID", "merchant_number": "Merchant wallet number",
                         "merchant_private_key": "Merchant private key", "nagad_public_key": "Nagad public key"}
    browser_kinds = frozenset({"return"})
    #: Nagad publishes no refund API (purchase/cancel comes from community clients), so nothing says a
    #: repeated `referenceNo` is applied once, though our simulator treats it so.
    refund_idempotent = False

    def _keys(self, ctx):
        return (load_private_key(ctx.credentials.get("merchant_private_key")),
                load_public_key(ctx.credentials.get("nagad_public_key")))

    def _headers(self, ctx):
        return {"Content-Type": "application/json", "Accept": "application/json", "X-KM-Api-Version": API_VERSION,
                "X-KM-IP-V4": ctx.shopper_ip or "127.0.0.1", "X-KM-Client-Type": "PC_WEB"}

    def _call(self, method, ctx, path, **kwargs):
        response = self.http(method, f"{ctx.base_url}{API_PATH}/{path}", headers=self._headers(ctx), **kwargs)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise GatewayError(f"Nagad answered HTTP {response.status_code} without JSON")
        if data.get("reason") or response.status_code >= 400:
            raise GatewayError(f"Nagad {data.get('reason') or response.status_code}: {data.get('message') or 'error'}",
                               code=data.get("reason") or str(response.status_code), raw=data)
        return data

    def _open(self, data, ctx, field="sensitiveData"):
        private, nagad_public = self._keys(ctx)
        try:
            plain = open_sealed(data.get(field) or "", data.get("signature") or "", private, nagad_public)
            opened = json.loads(plain)
        except ValueError as exc:
            raise GatewayError(f"Nagad's answer failed verification: {exc}", raw=data) from exc
        if not isinstance(opened, dict):
            raise GatewayError("Nagad's answer is not a JSON object", raw=data)
        return opened

    def _seal(self, data, ctx):
        private, nagad_public = self._keys(ctx)
        return seal(_compact(data), nagad_public, private)

    def start(self, payment, ctx):
        creds = ctx.credentials
        merchant_id, order_id = creds.get("merchant_id", ""), payment.order_id
        now = dhaka_now()
        sensitive, signature = self._seal({"merchantId": merchant_id, "datetime": now, "orderId": order_id,
                                           "challenge": secrets.token_hex(20)}, ctx)
        body = {"dateTime": now, "sensitiveData": sensitive, "signature": signature}
        if creds.get("merchant_number"):  # "not mandatory" in Nagad's own sample; sent when we know it
            body["accountNumber"] = creds["merchant_number"]
        answer = self._call("POST", ctx, f"check-out/initialize/{merchant_id}/{order_id}", json=body)
        init = self._open(answer, ctx)
        reference, challenge = init.get("paymentReferenceId"), init.get("challenge")
        if not reference or not challenge:
            raise GatewayError("Nagad initialize returned no paymentReferenceId/challenge", raw=init)
        sensitive, signature = self._seal({"merchantId": merchant_id, "orderId": order_id,
                                           "currencyCode": CURRENCY_CODE,
                                           "amount": format_plain(payment.amount, payment.currency),
                                           "challenge": challenge}, ctx)
        done = self._call("POST", ctx, f"check-out/complete/{reference}", json={
            "sensitiveData": sensitive, "signature": signature, "merchantCallbackURL": ctx.callback_url("return"),
            "additionalMerchantInfo": {"reference": (payment.reference or "")[:64]}})
        if done.get("status") != "Success" or not done.get("callBackUrl"):
            raise GatewayError(f"Nagad complete says {done.get('status')!r}", raw=done)
        return StartResult(Redirect(done["callBackUrl"]), gateway_reference=reference,
                           raw={"initialize": init, "complete": done})

    def identify(self, kind, req):
        if kind != "return":
            raise CallbackError(Ack.NOT_FOUND, f"unknown callback {kind}")
        reference = req.args.get("payment_ref_id") or req.form.get("payment_ref_id")
        if not reference:
            raise CallbackError(Ack.INVALID_REQUEST, "the return has no payment_ref_id")
        return Lookup(gateway_reference=reference)

    def verify_callback(self, kind, req, payment, ctx):
        params = {**req.form, **req.args}
        try:
            result = self.query(payment, ctx)
        except GatewayError as exc:
            if exc.raw is None:
                raise  # Nagad could not be asked: nothing is decided
            raise CallbackError(Ack.NOT_FOUND, f"Nagad does not confirm this payment: {exc}", raw=exc.raw) from exc
        if result.outcome in (Outcome.PROCESSING, Outcome.NONE):
            raise CallbackError(Ack.INVALID_REQUEST,
                                f"the browser says {params.get('status')!r} but Nagad reports "
                                f"{(result.raw or {}).get('status')!r}", raw=result.raw)
        return replace(result, raw={"browser": params, "nagad": result.raw})

    def query(self, payment, ctx):
        if not payment.gateway_reference:
            raise GatewayError("the payment has no Nagad paymentRefId")
        data = self._call("GET", ctx, f"verify/payment/{payment.gateway_reference}")
        expected = {"merchantId": ctx.credentials.get("merchant_id"), "orderId": payment.order_id,
                    "paymentRefId": payment.gateway_reference}
        for field, value in expected.items():
            if data.get(field) != value:
                raise GatewayError(f"Nagad's verify answer has {field} {data.get(field)!r}, not {value!r}",
                                   code="mismatch", raw=data)
        try:
            amount = to_minor(data["amount"], "BDT") if data.get("amount") not in (None, "") else None
        except MoneyError:
            amount = None
        status = data.get("status")
        outcome = _STATUS.get(status, Outcome.NONE)
        failed = outcome in (Outcome.FAILED, Outcome.CANCELLED, Outcome.EXPIRED)
        return CallbackResult(
            outcome=outcome, amount=amount, currency="BDT", order_id=data.get("orderId"),
            gateway_reference=data.get("paymentRefId"),
            gateway_transaction_id=data.get("issuerPaymentRefNo") or None,
            failure_code=(data.get("statusCode") or str(status).lower()) if failed else None,
            message=f"Nagad: {status}" + (f" ({data['issuerPaymentRefNo']})" if data.get("issuerPaymentRefNo") else ""),
            card_summary=f"Nagad {data['clientMobileNo']}" if data.get("clientMobileNo") else None,
            raw=data,
        )

    def refund(self, payment, amount, refund_id, ctx):
        if not payment.gateway_reference:
            raise GatewayError("the payment has no Nagad paymentRefId")
        sensitive, signature = self._seal({
            "merchantId": ctx.credentials.get("merchant_id", ""),
            # The cancel request's own date (Bangladesh time), as every client we found sends it
            # (codeboxrcodehub/nagad Refund.php `date("Ymd")`, others `now('Asia/Dhaka')`); none sends the
            # payment's date, and a refund a day later would then name a date that is not the request's.
            "originalRequestDate": dhaka_now("%Y%m%d"),
            "originalAmount": format_plain(payment.amount, payment.currency),
            "cancelAmount": format_plain(amount, payment.currency),
            "referenceNo": refund_id,
            "referenceMessage": "Refund",
        }, ctx)
        try:
            answer = self._call("POST", ctx, "purchase/cancel",
                                params={"paymentRefId": payment.gateway_reference, "orderId": payment.order_id},
                                json={"sensitiveDataCancelRequest": sensitive, "signature": signature})
        except GatewayError as exc:
            if exc.timeout or exc.raw is None:
                raise
            return RefundResult("failed", message=str(exc), raw=exc.raw)
        data = self._open(answer, ctx)
        status = "succeeded" if data.get("status") in REFUND_DONE else "failed"
        return RefundResult(status, gateway_reference=data.get("cancelTrxId"),
                            message=f"Nagad refund {data.get('status')}", raw=data)
