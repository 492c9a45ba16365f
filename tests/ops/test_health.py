"""/healthz and /readyz: JSON, never cached, no sign-in; /readyz fails (503) naming the check when the
database, Redis or the migrations are not right, and shows RQ's workers and the queues."""

import socket
import time

import pytest
from rq import Worker

from app import create_app
from app.extensions import db, get_queue, get_redis
from app.jobs import QUEUES

DB_PASSWORD, REDIS_PASSWORD = "db-pw-never-shown", "redis-pw-never-shown"


def test_healthz_answers_without_dependencies(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json == {"status": "ok"}
    assert r.headers["Cache-Control"] == "no-store"


def test_readyz_ok_shows_checks_workers_and_queues_without_sign_in(client):
    get_queue("webhooks").enqueue("app.jobs.webhooks.deliver", 1)
    r = client.get("/readyz")
    assert r.status_code == 200, r.json
    body = r.json
    assert body["status"] == "ok" and body["failed"] == []
    assert body["checks"] == {"database": {"ok": True}, "redis": {"ok": True}, "migrations": {"ok": True}}
    assert set(body["queues"]) == set(QUEUES) and body["queues"]["webhooks"]["queued"] == 1
    assert body["workers"] == 0 and body["oldest_heartbeat_age_seconds"] is None
    assert r.headers["Cache-Control"] == "no-store" and r.mimetype == "application/json"


def test_readyz_counts_live_workers_from_rq_heartbeats(client):
    worker = Worker([get_queue(name) for name in QUEUES], connection=get_redis())
    worker.register_birth()
    try:
        worker.heartbeat()
        body = client.get("/readyz").json
        assert body["workers"] == 1
        assert 0 <= body["oldest_heartbeat_age_seconds"] < 60
    finally:
        worker.register_death()
    assert client.get("/readyz").json["workers"] == 0


@pytest.fixture
def other_app(app, tmp_path):
    """A second app on the same Redis and database as the tests', with settings overridden."""
    made = []

    def make(**overrides):
        config = {"ENV_NAME": "testing", "SECRET_KEY": app.config["SECRET_KEY"],
                  "DATABASE_URL": app.config["DATABASE_URL"], "REDIS_URL": app.config["REDIS_URL"], **overrides}
        other = create_app(config, instance_path=str(tmp_path / f"app{len(made)}"))
        made.append(other)
        return other

    yield make
    for other in made:
        with other.app_context():
            db.engine.dispose()


def _assert_no_secret(r):
    assert DB_PASSWORD not in r.text and REDIS_PASSWORD not in r.text


def test_readyz_503_when_the_database_is_down(other_app):
    down = other_app(DATABASE_URL=f"postgresql://paysmith:{DB_PASSWORD}@127.0.0.1:1/paysmith")
    r = down.test_client().get("/readyz")
    assert r.status_code == 503
    assert r.json["status"] == "fail" and r.json["failed"] == ["database", "migrations"]
    assert r.json["checks"]["redis"] == {"ok": True} and r.json["checks"]["database"]["error"]
    assert "workers" in r.json and r.headers["Cache-Control"] == "no-store"
    _assert_no_secret(r)
    assert down.test_client().get("/healthz").status_code == 200  # alive, just not ready


def test_readyz_503_in_time_when_the_database_host_never_answers(other_app):
    """A server that takes the connection but never speaks (as a host dropping packets looks to libpq)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        down = other_app(DATABASE_URL=f"postgresql://paysmith:{DB_PASSWORD}@127.0.0.1:{port}/paysmith",
                         DATABASE_CONNECT_TIMEOUT=1)
        started = time.monotonic()
        r = down.test_client().get("/readyz")
    assert r.status_code == 503 and r.json["failed"] == ["database", "migrations"]
    assert time.monotonic() - started < 10
    _assert_no_secret(r)


def test_readyz_503_when_redis_is_down(other_app):
    down = other_app(REDIS_URL=f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0")
    r = down.test_client().get("/readyz")
    assert r.status_code == 503
    assert r.json["failed"] == ["redis"] and r.json["checks"]["database"] == {"ok": True}
    assert r.json["checks"]["migrations"] == {"ok": True} and "queues" not in r.json
    _assert_no_secret(r)


def test_readyz_503_when_migrations_are_not_at_head(other_app, tmp_path):
    behind = other_app(DATABASE_URL=f"sqlite:///{tmp_path}/empty.db")  # never migrated
    r = behind.test_client().get("/readyz")
    assert r.status_code == 503 and r.json["failed"] == ["migrations"]
    assert "no revision" in r.json["checks"]["migrations"]["error"]
