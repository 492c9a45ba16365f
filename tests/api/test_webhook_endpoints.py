"""/api/v1/webhook_endpoints: CRUD (up to 16, another merchant's are 404), secret rotation, the old
single-endpoint calls as the first endpoint, ping, replay of one event or of failed ones over a time range."""

import time

from sqlalchemy import select
from standardwebhooks import Webhook

from app.extensions import db
from app.models import MAX_ENDPOINTS, OutboxEvent
from app.services.payments import cancel_payment


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def test_create_list_get_update_delete(client, factories, receiver):
    merchant, key = factories.merchant()
    r = client.post("/api/v1/webhook_endpoints", headers=auth(key), json={
        "url": receiver.url, "event_types": ["refund.failed", "payment.succeeded"], "description": "ERP"})
    assert r.status_code == 201, r.json
    created = r.json
    assert created["id"].startswith("we_") and created["secret"].startswith("whsec_")
    assert created["event_types"] == ["payment.succeeded", "refund.failed"] and created["enabled"] is True
    Webhook(created["secret"])  # a secret the Standard Webhooks libraries accept
    listed = client.get("/api/v1/webhook_endpoints", headers=auth(key)).json["data"]
    assert [e["id"] for e in listed][1:] == [created["id"]]  # after the first one every merchant has
    assert "secret" not in listed[1]
    r = client.patch(f"/api/v1/webhook_endpoints/{created['id']}", headers=auth(key),
                     json={"event_types": "*", "enabled": False, "description": "ERP, paused"})
    assert r.status_code == 200 and r.json["event_types"] == ["*"] and r.json["enabled"] is False
    assert r.json["disabled_reason"] == "disabled by you"
    r = client.patch(f"/api/v1/webhook_endpoints/{created['id']}", headers=auth(key), json={"enabled": True})
    assert r.json["enabled"] is True and r.json["disabled_reason"] is None
    assert client.get(f"/api/v1/webhook_endpoints/{created['id']}", headers=auth(key)).json["url"] == receiver.url

    other, other_key = factories.merchant()
    for method in ("get", "patch", "delete"):
        r = getattr(client, method)(f"/api/v1/webhook_endpoints/{created['id']}", headers=auth(other_key), json={})
        assert r.status_code == 404 and r.json["error"]["code"] == "not_found"
    r = client.delete(f"/api/v1/webhook_endpoints/{created['id']}", headers=auth(key))
    assert r.json == {"id": created["id"], "object": "webhook_endpoint", "deleted": True}
    assert len(client.get("/api/v1/webhook_endpoints", headers=auth(key)).json["data"]) == 1


def test_bad_input_is_a_clear_error_and_changes_nothing(client, factories, app, monkeypatch):
    merchant, key = factories.merchant()
    monkeypatch.setitem(app.config, "ALLOW_PRIVATE_WEBHOOK_URLS", False)
    cases = [({"url": "http://169.254.169.254/"}, 422, "invalid_webhook_url"),
             ({"url": "https://93.184.216.34/h", "event_types": ["nope"]}, 422, "invalid_event_types"),
             ({"url": "https://93.184.216.34/h", "event_types": "all"}, 422, "invalid_event_types"),
             ({"url": "https://93.184.216.34/h", "colour": "red"}, 400, "invalid_request"),
             ({"event_types": ["refund.failed"]}, 400, "invalid_request")]
    for body, status, code in cases:
        r = client.post("/api/v1/webhook_endpoints", headers=auth(key), json=body)
        assert (r.status_code, r.json["error"]["code"]) == (status, code), (body, r.json)
    assert len(client.get("/api/v1/webhook_endpoints", headers=auth(key)).json["data"]) == 1
    for n in range(MAX_ENDPOINTS - 1):
        assert client.post("/api/v1/webhook_endpoints", headers=auth(key),
                           json={"url": f"https://93.184.216.34/h{n}"}).status_code == 201
    r = client.post("/api/v1/webhook_endpoints", headers=auth(key), json={"url": "https://93.184.216.34/h17"})
    assert r.status_code == 422 and r.json["error"]["code"] == "too_many_endpoints"


def test_the_old_single_endpoint_calls_are_the_first_endpoint(client, factories, receiver):
    merchant, key = factories.merchant()
    r = client.put("/api/v1/webhook_endpoint", headers=auth(key), json={"url": receiver.url})
    assert r.status_code == 200
    [first] = client.get("/api/v1/webhook_endpoints", headers=auth(key)).json["data"]
    assert first["url"] == receiver.url and client.get("/api/v1/webhook_endpoint", headers=auth(key)).json[
        "url"] == receiver.url
    r = client.post("/api/v1/webhook_endpoint/rotate_secret", headers=auth(key))
    assert r.json["secret"] == db.session.get(type(merchant), merchant.id).webhook_secret
    assert client.get(f"/api/v1/webhook_endpoints/{first['id']}", headers=auth(key)).json[
        "previous_secret_valid_until"]


def test_ping_reaches_only_that_endpoint_signed_with_its_secret(client, factories, receiver, run_jobs):
    merchant, key = factories.merchant(webhook_url=receiver.url + "?first")
    second = client.post("/api/v1/webhook_endpoints", headers=auth(key), json={"url": receiver.url + "?second"}).json
    r = client.post(f"/api/v1/webhook_endpoints/{second['id']}/ping", headers=auth(key))
    assert r.status_code == 202 and r.json["type"] == "ping"
    run_jobs()
    [request] = receiver.requests
    assert request["path"] == "/hooks?second" and request["json"]["type"] == "ping"
    assert Webhook(second["secret"]).verify(request["body"], request["headers"])["data"]["object"]["id"] == second["id"]
    log = client.get(f"/api/v1/webhook_endpoints/{second['id']}/deliveries", headers=auth(key)).json["data"]
    assert [(d["type"], d["status"], d["attempts"]) for d in log] == [("ping", "delivered", 1)]


def test_replay_one_event_and_the_failed_ones_of_a_time_range(app, client, factories, receiver, run_jobs,
                                                              monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_MAX_ATTEMPTS", 1)
    merchant, key = factories.merchant(webhook_url=receiver.url)
    [first] = client.get("/api/v1/webhook_endpoints", headers=auth(key)).json["data"]
    receiver.responses = [500, 500]
    for _ in range(2):
        cancel_payment(factories.payment(merchant), source="api")
    run_jobs()
    db.session.rollback()
    events = db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
    assert [e.delivery_status for e in events] == ["failed", "failed"]
    r = client.post(f"/api/v1/webhook_endpoints/{first['id']}/replay", headers=auth(key),
                    json={"event": events[0].public_id})
    assert r.json == {"object": "replay", "replayed": 1}
    run_jobs()
    assert receiver.event_ids()[-1] == events[0].public_id
    r = client.post(f"/api/v1/webhook_endpoints/{first['id']}/replay", headers=auth(key),
                    json={"since": "2000-01-01T00:00:00Z", "until": "2000-01-02T00:00:00Z"})
    assert r.json["replayed"] == 0  # nothing failed then
    r = client.post(f"/api/v1/webhook_endpoints/{first['id']}/replay", headers=auth(key),
                    json={"since": "2000-01-01T00:00:00Z", "until": time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                                                                   time.gmtime(time.time() + 60))})
    assert r.json["replayed"] == 1  # the other failed one
    run_jobs()
    assert sorted(receiver.event_ids()[-2:]) == sorted(e.public_id for e in events)
    r = client.post(f"/api/v1/webhook_endpoints/{first['id']}/replay", headers=auth(key), json={"since": "soon",
                                                                                                "until": "x"})
    assert r.status_code == 400 and r.json["error"]["field"] == "since"
    other, other_key = factories.merchant()
    r = client.post(f"/api/v1/webhook_endpoints/{first['id']}/replay", headers=auth(other_key),
                    json={"event": events[0].public_id})
    assert r.status_code == 404
