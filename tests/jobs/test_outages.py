"""Real failures: Redis stopped while payments change state, a worker killed in the middle of a delivery."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import select

from app.extensions import db
from app.models import OutboxEvent, utcnow
from app.services import expiry, webhooks
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
    assert webhooks.sweep_due_events() == 2
    run_jobs()
    db.session.rollback()
    events = db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
    assert [e.delivery_status for e in events] == ["delivered"] * 3
    assert sorted(receiver.event_ids()) == sorted(e.public_id for e in events)  # each exactly once
    assert {r["json"]["type"] for r in receiver.requests[1:]} == {"payment.cancelled", "payment.expired"}
    assert all(r["verified"] for r in receiver.requests)


def _children(pid):
    """Ids of the processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def worker_process(app, **settings):
    """A real `python worker.py --burst` on the tests' database and Redis, in its own process group."""
    env = dict(os.environ, PAYSMITH_ENV="testing", SECRET_KEY=app.config["SECRET_KEY"],
               DATABASE_URL=app.config["DATABASE_URL"], REDIS_URL=app.config["REDIS_URL"],
               PAYSMITH_INSTANCE_PATH=app.instance_path, PUBLIC_BASE_URL=app.config["PUBLIC_BASE_URL"],
               **{k: str(v) for k, v in settings.items()})
    return subprocess.Popen([sys.executable, "worker.py", "--burst"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_a_worker_killed_mid_delivery_leaves_the_event_to_be_delivered_once_more(app, factories, hooked, receiver):
    merchant, _ = hooked
    payment = factories.payment(merchant)
    receiver.hold_next = True
    cancel_payment(payment, source="api")  # enqueues the delivery job
    [event] = db.session.scalars(select(OutboxEvent)).all()

    worker = worker_process(app, WEBHOOK_LEASE_SECONDS=2)
    try:
        assert receiver.holding.wait(60), worker.stderr.read().decode()[-2000:] if worker.poll() else "no request"
        event = reload(event)
        assert event.locked_until is not None and event.attempts == 1
        assert webhooks.sweep_due_events() == 0  # leased: not handed out again
        # The worker and its work horse (RQ puts the horse in its own session), mid-request.
        for pid in [worker.pid, *_children(worker.pid)]:
            os.kill(pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    receiver.release()

    event = reload(event)
    assert event.delivery_status == "pending" and len(receiver.requests) == 1
    time.sleep(max((event.locked_until - utcnow()).total_seconds(), 0) + 0.1)
    assert webhooks.sweep_due_events() == 1  # the lease ran out

    second = worker_process(app)
    assert second.wait(60) == 0, second.stderr.read().decode()[-2000:]
    event = reload(event)
    assert event.delivery_status == "delivered" and event.attempts == 2
    assert receiver.event_ids() == [event.public_id] * 2
    assert all(r["verified"] for r in receiver.requests)
    first, last = event.attempts_log.all()
    assert first.status_code is None and "worker stopped" in first.error
    assert last.status_code == 200 and last.error is None
