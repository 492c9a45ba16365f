"""Payments expired per second by `expire_overdue` (set-based batches through the state machine's
compare-and-set, with a timeline row, an outbox event and its deliveries per payment, and one delivery job
asked for after each commit), next to one set-based SQL statement (a bare UPDATE of the same number of
overdue payments of another merchant) in the same run, and the ratio.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/scratch BENCH_REDIS_URL=redis://127.0.0.1:6379/9 \
        .venv/bin/python bench/expiry.py [--payments 100000] [--batch 1000]
"""

import argparse
import os
import secrets
import time
from datetime import timedelta

from _common import cleanup, database_name, scratch_app
from sqlalchemy import func, insert, select, update

from app.extensions import db, get_queue
from app.models import OutboxEvent, Payment, PaymentEvent, WebhookDelivery, utcnow
from app.services import expiry
from app.services.merchants import create_merchant


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


def bare_statement(merchant_id):
    """The baseline: one UPDATE moving every overdue open payment of the merchant, nothing else."""
    now = utcnow()
    moved = db.session.execute(
        update(Payment).where(Payment.merchant_id == merchant_id, Payment.status.in_(["pending", "processing"]),
                              Payment.expires_at <= now)
        .values(status="expired", version=Payment.version + 1, updated_at=now)
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return moved


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    app = scratch_app()
    with app.app_context():
        merchant, _ = create_merchant("Bench", "bench@example.test", "bench-password",
                                      "https://shop.example/hooks")  # one endpoint: a delivery per event
        other, _ = create_merchant("Baseline", "baseline@example.test", "bench-password")
        t0 = time.perf_counter()
        seed(merchant.id, args.payments)
        seed(other.id, args.payments)
        seeded = time.perf_counter() - t0
        t0 = time.perf_counter()
        moved = bare_statement(other.id)
        bare_took = time.perf_counter() - t0
        t0 = time.perf_counter()
        expired = expiry.expire_overdue(batch_size=args.batch)
        took = time.perf_counter() - t0
        events = db.session.scalar(select(func.count()).select_from(OutboxEvent))
        deliveries = db.session.scalar(select(func.count()).select_from(WebhookDelivery))
        timeline = db.session.scalar(select(func.count()).select_from(PaymentEvent))
        jobs = get_queue("webhooks").count
        print(f"database: {database_name(app)}, batch size {args.batch}, load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"seeded 2 x {args.payments} overdue payments in {seeded:.1f} s")
        print(f"one set-based UPDATE: {moved} in {bare_took:.2f} s = {moved / bare_took:,.0f} payments/s")
        print(f"expire_overdue:       {expired} in {took:.2f} s = {expired / took:,.0f} payments/s "
              f"({events} outbox events, {deliveries} deliveries, {timeline} timeline rows, "
              f"{jobs} delivery jobs queued)")
        print(f"ratio expire_overdue / one statement: {(expired / took) / (moved / bare_took):.2f}")
    cleanup(app)


if __name__ == "__main__":
    main()
