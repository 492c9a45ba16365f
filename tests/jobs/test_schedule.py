import time

from app.extensions import get_queue
from app.jobs.schedule import PERIODIC, ensure_periodic_jobs, run_periodic
from app.services.payments import cancel_payment
from tests.helpers import reload


def scheduled_ids():
    return sorted(get_queue("default").scheduled_job_registry.get_job_ids())


def test_each_sweep_is_scheduled_once_however_many_workers_start():
    ensure_periodic_jobs()
    first = scheduled_ids()
    ensure_periodic_jobs()
    ensure_periodic_jobs()
    assert scheduled_ids() == first and len(first) == len(PERIODIC)
    assert {i.split("-")[1] for i in first} == set(PERIODIC)


def test_a_periodic_run_schedules_its_next_run_and_the_webhook_sweep_finds_due_events(factories, hooked,
                                                                                      receiver, run_jobs):
    merchant, _ = hooked
    payment = factories.payment(merchant)
    cancel_payment(payment, source="api")
    get_queue("webhooks").empty()  # the after-commit job was lost
    assert run_periodic("webhooks") == 1
    assert [i for i in scheduled_ids() if i.startswith("periodic-webhooks-")]
    run_jobs()
    assert [r["json"]["type"] for r in receiver.requests] == ["payment.cancelled"]


def test_the_periodic_expiry_job_runs_through_the_worker(app, factories, run_jobs, monkeypatch):
    monkeypatch.setitem(app.config, "EXPIRY_SWEEP_SECONDS", 1)
    merchant, _ = factories.merchant()
    payment = factories.payment(merchant, expires_in=1)
    registry = get_queue("default").scheduled_job_registry
    assert f"expire-{payment.id}" in registry.get_job_ids()
    registry.remove(f"expire-{payment.id}")  # the timer was lost
    assert f"expire-{payment.id}" not in registry.get_job_ids()
    ensure_periodic_jobs()
    time.sleep(1.1)
    run_jobs(advance=1)
    assert reload(payment).status == "expired"
