"""Simulator of SSLCommerz (API v4): session API, hosted page, IPN, order validation, transaction query,
refund and refund status — same paths, form fields, signatures and answers (see app/gateways/sslcommerz.py).

`make_blueprint(code)` builds the simulator's routes; it is mounted at /sandbox/sslcommerz and, for Rocket
(the DBBL mobile-banking channel of the same SSLCommerz service), at /sandbox/rocket by app/sandbox/rocket.py.
Both mounts share one transaction store, as they are one service. A session opened with
`multi_card_name=dbblmobilebanking` shows the Rocket wallet page instead of the channel list.

| path (under /sandbox/sslcommerz or /sandbox/rocket) | method | answers |
|---|---|---|
| `/gwprocess/v4/api.php` | POST | a session: `status`, `sessionkey`, `GatewayPageURL` |
| `/EasyCheckOut/<sessionkey>` | GET, POST | the hosted page (then the browser form POST and the IPN) |
| `/validator/api/validationserverAPI.php?val_id=…` | GET | order validation (VALID, then VALIDATED) |
| `/validator/api/merchantTransIDvalidationAPI.php?tran_id=…` / `?sessionkey=…` | GET | transaction query |
| `/validator/api/merchantTransIDvalidationAPI.php?bank_tran_id=…&refund_amount=…` | GET | refund |
| `/validator/api/merchantTransIDvalidationAPI.php?refund_ref_id=…` | GET | refund status |
| anything else, or another method | any | 404 / 405 `{"status": "FAILED", "failedreason", "APIConnect"}` |

Not simulated: EMI, tokenised cards, the merchant panel's reports.

Refunds: `refund_trans_id` is optional here. The official clients never send it (sslcommerz-lib 1.0
`init_refund`, sslcommerz-lts 1.2.0 `initiateRefund`, "officially supported by SSLCommerz Integration
Team"), while later integrations call it mandatory ("mandatory since Feb 2024" in a TypeScript port of
sslcommerz-lts; "string(30) max - Mandatory parameter introduced 24/02/2025" in a C# integration). So the
simulator takes both requests, and refuses one longer than 30 characters; our adapter always sends it.

Not published by SSLCommerz, so chosen here: the IPN retry schedule (IPN_RETRIES), the wording of
errors other than the credential error, refunds completing at once (status `refunded` on the first query),
and the answer to a refund whose `refund_trans_id` was already used (the same refund, `processing`): no
source we found shows what SSLCommerz answers then, so our adapter does not rely on it
(`refund_idempotent = False`).
"""

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from flask import Blueprint, jsonify, render_template, request, url_for

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

STATE = "sslcommerz"  # one store of transactions for every mount
SANDBOX_CREDENTIALS = {"store_id": "paysm6560a1b2c3d4e", "store_passwd": "paysm6560a1b2c3d4e@ssl"}
#: Stores the simulator knows: ours, and SSLCommerz's public demo store.
STORES = {SANDBOX_CREDENTIALS["store_id"]: SANDBOX_CREDENTIALS["store_passwd"], "testbox": "qwerty"}
#: IPN retry intervals after each failed attempt (seconds); SSLCommerz does not publish its schedule.
IPN_RETRIES = [60, 300, 1800]
#: Fake conversion rates to BDT for foreign-currency sessions (SSLCommerz converts and settles in BDT).
RATES = {"BDT": Decimal("1"), "USD": Decimal("110.5"), "EUR": Decimal("119.25"), "SGD": Decimal("81.6"),
         "INR": Decimal("1.32"), "MYR": Decimal("23.4")}
ROCKET = "dbblmobilebanking"
REQUIRED = ("total_amount", "currency", "tran_id", "success_url", "fail_url", "cancel_url", "cus_name", "cus_email",
            "cus_add1", "cus_city", "cus_country", "cus_phone", "product_name", "product_category",
            "product_profile", "shipping_method")
SIGNED_KEYS = ("amount,bank_tran_id,base_fair,card_brand,card_issuer,card_issuer_country,card_issuer_country_code,"
               "card_no,card_type,currency,currency_amount,currency_rate,currency_type,risk_level,risk_title,"
               "status,store_amount,store_id,tran_date,tran_id,val_id,value_a,value_b,value_c,value_d")
DHAKA = timedelta(hours=6)


def _hash(name, text):
    return hashlib.new(name, text.encode()).hexdigest()


def sign_fields(fields, password):
    """Add verify_key, verify_sign (md5) and verify_sign_sha2 (sha256) as SSLCommerz does."""
    fields = dict(fields, verify_key=SIGNED_KEYS)
    for target, algo in (("verify_sign", "md5"), ("verify_sign_sha2", "sha256")):
        data = {k: fields.get(k, "") for k in SIGNED_KEYS.split(",")}
        data["store_passwd"] = _hash(algo, password)
        fields[target] = _hash(algo, "&".join(f"{k}={data[k]}" for k in sorted(data)))
    return fields


def _authorized(values):
    store_id = values.get("store_id", "")
    password = STORES.get(store_id)
    return password is not None and constant_time_equals(password, values.get("store_passwd", ""))


def _money(value):
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount.quantize(Decimal("0.01")) if amount.is_finite() else None


def _dhaka_now():
    return (datetime.now(UTC) + DHAKA).strftime("%Y-%m-%d %H:%M:%S")


def _failed(reason):
    return jsonify({"status": "FAILED", "failedreason": reason, "sessionkey": "", "gw": [], "GatewayPageURL": "",
                    "redirectGatewayURL": "", "storeBanner": "", "storeLogo": "", "desc": []})


def _tx_keys(tran_id):
    return load(STATE, "tran", tran_id) or []


def _transaction_fields(tx):
    """What SSLCommerz reports about a transaction (IPN, browser POST, validation, query)."""
    return {k: tx.get(k, "") for k in (
        "status", "tran_date", "tran_id", "val_id", "amount", "store_amount", "currency", "bank_tran_id",
        "card_type", "card_no", "card_issuer", "card_brand", "card_issuer_country", "card_issuer_country_code",
        "currency_type", "currency_amount", "currency_rate", "base_fair", "value_a", "value_b", "value_c",
        "value_d", "risk_level", "risk_title", "store_id", "error")}


def error_envelope(status, kind, message):
    """SSLCommerz's JSON refusal (`status` FAILED with a `failedreason`, `APIConnect` INVALID_REQUEST as its
    validator APIs say for a request they cannot take) for unknown paths, wrong methods and its own failures."""
    status = {NOT_FOUND: 404, METHOD_NOT_ALLOWED: 405, SERVER_ERROR: 500}.get(kind, status)
    reason = {NOT_FOUND: f"Invalid request: no API at {gateway_path()}",
              METHOD_NOT_ALLOWED: f"Invalid request: {request.method} is not accepted at {gateway_path()}",
              SERVER_ERROR: "Internal error, please try again"}.get(kind, message)
    return jsonify({"status": "FAILED", "failedreason": reason, "APIConnect": "INVALID_REQUEST"}), status


def make_blueprint(code):
    bp = Blueprint(f"sandbox_{code}", __name__)

    @bp.post("/gwprocess/v4/api.php")
    def create_session():
        form = request.form
        if not _authorized(form):
            return _failed("Store Credential Error Or Store is De-active")
        for field in REQUIRED:
            if not form.get(field):
                return _failed(f"Invalid Information: '{field}' is missing")
        currency = form["currency"].upper()
        amount = _money(form["total_amount"])
        if currency not in RATES:
            return _failed("Invalid Information: currency is not supported")
        if amount is None or not Decimal("10.00") <= amount * RATES[currency] <= Decimal("500000.00"):
            return _failed("Invalid Information: total_amount must be between 10.00 and 500000.00 BDT")
        if len(form["tran_id"]) > 30:
            return _failed("Invalid Information: tran_id is longer than 30 characters")
        key = secrets.token_hex(16).upper()
        session = {
            "sessionkey": key, "store_id": form["store_id"], "tran_id": form["tran_id"],
            "total_amount": str(amount), "currency": currency, "status": "PENDING",
            "multi_card_name": form.get("multi_card_name", ""),
            "urls": {k: form.get(k, "") for k in ("success_url", "fail_url", "cancel_url", "ipn_url")},
            "product_name": form["product_name"], "cus_name": form["cus_name"],
            "values": {k: form.get(k, "") for k in ("value_a", "value_b", "value_c", "value_d")},
            "created": _dhaka_now(),
        }
        save(STATE, "session", key, session)
        save(STATE, "tran", form["tran_id"], [*_tx_keys(form["tran_id"]), key])
        page = url_for(".hosted_page", sessionkey=key, _external=True)
        return jsonify({"status": "SUCCESS", "failedreason": "", "sessionkey": key, "gw": {},
                        "redirectGatewayURL": page, "directPaymentURLBank": "", "directPaymentURLCard": "",
                        "directPaymentURL": "", "redirectGatewayURLFailed": "", "GatewayPageURL": page,
                        "storeBanner": "", "storeLogo": "", "desc": [], "is_direct_pay_enable": "0"})

    @bp.route("/EasyCheckOut/<sessionkey>", methods=["GET", "POST"])
    def hosted_page(sessionkey):
        session = load(STATE, "session", sessionkey)
        if session is None:
            return render_template("sandbox/sslcommerz/closed.html", message="This session does not exist."), 404
        rocket = session["multi_card_name"] == ROCKET
        if session["status"] != "PENDING":
            return render_template("sandbox/sslcommerz/closed.html",
                                   message=f"This transaction is already {session['status']}."), 409
        outcome = request.form.get("outcome") if request.method == "POST" else None
        if outcome not in ("success", "failure", "cancel"):
            return render_template("sandbox/sslcommerz/pay.html", session=session, rocket=rocket)
        tx = _finish(session, outcome, rocket)
        url = session["urls"][{"success": "success_url", "failure": "fail_url", "cancel": "cancel_url"}[outcome]]
        fields = sign_fields(_transaction_fields(tx), STORES[session["store_id"]])
        if session["urls"]["ipn_url"]:
            send_later("POST", session["urls"]["ipn_url"], delays=IPN_RETRIES, data=fields)
        # SSLCommerz sends the shopper back with a browser form POST carrying the same fields.
        return render_template("sandbox/sslcommerz/return.html", url=url, fields=fields)

    @bp.get("/validator/api/validationserverAPI.php")
    def validate():
        if not _authorized(request.args):
            return jsonify({"APIConnect": "FAILED", "status": "INVALID_TRANSACTION"})
        found = _by_val_id(request.args.get("val_id", ""))
        if found is None or found[1]["store_id"] != request.args["store_id"]:
            return jsonify({"APIConnect": "DONE", "status": "INVALID_TRANSACTION"})
        key, session = found
        tx = session["tx"]
        answer = {**_transaction_fields(tx), **_validation_extras(tx),
                  "status": "VALIDATED" if tx.get("validated_on") else "VALID"}
        if not tx.get("validated_on"):
            tx["validated_on"] = _dhaka_now()
            save(STATE, "session", key, session)
        answer.update(APIConnect="DONE", validated_on=tx["validated_on"], gw_version="")
        return jsonify(answer)

    @bp.get("/validator/api/merchantTransIDvalidationAPI.php")
    def transactions():
        args = request.args
        if not _authorized(args):
            return jsonify({"APIConnect": "FAILED"})
        if args.get("refund_ref_id"):
            return _refund_status(args)
        if args.get("bank_tran_id"):
            return _refund(args)
        if args.get("tran_id") or args.get("sessionkey"):
            keys = _tx_keys(args["tran_id"]) if args.get("tran_id") else [args["sessionkey"]]
            sessions = [s for s in (load(STATE, "session", k) for k in keys) if s]
            sessions = [s for s in sessions if s["store_id"] == args["store_id"] and s.get("tx")]
            element = [{**_transaction_fields(s["tx"]), "validated_on": s["tx"].get("validated_on", ""),
                        "APIConnect": "DONE"} for s in sessions]
            return jsonify({"APIConnect": "DONE", "no_of_trans_found": len(element), "element": element})
        return jsonify({"APIConnect": "INVALID_REQUEST"})

    return bp


def _finish(session, outcome, rocket):
    """Record the shopper's choice as SSLCommerz's transaction (VALID, FAILED or CANCELLED)."""
    currency, amount = session["currency"], Decimal(session["total_amount"])
    bdt = (amount * RATES[currency]).quantize(Decimal("0.01"))
    tx = {
        "status": {"success": "VALID", "failure": "FAILED", "cancel": "CANCELLED"}[outcome],
        "tran_date": _dhaka_now(), "tran_id": session["tran_id"], "val_id": "",
        "amount": str(bdt), "store_amount": str((bdt * Decimal("0.975")).quantize(Decimal("0.01"))),
        "currency": "BDT", "bank_tran_id": "", "currency_type": currency, "currency_amount": str(amount),
        "currency_rate": f"{RATES[currency]:.4f}", "base_fair": "0.00", "risk_level": "0", "risk_title": "Safe",
        "store_id": session["store_id"], **session["values"],
        "card_type": "DBBLMOBILEB-Dbbl Mobile Banking" if rocket else "VISA-Dutch Bangla",
        "card_no": "01XXXXXXX4455" if rocket else "418117XXXXXX6675",
        "card_issuer": "Dutch-Bangla Bank Ltd." if rocket else "TRUST BANK, LTD.",
        "card_brand": "MOBILEBANKING" if rocket else "VISA",
        "card_issuer_country": "Bangladesh", "card_issuer_country_code": "BD",
    }
    if outcome == "success":
        tx["card_ref_id"] = secrets.token_hex(33)
        stamp = datetime.now(UTC).strftime("%y%m%d%H%M%S")
        tx["val_id"] = stamp + secrets.token_hex(7)
        tx["bank_tran_id"] = stamp + secrets.token_hex(8)
    elif outcome == "failure":
        tx["error"] = "Rocket account has insufficient balance" if rocket else "Card declined by the issuer"
    session.update(status=tx["status"], tx=tx, refunds=[])
    save(STATE, "session", session["sessionkey"], session)
    if tx["val_id"]:
        save(STATE, "val", tx["val_id"], session["sessionkey"])
        save(STATE, "bank", tx["bank_tran_id"], session["sessionkey"])
    return tx


def _validation_extras(tx):
    """What the validation API adds to the transaction's fields, as real sandbox answers carry it (a public
    PostgreSQL dump of stored answers, table apps_payment: emi_instalment "0", emi_amount "0.00",
    emi_description "", emi_issuer = the card's issuer, account_details "", card_ref_id (66 hex), offer_avail 1
    and isTokeizeSuccess 0 as JSON numbers, campaign_code "", card_category "DEBIT", card_sub_brand ""; the
    official PHP sample's success.php reads the emi_* fields, sslcommerz-python's mocks the same types)."""
    card = tx.get("card_brand") != "MOBILEBANKING"
    return {"emi_instalment": "0", "emi_amount": "0.00", "emi_description": "",
            "emi_issuer": tx.get("card_issuer", ""), "account_details": "",
            "card_ref_id": tx.get("card_ref_id", ""), "offer_avail": 1, "campaign_code": "",
            "card_category": "DEBIT" if card else "", "card_sub_brand": "", "isTokeizeSuccess": 0}


def _by_val_id(val_id):
    key = load(STATE, "val", val_id) if val_id else None
    session = load(STATE, "session", key) if key else None
    return (key, session) if session else None


def _refund(args):
    key = load(STATE, "bank", args["bank_tran_id"])
    session = load(STATE, "session", key) if key else None
    base = {"APIConnect": "DONE", "bank_tran_id": args["bank_tran_id"], "trans_id": "", "refund_ref_id": "",
            "status": "failed"}
    if session is None or session["store_id"] != args["store_id"]:
        return jsonify({**base, "errorReason": "Invalid bank_tran_id"})
    base["trans_id"] = session["tran_id"]
    trans_id = args.get("refund_trans_id", "")
    if len(trans_id) > 30:
        return jsonify({**base, "errorReason": "refund_trans_id must be at most 30 characters"})
    existing = next((r for r in session["refunds"] if trans_id and r.get("refund_trans_id") == trans_id), None)
    if existing:  # the same refund asked again (unconfirmed at SSLCommerz: see the module docstring)
        return jsonify({**base, "refund_ref_id": existing["refund_ref_id"], "status": "processing", "errorReason": ""})
    amount = _money(args.get("refund_amount", ""))
    if not args.get("refund_remarks"):
        return jsonify({**base, "errorReason": "refund_remarks is required"})
    refunded = sum(Decimal(r["amount"]) for r in session["refunds"])
    if amount is None or amount <= 0 or amount > Decimal(session["total_amount"]) - refunded:
        return jsonify({**base, "errorReason": "Refund amount is greater than the refundable amount"})
    refund = {"refund_ref_id": secrets.token_hex(8), "refund_trans_id": trans_id,
              "refe_id": args.get("refe_id", ""), "amount": str(amount), "initiated_on": _dhaka_now()}
    session["refunds"].append(refund)
    save(STATE, "session", key, session)
    save(STATE, "refund", refund["refund_ref_id"], key)
    return jsonify({**base, "refund_ref_id": refund["refund_ref_id"], "status": "success", "errorReason": ""})


def _refund_status(args):
    key = load(STATE, "refund", args["refund_ref_id"])
    session = load(STATE, "session", key) if key else None
    if session is None or session["store_id"] != args["store_id"]:
        return jsonify({"APIConnect": "DONE", "status": "failed", "errorReason": "Invalid refund_ref_id"})
    refund = next(r for r in session["refunds"] if r["refund_ref_id"] == args["refund_ref_id"])
    return jsonify({"APIConnect": "DONE", "bank_tran_id": session["tx"]["bank_tran_id"], "tran_id": session["tran_id"],
                    "refund_ref_id": refund["refund_ref_id"], "initiated_on": refund["initiated_on"],
                    "refunded_on": refund["initiated_on"], "status": "refunded", "errorReason": ""})


bp = make_blueprint("sslcommerz")
