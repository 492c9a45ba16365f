"""The *limit* app for bench/ipn.py: VNPay's IPN doing the same durable work as our route, with psycopg and
no ORM, no framework layers beyond a bare Flask route, nothing per request that can be done once.

Per notification, as ours: both VNPay hash checks (empty values skipped and kept), one SELECT of the attempt
with its payment (and that the merchant has a VNPay account), the amount check, a compare-and-set UPDATE of
the attempt, a SELECT for another paid payment of the same order, a compare-and-set UPDATE of the payment
(RETURNING what the event body needs), the payment's attempts and the merchant's endpoints for the event
body and its deliveries, one INSERT of the three timeline rows (attempt, status change, the raw callback with
its dedupe key), the outbox event and its deliveries, COMMIT, then one Redis SET NX + RPUSH asking for a
delivery batch. Run by bench/ipn.py as `gunicorn bench.limit_app:app` with LIMIT_DATABASE_URL,
LIMIT_REDIS_URL and LIMIT_VNPAY_SECRET / LIMIT_VNPAY_TMN (the sandbox credentials every merchant gets).
"""

import hashlib
import hmac
import os
import secrets
import threading
import time
from datetime import UTC, datetime
from urllib.parse import quote_plus

import psycopg
from psycopg.types.json import Jsonb
from flask import Flask, jsonify, request
from redis import Redis

app = Flask(__name__)
DSN = os.environ.get("LIMIT_DATABASE_URL", "")
SECRET = os.environ.get("LIMIT_VNPAY_SECRET", "").encode()
TMN = os.environ.get("LIMIT_VNPAY_TMN", "")
PUBLIC = os.environ.get("LIMIT_PUBLIC_BASE_URL", "http://127.0.0.1")
redis = Redis.from_url(os.environ["LIMIT_REDIS_URL"]) if os.environ.get("LIMIT_REDIS_URL") else None
local = threading.local()
PAID = ("succeeded", "partially_refunded", "refunded")

FIND = """SELECT a.id, a.status, a.version, a.amount, p.id, p.status, p.version, p.merchant_id, p.reference
FROM payment_attempts a JOIN payments p ON p.id = a.payment_id
JOIN gateway_accounts g ON g.merchant_id = p.merchant_id AND g.gateway = 'vnpay'
WHERE a.public_id = %s AND a.gateway = 'vnpay'"""
ATTEMPT_CAS = """UPDATE payment_attempts SET status = 'succeeded', version = version + 1, transaction_id = %s,
updated_at = %s, finished_at = %s WHERE id = %s AND status = %s AND version = %s"""
OTHER_PAID = """SELECT 1 FROM payments WHERE merchant_id = %s AND reference = %s AND id <> %s
AND status IN ('succeeded', 'partially_refunded', 'refunded') LIMIT 1"""
PAYMENT_CAS = """UPDATE payments SET status = 'succeeded', version = version + 1, updated_at = %s, paid_at = %s,
late_success = false, succeeded_attempt_id = %s, gateway = 'vnpay', needs_review = false, card_summary = %s
WHERE id = %s AND status = %s AND version = %s
RETURNING public_id, status, amount, currency, amount_refunded, reference, description, items, customer,
metadata, gateway, double_payment, card_summary, fee_amount, late_success, needs_review, failure_code,
failure_message, checkout_token, return_url, cancel_url, expires_at, created_at, updated_at, paid_at"""
PAYMENT_FIELDS = ("id", "status", "amount", "currency", "amount_refunded", "reference", "description", "items",
                  "customer", "metadata", "gateway", "double_payment", "card", "fee_amount", "late_success",
                  "needs_review", "failure_code", "failure_message", "checkout_token", "return_url", "cancel_url",
                  "expires_at", "created_at", "updated_at", "paid_at")
ATTEMPTS = """SELECT public_id, number, gateway, status, amount, currency, reference, transaction_id, failure_code,
failure_reason, failure_message, amount_refunded, created_at, updated_at, finished_at
FROM payment_attempts WHERE payment_id = %s ORDER BY number"""
ATTEMPT_FIELDS = ("id", "number", "gateway", "status", "amount", "currency", "gateway_reference",
                  "gateway_transaction_id", "failure_code", "failure_reason", "failure_message", "amount_refunded",
                  "created_at", "updated_at", "finished_at")
ENDPOINTS = """SELECT id, event_types FROM webhook_endpoints WHERE merchant_id = %s AND enabled AND url IS NOT NULL
ORDER BY id"""
EVENTS = """INSERT INTO payment_events (payment_id, attempt_id, kind, from_status, to_status, gateway, message,
data, verified, dedupe_key, created_at) VALUES
(%s, %s, 'attempt', NULL, NULL, 'vnpay', %s, %s, NULL, NULL, %s),
(%s, %s, 'status_change', %s, 'succeeded', 'vnpay', %s, %s, NULL, NULL, %s),
(%s, %s, 'callback', NULL, NULL, 'vnpay', %s, %s, true, %s, %s)"""
OUTBOX = """INSERT INTO outbox_events (public_id, merchant_id, payment_id, type, payload, delivery_status, attempts,
next_attempt_at, created_at) VALUES (%s, %s, %s, 'payment.succeeded', %s, %s, 0, %s, %s) RETURNING id"""
DELIVERY = """INSERT INTO webhook_deliveries (event_id, endpoint_id, status, attempts, next_attempt_at, created_at)
VALUES (%s, %s, 'pending', 0, %s, %s)"""
RECORD = """INSERT INTO payment_events (payment_id, attempt_id, kind, gateway, message, data, verified, created_at)
VALUES (%s, %s, 'callback', 'vnpay', %s, %s, %s, %s)"""


def connection():
    """One connection per server thread, opened once (what a pool gives without a pre-ping)."""
    conn = getattr(local, "conn", None)
    if conn is None or conn.closed:
        conn = local.conn = psycopg.connect(DSN)
    return conn


def signed(params, keep_empty):
    items = sorted((k, v) for k, v in params.items()
                   if k.startswith("vnp_") and k not in ("vnp_SecureHash", "vnp_SecureHashType") and (keep_empty or v))
    data = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in items)
    return hmac.new(SECRET, data.encode(), hashlib.sha512).hexdigest()


def iso(value):
    return value.replace(microsecond=0).isoformat() + "Z" if isinstance(value, datetime) else value


def answer(code, message):
    return jsonify({"RspCode": code, "Message": message})


@app.get("/callbacks/vnpay/ipn")
def ipn():
    params = request.args.to_dict()
    given = params.get("vnp_SecureHash", "").lower()
    skipped, kept = signed(params, False), signed(params, True)
    if not (hmac.compare_digest(skipped, given) | hmac.compare_digest(kept, given)):
        return answer("97", "Invalid signature")
    raw = Jsonb({"args": params})
    now = datetime.now(UTC).replace(tzinfo=None)
    conn = connection()
    with conn.transaction(), conn.cursor() as cur:
        row = cur.execute(FIND, (params.get("vnp_TxnRef"),)).fetchone()
        if row is None:
            cur.execute(RECORD, (None, None, "ipn: no such payment", raw, False, now))
            return answer("01", "Order not found")
        attempt_id, a_status, a_version, amount, payment_id, p_status, p_version, merchant_id, reference = row
        if params.get("vnp_TmnCode") != TMN or int(params.get("vnp_Amount", "0")) != amount * 100:
            cur.execute(RECORD, (payment_id, attempt_id, "ipn: refused", raw, False, now))
            return answer("04", "Invalid amount")
        if params.get("vnp_ResponseCode") != "00" or a_status not in ("started", "processing"):
            cur.execute(RECORD, (payment_id, attempt_id, "ipn: not applied", raw, None, now))
            return answer("02", "Order already confirmed")
        if cur.execute(ATTEMPT_CAS, (params.get("vnp_TransactionNo"), now, now, attempt_id, a_status,
                                     a_version)).rowcount != 1:
            cur.execute(RECORD, (payment_id, attempt_id, "ipn: duplicate", raw, None, now))
            return answer("02", "Order already confirmed")
        cur.execute(OTHER_PAID, (merchant_id, reference, payment_id)).fetchone()
        paid = cur.execute(PAYMENT_CAS, (now, now, attempt_id, params.get("vnp_BankCode"), payment_id, p_status,
                                         p_version)).fetchone()
        body = {name: iso(value) for name, value in zip(PAYMENT_FIELDS, paid, strict=True)}
        token = body.pop("checkout_token")
        body.update(object="payment", checkout_url=f"{PUBLIC}/pay/{token}",
                    attempts=[{"object": "payment_attempt", **{n: iso(v) for n, v in zip(ATTEMPT_FIELDS, a, strict=True)}}
                              for a in cur.execute(ATTEMPTS, (payment_id,)).fetchall()])
        endpoints = [e for e, types in cur.execute(ENDPOINTS, (merchant_id,)).fetchall()
                     if not types or "payment.succeeded" in types]
        data = Jsonb({"gateway": "vnpay", "outcome": "succeeded"})
        cur.execute(EVENTS, (payment_id, attempt_id, "Attempt succeeded [callback:vnpay]", data, now,
                             payment_id, attempt_id, p_status, "vnpay reports succeeded [callback:vnpay]", data, now,
                             payment_id, attempt_id, "ipn: succeeded", raw,
                             f"vnpay:{params.get('vnp_TransactionNo')}", now))
        event_public = "evt_" + secrets.token_hex(12)
        payload = {"id": event_public, "object": "event", "type": "payment.succeeded", "created": int(time.time()),
                   "data": {"object": body}}
        event_id = cur.execute(OUTBOX, (event_public, merchant_id, payment_id, Jsonb(payload),
                                        "pending" if endpoints else "skipped", now, now)).fetchone()[0]
        if endpoints:
            cur.executemany(DELIVERY, [(event_id, e, now, now) for e in endpoints])
    if endpoints and redis is not None and redis.set("limit:webhooks:job-queued", 1, nx=True, ex=60):
        redis.rpush("limit:webhooks", event_id)
    return answer("00", "Confirm Success")
