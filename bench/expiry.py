"""How long expiring N overdue payments takes (`expire_overdue`, set-based batches through the state
machine's compare-and-set, with a timeline row and an outbox event per payment, and the delivery jobs
enqueued after each commit).

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/scratch BENCH_REDIS_URL=redis://127.0.0.1:6379/9 \
        .venv/bin/python bench/expiry.py [--payments 100000] [--batch 1000]
"""

import argparse
import secrets
import time
from datetime import timedelta

from _common import cleanup, database_name, scratch_app
from sqlalchemy import func, insert, select

from app.extensions import db, get_queue
from app.models import OutboxEvent, Payment, PaymentEvent, utcnow
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    app = scratch_app()
    with app.app_context():
        merchant, _ = create_merchant("Bench", "bench@example.test", "bench-password")
        t0 = time.perf_counter()
        seed(merchant.id, args.payments)
        seeded = time.perf_counter() - t0
        t0 = time.perf_counter()
        expired = expiry.expire_overdue(batch_size=args.batch)
        took = time.perf_counter() - t0
        events = db.session.scalar(select(func.count()).select_from(OutboxEvent))
        timeline = db.session.scalar(select(func.count()).select_from(PaymentEvent))
        jobs = get_queue("webhooks").count
        print(f"database: {database_name(app)}, batch size {args.batch}")
        print(f"seeded {args.payments} overdue payments in {seeded:.1f} s")
        print(f"expired {expired} in {took:.1f} s = {expired / took:,.0f} payments/s "
              f"({events} outbox events, {timeline} timeline rows, {jobs} delivery jobs enqueued)")
    cleanup(app)


if __name__ == "__main__":
    main()
