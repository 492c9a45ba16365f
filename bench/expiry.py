"""Payments expired per second by `expire_overdue` next to the limit of the same durable work, in one run.

`expire_overdue` (set-based batches through the state machine's compare-and-set, a timeline row, an outbox
event with the payment's JSON body and its deliveries per payment, one commit and one delivery job asked for
per batch) runs on N overdue payments of one merchant. The **limit** does the same durable work on N overdue
payments of another merchant (one webhook endpoint each) on the bare DBAPI connection (psycopg or sqlite3),
no ORM, no state machine: per batch of the same size, in one transaction, one set-based UPDATE … RETURNING of
the columns an event body needs, one multi-row INSERT of the timeline rows, one of the outbox rows (a payload
of the same shape as `event_payload` + `payment_dict`, built in Python) RETURNING their ids, one of the
deliveries, and the commit. Printed: both rates and the ratio ours / limit.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/scratch BENCH_REDIS_URL=redis://127.0.0.1:6379/9 \
        .venv/bin/python bench/expiry.py [--payments 100000] [--batch 1000] [--profile out.html]

--profile runs `expire_overdue` under pyinstrument (not in the shared venv: `pip install --target DIR
pyinstrument` and PYTHONPATH=DIR) and writes its HTML report; the printed rate then includes the profiler.
"""

import argparse
import json
import os
import secrets
import time
from datetime import datetime, timedelta

from _common import cleanup, database_name, scratch_app
from sqlalchemy import func, insert, select

from app import security
from app.extensions import db, get_queue
from app.models import OutboxEvent, Payment, PaymentEvent, WebhookDelivery, utcnow
from app.services import expiry
from app.services.merchants import create_merchant

#: The payment columns a `payment.expired` body is made of (`app.serializers.payment_dict`).
BODY_COLUMNS = ("id", "merchant_id", "public_id", "status", "amount", "currency", "amount_refunded", "reference",
                "description", "items", "customer", "metadata", "gateway", "double_payment", "card_summary",
                "fee_amount", "late_success", "needs_review", "failure_code", "failure_message", "checkout_token",
                "return_url", "cancel_url", "expires_at", "created_at", "updated_at", "paid_at")


def seed(merchant_id, count):
    past = utcnow() - timedelta(minutes=1)
    rows = [{"public_id": f"pay_{secrets.token_hex(12)}", "merchant_id": merchant_id, "reference": f"B{i}",
             "amount": 10_000, "currency": "VND", "status": "pending" if i % 3 else "processing", "version": 0,
             "checkout_token": secrets.token_urlsafe(24), "return_url": "https://shop.example/r",
             "expires_at": past, "items": [], "customer": {}, "metadata": {}, "attempt_count": 0,
             "amount_refunded": 0, "late_success": False, "needs_review": False,
             "created_at": past, "updated_at": past} for i in range(count)]
    for start in range(0, count, 10_000):
        db.session.execute(insert(Payment), rows[start:start + 10_000])
    db.session.commit()


class Raw:
    """The dialect's differences for the bare DBAPI: placeholders, JSON and timestamps in and out."""

    def __init__(self, dialect):
        self.pg = dialect == "postgresql"
        self.mark = "%s" if self.pg else "?"

    def begin(self, cursor):
        if not self.pg:  # the app's SQLite connections run in autocommit mode and BEGIN themselves
            cursor.execute("BEGIN IMMEDIATE")

    def json_mark(self):
        return "%s::jsonb" if self.pg else "?"

    def when(self, value):  # naive UTC in; SQLAlchemy's SQLite format on SQLite
        return value if self.pg else value.strftime("%Y-%m-%d %H:%M:%S.%f")

    def read_when(self, value):
        if value is None or self.pg:
            return value
        return datetime.fromisoformat(value)

    def read_json(self, value):
        return value if self.pg or value is None else json.loads(value)

    def values(self, rows, width, json_at=()):
        marks = ", ".join(self.json_mark() if i in json_at else self.mark for i in range(width))
        return ", ".join(f"({marks})" for _ in rows), [v for row in rows for v in row]


def iso(value):
    return value.replace(microsecond=0).isoformat() + "Z" if value else None


def body(raw, row, base_url):
    """What payment_dict gives for a payment without attempts, from the UPDATE's RETURNING row."""
    r = dict(zip(BODY_COLUMNS, row, strict=True))
    return {
        "id": r["public_id"], "object": "payment", "status": r["status"], "amount": r["amount"],
        "currency": r["currency"], "amount_refunded": r["amount_refunded"], "reference": r["reference"],
        "description": r["description"], "items": raw.read_json(r["items"]) or [],
        "customer": raw.read_json(r["customer"]) or {}, "metadata": raw.read_json(r["metadata"]) or {},
        "gateway": r["gateway"], "gateway_reference": None, "gateway_transaction_id": None, "attempts": [],
        "double_payment": bool(r["double_payment"]), "card": r["card_summary"], "fee_amount": r["fee_amount"],
        "late_success": bool(r["late_success"]), "needs_review": bool(r["needs_review"]),
        "failure_code": r["failure_code"], "failure_message": r["failure_message"],
        "checkout_url": f"{base_url}/pay/{r['checkout_token']}", "return_url": r["return_url"],
        "cancel_url": r["cancel_url"], "expires_at": iso(raw.read_when(r["expires_at"])),
        "created_at": iso(raw.read_when(r["created_at"])), "updated_at": iso(raw.read_when(r["updated_at"])),
        "paid_at": iso(raw.read_when(r["paid_at"])),
    }


def limit(app, merchant_id, batch):
    """The same durable work as expire_overdue, on the bare DBAPI connection; return how many expired."""
    raw, base_url = Raw(database_name(app)), app.config["PUBLIC_BASE_URL"]
    m = raw.mark
    conn = db.engine.raw_connection()
    cur = conn.cursor()
    cur.execute(f"SELECT id FROM webhook_endpoints WHERE merchant_id = {m} AND enabled AND url IS NOT NULL",
                (merchant_id,))
    endpoints = [row[0] for row in cur.fetchall()]
    lock = " FOR UPDATE SKIP LOCKED" if raw.pg else ""
    total = 0
    while True:
        now = utcnow()
        raw.begin(cur)
        cur.execute(
            f"UPDATE payments SET status = 'expired', version = version + 1, updated_at = {m}, "
            f"failure_code = 'expired', failure_message = 'The payment expired before it was paid.' "
            f"WHERE id IN (SELECT id FROM payments WHERE merchant_id = {m} AND status IN ('pending', 'processing') "
            f"AND expires_at <= {m} ORDER BY expires_at, id LIMIT {m}{lock}) "
            f"RETURNING {', '.join(BODY_COLUMNS)}",
            (raw.when(now), merchant_id, raw.when(now), batch))
        moved = cur.fetchall()
        if not moved:
            conn.rollback()
            break
        when = raw.when(now)
        timeline = [(row[0], "status_change", "pending", "expired",
                     "The payment expired before it was paid [expiry]", when) for row in moved]
        marks, params = raw.values(timeline, 6)
        cur.execute("INSERT INTO payment_events (payment_id, kind, from_status, to_status, message, created_at) "
                    f"VALUES {marks}", params)
        created = int(time.time())
        events = []
        for row in moved:
            event_id = security.public_id("evt")
            payload = {"id": event_id, "object": "event", "type": "payment.expired", "created": created,
                       "data": {"object": body(raw, row, base_url)}}
            events.append((event_id, row[1], row[0], "payment.expired", "pending", 0, when, when, json.dumps(payload)))
        marks, params = raw.values(events, 9, json_at=(8,))
        cur.execute("INSERT INTO outbox_events (public_id, merchant_id, payment_id, type, delivery_status, attempts, "
                    f"next_attempt_at, created_at, payload) VALUES {marks} RETURNING id", params)
        event_ids = [row[0] for row in cur.fetchall()]
        deliveries = [(event_id, endpoint, "pending", 0, when, when) for event_id in event_ids for endpoint in endpoints]
        marks, params = raw.values(deliveries, 6)
        cur.execute("INSERT INTO webhook_deliveries (event_id, endpoint_id, status, attempts, next_attempt_at, "
                    f"created_at) VALUES {marks}", params)
        conn.commit()
        total += len(moved)
        if len(moved) < batch:
            break
    conn.close()
    return total


def same_shape(merchant_id, other_id):
    """Whether an event body of ours and one of the limit's have the same keys and value types (ids and
    timestamps differ), so the limit builds and stores what we do."""
    def shape(value):
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items() if k not in ("id", "created")}
        return type(value).__name__ if value is not None else None

    one = [db.session.scalar(select(OutboxEvent.payload).join(Payment, Payment.id == OutboxEvent.payment_id)
                             .where(Payment.merchant_id == m).limit(1)) for m in (merchant_id, other_id)]
    db.session.rollback()
    return shape(one[0]) == shape(one[1])


def counts(merchant_id):
    """(outbox events, deliveries, timeline rows) of the merchant's payments."""
    ids = select(Payment.id).where(Payment.merchant_id == merchant_id).scalar_subquery()
    events = db.session.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.payment_id.in_(ids)))
    deliveries = db.session.scalar(select(func.count()).select_from(WebhookDelivery).join(OutboxEvent).where(
        OutboxEvent.payment_id.in_(ids)))
    timeline = db.session.scalar(select(func.count()).select_from(PaymentEvent).where(PaymentEvent.payment_id.in_(ids)))
    db.session.rollback()
    return events, deliveries, timeline


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--profile", metavar="HTML", help="profile expire_overdue with pyinstrument into HTML")
    args = parser.parse_args()
    app = scratch_app()
    with app.app_context():
        merchant, _ = create_merchant("Bench", "bench@example.test", "bench-password",
                                      "https://shop.example/hooks")  # one endpoint: a delivery per event
        other, _ = create_merchant("Limit", "limit@example.test", "bench-password", "https://shop.example/hooks")
        merchant_id, other_id = merchant.id, other.id
        t0 = time.perf_counter()
        seed(merchant_id, args.payments)
        seed(other_id, args.payments)
        seeded = time.perf_counter() - t0
        db.session.rollback()  # nothing held: on SQLite a session's transaction holds the write lock
        t0 = time.perf_counter()
        moved = limit(app, other_id, args.batch)
        limit_took = time.perf_counter() - t0
        profiler = None
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
        t0 = time.perf_counter()
        expired = expiry.expire_overdue(batch_size=args.batch)
        took = time.perf_counter() - t0
        if profiler:
            profiler.stop()
            with open(args.profile, "w") as out:
                out.write(profiler.output_html())
        jobs = get_queue("webhooks").count
        ours, theirs = counts(merchant_id), counts(other_id)
        print(f"database: {database_name(app)}, batch size {args.batch}, load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"seeded 2 x {args.payments} overdue payments in {seeded:.1f} s")
        print(f"limit (bare DBAPI, same rows): {moved} in {limit_took:.2f} s = {moved / limit_took:,.0f} payments/s "
              f"({theirs[0]} outbox events, {theirs[1]} deliveries, {theirs[2]} timeline rows)")
        print(f"expire_overdue:                {expired} in {took:.2f} s = {expired / took:,.0f} payments/s "
              f"({ours[0]} outbox events, {ours[1]} deliveries, {ours[2]} timeline rows, "
              f"{jobs} delivery jobs queued){' [profiled]' if profiler else ''}")
        print(f"event bodies of the same shape: {same_shape(merchant_id, other_id)}")
        print(f"ratio expire_overdue / limit: {(expired / took) / (moved / limit_took):.2f}")
    cleanup(app)


if __name__ == "__main__":
    main()
