"""Simulator of VNPay v2.1.0: the signed payment URL, the hosted page, the browser return, the GET IPN
(retried every 5 minutes, 10 calls at most, until the merchant answers RspCode 00 or 02), and the
querydr/refund JSON API with its checksums (every answer signed over VNPay's response field order).

The IPN URL is registered with VNPay out of band; here it is our own `/callbacks/vnpay/ipn`.
It shares nothing with app/gateways/vnpay.py but the protocol: the hashing below is written again from
VNPay's sample code on purpose, so a mistake on one side shows up as a refused signature.

| path (under /sandbox/vnpay) | method | answers |
|---|---|---|
| `/paymentv2/vpcpay.html?…&vnp_SecureHash=…` | GET | checks the signed URL, redirects to the payment page (or VNPay's error page) |
| `/paymentv2/Transaction/PaymentMethod.html` | GET, POST | the payment page; then the return redirect and the IPN |
| `/merchant_webapi/api/transaction` | POST | `querydr` and `refund` (JSON, pipe checksums) |
| anything else, or another method | any | `vnp_ResponseCode` 99 (JSON on the web API, the error page elsewhere) |

Empty parameters on the pay URL (`vnp_BankCode=`): VNPay's PHP, Python and Node demos hash them, its Java and
.NET demos skip them (module docstring of app/gateways/vnpay.py has the files), and nothing public shows
which rule VNPay's server applies; all of those demos avoid sending an empty `vnp_BankCode`. The simulator is
lenient where the evidence is: a signature computed either way is accepted, and an empty optional parameter
counts as not sent (an empty `vnp_BankCode` lets the shopper choose, as leaving it out does). A required one
left empty is still refused (03). Its own returns and IPNs never carry an empty value, so both rules verify
them.

Not simulated: token payments, installments, the merchant portal.
"""

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote_plus

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
from app.security import constant_time_equals

CODE = "vnpay"
SANDBOX_CREDENTIALS = {"tmn_code": "PSMITH01", "hash_secret": "PAYSMITHSANDBOXVNPAYHASHSECRET2026"}
#: IPN retries after each attempt not answered RspCode 00/02 (01, 04, 97, 99, a timeout or an error): at most
#: 10 calls in all, 5 minutes apart (VNPay docs, sandbox.vnpayment.vn/apis/docs/thanh-toan-pay/pay.html:
#: "Tổng số lần gọi tối đa: 10 lần / Khoảng cách giữa các lần gọi lại: 5 phút").
IPN_RETRIES = [300] * 9
#: VNPay answers 94 to a request id it saw within this many seconds ("duplicate request within the API limit").
DUPLICATE_WINDOW = 300
TZ = timezone(timedelta(hours=7))
#: VNPay's accepted amounts in VND (its sandbox's own error message states the range).
MIN_AMOUNT, MAX_AMOUNT = 5_000, 1_000_000_000
PAY_REQUIRED = ["vnp_Version", "vnp_Command", "vnp_TmnCode", "vnp_Amount", "vnp_CurrCode", "vnp_TxnRef",
                "vnp_OrderInfo", "vnp_OrderType", "vnp_Locale", "vnp_ReturnUrl", "vnp_IpAddr", "vnp_CreateDate"]
#: The outcome buttons: (vnp_ResponseCode, vnp_TransactionStatus).
OUTCOMES = {"success": ("00", "00"), "failure": ("51", "02"), "cancel": ("24", "02")}
API_FIELDS = {
    "querydr": ["vnp_RequestId", "vnp_Version", "vnp_Command", "vnp_TmnCode", "vnp_TxnRef", "vnp_TransactionDate",
                "vnp_CreateDate", "vnp_IpAddr", "vnp_OrderInfo"],
    "refund": ["vnp_RequestId", "vnp_Version", "vnp_Command", "vnp_TmnCode", "vnp_TransactionType", "vnp_TxnRef",
               "vnp_Amount", "vnp_TransactionNo", "vnp_TransactionDate", "vnp_CreateBy", "vnp_CreateDate",
               "vnp_IpAddr", "vnp_OrderInfo"],
}
RESPONSE_FIELDS = {
    "querydr": ["vnp_ResponseId", "vnp_Command", "vnp_ResponseCode", "vnp_Message", "vnp_TmnCode", "vnp_TxnRef",
                "vnp_Amount", "vnp_BankCode", "vnp_PayDate", "vnp_TransactionNo", "vnp_TransactionType",
                "vnp_TransactionStatus", "vnp_OrderInfo", "vnp_PromotionCode", "vnp_PromotionAmount"],
    "refund": ["vnp_ResponseId", "vnp_Command", "vnp_ResponseCode", "vnp_Message", "vnp_TmnCode", "vnp_TxnRef",
               "vnp_Amount", "vnp_BankCode", "vnp_PayDate", "vnp_TransactionNo", "vnp_TransactionType",
               "vnp_TransactionStatus", "vnp_OrderInfo"],
}

bp = Blueprint("sandbox_vnpay", __name__)


def _hmac(data):
    return hmac.new(SANDBOX_CREDENTIALS["hash_secret"].encode(), data.encode(), hashlib.sha512).hexdigest()


def _query_string(params, keep_empty=False):
    """VNPay's hash data; empty values skipped (Java/.NET demos) or kept (PHP/Python/Node demos)."""
    keys = sorted(k for k in params if k.startswith("vnp_") and k not in ("vnp_SecureHash", "vnp_SecureHashType")
                  and (keep_empty or params[k] not in (None, "")))
    return "&".join(quote_plus(k) + "=" + quote_plus("" if params[k] is None else str(params[k])) for k in keys)


def signed_either_way(params):
    """True if vnp_SecureHash signs the params with empty values skipped or with them kept."""
    given = str(params.get("vnp_SecureHash", "")).lower()
    results = [constant_time_equals(_hmac(_query_string(params, keep)), given) for keep in (False, True)]
    return any(results)


def _pipe(values, fields):
    return _hmac("|".join("" if values.get(f) is None else str(values[f]) for f in fields))


def _now():
    return datetime.now(UTC).astimezone(TZ)


def _error_page(code, message, status=400):
    return render_template("sandbox/vnpay/error.html", code=code, message=message), status


def error_envelope(status, kind, message):
    """VNPay's own answers: the merchant web API (`/merchant_webapi/…`, JSON) with vnp_ResponseCode 99 ("other
    error" in its code lists), its payment pages with its error page."""
    text = {NOT_FOUND: "Not found", METHOD_NOT_ALLOWED: "Method not allowed", SERVER_ERROR: "Unknow error"}.get(
        kind, message)
    status = 500 if kind == SERVER_ERROR else (405 if kind == METHOD_NOT_ALLOWED else (
        404 if kind == NOT_FOUND else status))
    if gateway_path().startswith("/merchant_webapi/"):
        return jsonify({"vnp_ResponseCode": "99", "vnp_Message": text}), status
    return _error_page("99", text, status)


# --- the payment page ---------------------------------------------------------------------------------------


@bp.get("/paymentv2/vpcpay.html")
def pay():
    params = request.args.to_dict()
    if params.get("vnp_TmnCode") != SANDBOX_CREDENTIALS["tmn_code"]:
        return _error_page("02", "Merchant không hợp lệ (invalid vnp_TmnCode).")
    if not signed_either_way(params):
        return _error_page("70", "Sai chữ ký (invalid signature).")
    params = {k: v for k, v in params.items() if v != ""}  # an empty optional parameter counts as not sent
    missing = [k for k in PAY_REQUIRED if not params.get(k)]
    amount = params.get("vnp_Amount", "")
    if missing or params.get("vnp_Version") != "2.1.0" or params.get("vnp_Command") != "pay" \
            or not amount.isdigit() or int(amount) < 100 or int(amount) % 100 or params.get("vnp_CurrCode") != "VND":
        return _error_page("03", "Dữ liệu gửi sang không đúng định dạng (invalid data format): "
                           + ", ".join(missing or ["vnp_Version/vnp_Command/vnp_Amount/vnp_CurrCode"]))
    if not MIN_AMOUNT <= int(amount) // 100 < MAX_AMOUNT:
        return _error_page("03", "Số tiền giao dịch không hợp lệ. Số tiền hợp lệ từ 5,000 đến dưới 1 tỷ đồng "
                                 "(amount must be from 5,000 VND to under 1 billion VND).")
    expire = params.get("vnp_ExpireDate")
    if expire and expire <= _now().strftime("%Y%m%d%H%M%S"):
        return _error_page("11", "Giao dịch đã quá thời gian chờ thanh toán (payment time expired).")
    token = secrets.token_hex(16)
    save(CODE, "page", token, {"params": params, "status": "open"})
    return redirect(f"/sandbox/{CODE}/paymentv2/Transaction/PaymentMethod.html?token={token}", code=302)


@bp.route("/paymentv2/Transaction/PaymentMethod.html", methods=["GET", "POST"])
def payment_page():
    token = request.args.get("token", "")
    page = load(CODE, "page", token) if token else None
    if page is None:
        return _error_page("01", "Giao dịch không tồn tại (transaction not found).", 404)
    params = page["params"]
    if page["status"] != "open":
        return _error_page("02", "Giao dịch đã được xử lý (transaction already processed).", 409)
    outcome = request.form.get("outcome") if request.method == "POST" else None
    if outcome not in OUTCOMES:
        return render_template("sandbox/vnpay/pay.html", params=params, amount=int(params["vnp_Amount"]) // 100,
                               token=token), (400 if request.method == "POST" else 200)
    response_code, status = OUTCOMES[outcome]
    result = {
        "vnp_Amount": params["vnp_Amount"],
        "vnp_BankCode": "NCB",
        "vnp_CardType": "ATM",
        "vnp_OrderInfo": params["vnp_OrderInfo"],
        "vnp_PayDate": _now().strftime("%Y%m%d%H%M%S"),
        "vnp_ResponseCode": response_code,
        "vnp_TmnCode": params["vnp_TmnCode"],
        "vnp_TransactionNo": str(secrets.randbelow(90_000_000) + 10_000_000) if outcome != "cancel" else "0",
        "vnp_TransactionStatus": status,
        "vnp_TxnRef": params["vnp_TxnRef"],
    }
    if outcome == "success":
        result["vnp_BankTranNo"] = "VNP" + result["vnp_TransactionNo"]
    query = _query_string(result) + "&vnp_SecureHash=" + _hmac(_query_string(result))
    page["status"] = "done"
    save(CODE, "page", token, page)
    save(CODE, "txn", params["vnp_TxnRef"], {
        "result": result, "create_date": params["vnp_CreateDate"], "amount_refunded": 0, "refunds": []})
    ipn_url = f"{current_app.config['PUBLIC_BASE_URL']}/callbacks/{CODE}/ipn"
    send_later("GET", f"{ipn_url}?{query}", delays=IPN_RETRIES, accept="app.sandbox.vnpay.ipn_accepted")
    return redirect(f"{params['vnp_ReturnUrl']}?{query}", code=302)


def ipn_accepted(response):
    """VNPay stops retrying once the merchant confirms (00) or says it already had it (02)."""
    try:
        return response.status_code == 200 and response.json().get("RspCode") in ("00", "02")
    except ValueError:
        return False


# --- the merchant web API -----------------------------------------------------------------------------------


def _answer(command, body, code, message, txn=None, **extra):
    data = {"vnp_ResponseId": secrets.token_hex(16), "vnp_Command": command, "vnp_ResponseCode": code,
            "vnp_Message": message, "vnp_TmnCode": body.get("vnp_TmnCode", ""), "vnp_TxnRef": body.get("vnp_TxnRef", "")}
    if txn:
        result = txn["result"]
        data.update({"vnp_Amount": result["vnp_Amount"], "vnp_BankCode": result["vnp_BankCode"],
                     "vnp_PayDate": result["vnp_PayDate"], "vnp_TransactionNo": result["vnp_TransactionNo"],
                     "vnp_TransactionType": "01", "vnp_TransactionStatus": result["vnp_TransactionStatus"],
                     "vnp_OrderInfo": result["vnp_OrderInfo"], "vnp_PromotionCode": "", "vnp_PromotionAmount": ""})
    data.update(extra)
    data["vnp_SecureHash"] = _pipe(data, RESPONSE_FIELDS.get(command, RESPONSE_FIELDS["querydr"]))
    return jsonify(data)


@bp.post("/merchant_webapi/api/transaction")
def api():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _answer("", {}, "03", "Invalid data format")
    command = body.get("vnp_Command")
    if command not in API_FIELDS:
        return _answer(str(command or ""), body, "03", "Invalid vnp_Command")
    if body.get("vnp_TmnCode") != SANDBOX_CREDENTIALS["tmn_code"]:
        # querydr's 02; the refund table has no code for it (its 02 is an over-refund): 99, other error.
        return _answer(command, body, "02" if command == "querydr" else "99", "Merchant is not valid")
    if any(not body.get(f) for f in API_FIELDS[command] if f != "vnp_TransactionNo"):
        return _answer(command, body, "03", "Invalid data format")
    if not constant_time_equals(_pipe(body, API_FIELDS[command]), str(body.get("vnp_SecureHash", "")).lower()):
        return _answer(command, body, "97", "Invalid Checksum")
    redis_key = f"request:{body['vnp_TmnCode']}:{body['vnp_RequestId']}"
    if load(CODE, "request", redis_key):
        return _answer(command, body, "94", "Duplicate request")
    save(CODE, "request", redis_key, True, ttl=DUPLICATE_WINDOW)
    txn = load(CODE, "txn", body["vnp_TxnRef"])
    if txn is None or txn["create_date"] != body["vnp_TransactionDate"]:
        return _answer(command, body, "91", "Transaction not found")
    if command == "querydr":
        return _answer(command, body, "00", "QueryDR Success", txn)
    return _refund(body, txn)


def _refund(body, txn):
    """VNPay's refund answers: 95 not paid, 03 bad format, 93 more than was paid, 04 a full refund after a
    partial one, 02 more than is left in all; 13 (only partial allowed) depends on the bank, never here."""
    result = txn["result"]
    if result["vnp_TransactionStatus"] != "00":
        return _answer("refund", body, "95", "Transaction is not successful at VNPAY; refund refused")
    amount, original = body.get("vnp_Amount", ""), int(result["vnp_Amount"])
    kind = body.get("vnp_TransactionType")
    if not amount.isdigit() or int(amount) <= 0 or int(amount) % 100 or kind not in ("02", "03"):
        return _answer("refund", body, "03", "Invalid data format")
    if int(amount) > original:
        return _answer("refund", body, "93", "Invalid amount: must be at most the amount paid")
    if kind == "02" and txn["amount_refunded"]:
        return _answer("refund", body, "04", "Full refund is not allowed after a partial refund")
    if int(amount) > original - txn["amount_refunded"]:
        return _answer("refund", body, "02", "Total refund amount is greater than the original amount")
    if kind == "02" and int(amount) != original:
        return _answer("refund", body, "03", "Invalid data format: a full refund is of the whole amount")
    txn["amount_refunded"] += int(amount)
    refund_no = str(secrets.randbelow(90_000_000) + 10_000_000)
    txn["refunds"].append({"no": refund_no, "amount": amount, "type": kind})
    save(CODE, "txn", body["vnp_TxnRef"], txn)
    return _answer("refund", body, "00", "Refund success", None,
                   vnp_Amount=amount, vnp_BankCode=result["vnp_BankCode"], vnp_PayDate=_now().strftime("%Y%m%d%H%M%S"),
                   vnp_TransactionNo=refund_no, vnp_TransactionType=kind, vnp_TransactionStatus="05",
                   vnp_OrderInfo=body.get("vnp_OrderInfo", ""))
