"""The worker's clock (app.jobs.clock): one run of each sweep per period however many workers tick, again at
once after Redis is flushed, and scheduled jobs moved by one worker at a time, taken over when it dies."""

import time

from app.extensions import get_queue, get_redis
from app.jobs import QUEUES
from app.jobs.clock import Clock
from app.jobs.schedule import PERIODIC, run_periodic
from app.services.payments import cancel_payment
from tests.helpers import reload


def queued_sweeps():
    return sorted(j.args[0] for j in get_queue("default").jobs if j.func_name == "app.jobs.schedule.run_periodic")


def test_each_sweep_runs_once_a_period_however_many_workers_tick(app):
    now = 1_800_000_000.0
    first, second = Clock(app, QUEUES), Clock(app, QUEUES)
    assert sorted(first.tick(now)) == sorted(PERIODIC)
    assert second.tick(now) == [] and first.tick(now + 0.5) == []
    assert queued_sweeps() == sorted(PERIODIC)
    every = app.config["WEBHOOK_SWEEP_SECONDS"]
    assert "webhooks" in second.tick(now + every)  # the next period: whoever ticks first


def test_after_redis_is_flushed_the_next_tick_runs_the_sweeps_again(app):
    clock, now = Clock(app, QUEUES), 1_800_000_000.0
    clock.tick(now)
    get_redis().flushdb()  # Redis restarted empty: no key, no job
    assert sorted(clock.tick(now + 1)) == sorted(PERIODIC)
    assert queued_sweeps() == sorted(PERIODIC)


def test_scheduled_jobs_are_moved_by_one_clock_and_taken_over_when_it_stops(app, factories, monkeypatch):
    monkeypatch.setitem(app.config, "CLOCK_LOCK_SECONDS", 1)
    merchant, _ = factories.merchant()
    payment = factories.payment(merchant, expires_in=1)
    default = get_queue("default")
    assert f"expire-{payment.id}" in default.scheduled_job_registry.get_job_ids()
    holder, other = Clock(app, QUEUES), Clock(app, QUEUES)
    holder.tick()
    other.tick(time.time() + 5)  # the timer is due by then, but the holder holds the lock
    assert f"expire-{payment.id}" in default.scheduled_job_registry.get_job_ids()
    time.sleep(1.1)  # the holder was killed: it renews nothing, its lock runs out
    other.tick(time.time() + 5)
    assert f"expire-{payment.id}" not in default.scheduled_job_registry.get_job_ids()
    assert f"expire-{payment.id}" in default.job_ids


def test_the_periodic_webhook_sweep_finds_due_deliveries_whose_job_was_lost(factories, hooked, receiver, run_jobs):
    merchant, _ = hooked
    payment = factories.payment(merchant)
    cancel_payment(payment, source="api")
    get_queue("webhooks").empty()  # the after-commit job was lost (its mark in Redis was not)
    assert run_periodic("webhooks") == 1
    run_jobs()
    assert [r["json"]["type"] for r in receiver.requests] == ["payment.cancelled"]


def test_the_periodic_expiry_sweep_runs_through_the_worker(app, factories, run_jobs):
    merchant, _ = factories.merchant()
    payment = factories.payment(merchant, expires_in=1)
    get_queue("default").scheduled_job_registry.remove(f"expire-{payment.id}")  # the timer was lost
    time.sleep(1.1)
    Clock(app, QUEUES).tick()
    run_jobs()
    assert reload(payment).status == "expired"
