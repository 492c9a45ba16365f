import threading

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Refund
from tests.helpers import reload
from tests.payflow import pay


@pytest.fixture
def setup(factories, http):
    merchant, key = factories.merchant()
    payment = factories.payment(merchant, currency="USD", amount=5000)
    pay(http, payment)
    return merchant, {"Authorization": f"Bearer {key}"}, payment


def test_create_get_and_list_refunds(setup, http, run_jobs):
    _, auth, payment = setup
    url = f"/api/v1/payments/{payment.public_id}/refunds"
    r = http.post(url, json={"amount": 1200, "reason": "size"}, headers={**auth, "Idempotency-Key": "rf-1"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "pending" and body["amount"] == 1200 and body["currency"] == "USD"
    assert body["payment"] == payment.public_id and body["reason"] == "size" and body["id"].startswith("re_")
    replay = http.post(url, json={"amount": 1200, "reason": "size"}, headers={**auth, "Idempotency-Key": "rf-1"})
    assert replay.status_code == 201 and replay.json()["id"] == body["id"]
    assert replay.headers["Idempotent-Replayed"] == "true"
    reused = http.post(url, json={"amount": 1300}, headers={**auth, "Idempotency-Key": "rf-1"})
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
    run_jobs()

    r = http.get(f"/api/v1/refunds/{body['id']}", headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "succeeded"
    r = http.post(url, json={}, headers=auth)  # the rest
    assert r.status_code == 201 and r.json()["amount"] == 3800
    r = http.get(url, headers=auth)
    assert [x["amount"] for x in r.json()["data"]] == [1200, 3800]
    r = http.post(url, json={"amount": 1}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["code"] == "refund_exceeds_captured"
    assert db.session.scalar(select(db.func.count()).select_from(Refund)) == 2


def test_bad_requests_change_nothing(setup, http, factories):
    _, auth, payment = setup
    url = f"/api/v1/payments/{payment.public_id}/refunds"
    for body, status, code in [
        # A wrong JSON type is a 400 like everywhere else in the API (it was a 422, which the OpenAPI
        # document's 422 codes do not list: found by validating every answer against it).
        ({"amount": "12"}, 400, "invalid_type"),
        ({"amount": 12.0}, 400, "invalid_type"),
        ({"reason": 5}, 400, "invalid_type"),
        ({"amount": 0}, 422, "invalid_amount"),
        ({"amount": 6000}, 422, "refund_exceeds_captured"),
        ({"amount": 10, "currency": "VND"}, 400, "invalid_request"),
        ({"reason": "x" * 501}, 422, "validation_error"),
    ]:
        r = http.post(url, json=body, headers=auth)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (body, r.text)
    r = http.post(url, data="[1, 2", headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 400
    assert reload(payment).amount_refunded == 0 and db.session.scalar(select(Refund)) is None

    _, other_key = factories.merchant()
    other = {"Authorization": f"Bearer {other_key}"}
    assert http.post(url, json={"amount": 10}, headers=other).status_code == 404
    assert http.get(url, headers=other).status_code == 404
    r = http.post(url, json={"amount": 10}, headers=auth)
    assert http.get(f"/api/v1/refunds/{r.json()['id']}", headers=other).status_code == 404
    assert http.post(url, json={"amount": 10}).status_code == 401


def test_concurrent_refunds_that_together_exceed_the_amount_accept_exactly_one(factories, http, live_url):
    merchant, key = factories.merchant()
    auth = {"Authorization": f"Bearer {key}"}
    for round_ in range(3):
        payment = factories.payment(merchant, currency="USD", amount=5000, reference=f"race-{round_}")
        pay(http, payment)
        url = f"{live_url}/api/v1/payments/{payment.public_id}/refunds"
        barrier = threading.Barrier(2)
        results = []

        def ask(amount, barrier=barrier, url=url, results=results):
            import requests

            barrier.wait()
            r = requests.post(url, json={"amount": amount}, headers=auth, timeout=30)
            results.append((r.status_code, r.json()))

        threads = [threading.Thread(target=ask, args=(amount,)) for amount in (3000, 2500)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(status for status, _ in results)
        assert statuses == [201, 422], results
        refused = next(body for status, body in results if status == 422)
        assert refused["error"]["code"] == "refund_exceeds_captured"
        accepted = next(body for status, body in results if status == 201)
        assert reload(payment).amount_refunded == accepted["amount"]
        assert db.session.scalar(select(db.func.count()).select_from(Refund).where(
            Refund.payment_id == payment.id)) == 1
