"""Webhook events and the webhook endpoint in the API: the list pages like GET /payments (newest first,
`limit` 1–100, `starting_after`), refuses bad parameters with a 400 naming them, and only ever shows the
caller's own events; the endpoint's URL is a string or null, anything else is a 400 that changes nothing."""

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import OutboxEvent
from app.services.payments import cancel_payment
from tests.helpers import reload


@pytest.fixture
def shop(factories):
    merchant, key = factories.merchant()
    return merchant, {"Authorization": f"Bearer {key}"}


def cancelled_events(factories, merchant, n):
    """n `payment.cancelled` events of the merchant: their ids, oldest first."""
    for _ in range(n):
        assert cancel_payment(factories.payment(merchant), source="api")
    return list(db.session.scalars(select(OutboxEvent.public_id).where(OutboxEvent.merchant_id == merchant.id)
                                   .order_by(OutboxEvent.id)))


def test_events_list_newest_first_in_pages(client, factories, shop):
    merchant, auth = shop
    ids = cancelled_events(factories, merchant, 3)
    first = client.get("/api/v1/events?limit=2", headers=auth).get_json()
    assert [e["id"] for e in first["data"]] == ids[::-1][:2] and first["has_more"] is True
    assert first["data"][0]["type"] == "payment.cancelled" and first["data"][0]["payload"]["id"] == ids[2]
    rest = client.get(f"/api/v1/events?limit=2&starting_after={ids[1]}", headers=auth).get_json()
    assert [e["id"] for e in rest["data"]] == [ids[0]] and rest["has_more"] is False
    # This merchant has set no webhook URL: its events go nowhere (skipped), none is pending or delivered.
    skipped = client.get("/api/v1/events?delivery_status=skipped", headers=auth).get_json()["data"]
    pending = client.get("/api/v1/events?delivery_status=pending", headers=auth).get_json()["data"]
    delivered = client.get("/api/v1/events?delivery_status=delivered", headers=auth).get_json()["data"]
    assert [e["id"] for e in skipped] == ids[::-1] and pending == [] and delivered == []


@pytest.mark.parametrize("query, field", [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=abc", "limit"),
    ("delivery_status=sent", "delivery_status"), ("starting_after=evt_nope", "starting_after"),
])
def test_bad_event_list_parameters_are_400(client, shop, query, field):
    _, auth = shop
    r = client.get(f"/api/v1/events?{query}", headers=auth)
    assert r.status_code == 400
    assert r.get_json()["error"] == {"code": "invalid_request", "message": r.get_json()["error"]["message"],
                                     "field": field}


def test_another_merchants_events_are_not_found(client, factories, shop):
    merchant, auth = shop
    [theirs] = cancelled_events(factories, factories.merchant()[0], 1)
    assert client.get(f"/api/v1/events/{theirs}", headers=auth).status_code == 404
    assert client.post(f"/api/v1/events/{theirs}/resend", headers=auth).status_code == 404
    assert client.get("/api/v1/events", headers=auth).get_json()["data"] == []
    r = client.get(f"/api/v1/events?starting_after={theirs}", headers=auth)
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "starting_after"


@pytest.mark.parametrize("body, status, code", [
    ("[]", 400, "invalid_json"),
    ("{}", 400, "missing_field"),
    ('{"url": []}', 400, "invalid_type"),
    ('{"url": 5}', 400, "invalid_type"),
    ('{"url": {"href": "https://shop.example/h"}}', 400, "invalid_type"),
    ('{"url": "ftp://shop.example/h"}', 422, "invalid_webhook_url"),
])
def test_a_bad_webhook_endpoint_changes_nothing(client, factories, body, status, code):
    merchant, key = factories.merchant(webhook_url="https://93.184.216.34/hooks")
    r = client.put("/api/v1/webhook_endpoint", data=body, headers={"Authorization": f"Bearer {key}"},
                   content_type="application/json")
    assert (r.status_code, r.get_json()["error"]["code"]) == (status, code)
    assert reload(merchant).webhook_url == "https://93.184.216.34/hooks"


def test_null_turns_webhook_deliveries_off(client, factories):
    merchant, key = factories.merchant(webhook_url="https://93.184.216.34/hooks")
    auth = {"Authorization": f"Bearer {key}"}
    r = client.put("/api/v1/webhook_endpoint", json={"url": None}, headers=auth)
    assert r.status_code == 200 and r.get_json() == {"object": "webhook_endpoint", "url": None}
    assert client.get("/api/v1/webhook_endpoint", headers=auth).get_json()["url"] is None
    assert reload(merchant).webhook_url is None


def test_a_body_over_a_megabyte_is_413_even_where_no_body_is_expected(client, factories, shop):
    merchant, auth = shop
    [event] = cancelled_events(factories, merchant, 1)
    big = "x" * (1024 * 1024 + 1)
    for path in (f"/api/v1/events/{event}/resend", "/api/v1/webhook_endpoint/rotate_secret"):
        r = client.post(path, data=big, headers=auth)
        assert (r.status_code, r.get_json()["error"]["code"]) == (413, "http_error")
