"""One paid payment per order: the API refuses a payment for a reference that is already paid (or being
confirmed) unless told otherwise, and a second success across two payments of one order is flagged."""

from sqlalchemy import select

from app.extensions import db
from app.models import OutboxEvent, Payment
from tests.gateways.helpers import race
from tests.helpers import reload
from tests.payflow import pay


def _create(http, key, **fields):
    body = {"amount": 2_500, "currency": "USD", "reference": "ORD-77", "return_url": "https://shop.example/done",
            **fields}
    return http.post("/api/v1/payments", json=body, headers={"Authorization": f"Bearer {key}"})


def _payment(http, key, **fields):
    r = _create(http, key, **fields)
    assert r.status_code == 201, r.text
    db.session.rollback()
    return db.session.scalar(select(Payment).where(Payment.public_id == r.json()["id"]))


def test_a_second_payment_for_a_paid_order_is_refused_unless_allowed(http, factories):
    _, key = factories.merchant()
    first = _payment(http, key)
    pay(http, first)
    assert reload(first).status == "succeeded"
    r = _create(http, key)
    assert r.status_code == 409
    error = r.json()["error"]
    assert error["code"] == "reference_already_paid" and first.public_id in error["message"]
    assert error["field"] == "reference"
    assert _create(http, key, allow_duplicate_reference=True).status_code == 201
    assert _create(http, key, reference="ORD-78").status_code == 201  # another order is fine
    assert _create(http, key, allow_duplicate_reference="yes").status_code == 400
    # Another merchant's order of the same reference is theirs alone.
    _, other_key = factories.merchant()
    assert _create(http, other_key).status_code == 201


def test_two_payments_created_at_once_for_an_unpaid_order_both_succeed(http, factories):
    import requests

    _, key = factories.merchant()
    body = {"amount": 2_500, "currency": "USD", "reference": "ORD-RACE", "return_url": "https://shop.example/done"}
    answers = race(2, lambda: requests.post(f"{http.base_url}/api/v1/payments", json=body, timeout=60,
                                            headers={"Authorization": f"Bearer {key}"}).status_code)
    assert answers == [201, 201]


def test_a_second_success_across_two_payments_of_one_order_is_flagged(http, factories):
    _, key = factories.merchant()
    first, second = _payment(http, key), _payment(http, key)  # both created while the order was unpaid
    pay(http, first)
    pay(http, second)
    first, second = reload(first), reload(second)
    assert first.status == second.status == "succeeded"
    assert first.double_payment is False and second.double_payment is True
    db.session.rollback()
    event = db.session.scalars(select(OutboxEvent).where(OutboxEvent.type == "payment.double_payment")).one()
    assert event.payment_id == second.id
    assert event.payload["data"]["object"]["double_payment_of"] == first.public_id


def test_the_dashboard_payment_link_applies_the_same_rule(http, factories, client):
    from tests.helpers import csrf_token
    from tests.web.dashboard.conftest import sign_in

    merchant, key = factories.merchant()
    pay(http, _payment(http, key))
    client = sign_in(client, merchant)
    page = client.get("/dashboard/payments/new")
    r = client.post("/dashboard/payments/new", data={
        "csrf_token": csrf_token(page.text), "amount": "25.00", "currency": "USD", "reference": "ORD-77",
        "return_url": "https://shop.example/done", "expires_in": "86400"})
    assert r.status_code == 422 and "already has a payment that is paid" in r.text
