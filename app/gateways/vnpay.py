"""VNPay (API v2.1.0): signed redirect to the payment page, GET IPN, querydr/refund JSON API.

Wire protocol (served offline by app/sandbox/vnpay.py):
- Pay: browser GET `{base}/paymentv2/vpcpay.html?<vnp_* params>&vnp_SecureHash=…`. `vnp_Amount` is VND × 100;
  `vnp_CreateDate`/`vnp_ExpireDate` are `yyyyMMddHHmmss` in GMT+7 whatever our server's zone.
- Secure hash: lowercase hex HMAC-SHA512(hash_secret) over the `vnp_*` params except the hash fields, sorted
  by key, each key and value `quote_plus`-encoded, joined `k=v&…` (VNPay's Python sample).
- Empty parameters (`vnp_BankCode=`): VNPay's own samples disagree on hashing one. The PHP demo
  (vnpay_php `vnpay_ipn.php`, `vnpay_create_payment.php`), the Python demo (`vnpay.py` `get_payment_url`,
  `validate_response`) and the Node demo hash every parameter they send, empty or not; the Java demo
  (`ajaxServlet.java`, `Config.hashAllFields`) and the .NET demo (`VnPayLibrary.AddRequestData`) skip empty
  values. No source shows what VNPay's server does with an empty one, but every one of those demos refuses to
  *send* an empty `vnp_BankCode` (PHP `isset($vnp_BankCode) && $vnp_BankCode != ""`, Python
  `if bank_code and bank_code != ""`, Node `bankCode !== null && bankCode !== ''`, Java
  `bankCode != null && !bankCode.isEmpty()`), and VNPay's docs type it Alphanumeric[3,20] and say to leave it
  out to let the shopper choose (sandbox.vnpayment.vn/apis/docs/thanh-toan-pay/pay.html). So we never send
  an empty parameter: for what we send, both hashing rules give the same string. On what VNPay sends us we
  accept a hash computed either way (it sends no empty values in the returns and IPNs we have seen).
- Return (browser) and IPN (server GET, URL registered with VNPay) carry the same signed params. The return
  is display only; the IPN is answered JSON `{"RspCode","Message"}` with HTTP 200: 00 confirmed, 01 order
  not found, 02 already confirmed, 04 invalid amount, 97 invalid signature, 99 unknown error.
- querydr / refund: POST JSON `{base}/merchant_webapi/api/transaction`, checksum HMAC-SHA512 over the
  pipe-joined raw values in VNPay's field order; every answer carries a checksum we verify the same way
  (refund: 13 response fields; querydr: the same 13 and the promotion code and amount, empty or not), and an
  answer without a valid one is not trusted.
Our reference at VNPay (`vnp_TxnRef`) is our payment id.
"""

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote_plus

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

VERSION = "2.1.0"
PAY_PATH = "/paymentv2/vpcpay.html"
API_PATH = "/merchant_webapi/api/transaction"
VN_TZ = timezone(timedelta(hours=7))
HASH_FIELDS = {"vnp_SecureHash", "vnp_SecureHashType"}
#: VNPay amounts are VND × 100.
SCALE = 100

QUERY_FIELDS = ["vnp_RequestId", "vnp_Version", "vnp_Command", "vnp_TmnCode", "vnp_TxnRef",
                "vnp_TransactionDate", "vnp_CreateDate", "vnp_IpAddr", "vnp_OrderInfo"]
REFUND_FIELDS = ["vnp_RequestId", "vnp_Version", "vnp_Command", "vnp_TmnCode", "vnp_TransactionType",
                 "vnp_TxnRef", "vnp_Amount", "vnp_TransactionNo", "vnp_TransactionDate", "vnp_CreateBy",
                 "vnp_CreateDate", "vnp_IpAddr", "vnp_OrderInfo"]
QUERY_RESPONSE_FIELDS = ["vnp_ResponseId", "vnp_Command", "vnp_ResponseCode", "vnp_Message", "vnp_TmnCode",
                         "vnp_TxnRef", "vnp_Amount", "vnp_BankCode", "vnp_PayDate", "vnp_TransactionNo",
                         "vnp_TransactionType", "vnp_TransactionStatus", "vnp_OrderInfo", "vnp_PromotionCode",
                         "vnp_PromotionAmount"]
REFUND_RESPONSE_FIELDS = QUERY_RESPONSE_FIELDS[:13]

IPN_ANSWERS = {
    Ack.OK: ("00", "Confirm Success"),
    Ack.DUPLICATE: ("02", "Order already confirmed"),
    Ack.NOT_FOUND: ("01", "Order not found"),
    Ack.INVALID_AMOUNT: ("04", "invalid amount"),
    Ack.INVALID_SIGNATURE: ("97", "Invalid signature"),
    Ack.INVALID_REQUEST: ("99", "Invalid request"),
    Ack.ERROR: ("99", "Unknow error"),
}

#: Refund vnp_ResponseCode → meaning (VNPay's refund table, as community copies of the official docs give it;
#: the npm `vnpay` package wrongly gives 02 querydr's meaning).
REFUND_CODES = {
    "00": "refund accepted",
    "02": "the total refunded would be greater than the original amount",
    "03": "data in the wrong format",
    "04": "a full refund is not allowed after a partial refund",
    "13": "only a partial refund is allowed for this transaction",
    "91": "no such transaction to refund",
    "93": "invalid amount (it must be at most the amount paid)",
    "94": "duplicate request within the API's limit (5 minutes)",
    "95": "the transaction was not successful at VNPay; refund refused",
    "97": "invalid checksum",
    "98": "timeout",
    "99": "other error",
}
#: Refund answers that leave it unknown whether VNPay refunded: never taken as a refusal, and (VNPay does not
#: de-duplicate refunds) left to a person by the refund service. 94 is one: our request id is our refund's own, so a duplicate means an earlier attempt of this very refund
#: reached VNPay, whose answer we did not get.
REFUND_UNKNOWN = {"94", "98", "99"}

#: vnp_ResponseCode of a pay result → our outcome (anything else not 00 is a failure).
RESPONSE_OUTCOMES = {"24": Outcome.CANCELLED, "11": Outcome.EXPIRED}
#: vnp_ResponseCode of a failed pay result → (what the shopper is told, VNPay's meaning for the merchant's
#: timeline), from VNPay's table of payment response codes.
RESPONSE_REASONS = {
    "09": (Reason.DECLINED, "the card or account is not registered for internet banking"),
    "10": (Reason.WRONG_CODE, "card or account details verified wrongly more than 3 times"),
    "11": (Reason.TIMED_OUT, "the time to pay ran out"),
    "12": (Reason.DECLINED, "the card or account is locked"),
    "13": (Reason.WRONG_CODE, "wrong one-time password (OTP)"),
    "24": (Reason.CANCELLED, "the shopper cancelled"),
    "51": (Reason.INSUFFICIENT_FUNDS, "insufficient balance"),
    "65": (Reason.LIMIT_EXCEEDED, "the account's daily limit is exceeded"),
    "75": (Reason.GATEWAY_UNAVAILABLE, "the paying bank is under maintenance"),
    "79": (Reason.WRONG_CODE, "wrong payment password too many times"),
}
#: querydr vnp_TransactionStatus → our outcome. 05/06/09 are refund states of a paid transaction.
TRANSACTION_OUTCOMES = {"00": Outcome.SUCCEEDED, "01": Outcome.PROCESSING, "02": Outcome.FAILED,
                        "04": Outcome.FAILED, "05": Outcome.SUCCEEDED, "06": Outcome.SUCCEEDED,
                        "07": Outcome.PROCESSING, "09": Outcome.SUCCEEDED}

_SAFE_TEXT = re.compile(r"[^A-Za-z0-9 _.:-]")


def hash_data(params, *, keep_empty=False):
    """The string VNPay signs: sorted vnp_* params, quote_plus-encoded, joined with &. Empty values are left
    out (VNPay's Java and .NET demos) unless `keep_empty` (its PHP, Python and Node demos)."""
    items = sorted((k, "" if v is None else str(v)) for k, v in params.items()
                   if k.startswith("vnp_") and k not in HASH_FIELDS and (keep_empty or v not in (None, "")))
    return "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in items)


def without_empty(params):
    """What we send VNPay: never an empty parameter, so both of VNPay's hashing rules agree on it."""
    return {k: v for k, v in params.items() if v not in (None, "")}


def hmac_sha512(secret, data):
    return hmac.new(secret.encode(), data.encode("utf-8"), hashlib.sha512).hexdigest()


def sign_params(secret, params, *, keep_empty=False):
    return hmac_sha512(secret, hash_data(params, keep_empty=keep_empty))


def signed_url(base, secret, params):
    """`base?<hash data>&vnp_SecureHash=…` with every empty parameter left out (see the module docstring)."""
    query = hash_data(without_empty(params))
    return f"{base}?{query}&vnp_SecureHash={hmac_sha512(secret, query)}"


def verify_params(secret, params):
    """True if params['vnp_SecureHash'] signs the other vnp_* params with `secret`, empty values hashed or
    skipped (VNPay's demos do both; see the module docstring). Both checks always run."""
    given = str(params.get("vnp_SecureHash") or "").lower()
    if not secret or not given:
        return False
    skipped = constant_time_equals(sign_params(secret, params), given)
    kept = constant_time_equals(sign_params(secret, params, keep_empty=True), given)
    return skipped or kept


def pipe_checksum(secret, values, fields):
    """The querydr/refund checksum: HMAC-SHA512 over the raw values of `fields`, pipe-joined."""
    return hmac_sha512(secret, "|".join(str(values.get(f) if values.get(f) is not None else "") for f in fields))


def vn_time(dt):
    """An aware or naive-UTC datetime → yyyyMMddHHmmss in GMT+7."""
    aware = dt if dt.tzinfo else as_utc(dt)
    return aware.astimezone(VN_TZ).strftime("%Y%m%d%H%M%S")


def ascii_text(text, limit=255):
    """VNPay wants ASCII without diacritics in free text; keep it to characters every encoder agrees on."""
    import unicodedata

    plain = unicodedata.normalize("NFKD", text or "").replace("đ", "d").replace("Đ", "D")
    plain = plain.encode("ascii", "ignore").decode()
    return _SAFE_TEXT.sub(" ", plain).strip()[:limit] or "Payment"


def to_vnp_amount(amount):
    return str(amount * SCALE)


def from_vnp_amount(value):
    """'1000000' → 10000; None if it is not a whole number of VND × 100."""
    text = str(value or "")
    if not text.isdigit() or int(text) % SCALE:
        return None
    return int(text) // SCALE


def _transaction_no(value):
    """VNPay's transaction number; VNPay sends 0 when no transaction happened (a cancel)."""
    return value if value not in (None, "", "0") else None


class VNPayGateway(Gateway):
    code = "vnpay"
    name = "VNPay"
    currencies = frozenset({"VND"})
    base_urls = {"sandbox": "https://sandbox.vnpayment.vn", "live": "https://pay.vnpay.vn"}
    credential_fields = {"tmn_code": "Terminal code (vnp_TmnCode)", "hash_secret": "Hash secret (vnp_HashSecret)"}
    browser_kinds = frozenset({"return"})
    local_kinds = frozenset({"ipn", "return"})  # vnp_SecureHash only
    #: A repeated vnp_RequestId gets 94 (duplicate request), never the first refund's outcome, and we know of
    #: no documented promise that VNPay de-duplicates it for good.
    refund_idempotent = False

    def _secret(self, ctx):
        return ctx.credentials.get("hash_secret", "")

    def start(self, payment, ctx):
        now = datetime.now(UTC)
        order_info = ascii_text(f"Thanh toan don hang {payment.reference}")
        params = {
            "vnp_Version": VERSION,
            "vnp_Command": "pay",
            "vnp_TmnCode": ctx.credentials.get("tmn_code", ""),
            "vnp_Amount": to_vnp_amount(payment.amount),
            "vnp_CurrCode": "VND",
            "vnp_TxnRef": payment.order_id,
            "vnp_OrderInfo": order_info,
            "vnp_OrderType": "other",
            "vnp_Locale": "vn" if payment.locale == "vi" else "en",  # VNPay's pay page speaks vn or en only
            "vnp_ReturnUrl": ctx.callback_url("return"),
            "vnp_IpAddr": ctx.shopper_ip,
            "vnp_CreateDate": vn_time(now),
            "vnp_ExpireDate": vn_time(payment.expires_at),
        }  # no vnp_BankCode: the shopper chooses on VNPay's page
        url = signed_url(f"{ctx.base_url}{PAY_PATH}", self._secret(ctx), params)
        return StartResult(Redirect(url), gateway_reference=payment.order_id,
                           gateway_data={"create_date": params["vnp_CreateDate"], "order_info": order_info},
                           raw={k: v for k, v in params.items() if k != "vnp_IpAddr"})

    def identify(self, kind, req):
        if kind not in ("return", "ipn"):
            raise CallbackError(Ack.NOT_FOUND, f"unknown callback {kind}")
        ref = req.args.get("vnp_TxnRef")
        if not ref:
            raise CallbackError(Ack.INVALID_REQUEST, "no vnp_TxnRef")
        return Lookup(order_id=ref)

    def verify_callback(self, kind, req, payment, ctx):
        params = req.args
        if not verify_params(self._secret(ctx), params):
            raise CallbackError(Ack.INVALID_SIGNATURE, "vnp_SecureHash does not match")
        if params.get("vnp_TmnCode") != ctx.credentials.get("tmn_code"):
            raise CallbackError(Ack.NOT_FOUND, "the callback is for another terminal")
        amount = from_vnp_amount(params.get("vnp_Amount"))
        if amount is None:
            raise CallbackError(Ack.INVALID_AMOUNT, f"vnp_Amount {params.get('vnp_Amount')!r} is not VND x 100")
        code, status = params.get("vnp_ResponseCode"), params.get("vnp_TransactionStatus")
        if code == "00" and status == "00":
            outcome = Outcome.SUCCEEDED
        elif code == "07" or status == "07":
            outcome = Outcome.PROCESSING  # debited, but VNPay suspects fraud: hold for review
        else:
            outcome = RESPONSE_OUTCOMES.get(code, Outcome.FAILED)
        return CallbackResult(
            outcome=outcome,
            amount=amount,
            currency="VND",
            order_id=params.get("vnp_TxnRef"),
            gateway_reference=params.get("vnp_TxnRef"),
            gateway_transaction_id=_transaction_no(params.get("vnp_TransactionNo")),
            trusted=kind == "ipn",
            needs_review=outcome == Outcome.PROCESSING,
            failure_code=None if outcome == Outcome.SUCCEEDED else f"vnpay_{code}",
            reason=RESPONSE_REASONS.get(code, (None,))[0],
            message=None if outcome == Outcome.SUCCEEDED else ": ".join(filter(None, [
                f"VNPay response code {code}", (RESPONSE_REASONS.get(code) or (None, None))[1]])),
            card_summary=" ".join(filter(None, [params.get("vnp_BankCode"), params.get("vnp_CardType")])) or None,
            raw=req.raw(),
        )

    def acknowledge(self, kind, ack):
        code, message = IPN_ANSWERS[ack]
        return {"RspCode": code, "Message": message}, 200, {}

    # --- the merchant web API (querydr, refund) -------------------------------------------------------------

    def _api(self, ctx, body, fields, response_fields):
        body["vnp_SecureHash"] = pipe_checksum(self._secret(ctx), body, fields)
        response = self.http("POST", f"{ctx.base_url}{API_PATH}", json=body)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise GatewayError(f"VNPay answered HTTP {response.status_code} without JSON")
        given = str(data.get("vnp_SecureHash") or "").lower()
        if not given or not constant_time_equals(pipe_checksum(self._secret(ctx), data, response_fields), given):
            raise GatewayError(f"VNPay's answer ({data.get('vnp_ResponseCode')} {data.get('vnp_Message', '')}) "
                               "has no valid checksum: not trusted", raw=data)
        return data

    def _request_base(self, command, payment, ctx, request_id=None):
        return {
            "vnp_RequestId": request_id or secrets.token_hex(16),
            "vnp_Version": VERSION,
            "vnp_Command": command,
            "vnp_TmnCode": ctx.credentials.get("tmn_code", ""),
            "vnp_TxnRef": payment.gateway_reference or payment.order_id,
            "vnp_OrderInfo": ascii_text(f"{command} {payment.order_id}"),
            "vnp_TransactionDate": payment.gateway_data.get("create_date") or vn_time(payment.created_at),
            "vnp_CreateDate": vn_time(datetime.now(UTC)),
            "vnp_IpAddr": ctx.shopper_ip,
        }

    def query(self, payment, ctx):
        data = self._api(ctx, self._request_base("querydr", payment, ctx), QUERY_FIELDS, QUERY_RESPONSE_FIELDS)
        code = data.get("vnp_ResponseCode")
        if code == "91":  # VNPay knows no transaction yet: the shopper has not paid
            return CallbackResult(Outcome.NONE, message="VNPay has no transaction for this order", raw=data)
        if code != "00":
            raise GatewayError(f"VNPay querydr refused: {code} {data.get('vnp_Message', '')}", code=code, raw=data)
        status = data.get("vnp_TransactionStatus")
        outcome = TRANSACTION_OUTCOMES.get(status, Outcome.NONE)
        return CallbackResult(
            outcome=outcome,
            amount=from_vnp_amount(data.get("vnp_Amount")),
            currency="VND",
            order_id=data.get("vnp_TxnRef"),
            gateway_reference=data.get("vnp_TxnRef"),
            gateway_transaction_id=_transaction_no(data.get("vnp_TransactionNo")),
            needs_review=status == "07",
            failure_code=f"vnpay_status_{status}" if outcome == Outcome.FAILED else None,
            message=data.get("vnp_Message"),
            raw=data,
        )

    def refund(self, payment, amount, refund_id, ctx):
        full = amount == payment.amount  # (amount_refunded may already hold this refund's reservation)
        body = self._request_base("refund", payment, ctx, request_id=re.sub(r"[^A-Za-z0-9]", "", refund_id)[-32:])
        body.update({
            "vnp_TransactionType": "02" if full else "03",
            "vnp_Amount": to_vnp_amount(amount),
            "vnp_TransactionNo": payment.gateway_transaction_id or "0",
            "vnp_CreateBy": "paysmith",
        })
        data = self._api(ctx, body, REFUND_FIELDS, REFUND_RESPONSE_FIELDS)
        code = data.get("vnp_ResponseCode")
        message = f"VNPay refund {code}: {REFUND_CODES.get(code, 'unknown response code')}"
        if code == "00":
            return RefundResult("succeeded", gateway_reference=data.get("vnp_TransactionNo"), message=message,
                                raw=data)
        if code in REFUND_UNKNOWN or code not in REFUND_CODES:
            return RefundResult("unknown", message=message, raw=data)
        return RefundResult("failed", message=message, raw=data)
