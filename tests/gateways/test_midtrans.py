"""Midtrans Snap through real HTTP: API → checkout → Snap simulator → finish + notification (confirmed with the
status API), the official midtransclient against the simulator, and the adapter's query and refunds."""

import json
from datetime import UTC, datetime, timedelta

import midtransclient
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.gateways.base import GatewayError
from app.gateways.midtrans import (
    expiry,
    item_lines,
    outcome_of,
    parse_amount,
    signature_key,
    verify_notification,
)
from app.sandbox.midtrans import NOTIFICATION_RETRIES, SANDBOX_CREDENTIALS
from tests.gateways.helpers import (
    ScriptedReceiver,
    adapter_for,
    api_payment,
    assert_attempt_ended,
    assert_offered_everywhere,
    choose_method,
    deliver_all,
    events,
    follow,
    form_action_outcomes,
    order_id,
    outbox_types,
    query_of,
    race,
    redirect_queued_notification,
    refund_through_service,
    scheduled_notifications,
    settle_by_query,
    take_notifications,
    transitions,
    unmatched_callbacks,
)
from tests.helpers import reload

MT = "midtrans"
SERVER_KEY = SANDBOX_CREDENTIALS["server_key"]
ITEMS = [{"name": "Batik shirt", "quantity": 2, "unit_amount": 60_000},
         {"name": "Welcome discount", "quantity": 1, "unit_amount": -15_000, "type": "discount"},
         {"name": "Shipping", "quantity": 1, "unit_amount": 20_000, "type": "shipping"}]


def start(http, factories, **fields):
    merchant, key = factories.merchant()
    fields = {"amount": 125_000, "currency": "IDR", "items": ITEMS, **fields}
    payment = api_payment(http, key, **fields)
    return payment, choose_method(http, payment, MT)


def pay(http, factories, outcome="success", **fields):
    """Through the Snap page; returns (payment, finish URL). The notification waits in the queue."""
    payment, snap_url = start(http, factories, **fields)
    page = http.get(snap_url)
    assert page.status_code == 200 and {"success", "failure", "cancel"} <= form_action_outcomes(page.text)
    finish_url = follow(http, http.post(snap_url, data={"outcome": outcome}, allow_redirects=False))
    shown = http.get(finish_url, allow_redirects=False)
    assert shown.status_code == 303 and shown.headers["Location"].endswith(f"/pay/{payment.checkout_token}/result")
    return payment, finish_url


def notify(http, body):
    return http.post("/callbacks/midtrans/notification", data=json.dumps(body),
                     headers={"Content-Type": "application/json"})


def resigned(body, **changes):
    body = {**body, **changes}
    return {**body, "signature_key": signature_key(body["order_id"], body["status_code"], body["gross_amount"],
                                                   SERVER_KEY)}


def notification_body(payment, outcome="success", **fields):
    payment, _ = pay(payment[0], payment[1], outcome, **fields)
    [(_, _, kwargs)] = take_notifications()
    return payment, json.loads(kwargs["data"])


def test_success_through_checkout_snap_finish_and_notification(http, factories, run_jobs):
    payment, snap_url = start(http, factories)
    sent = events(payment, "gateway_call")[-1].data["request"]
    assert sent["transaction_details"] == {"order_id": order_id(payment), "gross_amount": 125_000}
    assert sum(i["price"] * i["quantity"] for i in sent["item_details"]) == 125_000
    assert [i["price"] for i in sent["item_details"]] == [60_000, -15_000, 20_000]
    start_time = datetime.strptime(sent["expiry"]["start_time"], "%Y-%m-%d %H:%M:%S %z")
    snap_end = start_time + timedelta(minutes=sent["expiry"]["duration"])
    assert abs((snap_end - payment.expires_at.replace(tzinfo=UTC)).total_seconds()) < 1  # ours, to the second
    assert sent["callbacks"]["finish"] == f"{http.base_url}/callbacks/midtrans/finish"

    finish_url = follow(http, http.post(snap_url, data={"outcome": "success"}, allow_redirects=False))
    assert query_of(finish_url) == {"order_id": order_id(payment), "status_code": "200",
                                    "transaction_status": "capture"}
    assert http.get(finish_url).status_code == 200
    assert reload(payment).status == "processing"  # the finish redirect is unsigned: shown, not applied

    run_jobs()
    assert reload(payment).status == "succeeded" and payment.gateway_transaction_id
    assert payment.card_summary == "MANDIRI 48111111-1114"
    assert "payment.succeeded" in outbox_types(payment)
    last = events(payment, "callback")[-1]
    assert last.verified is True and last.data["status"]["transaction_status"] == "capture"


@pytest.mark.parametrize(("outcome", "status"), [("failure", "failed"), ("cancel", "cancelled")])
def test_failure_and_cancel(http, factories, run_jobs, outcome, status):
    payment, _ = pay(http, factories, outcome)
    run_jobs()
    assert_attempt_ended(payment, status)


def test_capture_challenge_stays_processing_flagged_until_the_merchant_cancels(http, factories, run_jobs):
    payment, _ = pay(http, factories, "challenge")
    run_jobs()
    assert reload(payment).status == "processing" and payment.needs_review is True
    gateway, info, ctx = adapter_for(payment, MT)
    assert gateway.refund(info, 1_000, "rf_x", ctx).status == "failed"  # nothing captured for sure yet
    assert gateway.cancel(info, ctx).outcome == "cancelled"
    run_jobs()  # Midtrans notifies the cancel: the attempt ends, the shopper may pay another way
    assert_attempt_ended(payment, "cancelled")


def test_duplicate_notification_applies_once(http, factories):
    payment, body = notification_body((http, factories))
    first, second = notify(http, body), notify(http, body)
    assert first.status_code == 200 and first.json()["result"] == "ok"
    assert second.status_code == 200 and second.json()["result"] == "duplicate"
    assert transitions(payment).count(("processing", "succeeded")) == 1
    assert outbox_types(payment).count("payment.succeeded") == 1


def test_same_notification_twice_at_once_applies_once(http, factories):
    payment, body = notification_body((http, factories))
    answers = race(4, lambda: notify(http, body))
    assert [a.status_code for a in answers] == [200] * 4
    assert sorted(a.json()["result"] for a in answers) == ["duplicate"] * 3 + ["ok"]
    assert reload(payment).status == "succeeded"
    assert transitions(payment).count(("processing", "succeeded")) == 1


@pytest.mark.parametrize(("tamper", "status"), [("signature", 401), ("amount", 400), ("order", 404),
                                                ("unsigned_status", 401)])
def test_refused_notification_leaves_the_payment_untouched(http, factories, tamper, status):
    payment, body = notification_body((http, factories))
    if tamper == "signature":
        body = {**body, "signature_key": signature_key(body["order_id"], "200", body["gross_amount"], "SB-Mid-x")}
    elif tamper == "amount":
        body = resigned(body, gross_amount="1000.00")
    elif tamper == "order":
        body = resigned(body, order_id="pay_doesnotexist")
    else:
        body = {**body, "status_code": "201"}
    assert notify(http, body).status_code == status
    assert reload(payment).status == "processing" and outbox_types(payment) == ["payment.processing"]
    if tamper == "order":
        assert [e.verified for e in unmatched_callbacks(MT)] == [False]
    else:
        assert events(payment, "callback")[-1].verified is False


def test_signed_notification_is_not_acted_on_without_the_status_api(http, factories):
    payment, _ = start(http, factories)
    forged = resigned({"order_id": order_id(payment), "status_code": "200", "gross_amount": "125000.00",
                       "transaction_status": "settlement", "fraud_status": "accept"})
    answer = notify(http, forged)
    assert answer.status_code == 500  # "try again later": Midtrans knows no such transaction yet
    assert reload(payment).status == "processing"


def test_malformed_notification_is_400(http):
    r = http.post("/callbacks/midtrans/notification", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400



# --- the simulator's notification retries (Midtrans docs: best practices to handle notification) ----------


def answer(status, **headers):
    return (status, b"{}" if status < 300 else b"error", headers)


@pytest.fixture
def scripted():
    made = []

    def make(*answers):
        made.append(ScriptedReceiver(*answers))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def test_notification_answered_503_is_retried_until_200(http, factories, run_jobs, scripted):
    receiver = scripted(answer(503), answer(200))
    pay(http, factories)
    redirect_queued_notification(receiver.url + "/notify")
    assert deliver_all(run_jobs) == pytest.approx([120], abs=5)
    assert [(method, path) for _, method, path, _ in receiver.hits] == [("POST", "/notify")] * 2
    assert json.loads(receiver.hits[0][3]) == json.loads(receiver.hits[1][3])  # the same notification again


def test_notification_answered_500_twice_is_retried_once(http, factories, run_jobs, scripted):
    receiver = scripted(answer(500))
    pay(http, factories)
    redirect_queued_notification(receiver.url + "/notify")
    assert deliver_all(run_jobs) == pytest.approx([120], abs=5)
    assert len(receiver.hits) == 2


@pytest.mark.parametrize(("status", "retries"), [(503, 4), (400, 2), (404, 2), (301, 0), (302, 0), (303, 0),
                                                 (401, 5), (502, 5)])
def test_notification_retries_depend_on_the_answer(http, factories, run_jobs, scripted, status, retries):
    target = scripted(answer(200))
    receiver = scripted(answer(status, Location=target.url + "/moved"))
    pay(http, factories)
    redirect_queued_notification(receiver.url + "/notify")
    waits = deliver_all(run_jobs)
    assert waits == pytest.approx(NOTIFICATION_RETRIES[:retries], abs=5)
    assert NOTIFICATION_RETRIES == [120, 600, 1800, 5400, 12600]
    assert len(receiver.hits) == retries + 1 and target.hits == []  # 301/302/303 are not followed


def test_unreachable_notification_url_is_retried_five_times(http, factories, run_jobs, scripted):
    gone = scripted(answer(200))
    gone.close()
    pay(http, factories)
    redirect_queued_notification(gone.url + "/notify")
    assert deliver_all(run_jobs) == pytest.approx(NOTIFICATION_RETRIES, abs=5)


@pytest.mark.parametrize("status", [307, 308])
def test_notification_follows_307_and_308_with_the_same_post(http, factories, run_jobs, scripted, status):
    target = scripted(answer(200))
    receiver = scripted(answer(status, Location=target.url + "/moved"))
    pay(http, factories)
    redirect_queued_notification(receiver.url + "/notify")
    assert deliver_all(run_jobs) == []
    [(_, method, path, body)] = target.hits
    assert (method, path) == ("POST", "/moved") and body == receiver.hits[0][3]


def test_notification_follows_at_most_five_redirects(http, factories, run_jobs, scripted):
    receiver = scripted(answer(307, Location="/again"))
    pay(http, factories)
    redirect_queued_notification(receiver.url + "/notify")
    run_jobs(rounds=1)
    assert [path for _, _, path, _ in receiver.hits] == ["/notify"] + ["/again"] * 5
    assert [attempt for _, attempt in scheduled_notifications()] == [1]  # then retried like any other failure


def test_query_settles_a_payment_whose_notification_never_came(http, factories):
    payment, _ = pay(http, factories)
    take_notifications()  # lost
    result, applied = settle_by_query(payment, MT)
    assert result.outcome == "succeeded" and result.amount == 125_000
    assert applied and reload(payment).status == "succeeded"


def test_query_before_payment_is_none(http, factories):
    payment, _ = start(http, factories)
    gateway, info, ctx = adapter_for(payment, MT)
    assert gateway.query(info, ctx).outcome == "none"


def test_partial_and_full_refund(http, factories, run_jobs):
    payment, _ = pay(http, factories)
    run_jobs()
    gateway, info, ctx = adapter_for(payment, MT)
    part = gateway.refund(info, 25_000, "rf_1", ctx)
    assert part.status == "succeeded" and part.raw["transaction_status"] == "partial_refund"
    assert gateway.refund(info, 25_000, "rf_1", ctx).raw["refund_amount"] == "25000.00"  # same key: same refund
    assert gateway.refund(info, 200_000, "rf_2", ctx).status == "failed"
    rest = gateway.refund(info, 100_000, "rf_3", ctx)
    assert rest.status == "succeeded" and rest.raw["transaction_status"] == "refund"
    assert gateway.query(info, ctx).outcome == "refunded"
    run_jobs()  # the refund notifications are accepted and change nothing here (refunds are ours to record)
    assert reload(payment).status == "succeeded"


def test_official_sdk_against_the_simulator(http, live_url):
    snap = midtransclient.Snap(is_production=False, server_key=SERVER_KEY)
    snap.api_config.SNAP_SANDBOX_BASE_URL = f"{live_url}/sandbox/midtrans/snap/v1"
    created = snap.create_transaction({"transaction_details": {"order_id": "sdk-order-1", "gross_amount": 10_000},
                                       "item_details": [{"id": "a", "price": 5_000, "quantity": 2, "name": "A"}]})
    assert created["token"] and created["redirect_url"].endswith(created["token"])
    assert http.post(created["redirect_url"], data={"outcome": "success"}, allow_redirects=False).status_code == 302
    core = midtransclient.CoreApi(is_production=False, server_key=SERVER_KEY)
    core.api_config.CORE_SANDBOX_BASE_URL = f"{live_url}/sandbox/midtrans"
    status = core.transactions.status("sdk-order-1")
    assert status["transaction_status"] == "capture" and status["gross_amount"] == "10000.00"
    assert verify_notification(status, SERVER_KEY)
    assert core.transactions.status(status["transaction_id"])["order_id"] == "sdk-order-1"
    refund = core.transactions.refund("sdk-order-1", {"refund_key": "k1", "amount": 4_000, "reason": "x"})
    assert refund["status_code"] == "200" and refund["transaction_status"] == "partial_refund"
    with pytest.raises(midtransclient.error_midtrans.MidtransAPIError) as missing:
        core.transactions.status("no-such-order")
    assert missing.value.http_status_code == 404
    bad = midtransclient.Snap(is_production=False, server_key="SB-Mid-server-wrong")
    bad.api_config.SNAP_SANDBOX_BASE_URL = snap.api_config.SNAP_SANDBOX_BASE_URL
    with pytest.raises(midtransclient.error_midtrans.MidtransAPIError) as denied:
        bad.create_transaction({"transaction_details": {"order_id": "sdk-order-2", "gross_amount": 10_000}})
    assert denied.value.http_status_code == 401
    assert "unauthorized" in denied.value.api_response_dict["error_messages"][0]


def test_snap_refuses_items_that_do_not_sum(http, factories):
    payment, _ = start(http, factories)
    gateway, info, ctx = adapter_for(payment, MT)
    broken = info.__class__(**{**info.__dict__, "items": []})
    assert sum(i["price"] * i["quantity"] for i in item_lines(broken)) == info.amount
    with pytest.raises(GatewayError) as exc:
        gateway._call("POST", f"{ctx.base_url}/snap/v1/transactions", ctx, json={
            "transaction_details": {"order_id": "x-1", "gross_amount": 10},
            "item_details": [{"id": "a", "price": 3, "quantity": 3, "name": "A"}]})
    assert "not equal to the sum" in str(exc.value) and exc.value.code == "400"


def test_published_signature_vector():
    assert signature_key("1111", "200", "100000.00", "askvnoibnosifnboseofinbofinfgbiufglnbfg") == (
        "edc076b21793ebe3e17926350f5b8ae67d902fe657b3d0aa31b932d5c127e2375d308a2bc94f3265ac2d80a1f181a79b997ac178"
        "a236fcff35af263fc4d4c231")


BODY = {"order_id": "pay_1", "status_code": "200", "gross_amount": "10000.00"}


@settings(max_examples=60, deadline=None)
@given(field=st.sampled_from(sorted(BODY)), value=st.text(min_size=1, max_size=20))
def test_changing_any_signed_field_breaks_the_signature(field, value):
    signed = {**BODY, "signature_key": signature_key(*BODY.values(), SERVER_KEY)}
    assert verify_notification(signed, SERVER_KEY)
    if value == BODY[field]:
        value += "0"
    assert not verify_notification({**signed, field: value}, SERVER_KEY)


def test_status_mapping():
    assert outcome_of("capture", "accept") == ("succeeded", False)
    assert outcome_of("capture", "challenge") == ("processing", True)
    assert outcome_of("settlement", None)[0] == "succeeded"
    assert outcome_of("pending", None)[0] == "processing"
    assert [outcome_of(s, None)[0] for s in ("deny", "cancel", "expire", "refund", "partial_refund")] == [
        "failed", "cancelled", "expired", "refunded", "partially_refunded"]
    assert parse_amount("10000.00") == 10_000 and parse_amount("10000.50") is None and parse_amount(None) is None


def test_expiry_ends_exactly_at_ours():
    ours = datetime(2026, 1, 1, 10, 0, 30)
    exp = expiry(ours, now=datetime(2026, 1, 1, 9, 45, 0, tzinfo=UTC))
    assert exp == {"start_time": "2026-01-01 16:44:30 +0700", "unit": "minute", "duration": 16}


def test_offered_to_new_merchants_and_on_the_demo_checkout(app, http):
    assert_offered_everywhere(app, http, "midtrans", "IDR")


def test_partial_and_full_refund_through_the_refund_service(http, factories, run_jobs):
    payment, _ = pay(http, factories)
    run_jobs()
    first = refund_through_service(payment, 25_000, run_jobs)
    assert first.status == "succeeded" and payment.status == "partially_refunded"
    rest = refund_through_service(payment, 100_000, run_jobs)
    assert rest.status == "succeeded" and payment.status == "refunded" and payment.amount_refunded == 125_000
    gateway, info, ctx = adapter_for(payment, MT)
    assert gateway.query(info, ctx).raw["transaction_status"] == "refund"
