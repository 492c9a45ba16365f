"""Column helpers shared by the models. Timestamps are naive UTC everywhere (SQLite keeps no zone)."""

from datetime import UTC, datetime

from sqlalchemy import JSON
from sqlalchemy.dialects.postgresql import JSONB


def utcnow():
    return datetime.now(UTC).replace(tzinfo=None)


def isoformat(value):
    """Naive-UTC datetime → '2026-11-23T15:04:05Z' (None stays None)."""
    return value.replace(microsecond=0).isoformat() + "Z" if value else None


#: JSON on SQLite, JSONB on PostgreSQL.
JSONType = JSON().with_variant(JSONB(), "postgresql")
