"""bKash Tokenized Checkout simulator (v1.2.0-beta), mounted at /sandbox/bkash.

The API as bKash serves it under `https://tokenized.sandbox.bka.sh/v1.2.0-beta/tokenized/checkout/…`:

| path (under /sandbox/bkash/v1.2.0-beta/tokenized/checkout) | method | answers |
|---|---|---|
| `token/grant`, `token/refresh` | POST | `id_token`, `refresh_token`, `expires_in` |
| `create` | POST | `paymentID`, `bkashURL`, the callback URLs (amount as a string or a JSON number) |
| `execute` | POST | the completed payment with `trxID` (once; again: 2117) |
| `payment/status` | POST | the payment query: `merchantInvoice`, `verificationStatus`, … |
| `general/searchTransaction` | POST | a completed payment by `trxID` |
| `payment/refund` | POST | a refund (`sku` and `reason` kept with it); with only `paymentID` and `trxID`, the refund status: every refund in `refundTransactions[]` with its `sku` |
| anything else, or another method | any | 403 `{"message": "Missing Authentication Token"}` |
| `/sandbox/bkash/redirect/tokenized/?paymentID=…` | GET, POST | the shopper's wallet page |

Not simulated: agreements (`agreement/*`, mode 0000/0001), `payment/capture`/`void` (intent authorization),
the v2 refund API, the SNS IPN.
Business answers are HTTP 200 with bKash's `statusCode`/
`statusMessage` envelope (errors: statusCode other than "0000"). Authorisation is refused earlier, by bKash's
API gateway, without that envelope (bKash-developer/bKash-for-woocommerce, includes/classes/ApiComm.php, which
grants a new token on 401): a missing or unknown id_token gets HTTP 401 `{"message": "Unauthorized"}`, an
expired one HTTP 401 `{"message": "The incoming token has expired"}`, a wrong `X-APP-Key` HTTP 403
`{"message": "Forbidden"}` (the id_token is checked first: the order is the simulator's choice). The wallet
page at `/sandbox/bkash/redirect/tokenized/?paymentID=…` has buttons named `outcome` (success, failure,
cancel) and sends the browser back to `callbackURL?paymentID=…&status=…&signature=…&apiVersion=1.2.0-beta`, as
bKash does. bKash sends no server-to-server notification in this flow.

A `success` on the wallet page only authorises the payment; it is `Completed` once the merchant calls
`execute`, which answers once (a second call gets 2117 "Payment execution already been called before", as
bKash's sandbox does). Tests can make `execute` answer late (`set_execute_delay`); the payment is completed
before the delay, as when bKash's answer is lost on the way.
Error codes are bKash's published ones (developer.bka.sh/docs/error-codes, via gateways.md §4).
"""

import functools
import hmac
import secrets
import time
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from flask import Blueprint, jsonify, redirect, render_template, request

from app.extensions import get_redis
from app.sandbox._common import (
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    SERVER_ERROR,
    decimal_amount,
    gateway_path,
    load,
    save,
)

CODE = "bkash"
API = "/v1.2.0-beta/tokenized/checkout"
SANDBOX_CREDENTIALS = {
    "app_key": "4f6o0cjiki2rfm34kfdadl1eqq",
    "app_secret": "2is7hdktrekvrbljjh44ll3d9l1dtjo4pasmjvs5vl5qr3fug4b",
    "username": "sandboxTokenizedUser02",
    "password": "sandboxTokenizedUser02@12345",
}
TOKEN_SECONDS = 3600
#: How long an expired id_token is still recognised (and answered "expired" rather than "Unauthorized").
EXPIRED_TOKEN_MEMORY = 24 * 3600
REFRESH_TOKEN_SECONDS = 28 * 24 * 3600
DHAKA = timezone(timedelta(hours=6))
#: The merchant's bKash organisation short code, as searchTransaction reports it.
ORGANIZATION_SHORT_CODE = "50022"
ERRORS = {
    "2001": "Invalid App Key",
    "2002": "Invalid Payment ID",
    "2006": "Invalid Amount",
    "2007": "Invalid Currency",
    "2008": "Invalid Intent",
    "2029": "Duplicate for all transactions",
    "2033": "Transaction not found",
    "2049": "Invalid Callback URL",
    "2056": "Invalid Payment State",
    "2065": "Mandatory field missing",
    "2117": "Payment execution already been called before",
}

bp = Blueprint("sandbox_bkash", __name__)


def _key(*parts):
    return ":".join(("sandbox", CODE, *parts))


def stats(name):
    """How many token grants / refreshes / executes the simulator served (for tests and the bench)."""
    raw = get_redis().get(_key("count", name))
    return int(raw) if raw else 0


def _count(name):
    get_redis().incr(_key("count", name))


def set_execute_delay(seconds):
    """Make `execute` answer `seconds` late (0 to stop), across every process sharing this Redis."""
    if seconds:
        get_redis().set(_key("execute_delay"), str(seconds), ex=3600)
    else:
        get_redis().delete(_key("execute_delay"))


def set_refund_status(status):
    """Answer the refunds asked from now on with this `transactionStatus` (e.g. "Pending"; None: Completed),
    as bKash does for a refund it has not finished, across every process sharing this Redis."""
    if status:
        get_redis().set(_key("refund_status"), status, ex=3600)
    else:
        get_redis().delete(_key("refund_status"))


def settle_refunds(payment_id, status="Completed"):
    """bKash finishes every unfinished refund of the payment (tests)."""
    payment = load(CODE, "payment", payment_id)
    for done in payment["refunds"]:
        if done["transactionStatus"] != "Completed":
            done["transactionStatus"] = status
            done["completedTime"] = _now_text()
    save(CODE, "payment", payment_id, payment)


def _now_text():
    now = datetime.now(UTC).astimezone(DHAKA)
    return now.strftime("%Y-%m-%dT%H:%M:%S:") + f"{now.microsecond // 1000:03d} GMT+0600"


def _error(code):
    return jsonify({"statusCode": code, "statusMessage": ERRORS[code]})


def error_envelope(status, kind, message):
    """bKash's API gateway (the layer that answers 401/403 with `{"message"}`, see above) answers a path or
    method it does not route with HTTP 403 `{"message": "Missing Authentication Token"}` — the answer of the
    AWS API Gateway whose messages bKash's 401s are ("The incoming token has expired"); inferred, bKash does not
    document it. A failure of bKash itself is its published code 503 in the statusCode envelope."""
    if gateway_path().startswith("/redirect/"):
        return None  # the shopper's wallet page: an HTML page of its own
    if kind in (NOT_FOUND, METHOD_NOT_ALLOWED):
        return jsonify({"message": "Missing Authentication Token"}), 403
    if kind == SERVER_ERROR:
        return jsonify({"statusCode": "503",
                        "statusMessage": "System is undergoing maintenance. Please try again later"}), 500
    return jsonify({"message": message}), status


def _unauthorized(message="Unauthorized"):
    return jsonify({"message": message}), 401


def expire_token(id_token):
    """Make an issued id_token expire now (for tests: bKash's clock ran out before the merchant's did)."""
    get_redis().set(_key("id_token", id_token), str(time.time() - 1), ex=EXPIRED_TOKEN_MEMORY)


def _same(a, b):
    return hmac.compare_digest(str(a or "").encode(), str(b or "").encode())


def _issue_token():
    id_token = "eyJraWQiOiJzYW5kYm94In0." + secrets.token_urlsafe(48)
    refresh_token = "eyJjdHkiOiJKV1QifQ." + secrets.token_urlsafe(48)
    redis = get_redis()
    redis.set(_key("id_token", id_token), str(time.time() + TOKEN_SECONDS), ex=TOKEN_SECONDS + EXPIRED_TOKEN_MEMORY)
    redis.set(_key("refresh_token", refresh_token), "1", ex=REFRESH_TOKEN_SECONDS)
    return jsonify({"statusCode": "0000", "statusMessage": "Successful", "id_token": id_token,
                    "token_type": "Bearer", "expires_in": TOKEN_SECONDS, "refresh_token": refresh_token})


def _token_refusal(body):
    """bKash's answer to a token call with wrong credentials, or None when they are right."""
    creds = SANDBOX_CREDENTIALS
    if not (_same(request.headers.get("username"), creds["username"])
            and _same(request.headers.get("password"), creds["password"])):
        return _unauthorized()
    if not (_same(body.get("app_key"), creds["app_key"]) and _same(body.get("app_secret"), creds["app_secret"])):
        return _error("2001")
    return None


@bp.post(f"{API}/token/grant")
def grant():
    body = request.get_json(silent=True) or {}
    refusal = _token_refusal(body)
    if refusal:
        return refusal
    _count("grant")
    return _issue_token()


@bp.post(f"{API}/token/refresh")
def refresh():
    body = request.get_json(silent=True) or {}
    refusal = _token_refusal(body)
    if refusal:
        return refusal
    if not body.get("refresh_token") or not get_redis().delete(_key("refresh_token", str(body["refresh_token"]))):
        return _unauthorized()
    _count("refresh")
    return _issue_token()


def _auth_refusal():
    """The API gateway's answer to a payment call it refuses (401 token, 403 app key), or None."""
    token = request.headers.get("Authorization", "")
    expires_at = get_redis().get(_key("id_token", token)) if token else None
    if expires_at is None:
        return _unauthorized()
    if float(expires_at) <= time.time():
        return _unauthorized("The incoming token has expired")
    if not _same(request.headers.get("X-APP-Key"), SANDBOX_CREDENTIALS["app_key"]):
        return jsonify({"message": "Forbidden"}), 403
    return None


#: The fields of each answer, in bKash's order, as recorded answers quoted in public integrations show them
#: (itsrafsanjani/laravel-bkash README and karim-007/laravel-bkash-tokenize README, v1.2.0-beta sandbox):
#: create and execute name the invoice `merchantInvoiceNumber`; the payment query names it `merchantInvoice`,
#: adds `mode`, `paymentCreateTime` and `verificationStatus` ("Complete" on a completed payment) and has no
#: `customerMsisdn`.
CREATE_FIELDS = ("paymentID", "paymentCreateTime", "transactionStatus", "amount", "currency", "intent",
                 "merchantInvoiceNumber")
EXECUTE_FIELDS = ("paymentID", "payerReference", "customerMsisdn", "trxID", "amount", "transactionStatus",
                  "paymentExecuteTime", "currency", "intent", "merchantInvoiceNumber")
QUERY_FIELDS = ("paymentID", "mode", "paymentCreateTime", "paymentExecuteTime", "amount", "currency", "intent",
                "merchantInvoice", "trxID", "transactionStatus", "verificationStatus", "payerReference")


def _public(p, fields=EXECUTE_FIELDS):
    view = dict(p, merchantInvoice=p["merchantInvoiceNumber"],
                # "Complete" is recorded for a completed payment; the value before that is not recorded anywhere
                # we found ("Incomplete" is the simulator's choice; clients such as pybkash require the key).
                verificationStatus="Complete" if p["transactionStatus"] == "Completed" else "Incomplete")
    return {k: view[k] for k in fields if view.get(k) is not None}


def bkash_amount(value, most=None):
    """A create/refund amount as bKash takes it: a decimal string ("10", "10.50") or a JSON number (10, 10.5).

    bKash documents a string, but the real API takes numbers too: itsrafsanjani/laravel-bkash's README sends
    `$request['amount'] = 10` (JSON 10) to create and quotes the sandbox's answer, `"amount": "10"` with
    statusCode 0000; pybkash sends a float. Returns the amount as bKash echoes it (a string), or None.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        value = repr(value) if isinstance(value, float) else str(value)
        if "e" in value.lower():
            return None
    amount = decimal_amount(value, most=most)
    if amount is None:
        return None
    text = format(amount, "f")
    return text[:-2] if text.endswith(".0") else text


@bp.post(f"{API}/create")
def create():
    refusal = _auth_refusal()
    if refusal:
        return refusal
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error("2065")
    for field in ("mode", "payerReference", "callbackURL", "amount", "currency", "intent", "merchantInvoiceNumber"):
        if body.get(field) in (None, ""):
            return _error("2065")
    if not str(body["callbackURL"]).startswith(("http://", "https://")):
        return _error("2049")
    if body["currency"] != "BDT":
        return _error("2007")
    if body["intent"] not in ("sale", "authorization"):
        return _error("2008")
    amount = bkash_amount(body["amount"])
    if amount is None:
        return _error("2006")
    payment_id = "TR0011" + secrets.token_hex(8).upper()
    payment = {
        "paymentID": payment_id, "mode": body["mode"], "payerReference": str(body["payerReference"]),
        "callbackURL": body["callbackURL"], "amount": amount, "currency": "BDT",
        "intent": body["intent"], "merchantInvoiceNumber": str(body["merchantInvoiceNumber"]),
        "transactionStatus": "Initiated", "paymentCreateTime": _now_text(), "authorized": False,
        "executed": False, "refunded": "0", "refunds": [],
    }
    save(CODE, "payment", payment_id, payment)
    root = request.url_root.rstrip("/")
    url = (f"{root}/sandbox/{CODE}/redirect/tokenized/?paymentID={payment_id}&hash={secrets.token_urlsafe(24)}"
           f"&mode=0011&apiVersion=v1.2.0-beta")
    back = body["callbackURL"] + ("&" if "?" in body["callbackURL"] else "?") + f"paymentID={payment_id}"
    return jsonify({"statusCode": "0000", "statusMessage": "Successful", "paymentID": payment_id,
                    "bkashURL": url, "callbackURL": body["callbackURL"],
                    "successCallbackURL": back + "&status=success", "failureCallbackURL": back + "&status=failure",
                    "cancelledCallbackURL": back + "&status=cancel", **_public(payment, CREATE_FIELDS)})


def _payment_call(view):
    """An API view on the payment named by the body's paymentID, behind the id_token check."""

    @functools.wraps(view)
    def wrapper():
        refusal = _auth_refusal()
        if refusal:
            return refusal
        body = request.get_json(silent=True)
        body = body if isinstance(body, dict) else {}
        payment_id = str(body.get("paymentID") or "")
        payment = load(CODE, "payment", payment_id) if payment_id else None
        if payment is None:
            return _error("2002")
        return view(body, payment)

    return wrapper


def _trx_id():
    return "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(10))


@bp.post(f"{API}/execute")
@_payment_call
def execute(body, payment):
    _count("execute")
    if payment["executed"]:
        return _error("2117")
    if not payment["authorized"] or payment["transactionStatus"] != "Initiated":
        return _error("2056")
    payment.update(executed=True, transactionStatus="Completed", paymentExecuteTime=_now_text(),
                   trxID=_trx_id())
    save(CODE, "payment", payment["paymentID"], payment)
    save(CODE, "trx", payment["trxID"], payment["paymentID"])
    delay = get_redis().get(_key("execute_delay"))
    if delay:  # completed at bKash, but the answer is late (the merchant's timeout fires first)
        time.sleep(float(delay))
    return jsonify({"statusCode": "0000", "statusMessage": "Successful", **_public(payment)})


@bp.post(f"{API}/payment/status")
@_payment_call
def status(body, payment):
    _count("query")
    return jsonify({**_public(payment, QUERY_FIELDS), "statusCode": "0000", "statusMessage": "Successful"})


@bp.post(f"{API}/general/searchTransaction")
def search_transaction():
    """A completed payment by its trxID, in the shape of the recorded answers (laravel-bkash READMEs above:
    trxID, initiationTime, completedTime, transactionType "bKash Tokenized Checkout via API", customerMsisdn,
    transactionStatus, amount, currency, organizationShortCode, statusCode, statusMessage) plus the fields
    pybkash reads from it (payerAccount; serviceFee, payerType, creditedAmount, maxRefundableAmount, which its
    model says real answers carry for payments). An unknown trxID is 2033 "Transaction not found"."""
    refusal = _auth_refusal()
    if refusal:
        return refusal
    body = request.get_json(silent=True)
    trx_id = str(body.get("trxID") or "") if isinstance(body, dict) else ""
    if not trx_id:
        return _error("2065")
    payment_id = load(CODE, "trx", trx_id)
    payment = load(CODE, "payment", payment_id) if payment_id else None
    if payment is None:
        return _error("2033")
    amount = Decimal(payment["amount"])
    return jsonify({
        "trxID": trx_id, "initiationTime": payment["paymentExecuteTime"], "completedTime": payment["paymentExecuteTime"],
        "transactionType": "bKash Tokenized Checkout via API", "customerMsisdn": payment.get("customerMsisdn"),
        "payerAccount": payment.get("customerMsisdn"), "payerType": "Customer",
        "transactionStatus": payment["transactionStatus"], "amount": payment["amount"], "currency": "BDT",
        "organizationShortCode": ORGANIZATION_SHORT_CODE, "serviceFee": "0.00", "creditedAmount": payment["amount"],
        "maxRefundableAmount": str(amount - Decimal(payment["refunded"])),
        "statusCode": "0000", "statusMessage": "Successful",
    })


@bp.post(f"{API}/payment/refund")
@_payment_call
def refund(body, payment):
    if not body.get("trxID"):
        return _error("2065")
    if body["trxID"] != payment.get("trxID") or payment["transactionStatus"] != "Completed":
        return _error("2056")
    if set(body) == {"paymentID", "trxID"}:  # refund status: the same call without amount, sku and reason
        return _refund_status(payment)
    if body.get("amount") in (None, ""):
        return _error("2065")
    refunded = Decimal(payment["refunded"])
    amount = bkash_amount(body["amount"], most=Decimal(payment["amount"]) - refunded)
    if amount is None:
        return _error("2006")
    status = get_redis().get(_key("refund_status")) or "Completed"
    status = status.decode() if isinstance(status, bytes) else status
    done = {"refundTrxID": _trx_id(), "amount": amount, "completedTime": _now_text(), "transactionStatus": status,
            "sku": str(body.get("sku") or ""), "reason": str(body.get("reason") or "")}
    payment["refunded"] = str(refunded + Decimal(amount))
    payment["refunds"].append(done)
    save(CODE, "payment", payment["paymentID"], payment)
    return _refund_answer(payment, done)


def _refund_fields(payment, done):
    """A refund answer as recorded from bKash's sandbox (karim-007/laravel-bkash-tokenize): it does not echo
    `sku`."""
    return {"statusCode": "0000", "statusMessage": "Successful", "completedTime": done["completedTime"],
            "transactionStatus": done.get("transactionStatus", "Completed"), "originalTrxID": payment["trxID"],
            "refundTrxID": done["refundTrxID"], "amount": done["amount"], "currency": "BDT", "charge": "0.00"}


def _refund_answer(payment, done):
    return jsonify(_refund_fields(payment, done))


def _refund_status(payment):
    """Every refund of the payment in `refundTransactions[]`, each with its `sku` and `reason` (the shape
    bkash-rs reads, tests/gateways/fixtures/bkash/refund_status_transactions.json). The top-level fields
    describe the latest refund, as the single-refund answer did (the simulator's choice: no recorded answer
    shows both), and a payment with no refund is 2056 (also the simulator's choice)."""
    if not payment["refunds"]:
        return _error("2056")
    data = _refund_fields(payment, payment["refunds"][-1])
    data.update({"paymentID": payment["paymentID"], "trxID": payment["trxID"], "refundTransactions": [
        {"refundTrxID": done["refundTrxID"], "refundAmount": done["amount"],
         "transactionStatus": done.get("transactionStatus", "Completed"), "sku": done.get("sku", ""),
         "reason": done.get("reason", ""), "refundTime": done["completedTime"]}
        for done in payment["refunds"]]})
    return jsonify(data)


# --- the shopper's wallet page ------------------------------------------------------------------------------


@bp.route("/redirect/tokenized/", methods=["GET", "POST"])
def wallet_page():
    payment_id = request.values.get("paymentID", "")
    payment = load(CODE, "payment", payment_id) if payment_id else None
    if payment is None:
        return render_template("sandbox/bkash/done.html", payment=None), 404
    if payment["authorized"] or payment["transactionStatus"] != "Initiated":
        return render_template("sandbox/bkash/done.html", payment=payment), 409
    error = None
    if request.method == "POST":
        outcome = request.form.get("outcome")
        wallet = "".join(ch for ch in request.form.get("wallet", "") if ch.isdigit())
        if outcome == "success" and not (len(wallet) == 11 and wallet.startswith("01")):
            error = "Enter your 11-digit bKash account number (01XXXXXXXXX)."
        elif outcome in ("success", "failure", "cancel"):
            if outcome == "success":
                payment.update(authorized=True, customerMsisdn=wallet)
            else:
                payment["transactionStatus"] = "Failed" if outcome == "failure" else "Cancelled"
            save(CODE, "payment", payment_id, payment)
            url = payment["callbackURL"]
            url += ("&" if "?" in url else "?") + (f"paymentID={payment_id}&status={outcome}"
                                                   f"&signature={secrets.token_hex(5)}&apiVersion=1.2.0-beta")
            return redirect(url, code=302)
        else:
            error = "Choose an outcome."
    return render_template("sandbox/bkash/wallet.html", payment=payment, error=error,
                           amount_minor=int(Decimal(payment["amount"]) * 100)), (422 if error else 200)
