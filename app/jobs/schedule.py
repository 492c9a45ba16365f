"""Periodic jobs (sweeps). Each run schedules the next one; job ids are derived from the time slot, so any
number of workers calling `ensure_periodic_jobs()` at start keep exactly one future run of each sweep."""

import importlib
import logging
import time
from datetime import UTC, datetime

from flask import current_app

from app.extensions import get_queue

log = logging.getLogger(__name__)

#: name → (dotted function, config key holding its period in seconds)
PERIODIC = {
    "webhooks": ("app.jobs.webhooks.sweep", "WEBHOOK_SWEEP_SECONDS"),
    "expiry": ("app.jobs.expiry.sweep", "EXPIRY_SWEEP_SECONDS"),
    "reconciliation": ("app.jobs.reconciliation.sweep", "RECONCILE_SWEEP_SECONDS"),
    "refunds": ("app.jobs.refunds.sweep", "REFUND_SWEEP_SECONDS"),
    "receipts": ("app.jobs.receipts.sweep", "RECEIPT_SWEEP_SECONDS"),
}


def _schedule_next(name, app=None, now=None):
    app = app or current_app
    every = app.config[PERIODIC[name][1]]
    slot = int((now or time.time()) // every) + 1
    job_id = f"periodic-{name}-{slot}"
    queue = get_queue("default", app)
    job = queue.fetch_job(job_id)
    if job is not None and job.get_status(refresh=True) in ("scheduled", "queued", "started", "deferred"):
        return job
    return queue.enqueue_at(datetime.fromtimestamp(slot * every, UTC), "app.jobs.schedule.run_periodic", name,
                            job_id=job_id, result_ttl=0, job_timeout=max(every * 4, 300))


def ensure_periodic_jobs(app=None):
    """Schedule the next run of each periodic job unless it is already scheduled."""
    return [_schedule_next(name, app) for name in PERIODIC]


def run_periodic(name):
    """RQ job: run one periodic sweep, then schedule its next run (even when this one failed)."""
    module, _, func = PERIODIC[name][0].rpartition(".")
    try:
        return getattr(importlib.import_module(module), func)()
    finally:
        try:
            _schedule_next(name)
        except Exception:
            log.warning("could not schedule the next %s sweep", name, exc_info=True)
