"""bKash Tokenized Checkout (PGW v1.2.0-beta).

Wire protocol (served offline by app/sandbox/bkash.py), every call `POST` JSON under
`<host>/v1.2.0-beta/tokenized/checkout`:
- `token/grant` (headers `username`, `password`; body `app_key`, `app_secret`) → `id_token` (valid
  `expires_in` = 3600 s) and `refresh_token`; `token/refresh` adds `refresh_token` to the body. bKash blocks
  callers that ask for tokens more than twice an hour, so one token per merchant account is cached in Redis
  and refreshed (not re-granted) shortly before it expires.
- Payment calls carry `Authorization: <id_token>` and `X-APP-Key: <app_key>`. Answers are HTTP 200 with an
  envelope of `statusCode` ("0000" = success) and `statusMessage`; anything else is bKash's error code.
  Authorisation is refused before that, by bKash's API gateway: HTTP 401 `{"message": "Unauthorized"}` (an
  invalid id_token) or `{"message": "The incoming token has expired"}`, HTTP 403 `{"message": "Forbidden"}` (a
  wrong X-APP-Key). On a 401 we drop the cached token, get a new one (refresh, else grant) and retry the call
  once, as bKash's own WooCommerce plugin does (bKash-for-woocommerce, includes/classes/ApiComm.php); a 403 is
  not retried (a new token does not fix the app key, and grants are rationed).
- `create` (`mode` 0011, `payerReference`, `callbackURL`, `amount` as a decimal string, `currency` BDT,
  `intent` sale, `merchantInvoiceNumber` = our payment id) → `paymentID`, `bkashURL`.
- The shopper's browser comes back to `callbackURL?paymentID=…&status=success|failure|cancel`. bKash sends no
  signed server-to-server notification in this flow (its optional SNS IPN is a separate product), so the
  browser's word is never applied: on `success` we call `execute` (server to server) and require
  `transactionStatus` Completed with our exact amount; on `failure`/`cancel` we ask `payment/status` and apply
  only what bKash reports.
- `payment/status` answers in its own shape: the invoice is `merchantInvoice` there (not
  `merchantInvoiceNumber` as in create/execute), with `verificationStatus` ("Complete") and no
  `customerMsisdn` (recorded sandbox answers quoted in itsrafsanjani/laravel-bkash and
  karim-007/laravel-bkash-tokenize); we read the invoice under either name.
- `payment/status` is used only where bKash allows it: when `execute` gave no answer (timed out — bKash's own
  limit is 30 s), when execute answers 2117 "Payment execution already been called before" (an execute of ours
  reached bKash but its answer never reached us, so the outcome is unknown), or for a payment that was never
  executed. bKash fails merchants' UAT for querying payments that execute already answered. `execute` runs at
  most once per paymentID (a Redis guard shared by every web process); its answer is kept so a duplicate or
  concurrent return re-uses it instead of executing again.
- `payment/refund` (`paymentID`, `amount`, `trxID`, `sku`, `reason`) → `completedTime`, `transactionStatus`
  (Completed), `originalTrxID`, `refundTrxID`, `amount`, `currency`, `charge` — partial refunds allowed
  (recorded sandbox answer in karim-007/laravel-bkash-tokenize; request fields as bKash's own-style clients
  send them, e.g. divergenttechbd/LaravelPackage_bKashPGW `refundTransaction($paymentID, $amount, $trxID, $sku,
  $reason)`). The same call with only `paymentID` and `trxID` is bKash's refund status (same package,
  `refundStatus`); it lists every refund of the payment in `refundTransactions[]`, each with its
  `refundTrxID`, `refundAmount`, `transactionStatus`, `sku` and `reason` (bkash-rs `RefundStatusResponse` and
  its fixtures; bKash's v2 refund API, per bkash-rs and Bikiran.Payment.Bkash, has the same list). Amounts
  cannot tell two refunds of the same amount apart, so our refund id is the `sku` and we find our refund in
  that list by it, never by amount.
- Refunds, step by step: a refund's first answer is kept (Redis, per refund id). `Completed` settles it. Any
  other answer (bKash still making it) is re-checked with the refund status, matched on our sku — the refund
  is never sent again. A call that got no answer (timeout) is settled the same way if bKash lists our sku; if
  it does not, the outcome is unknown and, bKash having no idempotency key, a person decides (the refund
  service's rule for `refund_idempotent = False`). bKash refusing the refund (an error envelope) is a failure.
Amounts are decimal strings in taka; our minor units are paisa (BDT has 2 decimals here).
"""

import hashlib
import json
import time

from flask import current_app
from redis.exceptions import LockError

from app.extensions import get_redis
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
)
from app.money import MoneyError, format_plain, to_minor

API_PATH = "/v1.2.0-beta/tokenized/checkout"
SUCCESS = "0000"
#: Refresh the cached token this long before bKash says it expires (bKash: refresh around minute 50-55).
REFRESH_MARGIN_SECONDS = 600
#: How long the refresh token is kept (bKash does not publish its lifetime; a refresh failure falls back
#: to a grant).
TOKEN_CACHE_SECONDS = 7 * 24 * 3600
#: How long an execute/refund answer is kept for duplicates.
ANSWER_TTL_SECONDS = 7 * 24 * 3600
#: bKash's own limit for execute; `BKASH_EXECUTE_TIMEOUT_SECONDS` overrides it (tests use a short one).
EXECUTE_TIMEOUT_SECONDS = 30
#: execute's answer when an earlier execute of this paymentID reached bKash (bKash sandbox logs).
EXECUTED_BEFORE = "2117"
#: Guard states: execute running, or execute gave no usable answer (timeout or 2117) and only a query can tell.
PENDING, TIMED_OUT = "pending", "timeout"

_STATUS = {
    "Completed": Outcome.SUCCEEDED,
    "Initiated": Outcome.PROCESSING,
    "Inprogress": Outcome.PROCESSING,
    "Pending": Outcome.PROCESSING,
    "Authorized": Outcome.PROCESSING,
    "Failed": Outcome.FAILED,
    "Cancelled": Outcome.CANCELLED,
    "Expired": Outcome.EXPIRED,
}
_BROWSER = {"success": Outcome.SUCCEEDED, "failure": Outcome.FAILED, "cancel": Outcome.CANCELLED}


def _account_key(ctx):
    """One Redis namespace per bKash account (host + app key + username), never containing a secret."""
    creds = ctx.credentials
    ident = "|".join([ctx.base_url, creds.get("app_key", ""), creds.get("username", "")])
    return "bkash:" + hashlib.sha256(ident.encode()).hexdigest()[:32]


class BkashGateway(Gateway):
    code = "bkash"
    name = "bKash"
    currencies = frozenset({"BDT"})
    base_urls = {"sandbox": "https://tokenized.sandbox.bka.sh", "live": "https://tokenized.pay.bka.sh"}
    credential_fields = {"app_key": "App key", "app_secret": "App secret", "username": "Username",
                         "password": "Password"}
    browser_kinds = frozenset({"return"})
    #: payment/refund de-duplicates nothing: our sku only lets us find a refund afterwards, so a refund whose
    #: call got no answer and that bKash does not (yet) list is not sent again automatically.
    refund_idempotent = False
    # Tokenized checkout moves money only on our execute call, made while handling the shopper's callback.
    captures_on_callback = True
    can_cancel = True

    # --- tokens -----------------------------------------------------------------------------------------

    def _token_call(self, ctx, path, body):
        creds = ctx.credentials
        headers = {"username": creds.get("username", ""), "password": creds.get("password", ""),
                   "Accept": "application/json"}
        body = {"app_key": creds.get("app_key", ""), "app_secret": creds.get("app_secret", ""), **body}
        data = self._answer(self.http("POST", f"{ctx.base_url}{API_PATH}/{path}", headers=headers, json=body))
        if not data.get("id_token"):
            raise GatewayError(f"bKash {path} returned no id_token", code=data.get("statusCode"), raw=data)
        expires_in = data.get("expires_in")
        expires_in = int(expires_in) if str(expires_in).isdigit() else 3600
        return {"id_token": data["id_token"], "refresh_token": data.get("refresh_token"),
                "expires_at": time.time() + expires_in}

    def token(self, ctx, *, stale=None):
        """The merchant account's id_token: cached, refreshed before expiry, granted only when needed.

        `stale` is a token bKash refused: it is replaced once, however many requests found it refused.
        """
        redis = get_redis()
        key = _account_key(ctx) + ":token"

        def usable():
            raw = redis.get(key)
            cached = json.loads(raw) if raw else None
            fresh = cached and cached["expires_at"] - REFRESH_MARGIN_SECONDS > time.time()
            return cached, (cached["id_token"] if fresh and cached["id_token"] != stale else None)

        cached, token = usable()
        if token:
            return token
        lock = redis.lock(key + ":lock", timeout=self.timeout_seconds * 2 + 5,
                          blocking_timeout=self.timeout_seconds * 2 + 5)
        if not lock.acquire():
            raise GatewayError("another request is still asking bKash for a token")
        try:
            cached, token = usable()  # another request may have refreshed it while we waited
            if token:
                return token
            fresh = None
            if cached and cached.get("refresh_token"):
                try:
                    fresh = self._token_call(ctx, "token/refresh", {"refresh_token": cached["refresh_token"]})
                except GatewayError:
                    fresh = None  # an expired or revoked refresh token: grant a new one
            if fresh is None:
                fresh = self._token_call(ctx, "token/grant", {})
            redis.set(key, json.dumps(fresh), ex=TOKEN_CACHE_SECONDS)
            return fresh["id_token"]
        finally:
            try:
                lock.release()
            except LockError:
                pass  # it expired while bKash was slow; the token we got is still good

    # --- calls ------------------------------------------------------------------------------------------

    def _answer(self, response):
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise GatewayError(f"bKash answered HTTP {response.status_code} without JSON")
        code = data.get("statusCode") or data.get("errorCode")
        if response.status_code >= 400 or (code is not None and code != SUCCESS):
            message = data.get("statusMessage") or data.get("errorMessage") or data.get("message")
            raise GatewayError(f"bKash {code or response.status_code}: {message or 'error'}",
                               code=code or str(response.status_code), raw=data)
        return data

    def _call(self, ctx, path, body, *, timeout=None, retry_auth=True):
        token = self.token(ctx)
        headers = {"Authorization": token, "X-APP-Key": ctx.credentials.get("app_key", ""),
                   "Accept": "application/json"}
        response = self.http("POST", f"{ctx.base_url}{API_PATH}/{path}", headers=headers, json=body,
                             timeout=timeout or self.timeout_seconds)
        if response.status_code == 401 and retry_auth:
            self.token(ctx, stale=token)  # bKash refused or expired our token early: one new one, once
            return self._call(ctx, path, body, timeout=timeout, retry_auth=False)
        return self._answer(response)

    def start(self, payment, ctx):
        customer = payment.customer or {}
        data = self._call(ctx, "create", {
            "mode": "0011",
            "payerReference": (customer.get("phone") or payment.reference or payment.order_id)[:255],
            "callbackURL": ctx.callback_url("return"),
            "amount": format_plain(payment.amount, payment.currency),
            "currency": payment.currency,
            "intent": "sale",
            "merchantInvoiceNumber": payment.order_id,
        })
        if not data.get("paymentID") or not data.get("bkashURL"):
            raise GatewayError("bKash create returned no paymentID/bkashURL", raw=data)
        return StartResult(Redirect(data["bkashURL"]), gateway_reference=data["paymentID"], raw=data)

    # --- execute at most once, query only when it gave no answer ---------------------------------------

    def _execute_timeout(self):
        return float(current_app.config.get("BKASH_EXECUTE_TIMEOUT_SECONDS", EXECUTE_TIMEOUT_SECONDS))

    def _query_status(self, ctx, payment_id):
        return self._call(ctx, "payment/status", {"paymentID": payment_id})

    def _execute_key(self, ctx, payment_id):
        return f"{_account_key(ctx)}:execute:{payment_id}"

    def execute_once(self, ctx, payment_id):
        """bKash's answer about this payment, with `execute` called at most once ever per paymentID.

        Returns ("execute", answer) for execute's answer (first call or a duplicate re-using it), or
        ("query", answer) when execute gave no answer (now or in an earlier request) or answered 2117 (an
        earlier execute reached bKash unseen) and bKash was asked instead. Raises GatewayError for an execute
        refused with another error code (the guard is released: nothing was executed, the shopper may still
        complete) or when nothing could be learned.
        """
        redis = get_redis()
        key = self._execute_key(ctx, payment_id)
        if redis.set(key, f"{PENDING}:{time.time()}", nx=True, ex=ANSWER_TTL_SECONDS):
            try:
                answer = self._call(ctx, "execute", {"paymentID": payment_id}, timeout=self._execute_timeout())
            except GatewayError as exc:
                if exc.timeout or exc.code == EXECUTED_BEFORE:
                    redis.set(key, TIMED_OUT, ex=ANSWER_TTL_SECONDS)
                    return "query", self._query_status(ctx, payment_id)
                redis.delete(key)
                raise
            redis.set(key, json.dumps(answer), ex=ANSWER_TTL_SECONDS)
            return "execute", answer
        while True:  # another request holds the guard: wait for its answer, never execute again
            state = self.execute_state(ctx, payment_id)
            if state == TIMED_OUT:
                return "query", self._query_status(ctx, payment_id)
            if isinstance(state, dict):
                return "execute", state
            if state is None:  # the other request's execute was refused and released; ours may go now
                return self.execute_once(ctx, payment_id)
            time.sleep(0.05)

    def execute_state(self, ctx, payment_id):
        """None (never executed), PENDING (running), TIMED_OUT (no usable answer) or execute's answer (a dict).

        A guard left pending longer than the execute timeout (its process died mid-call) counts as no
        answer: bKash may have executed, so it is settled by a query, never by a second execute.
        """
        raw = get_redis().get(self._execute_key(ctx, payment_id))
        if raw is None:
            return None
        state = raw.decode()
        if state.startswith(PENDING + ":"):
            started = float(state.partition(":")[2])
            return PENDING if time.time() - started < self._execute_timeout() + 5 else TIMED_OUT
        return TIMED_OUT if state == TIMED_OUT else json.loads(state)

    # --- callbacks --------------------------------------------------------------------------------------

    def identify(self, kind, req):
        if kind != "return":
            raise CallbackError(Ack.NOT_FOUND, f"unknown callback {kind}")
        payment_id = req.args.get("paymentID") or req.form.get("paymentID")
        if not payment_id:
            raise CallbackError(Ack.INVALID_REQUEST, "the return has no paymentID")
        return Lookup(gateway_reference=payment_id)

    def verify_callback(self, kind, req, payment, ctx):
        params = {**req.form, **req.args}
        claimed = _BROWSER.get(params.get("status"))
        if claimed is None:
            raise CallbackError(Ack.INVALID_REQUEST, f"unknown bKash status {params.get('status')!r}")
        if params.get("paymentID") != payment.gateway_reference:
            raise CallbackError(Ack.NOT_FOUND, "the return is for another bKash payment")
        if claimed == Outcome.SUCCEEDED:
            try:
                via, answer = self.execute_once(ctx, payment.gateway_reference)
            except GatewayError as exc:
                if exc.timeout or exc.code is None:
                    raise
                raise CallbackError(Ack.INVALID_REQUEST, f"bKash refused execute: {exc}", raw=exc.raw) from exc
            result = self._result(answer, raw={"via": via, "browser": params, "bkash": answer})
            if via == "execute" and result.outcome != Outcome.SUCCEEDED:
                raise CallbackError(Ack.INVALID_REQUEST,
                                    f"bKash execute says {answer.get('transactionStatus')!r}, not Completed",
                                    raw=answer)
            return result
        # failure / cancel: shown to the shopper, applied only as bKash itself reports it
        result = self.query(payment, ctx)
        if result.outcome in (Outcome.PROCESSING, Outcome.NONE):
            raise CallbackError(Ack.INVALID_REQUEST,
                                f"the browser says {params.get('status')} but bKash reports "
                                f"{(result.raw or {}).get('transactionStatus')!r}", raw=result.raw)
        return result

    def query(self, payment, ctx):
        """What bKash says, without ever querying a payment that execute already answered."""
        if not payment.gateway_reference:
            raise GatewayError("the payment has no bKash paymentID")
        state = self.execute_state(ctx, payment.gateway_reference)
        if isinstance(state, dict):
            return self._result(state, raw={"via": "execute (kept answer)", "bkash": state})
        if state == PENDING:
            raise GatewayError("bKash execute is in progress")
        answer = self._query_status(ctx, payment.gateway_reference)
        return self._result(answer, raw={"via": "query", "bkash": answer})

    def _result(self, data, *, raw):
        status = data.get("transactionStatus")
        outcome = _STATUS.get(status, Outcome.NONE)
        try:
            amount = to_minor(data["amount"], "BDT") if data.get("amount") not in (None, "") else None
        except MoneyError:
            amount = None
        failure = outcome in (Outcome.FAILED, Outcome.CANCELLED, Outcome.EXPIRED)
        return CallbackResult(
            outcome=outcome,
            amount=amount,
            currency=data.get("currency") or None,
            # execute names it merchantInvoiceNumber, the payment query merchantInvoice (recorded v1.2.0-beta
            # answers: itsrafsanjani/laravel-bkash and karim-007/laravel-bkash-tokenize READMEs)
            order_id=data.get("merchantInvoiceNumber") or data.get("merchantInvoice") or None,
            gateway_reference=data.get("paymentID"),
            gateway_transaction_id=data.get("trxID") or None,
            failure_code=(data.get("statusCode") if data.get("statusCode") != SUCCESS else None) or (
                status.lower() if failure and status else None),
            reason=Reason.INSUFFICIENT_FUNDS if data.get("statusCode") == "2023" else None,  # bKash: Insufficient Balance
            message=f"bKash: {status}" + (f" (trxID {data['trxID']})" if data.get("trxID") else ""),
            card_summary=f"bKash {data['customerMsisdn']}" if data.get("customerMsisdn") else None,
            raw=raw,
        )

    # --- refunds ----------------------------------------------------------------------------------------

    def cancel(self, payment, ctx):
        """An attempt we have not executed cannot charge the shopper, and we never execute one we ended
        (Gateway.captures_on_callback): ending it is ours to do, without a call."""
        return CallbackResult(Outcome.CANCELLED, reason=Reason.CANCELLED,
                              message="Ended before bKash's execute: the shopper cannot be charged for it")

    def refund(self, payment, amount, refund_id, ctx):
        if not payment.gateway_reference or not payment.gateway_transaction_id:
            raise GatewayError("the payment has no bKash paymentID/trxID to refund")
        redis = get_redis()
        key = f"{_account_key(ctx)}:refund:{refund_id}"
        sku = refund_sku(refund_id)
        kept = redis.get(key)
        if kept:
            data = json.loads(kept)
            if data.get("transactionStatus") == "Completed":  # a retry of a made refund re-uses the answer
                return _refund_result(data)
            if "sent" not in data:  # bKash answered, not Completed: still making it. Ask by sku, never re-send
                return self._refund_by_status(ctx, payment, key, sku, absent="pending")
            # Only our mark: an earlier call got no answer. The refund service sends such a refund again only
            # when a person says so; we still look first, and send only if bKash does not list it.
            listed = self._refund_by_status(ctx, payment, key, sku, absent=None)
            if listed is not None:
                return listed
        redis.set(key, json.dumps({"sent": time.time()}), ex=ANSWER_TTL_SECONDS)  # from here it may exist
        try:
            data = self._call(ctx, "payment/refund", {
                "paymentID": payment.gateway_reference,
                "amount": format_plain(amount, payment.currency),
                "trxID": payment.gateway_transaction_id,
                "sku": sku,
                "reason": f"Refund {refund_id}"[:255],
            })
        except GatewayError as exc:
            if exc.timeout or exc.raw is None:  # no answer: the refund may or may not exist
                return self._refund_by_status(ctx, payment, key, sku, absent="unknown", error=exc)
            redis.delete(key)  # bKash refused it: nothing was made
            return RefundResult("failed", message=str(exc), raw=exc.raw)
        redis.set(key, json.dumps(data), ex=ANSWER_TTL_SECONDS)
        return _refund_result(data)

    def refund_status(self, payment, ctx):
        """bKash's refund status: the refund call with only paymentID and trxID."""
        return self._call(ctx, "payment/refund", {"paymentID": payment.gateway_reference,
                                                  "trxID": payment.gateway_transaction_id})

    def _refund_by_status(self, ctx, payment, key, sku, *, absent, error=None):
        """Settle our refund from the refund status, found by its sku. When bKash does not list it: `absent`
        (pending: bKash answered it before, ask again later; unknown: it may not exist, a person decides; None:
        return None)."""
        try:
            answer = self.refund_status(payment, ctx)
        except GatewayError as exc:
            if exc.timeout or exc.raw is None:
                raise (error or exc) from exc  # bKash unreachable: the outcome stays unknown
            answer, listed = exc.raw, None
        else:
            listed = find_refund(answer, sku)
        if listed is None:
            if absent is None:
                return None
            why = "its call got no answer" if error is not None else "bKash has not finished it"
            return RefundResult(absent, message=f"bKash's refund status does not list refund {sku} ({why})",
                                raw=answer)
        status = listed.get("transactionStatus") or listed.get("refundTransactionStatus") or "Unknown"
        found = {"transactionStatus": status, "refundTrxID": listed.get("refundTrxID") or listed.get("refundTrxId"),
                 "amount": listed.get("refundAmount") or listed.get("amount"), "sku": sku, "via": "refund status"}
        if status == "Completed":
            get_redis().set(key, json.dumps(found), ex=ANSWER_TTL_SECONDS)
            return _refund_result(found)
        if status in REFUND_FAILED:
            get_redis().delete(key)
            return RefundResult("failed", message=f"bKash refund {status}", raw=found)
        get_redis().set(key, json.dumps(found), ex=ANSWER_TTL_SECONDS)
        return RefundResult("pending", gateway_reference=found["refundTrxID"], message=f"bKash refund {status}",
                            raw=found)


#: Refund states after which bKash made no refund.
REFUND_FAILED = frozenset({"Failed", "Cancelled", "Declined", "Rejected"})


def refund_sku(refund_id):
    """The sku we send with a refund: our refund id (bKash takes up to 255 characters)."""
    return str(refund_id)[:255]


def find_refund(answer, sku):
    """Our refund in a refund-status answer: the `refundTransactions[]` entry with our sku (a single-refund
    answer that echoes `sku` is read the same way). None when bKash does not list it. Never by amount."""
    if not isinstance(answer, dict):
        return None
    items = answer.get("refundTransactions")
    if isinstance(items, list):
        return next((i for i in items if isinstance(i, dict) and str(i.get("sku") or "") == sku), None)
    return answer if str(answer.get("sku") or "") == sku else None


def _refund_result(data):
    status = "succeeded" if data.get("transactionStatus") == "Completed" else "pending"
    return RefundResult(status, gateway_reference=data.get("refundTrxID"),
                        message=f"bKash refund {data.get('transactionStatus')}", raw=data)
