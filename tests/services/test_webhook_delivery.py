"""Batched delivery over real HTTP (tests/receiver.py): Standard Webhooks signatures, event-type filters,
410 / Retry-After / 3xx, the per-endpoint concurrency limit, a slow endpoint beside healthy ones, kept-alive
connections and the batch deadline."""

import time
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from standardwebhooks import Webhook, WebhookVerificationError

from app.extensions import db
from app.models import OutboxEvent, WebhookAttempt, WebhookDelivery, utcnow
from app.services import webhook_endpoints as endpoints
from app.services.outbox import emit
from app.services.payments import cancel_payment
from app.services.webhook_delivery import deliver_batch, retry_after_seconds
from tests.helpers import reload


def emit_many(merchant, count, event_type="payment.succeeded"):
    for n in range(count):
        emit(event_type, merchant.id, {"id": f"pay_{n}", "object": "payment", "n": n})
    db.session.commit()


def deliveries_of(endpoint):
    db.session.rollback()
    return db.session.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
                              .order_by(WebhookDelivery.id)).all()


def test_standard_webhooks_headers_verify_with_the_library_and_both_secrets_sign_during_rotation(
        factories, hooked, receiver, run_jobs):
    merchant, _ = hooked
    endpoint = merchant.first_webhook_endpoint
    cancel_payment(factories.payment(merchant), source="api")
    run_jobs()
    [request] = receiver.requests
    headers, body = request["headers"], request["body"]
    assert headers["webhook-id"] == headers["Paysmith-Event-Id"] == request["json"]["id"]
    assert headers["webhook-timestamp"] == headers["Paysmith-Signature"].split(",")[0][2:]
    assert headers["webhook-signature"].startswith("v1,") and " " not in headers["webhook-signature"]
    assert Webhook(endpoint.secret).verify(body, headers)["type"] == "payment.cancelled"
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoints.new_webhook_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint.secret).verify(body.replace(b"cancelled", b"succeeded"), headers)

    old = endpoint.secret
    new = endpoints.rotate_secret(reload(endpoint))
    receiver.secret = new
    cancel_payment(factories.payment(merchant), source="api")
    run_jobs()
    headers, body = receiver.requests[-1]["headers"], receiver.requests[-1]["body"]
    assert len(headers["webhook-signature"].split(" ")) == 2 and headers["Paysmith-Signature"].count("v1=") == 2
    for secret in (old, new):  # both verify, with either library
        assert Webhook(secret).verify(body, headers)["id"] == headers["webhook-id"]
        assert receiver.verify(body, headers["Paysmith-Signature"], secret)


def test_each_endpoint_gets_only_the_event_types_it_asked_for(factories, receiver, run_jobs):
    merchant, _ = factories.merchant(webhook_url=receiver.url + "?all")
    refunds_only = endpoints.create_endpoint(merchant, receiver.url + "?refunds",
                                             event_types=["refund.succeeded", "refund.failed"])
    endpoints.create_endpoint(merchant, receiver.url + "?off", enabled=False)
    emit("payment.succeeded", merchant.id, {"id": "pay_1"})
    emit("refund.failed", merchant.id, {"id": "re_1"})
    db.session.commit()
    run_jobs()
    got = sorted((r["path"], r["json"]["type"]) for r in receiver.requests)
    assert got == [("/hooks?all", "payment.succeeded"), ("/hooks?all", "refund.failed"),
                   ("/hooks?refunds", "refund.failed")]
    assert [d.status for d in deliveries_of(refunds_only)] == ["delivered"]
    other, _ = factories.merchant()
    with pytest.raises(Exception, match="unknown event types: payment.nope"):
        endpoints.create_endpoint(other, receiver.url, event_types=["payment.nope"])


def test_410_gone_disables_the_endpoint_and_ends_its_other_deliveries(factories, hooked, receiver, run_jobs,
                                                                    monkeypatch, app):
    monkeypatch.setitem(app.config, "WEBHOOK_ENDPOINT_CONCURRENCY", 1)
    merchant, _ = hooked
    endpoint = merchant.first_webhook_endpoint
    receiver.responses = [410]
    emit_many(merchant, 3)
    run_jobs()
    endpoint = reload(endpoint)
    assert not endpoint.enabled and "410 Gone" in endpoint.disabled_reason
    assert len(receiver.requests) == 1  # the rest were not sent once it said Gone
    assert [d.status for d in deliveries_of(endpoint)] == ["failed"] * 3
    db.session.rollback()
    assert {e.delivery_status for e in db.session.scalars(select(OutboxEvent))} == {"failed"}
    emit_many(merchant, 1)  # later events do not go to a disabled endpoint
    assert len(deliveries_of(endpoint)) == 3


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(factories, hooked, receiver, run_jobs, status):
    merchant, _ = hooked
    receiver.responses = [(status, {"Retry-After": "120"})]
    emit_many(merchant, 1)
    run_jobs()
    [delivery] = deliveries_of(merchant.first_webhook_endpoint)
    wait = (delivery.next_attempt_at - utcnow()).total_seconds()
    assert delivery.status == "pending" and 115 < wait <= 120  # not the 60 s of the backoff
    assert delivery.last_error == f"HTTP {status}, Retry-After 120"


def test_retry_after_as_a_date_and_never_beyond_the_cap(app, monkeypatch):
    now = utcnow().replace(microsecond=0)
    date = (now + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after_seconds(date, now) == 90
    assert retry_after_seconds("soon", now) is None and retry_after_seconds("", now) is None


@settings(max_examples=50)
@given(value=st.text(max_size=40))
def test_any_retry_after_header_is_a_number_or_none(value):
    result = retry_after_seconds(value, utcnow())
    assert result is None or result >= 0


def test_a_redirect_is_a_failure_and_never_followed(factories, hooked, receiver, run_jobs):
    merchant, _ = hooked
    receiver.responses = [(301, {"Location": receiver.url + "?elsewhere"})]
    emit_many(merchant, 1)
    run_jobs()
    [delivery] = deliveries_of(merchant.first_webhook_endpoint)
    assert delivery.status == "pending" and delivery.last_error == "HTTP 301 (redirects are not followed)"
    assert [r["path"] for r in receiver.requests] == ["/hooks"]


def test_per_endpoint_concurrency_limit_and_kept_alive_connections(app, factories, receiver, run_jobs, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_ENDPOINT_CONCURRENCY", 2)
    busy, _ = factories.merchant(webhook_url=receiver.url + "?busy")
    other, _ = factories.merchant(webhook_url=receiver.url + "?other")
    receiver.delay = {"busy": 0.1, "other": 0.1}
    emit_many(busy, 10)
    emit_many(other, 4)
    run_jobs()
    assert len(receiver.requests) == 14
    assert receiver.max_in_flight["/hooks?busy"] == 2  # never more than the limit, and it was used
    assert receiver.max_in_flight["/hooks?other"] == 2
    busy_connections = {r["connection"] for r in receiver.requests if r["path"] == "/hooks?busy"}
    assert len(busy_connections) == 2  # ten POSTs over two kept-alive connections


def test_a_slow_endpoint_does_not_delay_the_others_in_its_batch(app, factories, receiver, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_SLOW_SECONDS", 1)
    slow, _ = factories.merchant(webhook_url=receiver.url + "?slow")
    healthy, _ = factories.merchant(webhook_url=receiver.url + "?healthy")
    receiver.delay = {"slow": 1.5}
    emit_many(slow, 2)
    emit_many(healthy, 12)
    started = time.time()
    assert deliver_batch() == 14
    healthy_done = max(r["answered_at"] for r in receiver.requests if r["path"] == "/hooks?healthy")
    slow_done = min(r["answered_at"] for r in receiver.requests if r["path"] == "/hooks?slow")
    assert healthy_done - started < 1.0 < slow_done - started
    assert reload(slow.first_webhook_endpoint).slow_until is not None  # slower than WEBHOOK_SLOW_SECONDS
    assert reload(healthy.first_webhook_endpoint).slow_until is None


def test_what_the_deadline_stops_is_handed_back_untouched(app, factories, hooked, receiver, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_BATCH_SECONDS", 0.3)
    monkeypatch.setitem(app.config, "WEBHOOK_ENDPOINT_CONCURRENCY", 1)
    merchant, _ = hooked
    receiver.delay = {"hooks": 0.2}
    emit_many(merchant, 5)
    assert deliver_batch() == 5
    sent = len(receiver.requests)
    assert 1 <= sent < 5
    states = [(d.status, d.attempts, d.lease_owner) for d in deliveries_of(merchant.first_webhook_endpoint)]
    assert states == [("delivered", 1, None)] * sent + [("pending", 0, None)] * (5 - sent)
    assert db.session.scalar(select(db.func.count()).select_from(WebhookAttempt)) == sent
    while deliver_batch():
        pass
    assert sorted(receiver.event_ids()) == sorted(set(receiver.event_ids())) and len(receiver.requests) == 5


def test_the_readme_standard_webhooks_snippet_verifies_a_real_delivery(factories, hooked, receiver, run_jobs):
    from tests.receiver import readme_snippet

    paysmith_event = readme_snippet("webhook-standard-snippet")["paysmith_event"]
    merchant, _ = hooked
    cancel_payment(factories.payment(merchant), source="api")
    run_jobs()
    [request] = receiver.requests
    assert paysmith_event(request["body"], request["headers"], merchant.webhook_secret)["type"] == "payment.cancelled"
    assert paysmith_event(request["body"] + b" ", request["headers"], merchant.webhook_secret) is None
    assert paysmith_event(request["body"], request["headers"], endpoints.new_webhook_secret()) is None
