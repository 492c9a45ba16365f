"""Real failures: Redis stopped while payments change state, a worker killed in the middle of a delivery."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import select

from app.extensions import db
from app.jobs import QUEUES
from app.models import OutboxEvent, WebhookDelivery, utcnow
from app.services import expiry, webhooks
from app.services import webhook_endpoints as endpoints
from app.services.outbox import emit
from app.services.payments import cancel_payment
from tests.helpers import reload

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REDIS_SERVER = "/usr/bin/redis-server"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    def __init__(self, directory):
        self.port, self.directory, self.process = _free_port(), directory, None
        # No client-side retries: redis-py's default backoff would only make the outage slower to test.
        self.client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1,
                                  retry=Retry(NoBackoff(), 0))

    def start(self):
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                if self.client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        self.process.terminate()
        self.process.wait(10)
        self.client.connection_pool.disconnect()


@pytest.fixture
def private_redis(app, tmp_path):
    if not os.path.exists(REDIS_SERVER):
        pytest.skip("no redis-server binary")
    server = PrivateRedis(tmp_path)
    server.start()
    saved = app.extensions["paysmith_redis"]
    app.extensions["paysmith_redis"] = server.client
    yield server
    app.extensions["paysmith_redis"] = saved
    if server.process.poll() is None:
        server.stop()


def test_events_written_while_redis_is_down_are_delivered_when_it_is_back(factories, hooked, receiver, run_jobs,
                                                                         private_redis, http):
    merchant, key = hooked
    before = factories.payment(merchant)
    cancel_payment(before, source="api")
    run_jobs()
    assert len(receiver.requests) == 1

    private_redis.stop()
    cancelled = factories.payment(merchant)
    overdue = factories.payment(merchant, expires_in=1)
    assert cancel_payment(cancelled, source="api")  # the commit succeeds; enqueueing fails quietly
    time.sleep(1.1)
    assert expiry.expire_overdue() == 1
    r = http.post("/api/v1/payments", headers={"Authorization": f"Bearer {key}"},
                  json={"amount": 5000, "currency": "USD", "reference": "while-down",
                        "return_url": "https://shop.example/r"})
    assert r.status_code == 201, r.text  # the API keeps working without Redis
    assert reload(cancelled).status == "cancelled" and reload(overdue).status == "expired"

    private_redis.start()  # empty: every job enqueued before the outage is gone too
    assert webhooks.sweep_due_events() == 2  # due deliveries
    run_jobs()
    db.session.rollback()
    events = db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
    assert [e.delivery_status for e in events] == ["delivered"] * 3
    assert sorted(receiver.event_ids()) == sorted(e.public_id for e in events)  # each exactly once
    assert {r["json"]["type"] for r in receiver.requests[1:]} == {"payment.cancelled", "payment.expired"}
    assert all(r["verified"] for r in receiver.requests)


def worker_process(app, *args, redis_url=None, **settings):
    """A real `python worker.py` (`--burst` unless told otherwise) on the tests' database and Redis, in its
    own process group."""
    env = dict(os.environ, PAYSMITH_ENV="testing", SECRET_KEY=app.config["SECRET_KEY"],
               DATABASE_URL=app.config["DATABASE_URL"], REDIS_URL=redis_url or app.config["REDIS_URL"],
               PAYSMITH_INSTANCE_PATH=app.instance_path, PUBLIC_BASE_URL=app.config["PUBLIC_BASE_URL"],
               **{k: str(v) for k, v in settings.items()})
    log = tempfile.TemporaryFile()  # not a pipe: a long-running worker would fill it and block
    process = subprocess.Popen([sys.executable, "worker.py", *(args or ["--burst"])], cwd=ROOT, env=env,
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=log)
    process.log = log
    return process


def log_of(process):
    process.log.seek(0)
    return process.log.read().decode(errors="replace")[-3000:]


def _kill(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


@pytest.fixture
def writes_beside_a_worker():
    """The test thread's SQLite transactions take the write lock at BEGIN, like the app's: a worker process
    that keeps writing would otherwise make a deferred read-then-write transaction fail at once."""
    import threading

    from app.extensions import SQLITE_DEFERRED_THREADS

    db.session.rollback()
    SQLITE_DEFERRED_THREADS.discard(threading.get_ident())
    yield
    db.session.rollback()
    SQLITE_DEFERRED_THREADS.add(threading.get_ident())


def wait_for(condition, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        db.session.rollback()
        met = condition()
        db.session.rollback()  # no snapshot kept open: the test thread writes next (SQLite)
        if met:
            return time.time()
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s: {what() if callable(what) else what}")


def test_a_worker_killed_mid_batch_leaves_its_deliveries_to_be_made_once_more(app, factories, hooked, receiver):
    merchant, _ = hooked
    payment = factories.payment(merchant)
    receiver.hold_next = True
    cancel_payment(payment, source="api")  # asks for a delivery job
    [event] = db.session.scalars(select(OutboxEvent)).all()

    worker = worker_process(app, WEBHOOK_LEASE_SECONDS=2, WEBHOOK_BATCH_SECONDS=1, WEBHOOK_TIMEOUT_SECONDS=1,
                            WEBHOOK_CONNECT_TIMEOUT_SECONDS=1)
    try:
        assert receiver.holding.wait(60), log_of(worker) if worker.poll() else "no request"
        [delivery] = reload(event).deliveries
        delivery = reload(delivery)
        assert delivery.lease_owner is not None and delivery.lease_until is not None and delivery.attempts == 1
        assert webhooks.sweep_due_events() == 0  # leased: not claimable
        os.kill(worker.pid, signal.SIGKILL)  # a SimpleWorker: the POST is in this very process
        worker.wait(10)
    finally:
        _kill(worker)
    receiver.release()

    delivery = reload(delivery)
    assert delivery.status == "pending" and len(receiver.requests) == 1
    time.sleep(max((delivery.lease_until - utcnow()).total_seconds(), 0) + 0.1)
    assert webhooks.sweep_due_events() == 1  # the lease ran out: the sweep asks for a job

    second = worker_process(app)
    assert second.wait(60) == 0, log_of(second)
    event, delivery = reload(event), reload(delivery)
    assert delivery.status == "delivered" and delivery.attempts == 2 and event.delivery_status == "delivered"
    assert receiver.event_ids() == [event.public_id] * 2  # at least once: twice, as the first got no record
    assert all(r["verified"] for r in receiver.requests)
    first, last = event.attempts_log.all()
    assert first.status_code is None and "worker stopped" in first.error
    assert last.status_code == 200 and last.error is None


def test_two_workers_never_deliver_one_event_twice(app, factories, hooked, receiver):
    merchant, _ = hooked
    other = endpoints.create_endpoint(merchant, receiver.url + "?second")
    for n in range(150):
        emit("payment.succeeded", merchant.id, {"id": f"pay_{n}"})
    db.session.commit()
    settings = {"WEBHOOK_BATCH_SIZE": 20, "WEBHOOK_ENDPOINT_BATCH_SHARE": 10}
    workers = [worker_process(app, **settings) for _ in range(2)]
    for worker in workers:
        assert worker.wait(120) == 0, log_of(worker)
    sent = [(r["path"], r["headers"]["webhook-id"]) for r in receiver.requests]
    assert len(sent) == 300 and len(set(sent)) == 300  # each event once to each endpoint
    db.session.rollback()
    attempts = db.session.scalars(select(WebhookDelivery.attempts).where(WebhookDelivery.endpoint_id == other.id))
    assert set(attempts) == {1}


SWEEPS = {"WEBHOOK_SWEEP_SECONDS": 2, "EXPIRY_SWEEP_SECONDS": 2, "REFUND_SWEEP_SECONDS": 2,
          "RECEIPT_SWEEP_SECONDS": 2, "RECONCILE_SWEEP_SECONDS": 2, "WORKER_RECONNECT_MAX_SECONDS": 1,
          "CLOCK_LOCK_SECONDS": 2}
TWO_INTERVALS = 2 * 2


def test_redis_restarted_empty_with_work_pending_is_processed_within_two_sweeps(app, factories, hooked, receiver,
                                                                               private_redis, http, request):
    from app.services import refunds
    from tests.payflow import pay

    merchant, _ = hooked
    paid = factories.payment(merchant, currency="USD", amount=5000)
    pay(http, paid)
    url = f"redis://127.0.0.1:{private_redis.port}/0"
    worker = worker_process(app, "--queues", *QUEUES, redis_url=url, **SWEEPS)
    request.getfixturevalue("writes_beside_a_worker")
    try:
        wait_for(lambda: len(receiver.requests) >= 2, 30, "the payment's first events delivered")  # working
        private_redis.stop()
        cancelled = factories.payment(merchant)
        assert cancel_payment(cancelled, source="api")  # an event, its job lost with Redis
        overdue = factories.payment(merchant, expires_in=1)  # its timer lost with Redis
        refund = refunds.request_refund(reload(paid), 1000, "test", source="test")  # its job lost too
        time.sleep(1.2)
        private_redis.start()  # empty
        back = time.time()
        wait_for(lambda: reload(overdue).status == "expired", TWO_INTERVALS + 2, "the payment expired")
        # The gateway is asked (the simulator kept its sessions in the Redis that was lost, so it answers
        # "no such session": the point here is that the refund sweep ran without anyone restarting it).
        wait_for(lambda: reload(refund).attempts >= 1, TWO_INTERVALS + 2, "the refund's gateway call")
        done = wait_for(lambda: {"payment.cancelled", "payment.expired"}
                        <= {r["json"]["type"] for r in receiver.requests}, TWO_INTERVALS + 2, "events delivered")
        assert done - back <= TWO_INTERVALS + 2
    except AssertionError:
        _kill(worker)
        raise AssertionError(log_of(worker)) from None
    finally:
        _kill(worker)
    assert len(receiver.event_ids()) == len(set(receiver.event_ids()))


def test_a_worker_killed_and_restarted_at_once_keeps_the_schedule(app, factories, hooked, receiver,
                                                                 private_redis, writes_beside_a_worker):
    from app.extensions import get_queue

    merchant, _ = hooked
    url = f"redis://127.0.0.1:{private_redis.port}/0"
    first = worker_process(app, "--queues", *QUEUES, redis_url=url, **SWEEPS)
    try:
        before = factories.payment(merchant, expires_in=1)  # expired by its timer, moved by this clock
        wait_for(lambda: reload(before).status == "expired", 10, "the first worker's clock runs")
        # Killed once its event is delivered (one killed mid-delivery is the at-least-once test above: its
        # lease would delay that delivery by WEBHOOK_LEASE_SECONDS, not the schedule).
        wait_for(lambda: len(receiver.requests) >= 1, 10, "the first worker delivers")
    except AssertionError:
        _kill(first)
        raise AssertionError(log_of(first)) from None
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # holding the clock's lock
        first.wait(10)
    second = worker_process(app, "--queues", *QUEUES, redis_url=url, **SWEEPS)
    try:
        # Timed from when the new process is up (Python and the app take seconds to start on a busy machine):
        # RQ names its Redis connection after the worker, and the killed worker's connections are gone.
        wait_for(lambda: any(c.get("name") for c in private_redis.client.client_list()), 30, "the worker is up")
        timer = factories.payment(merchant, expires_in=1)  # a scheduled job: needs the lock the dead one held
        swept = factories.payment(merchant, expires_in=1)
        get_queue("default").scheduled_job_registry.remove(f"expire-{swept.id}")  # only the sweep can expire it
        started = time.time()
        wait_for(lambda: reload(timer).status == "expired", TWO_INTERVALS + 2, "the timer ran")
        wait_for(lambda: reload(swept).status == "expired", TWO_INTERVALS + 2, "the expiry sweep ran")
        assert time.time() - started <= TWO_INTERVALS + 2
        wait_for(lambda: [r["json"]["type"] for r in receiver.requests].count("payment.expired") == 3,
                 TWO_INTERVALS + 2, "their events delivered")
    finally:
        _kill(second)
