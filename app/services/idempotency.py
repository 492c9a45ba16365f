"""Idempotency keys for the merchant API, following Stripe's rules.

The key row is inserted first, in the same transaction as the work, and the response is stored before the
commit. A second request with the key therefore either waits on the unique index (PostgreSQL) or on the
write lock (SQLite) and then replays the stored response, or finds a finished one: one payment, whatever the
timing. A different body with a used key is `422 idempotency_key_reused`. Requests that fail validation store
nothing, so they can be retried with the same key. Keys live 24 hours per merchant.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import IdempotencyKey, utcnow
from app.services.errors import Conflict, ServiceError, ValidationError

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Response:
    status: int
    body: dict
    replayed: bool = False


def request_hash(body):
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def run(merchant_id, key, endpoint, body, handler):
    """Run `handler()` → (status, body dict) once per (merchant, key); commit its work with the response.

    `handler` adds to the session without committing. Without a key the handler simply runs and commits.
    """
    if key is None:
        status, payload = handler()
        db.session.commit()
        return Response(status, payload)
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationError(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters",
                              field="Idempotency-Key", code="invalid_idempotency_key", status=400)
    digest = request_hash(body)
    now = utcnow()
    db.session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.merchant_id == merchant_id, IdempotencyKey.key == key, IdempotencyKey.expires_at <= now
        )
    )
    record = IdempotencyKey(
        merchant_id=merchant_id, key=key, endpoint=endpoint, request_hash=digest, created_at=now,
        expires_at=now + timedelta(seconds=current_app.config["IDEMPOTENCY_TTL_SECONDS"]),
    )
    try:
        with db.session.begin_nested():
            db.session.add(record)
    except IntegrityError:
        db.session.rollback()
        return _replay(merchant_id, key, endpoint, digest)
    try:
        status, payload = handler()
    except ServiceError:
        db.session.rollback()  # nothing stored: the same key may be retried with a corrected body
        raise
    except Exception:
        db.session.rollback()
        raise
    record.response_status = status
    record.response_body = json.dumps(payload)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return _replay(merchant_id, key, endpoint, digest)
    return Response(status, payload)


def _replay(merchant_id, key, endpoint, digest):
    existing = db.session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.merchant_id == merchant_id, IdempotencyKey.key == key)
    )
    if existing is None or existing.response_status is None:
        raise Conflict("a request with this Idempotency-Key is still being processed; retry shortly",
                       code="idempotency_key_in_use")
    if existing.endpoint != endpoint or existing.request_hash != digest:
        raise ValidationError("this Idempotency-Key was used with a different request",
                              field="Idempotency-Key", code="idempotency_key_reused")
    return Response(existing.response_status, json.loads(existing.response_body), replayed=True)


def purge_expired():
    """Delete expired keys; return how many. Commits."""
    result = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= utcnow()))
    db.session.commit()
    return result.rowcount
