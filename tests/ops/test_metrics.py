"""/metrics: the token is required (403 without the setting, 401 with a wrong one), the text parses, and the
counters move when a real callback is applied — and a transition that rolls back is not counted."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.extensions import db
from app.state_machine import Status, transition
from tests.gateways.test_vnpay import ipn, pay, resign

TOKEN = "metrics-token-for-tests-0123456789"


@pytest.fixture
def scrape(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", TOKEN)

    def read():
        r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
        samples = {}
        for family in text_string_to_metric_families(r.get_data(as_text=True)):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return samples

    return read


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_is_403_without_a_token_setting(client, app):
    assert not app.config.get("METRICS_TOKEN")
    r = client.get("/metrics", headers={"Authorization": "Bearer anything"})
    assert r.status_code == 403 and "paysmith_" not in r.get_data(as_text=True)


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer ", TOKEN,
                                    "Bearer é-not-ascii"])
def test_metrics_is_401_without_the_right_token(client, app, monkeypatch, header):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", TOKEN)
    r = client.get("/metrics", headers={"Authorization": header} if header else {})
    assert r.status_code == 401 and "paysmith_" not in r.get_data(as_text=True)
    assert r.headers["WWW-Authenticate"].startswith("Bearer") and r.headers["Cache-Control"] == "no-store"


def test_requests_are_counted_by_url_rule_and_status(scrape, client):
    before = scrape()
    client.get("/pay/no-such-token-at-all")
    after = scrape()
    labels = {"method": "GET", "route": "/pay/<token>", "status": "404"}
    assert value(after, "paysmith_http_requests_total", **labels) == value(before, "paysmith_http_requests_total",
                                                                           **labels) + 1
    assert value(after, "paysmith_http_request_duration_seconds_count", **labels) >= 1
    assert not any("no-such-token" in str(key) for key in after)  # never the raw path


def test_an_applied_callback_moves_the_counters(scrape, http, factories, run_jobs):
    before = scrape()
    payment, params = pay(http, factories)  # the simulator's IPN is queued
    run_jobs()  # ... and delivered to our /callbacks/vnpay/ipn: applied
    assert ipn(http, params)["RspCode"] == "02"  # the same again: a duplicate
    assert ipn(http, resign(params, vnp_Amount="1"))["RspCode"] == "04"  # refused: wrong amount
    assert ipn(http, {**params, "vnp_SecureHash": "0" * 128})["RspCode"] == "97"  # refused: bad signature
    after = scrape()

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("paysmith_callbacks_total", gateway="vnpay", verdict="applied", reason="") == 1
    assert moved("paysmith_callbacks_total", gateway="vnpay", verdict="duplicate", reason="") == 1
    assert moved("paysmith_callbacks_total", gateway="vnpay", verdict="refused", reason="invalid_amount") == 1
    assert moved("paysmith_callbacks_total", gateway="vnpay", verdict="refused", reason="invalid_signature") == 1
    assert moved("paysmith_payment_transitions_total", **{"from": "processing", "to": "succeeded"}) == 1
    assert moved("paysmith_attempt_transitions_total", gateway="vnpay", **{"from": "started", "to": "succeeded"}) == 1
    assert moved("paysmith_jobs_total", job="app.sandbox._common.send_notification", status="finished") >= 1


def test_a_transition_that_rolls_back_is_not_counted(scrape, factories):
    merchant, _ = factories.merchant()
    payment = factories.payment(merchant)
    labels = {"from": "pending", "to": "cancelled"}
    before = value(scrape(), "paysmith_payment_transitions_total", **labels)
    assert transition(payment, Status.CANCELLED, reason="test", source="test")
    db.session.rollback()
    assert value(scrape(), "paysmith_payment_transitions_total", **labels) == before
    db.session.refresh(payment)
    assert transition(payment, Status.CANCELLED, reason="test", source="test")
    db.session.commit()
    assert value(scrape(), "paysmith_payment_transitions_total", **labels) == before + 1


def test_scrape_time_gauges_read_the_outbox_refunds_and_queues(scrape, factories):
    from datetime import timedelta

    from sqlalchemy import update

    from app.models import Refund, WebhookDelivery, utcnow

    merchant, _ = factories.merchant(webhook_url="https://shop.example/hooks")
    payment = factories.payment(merchant)
    empty = scrape()
    assert value(empty, "paysmith_outbox_due_events") == 0 and value(empty, "paysmith_outbox_oldest_due_age_seconds") == 0
    assert value(empty, "paysmith_refunds_needing_attention") == 0
    transition(payment, Status.CANCELLED, reason="test", source="test")  # payment.cancelled, not delivered
    db.session.add(Refund(payment_id=payment.id, merchant_id=merchant.id, amount=1000, currency="VND",
                          status="pending"))
    db.session.commit()
    db.session.execute(update(Refund).values(next_attempt_at=None))  # waits for a person
    db.session.execute(update(WebhookDelivery).values(next_attempt_at=utcnow() - timedelta(seconds=120)))
    db.session.commit()
    after = scrape()
    assert value(after, "paysmith_outbox_due_events") == 1
    assert 119 <= value(after, "paysmith_outbox_oldest_due_age_seconds") < 200
    assert value(after, "paysmith_refunds_needing_attention") == 1
    assert value(after, "paysmith_queue_jobs", queue="webhooks", state="queued") == 1  # its delivery job
    assert value(after, "paysmith_scrape_source_up", source="database") == 1
    assert value(after, "paysmith_scrape_source_up", source="redis") == 1
