"""What /readyz reports and /metrics collects at scrape time: each a cheap query or Redis call.

The database and Redis checks, whether the schema is at Alembic's head, RQ's workers (from RQ's own worker
registry and heartbeats) and queue depths, the age of the oldest due outbox event and the refunds waiting for
a person. Errors are described without URLs or secrets (`describe_error`).
"""

from datetime import UTC, datetime

from flask import current_app
from rq import Worker
from sqlalchemy import func, select, text

from app.extensions import db, get_queue, get_redis
from app.jobs import QUEUES
from app.ops.logs import redact


def describe_error(exc):
    """A short, secret-free description of a failed check: the exception's type and first line, redacted."""
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return redact(f"{type(exc).__name__}: {first}" if first else type(exc).__name__)


def check_database():
    with db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def check_redis():
    get_redis().ping()


def _migration_heads(app):
    heads = app.extensions.get("paysmith_migration_heads")
    if heads is None:
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", app.extensions["migrate"].directory)
        heads = app.extensions["paysmith_migration_heads"] = frozenset(ScriptDirectory.from_config(config).get_heads())
    return heads


def check_migrations():
    """Raise unless the database is at every head of the migrations folder."""
    from alembic.runtime.migration import MigrationContext

    heads = _migration_heads(current_app)
    with db.engine.connect() as conn:
        current = frozenset(MigrationContext.configure(conn).get_current_heads())
    if current != heads:
        raise RuntimeError(f"database at {sorted(current) or 'no revision'}, migrations at {sorted(heads)}")


def workers(now=None):
    """(number of live RQ workers, age in seconds of the oldest heartbeat among them or None)."""
    now = now or datetime.now(UTC)
    found = Worker.all(connection=get_redis())
    beats = [w.last_heartbeat for w in found if w.last_heartbeat is not None]
    oldest = max(((now - beat.replace(tzinfo=beat.tzinfo or UTC)).total_seconds() for beat in beats), default=None)
    return len(found), (round(max(oldest, 0.0), 3) if oldest is not None else None)


def queue_depths():
    """{queue: {"queued": n, "scheduled": n, "failed": n}} for every queue, in one Redis round trip."""
    queues = [get_queue(name) for name in QUEUES]
    with get_redis().pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.llen(queue.key)
            pipe.zcard(queue.scheduled_job_registry.key)
            pipe.zcard(queue.failed_job_registry.key)
        counts = pipe.execute()
    return {queue.name: dict(zip(("queued", "scheduled", "failed"), counts[i * 3:i * 3 + 3], strict=True))
            for i, queue in enumerate(queues)}


def outbox_backlog(now=None):
    """(due webhook deliveries — one per event and endpoint —, age in seconds of the oldest; 0 when none)."""
    from app.models import WebhookDelivery, utcnow

    now = now or utcnow()
    count, oldest = db.session.execute(  # ix_webhook_deliveries_due (status, next_attempt_at)
        select(func.count(), func.min(WebhookDelivery.next_attempt_at))
        .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
    ).one()
    return count, (max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0)


def refunds_needing_attention():
    """Pending refunds that wait for a person (no next gateway call planned; see Refund.needs_attention)."""
    from app.models import Refund

    return db.session.scalar(select(func.count()).select_from(Refund).where(
        Refund.status == "pending", Refund.next_attempt_at.is_(None)))
