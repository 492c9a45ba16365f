"""Nagad merchant checkout simulator (API v-0.2.0), mounted at /sandbox/nagad.

The API is served at `/sandbox/nagad/remote-payment-gateway-1.0/api/dfs/…`, the path of Nagad's sandbox
(`http://sandbox.mynagad.com:10080/remote-payment-gateway-1.0/api/dfs/…`), and at `/sandbox/nagad/api/dfs/…`,
the path of production, so either base URL works: `check-out/initialize/{merchantId}/{orderId}`,
`check-out/complete/{paymentReferenceId}`, `verify/payment/{paymentRefId}` and `purchase/cancel`.

The simulator holds Nagad's own RSA key pair and the merchant's public key (fixed constants below, base64 DER
as Nagad issues them, so every process agrees): it decrypts what merchants send with its private key, checks
their SHA256withRSA signature with the merchant's public key, and answers encrypted to the merchant and signed
by itself. Errors are `{"reason", "message"}` with HTTP 400 (Nagad's HTTP codes and reason names are not
published; these are the simulator's). The shopper's page has buttons named `outcome` and sends the browser
back to `merchantCallbackURL?merchant=…&order_id=…&payment_ref_id=…&status=…&status_code=…&message=…
&payment_dt=…&issuer_payment_ref=…`.

| path (under /sandbox/nagad/api/dfs or …/remote-payment-gateway-1.0/api/dfs) | method | answers |
|---|---|---|
| `check-out/initialize/{merchantId}/{orderId}` | POST | sealed `paymentReferenceId`, `challenge` (`accountNumber` optional) |
| `check-out/complete/{paymentReferenceId}` | POST | `{"status": "Success", "callBackUrl"}` |
| `verify/payment/{paymentRefId}` | GET | the payment, plain JSON |
| `purchase/cancel?paymentRefId=…&orderId=…` | POST | a refund, sealed |
| anything else, or another method | any | 404 / 405 `{"reason", "message"}` |
| `/sandbox/nagad/check-out/{paymentReferenceId}` | GET, POST | the shopper's page |

Not simulated: Nagad's tokenised/recurring and disbursement APIs.

`purchase/cancel` (a refund; from community clients, Nagad publishes none) answers, sealed, `status`,
`originalAmount`, `cancelAmount`, `cancelTrxId`; afterwards verify reports the payment `PartialRefunded` or
`Refunded` (the simulator's choice among Refunded / PartialRefunded / Cancelled / PartialCancelled), and the
same `referenceNo` asked again gets the same answer.
"""

import base64
import binascii
import json
import re
import secrets
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import urlencode

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from flask import Blueprint, jsonify, redirect, render_template, request

from app.sandbox._common import (
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    SERVER_ERROR,
    decimal_amount,
    gateway_path,
    load,
    save,
)

CODE = "nagad"
DHAKA = timezone(timedelta(hours=6))
#: How far a request's `datetime` may be from Nagad's clock (Bangladesh time).
CLOCK_SKEW = timedelta(minutes=5)

NAGAD_PRIVATE_KEY = (
    "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDDc67OHUv5jIaXsB01WqWow0ztdEvgvYj8qzAySyufvyfG"
    "I1kwxjVbZ+D8VIEFDcqNkzfnhZpjgoAC891eLmaqvKk0VAoWmNE9vjYbHlSBScyq5n+C7gJl+Gaeh7GXbYJGKYb20234arDw"
    "rThYRkRvd3zLYnWfSDh9Kh/UTpx5SeHLMobx+800xlQh2BbUvMVHdCyBml6NheyGMEOJC3TGMproh8K4WP4g3fs9tKUdQn9Q"
    "tg4PMyZ2wjiKBtO2GZTU0jc4SpSHokzW38u5X7l4JkrKz8IKsg8Uf+y3bcMXJf2Du2YVR+noMEBEPj4/eprGMUAjb8etijQl"
    "GeDeitfzAgMBAAECggEAFLzN88WM/ZXI5AhGGRaclArguyMHN/m0MqbRLszl/IWSKUYv3Opy19duOieXJtufPaU8nb6BsoQy"
    "o92PA8KllwD8bPZruZkOPmBTqk3uBme3pPxe1Bv/uiUAclqQX7I5S8t1K/Qj62Makfa3DzqpYTBK1+OC+lr1z2XsSaDrnjym"
    "ejF7Dz1tFn0yYO1NTzBWP7r8lP/f/h5jx2clozfATdmmwJkEXN17xdbmhWvwrsjxMeUybHdvoKv3vnB2/3UcG3ef3/auhhN6"
    "uYruh7wK9C2He95fGgfGPB9Zc8TFmEkS40o/UFgGiCKSPRai4NHfBi20tHzKMzyiFXUTEqrEdQKBgQDvbC8YJjJlGe/54nbi"
    "xrRyIPcvdrDA8TlBRZdEkpmISNR6BRd6/I9G2k7moxNGn3ZelOXMWcen6bQqtpfNFeksaF8VCir91o2bQHo0KQZbtLQnu/U8"
    "FYhB4i5YJKEP5PEiM83uHSKotDginjCoj7K1YgD9ecrOoI5eJRx1dOdGJwKBgQDQ/BvZ1JYXbPtSFpluWnBQWY/O7l0EA7OX"
    "ghiUjRA2nW+hdYhu1iKtOztK2+NboT8flHYQbKiDbNZfeAMMAPS6D2z0SSmjzqAkQAVQx2xRzv0AO93Rw/Hi/tQSZ/lvuoxc"
    "pt0U6ZvvhVQpEvpQEbh51ORnxB2FGQdY+DKP9kgrVQKBgQCHC7iMoI7wY+7uPgTc6UPC1EFY7lPIoMewv3YRYbdkHeBraw/R"
    "eT+/sUer4/Ptc+iqdMYhu8pYNgQ/y3pYXbGGMODg1zlksG5zUa0cWr+RXp33g5dR6rtOniuR4CdQ9cvlhN71Hk38Zpr7O8sq"
    "aNNeaAcy8k2ouvtSsxAYWHZTJQKBgGfzr4rX8tyuKgj4EtPQiqN9GUpuSLhRewi2/rENxe3UvA1NIFM5ksAmgWTIIbyXZYW4"
    "3E1pLx1Iiw2r7aAP7auLNsAAkITZp9DAQ6SdveSnmDOAk+Lem7g015pcO7f2zBDeM4ROe3FWGbngpcAkQGXhnsd6xtBI1d3M"
    "f6IaeGWNAoGBAKlClkA+4p71QqZ+OjdGENQfXsqbGCQmUCQg0dvIsajRRe5NtpJV34mN/gGzEb9m300w4kyPDPUVktPbBCed"
    "mJCYqxREiPxERKUHULVW/Furc2E7VhgSFt3eGF67aAFGQ7ft7s3WmiALW3aO4R2pBA0+t4rOoe+cueiCE8+bPXCI"
)
NAGAD_PUBLIC_KEY = (
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAw3Ouzh1L+YyGl7AdNVqlqMNM7XRL4L2I/KswMksrn78nxiNZMMY1"
    "W2fg/FSBBQ3KjZM354WaY4KAAvPdXi5mqrypNFQKFpjRPb42Gx5UgUnMquZ/gu4CZfhmnoexl22CRimG9tNt+Gqw8K04WEZE"
    "b3d8y2J1n0g4fSof1E6ceUnhyzKG8fvNNMZUIdgW1LzFR3QsgZpejYXshjBDiQt0xjKa6IfCuFj+IN37PbSlHUJ/ULYODzMm"
    "dsI4igbTthmU1NI3OEqUh6JM1t/LuV+5eCZKys/CCrIPFH/st23DFyX9g7tmFUfp6DBARD4+P3qaxjFAI2/HrYo0JRng3orX"
    "8wIDAQAB"
)
MERCHANT_PRIVATE_KEY = (
    "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC2o7VMNP+I1dQzENeaQ7x2Xyo41PYf0QTy3xz09u1U2e7c"
    "d9qpdZq1tBbfRApdIe+HRrxDwVcK1zS5G/sua6ieKiSJmajED2nf09w6z01WsD0wS7K6NSSH/mHYD7Ijfc5kVRBgkzvg7i1k"
    "ktfqQPaPuUNB+ElVhl94NnXoYiaroMx3xw7W7SMbvGPAknTDQDZht3ODF5vZdHBqe7AJ1MsSHTFB+jSFYCg7Z6MLojrn4mlh"
    "8YAEDtMouhfK7ffux7shuGze3K9TikkUEiFL4G/FXEgaYaU96Ra5jFU02rzFRGbuTXhzkLBiXXkXMR+kdnRpnfTZW5SyboOJ"
    "DXmb0yOdAgMBAAECggEABEAmn8Wq/c8GL4MQlX9Gk1WvKJ/yM3bcn99n796QUvV4fOqQLPn29gwhLSSK/jRkO/h+OLB2+2Jb"
    "UISRcbjhNX8jFw27swZtzx8B5N9+vAoBfo6AdBt5BG477jidS3yp0UV2ilza26cHaOwO+N12r40e/tnNsR8duTFBSL2CC2P6"
    "SST/9iJaaZP7et8NKWfipMxwqNAmwFSGpXnSRC19jhdJBaQitCzPsFWlPjor5mTVfR0ESjprhU1zWkNcQttU9uiNuzoJU03T"
    "d5xX6W7byLkasY3skvrTCJI+M23WJ971LAWe1XKvhLTMbYdHoc6GINZ+AYYdZ4ifFJBnWM1jOQKBgQDumJkpz3wnfepcrziv"
    "5kLE+AMxXgypKnblqkblqBP67O5An0GAPtbIsceKbMgDuHmsrEUbgsXBh/hyHch/nLLrBeVilX7uI96iXjm1wGnMx6iRhAko"
    "5kORX1CtXy5H/JLrvg+KCPJyUgurdLRnRDHwPRWYrpo6ZRFbkl8zAdJ0mQKBgQDD9jWjt17Dpyc9Q1yzX3qPd7Ru6nS4HCqn"
    "PddDJNNcyFoZI8PZhrEBsJemLJEZbKHH7ALY3KPJi3IFusopBWd2e6ijBGFlfNojw0M0koJkHulPgY43H7sAm4TUqVC3d1Ar"
    "AXLzkOy2woOLs71wJdUqG7px5lb0D9iAF1QeM38FpQKBgQDScH8utFTx1AoAQ3+BDVs4tPLD+Qq7rbt+Z0fuyOcOeyjMkGpK"
    "PaJdEwhG3BkxxuRyWuL9F8NqJY4IwKIVg9T+m42s/OQeED8OAINv/cyTFEpmRgl6LFXOAz56G6gLUAcZq+Gywp9sG1c1m1J+"
    "flR5arcAmodnF7tOg/Q5XdMMiQKBgQC52KUicWPUVpCmT155V1HbAoICtySe/0eMeN/Qc/pogjLAqOSzRkRU/++yz42E+Tut"
    "aS2CEi7bk/49ZNsZcGChQ8G5aQwdvfz78dGo6FH1NkO6/Xms2dD2UIf3T+SXOvay8prcWFPHOE6djYdZ9udlGgsGvpc0vFpt"
    "kLJcOiZ7aQKBgHldYTzjObTD5pS2GV0fBmPKX3+1koq7r0y3xh5WHz+FTRrhV5w7MlCs1SO4CX2UiUy2Ghls+C2JE9Q6eKPP"
    "xbOJFbKpL8T1RvYnxAHXuduxfIBbvarmhXf/b7qYATgRtdUL/9TJDvfZjYyx1F3piezOTx9huikbMRmLKt4XUUUa"
)
MERCHANT_PUBLIC_KEY = (
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtqO1TDT/iNXUMxDXmkO8dl8qONT2H9EE8t8c9PbtVNnu3HfaqXWa"
    "tbQW30QKXSHvh0a8Q8FXCtc0uRv7LmuoniokiZmoxA9p39PcOs9NVrA9MEuyujUkh/5h2A+yI33OZFUQYJM74O4tZJLX6kD2"
    "j7lDQfhJVYZfeDZ16GImq6DMd8cO1u0jG7xjwJJ0w0A2Ybdzgxeb2XRwanuwCdTLEh0xQfo0hWAoO2ejC6I65+JpYfGABA7T"
    "KLoXyu337se7Ibhs3tyvU4pJFBIhS+BvxVxIGmGlPekWuYxVNNq8xURm7k14c5CwYl15FzEfpHZ0aZ302VuUsm6DiQ15m9Mj"
    "nQIDAQAB"
)
SANDBOX_CREDENTIALS = {
    "merchant_id": "683002007104225",
    "merchant_number": "01711428036",
    "merchant_private_key": MERCHANT_PRIVATE_KEY,
    "nagad_public_key": NAGAD_PUBLIC_KEY,
}
#: What the callback's status_code says for each outcome (the simulator's choice; Nagad publishes no list).
CALLBACK_STATUS = {
    "success": ("Success", "00_0000_000", "Successful Transaction"),
    "failure": ("Failed", "00_1111_001", "Transaction Failed"),
    "cancel": ("Aborted", "00_1111_002", "Transaction Aborted by Customer"),
}

bp = Blueprint("sandbox_nagad", __name__)
_own_private = serialization.load_der_private_key(base64.b64decode(NAGAD_PRIVATE_KEY), password=None)
_merchant_public = serialization.load_der_public_key(base64.b64decode(MERCHANT_PUBLIC_KEY))


def _route(path, **options):
    """Serve `path` under both the sandbox and the production API prefix."""

    def register(view):
        for prefix in ("/remote-payment-gateway-1.0/api/dfs", "/api/dfs"):
            bp.add_url_rule(prefix + path, endpoint=f"{view.__name__}{prefix.count('/')}", view_func=view, **options)
        return view

    return register


def _error(reason, message, status=400):
    return jsonify({"reason": reason, "message": message}), status


def error_envelope(status, kind, message):
    """Nagad's `{"reason", "message"}` error body for unknown paths, wrong methods and its own failures."""
    if kind == NOT_FOUND:
        return _error("NotFound", f"No API at {gateway_path()}", 404)
    if kind == METHOD_NOT_ALLOWED:
        return _error("MethodNotAllowed", f"{request.method} is not allowed on {gateway_path()}", 405)
    if kind == SERVER_ERROR:
        return _error("InternalServerError", "Internal server error", 500)
    return _error("BadRequest", message, status)


def _unseal(sensitive, signature):
    """The merchant's JSON, if it decrypts with our key and carries the merchant's signature; else None."""
    try:
        plain = _own_private.decrypt(base64.b64decode(sensitive or "", validate=True), padding.PKCS1v15())
        _merchant_public.verify(base64.b64decode(signature or "", validate=True), plain, padding.PKCS1v15(),
                                hashes.SHA256())
        data = json.loads(plain)
    except (ValueError, TypeError, binascii.Error, InvalidSignature):
        return None
    return data if isinstance(data, dict) else None


def _sealed(data):
    """Our answer: encrypted to the merchant's public key, signed with ours."""
    plain = json.dumps(data, separators=(",", ":")).encode()
    return jsonify({
        "sensitiveData": base64.b64encode(_merchant_public.encrypt(plain, padding.PKCS1v15())).decode(),
        "signature": base64.b64encode(_own_private.sign(plain, padding.PKCS1v15(), hashes.SHA256())).decode(),
    })


def _dhaka_now():
    return datetime.now(UTC).astimezone(DHAKA)


def _headers_ok():
    return (request.headers.get("X-KM-Api-Version") == "v-0.2.0"
            and request.headers.get("X-KM-Client-Type") in ("PC_WEB", "MOBILE_WEB", "MOBILE_APP")
            and bool(request.headers.get("X-KM-IP-V4")))


@_route("/check-out/initialize/<merchant_id>/<order_id>", methods=["POST"])
def initialize(merchant_id, order_id):
    if not _headers_ok():
        return _error("InvalidRequestHeader", "Required X-KM-* headers are missing or invalid")
    if merchant_id != SANDBOX_CREDENTIALS["merchant_id"]:
        return _error("InvalidMerchant", "Merchant not found")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", order_id):
        return _error("InvalidOrderId", "Order id is invalid")
    body = request.get_json(silent=True) or {}
    data = _unseal(body.get("sensitiveData"), body.get("signature"))
    if data is None:
        return _error("InvalidSignature", "Sensitive data could not be verified")
    if data.get("merchantId") != merchant_id or data.get("orderId") != order_id or \
            len(str(data.get("challenge") or "")) < 20:
        return _error("InvalidSensitiveData", "Sensitive data does not match the request")
    # accountNumber is "not mandatory" in Nagad's own integration sample (its header comment) and nagadpy does
    # not send it: absent is fine, present it must be the merchant's wallet number.
    if "accountNumber" in body and body["accountNumber"] != SANDBOX_CREDENTIALS["merchant_number"]:
        return _error("InvalidMerchantAccount", "Merchant account number does not match")
    try:
        sent = datetime.strptime(str(data.get("datetime")), "%Y%m%d%H%M%S").replace(tzinfo=DHAKA)
    except ValueError:
        return _error("InvalidDateTime", "datetime must be YmdHis")
    if abs(sent - _dhaka_now()) > CLOCK_SKEW or body.get("dateTime") != data.get("datetime"):
        return _error("InvalidDateTime", "datetime is not the current Bangladesh time")
    reference = _dhaka_now().strftime("%m%d%H%M%S") + secrets.token_hex(6).upper() + merchant_id[-4:]
    session = {"paymentRefId": reference, "merchantId": merchant_id, "orderId": order_id,
               "challenge": secrets.token_hex(20), "status": "OrderInitiated", "amount": None,
               "orderDateTime": _dhaka_now().strftime("%Y-%m-%d %H:%M:%S"), "cancelled": "0", "refunds": {}}
    save(CODE, "payment", reference, session)
    return _sealed({"paymentReferenceId": reference, "challenge": session["challenge"],
                    "acceptDateTime": _dhaka_now().strftime("%Y%m%d%H%M%S")})


@_route("/check-out/complete/<reference>", methods=["POST"])
def complete(reference):
    if not _headers_ok():
        return _error("InvalidRequestHeader", "Required X-KM-* headers are missing or invalid")
    session = load(CODE, "payment", reference)
    if session is None:
        return _error("InvalidPaymentRefId", "Payment reference not found")
    body = request.get_json(silent=True) or {}
    data = _unseal(body.get("sensitiveData"), body.get("signature"))
    if data is None:
        return _error("InvalidSignature", "Sensitive data could not be verified")
    if session["status"] != "OrderInitiated":
        return _error("InvalidState", "This payment was already completed")
    if (data.get("merchantId"), data.get("orderId"), data.get("challenge")) != (
            session["merchantId"], session["orderId"], session["challenge"]):
        return _error("InvalidSensitiveData", "Sensitive data does not match the initialized order")
    if data.get("currencyCode") != "050":
        return _error("InvalidCurrency", "Currency code must be 050")
    if decimal_amount(data.get("amount")) is None:
        return _error("InvalidAmount", "Amount is invalid")
    callback = str(body.get("merchantCallbackURL") or "")
    if not callback.startswith(("http://", "https://")):
        return _error("InvalidCallbackUrl", "merchantCallbackURL is invalid")
    session.update(status="Ready", amount=data["amount"], callbackUrl=callback,
                   additionalMerchantInfo=body.get("additionalMerchantInfo"))
    save(CODE, "payment", reference, session)
    return jsonify({"status": "Success",
                    "callBackUrl": f"{request.url_root.rstrip('/')}/sandbox/{CODE}/check-out/{reference}"})


def _verify_answer(session):
    return {
        "merchantId": session["merchantId"], "orderId": session["orderId"], "paymentRefId": session["paymentRefId"],
        "amount": session["amount"], "clientMobileNo": session.get("clientMobileNo"),
        "merchantMobileNo": SANDBOX_CREDENTIALS["merchant_number"], "orderDateTime": session["orderDateTime"],
        "issuerPaymentDateTime": session.get("issuerPaymentDateTime"),
        "issuerPaymentRefNo": session.get("issuerPaymentRefNo"),
        "additionalMerchantInfo": session.get("additionalMerchantInfo"),
        "status": session["status"], "statusCode": session.get("statusCode", "000"),
    }


@_route("/verify/payment/<reference>", methods=["GET"])
def verify(reference):
    session = load(CODE, "payment", reference)
    if session is None:
        return _error("InvalidPaymentRefId", "Payment reference not found")
    return jsonify(_verify_answer(session))


@_route("/purchase/cancel", methods=["POST"])
def cancel():
    if not _headers_ok():
        return _error("InvalidRequestHeader", "Required X-KM-* headers are missing or invalid")
    reference = request.args.get("paymentRefId", "")
    session = load(CODE, "payment", reference) if reference else None
    if session is None or session["orderId"] != request.args.get("orderId"):
        return _error("InvalidPaymentRefId", "Payment reference not found")
    body = request.get_json(silent=True) or {}
    data = _unseal(body.get("sensitiveDataCancelRequest"), body.get("signature"))
    if data is None:
        return _error("InvalidSignature", "Sensitive data could not be verified")
    if data.get("merchantId") != session["merchantId"] or data.get("originalAmount") != session["amount"]:
        return _error("InvalidSensitiveData", "Sensitive data does not match the payment")
    if session["status"] not in ("Success", "PartialRefunded", "Refunded"):
        return _error("InvalidState", "Only a successful payment can be cancelled")
    key = str(data.get("referenceNo") or "")
    if not key:
        return _error("InvalidSensitiveData", "referenceNo is required")
    if not _request_date_ok(data.get("originalRequestDate"), session):
        return _error("InvalidSensitiveData", "originalRequestDate must be the request's date (yyyyMMdd)")
    if key in session["refunds"]:  # the same refund asked again: the same answer
        return _sealed(session["refunds"][key])
    done = Decimal(session["cancelled"])
    amount = decimal_amount(data.get("cancelAmount"), most=Decimal(session["amount"]) - done)
    if amount is None:
        return _error("InvalidAmount", "Cancel amount is invalid or exceeds the refundable amount")
    done += amount
    status = "Refunded" if done == Decimal(session["amount"]) else "PartialRefunded"
    answer = {"status": status, "originalAmount": session["amount"], "cancelAmount": data["cancelAmount"],
              "cancelTrxId": "NGC" + secrets.token_hex(5).upper()}
    session.update(cancelled=str(done), status=status)
    session["refunds"][key] = answer
    save(CODE, "payment", reference, session)
    return _sealed(answer)


def _request_date_ok(value, session):
    """originalRequestDate: a yyyyMMdd date. Every client we found sends the cancel request's own date there
    (codeboxrcodehub/nagad src/Payment/Refund.php `date("Ymd")`, a Laravel integration
    `now('Asia/Dhaka')->format('Ymd')`, a TypeScript client the UTC date, a C# client `DateTime.Now`), none the
    payment's; Nagad publishes nothing. So the simulator takes any date from the day before the order (a client
    on UTC at Dhaka's early morning) to tomorrow, and nothing else."""
    try:
        day = datetime.strptime(str(value or ""), "%Y%m%d").date()
    except ValueError:
        return False
    ordered = datetime.strptime(session["orderDateTime"], "%Y-%m-%d %H:%M:%S").date()
    return ordered - timedelta(days=1) <= day <= _dhaka_now().date() + timedelta(days=1)


# --- the shopper's page -------------------------------------------------------------------------------------


@bp.route("/check-out/<reference>", methods=["GET", "POST"])
def checkout_page(reference):
    session = load(CODE, "payment", reference)
    if session is None:
        return render_template("sandbox/nagad/done.html", session=None), 404
    if session["status"] != "Ready":
        return render_template("sandbox/nagad/done.html", session=session), 409
    error = None
    if request.method == "POST":
        outcome = request.form.get("outcome")
        wallet = "".join(ch for ch in request.form.get("wallet", "") if ch.isdigit())
        if outcome == "success" and not (len(wallet) == 11 and wallet.startswith("01")):
            error = "Enter your 11-digit Nagad account number (01XXXXXXXXX)."
        elif outcome in CALLBACK_STATUS:
            status, status_code, message = CALLBACK_STATUS[outcome]
            now = _dhaka_now().strftime("%Y%m%d%H%M%S")
            session.update(status=status, statusCode=status_code)
            if outcome == "success":
                session.update(clientMobileNo=wallet[:3] + "****" + wallet[-4:], issuerPaymentDateTime=now,
                               issuerPaymentRefNo=secrets.token_hex(5).upper())
            save(CODE, "payment", reference, session)
            query = urlencode({"merchant": session["merchantId"], "order_id": session["orderId"],
                               "payment_ref_id": reference, "status": status, "status_code": status_code,
                               "message": message, "payment_dt": now,
                               "issuer_payment_ref": session.get("issuerPaymentRefNo") or ""})
            url = session["callbackUrl"]
            return redirect(url + ("&" if "?" in url else "?") + query, code=302)
        else:
            error = "Choose an outcome."
    return render_template("sandbox/nagad/checkout.html", session=session, error=error,
                           amount_minor=int(Decimal(session["amount"]) * 100)), (422 if error else 200)
