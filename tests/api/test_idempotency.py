"""Idempotency-Key on POST /api/v1/payments: replay, reuse with another body, per-merchant keys, 24 h expiry,
and a real race of concurrent requests with one key against the live server."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import IdempotencyKey, Payment, utcnow
from app.services.idempotency import purge_expired

BODY = {"amount": 2_500, "currency": "USD", "reference": "INV-7", "return_url": "https://shop.example/r"}


def post(client, key, body, idem):
    headers = {"Authorization": f"Bearer {key}"}
    if idem is not None:
        headers["Idempotency-Key"] = idem
    return client.post("/api/v1/payments", json=body, headers=headers)


def count(model):
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model))


def test_same_key_and_body_replays_the_first_response(client, factories):
    _, key = factories.merchant()
    first = post(client, key, BODY, "k-1")
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    # Same JSON with the keys in another order is the same request.
    again = post(client, key, dict(reversed(list(BODY.items()))), "k-1")
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert count(Payment) == 1


def test_same_key_with_a_different_body_is_422_reused(client, factories):
    _, key = factories.merchant()
    first = post(client, key, BODY, "k-2")
    r = post(client, key, {**BODY, "amount": 2_600}, "k-2")
    assert r.status_code == 422
    assert r.get_json()["error"]["code"] == "idempotency_key_reused"
    assert r.get_json()["error"]["field"] == "Idempotency-Key"
    assert count(Payment) == 1
    assert post(client, key, BODY, "k-2").get_json()["id"] == first.get_json()["id"]


def test_keys_are_per_merchant(client, factories):
    _, key_a = factories.merchant()
    _, key_b = factories.merchant()
    a = post(client, key_a, BODY, "shared-key").get_json()
    r = post(client, key_b, {**BODY, "amount": 9_900}, "shared-key")
    assert r.status_code == 201
    assert "Idempotent-Replayed" not in r.headers
    assert r.get_json()["id"] != a["id"]
    assert count(Payment) == 2


def test_a_failed_validation_stores_nothing_and_the_key_can_be_retried(client, factories):
    _, key = factories.merchant()
    bad = post(client, key, {**BODY, "currency": "XXX"}, "k-3")
    assert bad.status_code == 422
    assert count(IdempotencyKey) == 0
    assert count(Payment) == 0
    good = post(client, key, BODY, "k-3")
    assert good.status_code == 201
    assert "Idempotent-Replayed" not in good.headers


def test_without_a_key_every_request_creates_a_payment(client, factories):
    _, key = factories.merchant()
    ids = {post(client, key, BODY, None).get_json()["id"] for _ in range(2)}
    assert len(ids) == 2
    assert count(IdempotencyKey) == 0


@pytest.mark.parametrize("idem", ["", "k" * 256, "tab\there"])
def test_bad_keys_are_400(client, factories, idem):
    _, key = factories.merchant()
    r = post(client, key, BODY, idem)
    assert r.status_code == 400
    assert r.get_json()["error"]["code"] == "invalid_idempotency_key"
    assert count(Payment) == 0


def test_keys_expire_after_24_hours(client, factories, app):
    assert app.config["IDEMPOTENCY_TTL_SECONDS"] == 24 * 3600
    _, key = factories.merchant()
    first = post(client, key, BODY, "k-4").get_json()
    record = db.session.scalar(select(IdempotencyKey))
    assert timedelta(hours=23, minutes=59) < record.expires_at - record.created_at <= timedelta(hours=24)
    record.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    r = post(client, key, {**BODY, "amount": 3_000}, "k-4")
    assert r.status_code == 201
    assert "Idempotent-Replayed" not in r.headers
    assert r.get_json()["id"] != first["id"]
    assert count(Payment) == 2
    assert count(IdempotencyKey) == 1


def test_purge_expired_deletes_only_expired_keys(client, factories):
    _, key = factories.merchant()
    post(client, key, BODY, "old")
    post(client, key, BODY, "new")
    old = db.session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == "old"))
    old.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert purge_expired() == 1
    assert [k.key for k in db.session.scalars(select(IdempotencyKey))] == ["new"]


def test_concurrent_requests_with_one_key_create_one_payment(http, factories):
    """N threads released together POST the same key to the live server: one payment, one answer."""
    _, key = factories.merchant()
    n = 8
    barrier = threading.Barrier(n)
    answers = [None] * n

    def worker(i):
        import requests

        barrier.wait()
        answers[i] = requests.post(f"{http.base_url}/api/v1/payments", json=BODY, timeout=60,
                                   headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "race-1"})

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in answers)
    # 409 idempotency_key_in_use is the documented answer to a request that finds the first still running;
    # with the key row inserted in the same transaction as the payment, the others wait and replay instead.
    assert set(statuses) <= {201, 409}, [r.text for r in answers]
    created = [r for r in answers if r.status_code == 201]
    assert created
    assert len({r.json()["id"] for r in created}) == 1
    assert sum(1 for r in created if "Idempotent-Replayed" not in r.headers) == 1
    for r in answers:
        if r.status_code == 409:
            assert r.json()["error"]["code"] == "idempotency_key_in_use"
    assert count(Payment) == 1
    assert count(IdempotencyKey) == 1
