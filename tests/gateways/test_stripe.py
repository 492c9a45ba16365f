"""Stripe through the live server, its simulator and the official SDK: Checkout Session, hosted page, signed
webhooks, browser return and cancel, status query, refunds, expiry window, and the simulator's API contract."""

import json
import time

import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.extensions import db
from app.gateways import get_gateway
from app.gateways.base import Outcome
from app.gateways.stripe import from_stripe, session_expiry, to_stripe
from app.models import OutboxEvent, PaymentEvent
from app.sandbox.stripe import SANDBOX_CREDENTIALS, WEBHOOK_RETRIES, signature_header, signed_headers
from app.services.callbacks import apply_result
from app.services.gateways import context_for, payment_info
from tests.gateways._sc_helpers import (
    api_payment,
    callback_events,
    choose_method,
    payment_by_public_id,
    queued_notifications,
    transitions,
)
from tests.gateways.helpers import assert_attempt_ended, assert_offered_everywhere, order_id, race

# ../shared/gateways.md §6.2, checked with stripe-python 16.1.0.
VECTOR_PAYLOAD = '{"id":"evt_test_webhook","object":"event","type":"checkout.session.completed"}'
VECTOR_SECRET = "whsec_test_secret"
VECTOR_HEADER = "t=1700000000,v1=1fa73ff7286785daa8168695a709e92ce31d02a9202648cb27a1c5f2e233f517"
SECRET = SANDBOX_CREDENTIALS["webhook_secret"]


@pytest.fixture
def sdk(live_url):
    """The official SDK pointed at the simulator, as a merchant's own code would use it."""
    return stripe.StripeClient(SANDBOX_CREDENTIALS["secret_key"], base_addresses={"api": f"{live_url}/sandbox/stripe"},
                               max_network_retries=0)


@pytest.fixture
def shop(factories):
    return factories.merchant()


def _start(http, key, **fields):
    created = api_payment(http, key, **{"amount": 12_500, "currency": "USD", **fields})
    return created, choose_method(http, created, "stripe")


def _pay(http, key, outcome="success", **fields):
    created, page_url = _start(http, key, **fields)
    page = http.get(page_url)
    assert page.status_code == 200 and 'name="outcome"' in page.text
    r = http.post(page_url, data={"outcome": outcome}, allow_redirects=False)
    assert r.status_code == 303, r.text
    return created, r.headers["Location"]


def _webhooks(event_type=None):
    found = []
    for _url, kwargs in queued_notifications("/callbacks/stripe/webhook"):
        event = json.loads(kwargs["data"])
        if event_type in (None, event["type"]):
            found.append(kwargs["data"])
    return found


def _post_webhook(http, body, header=None):
    headers = signed_headers(body)
    if header is not None:
        headers["Stripe-Signature"] = header
    return http.post("/callbacks/stripe/webhook", data=body, headers=headers)


# --- signatures -----------------------------------------------------------------------------------------------


def test_published_header_vector():
    assert signature_header(VECTOR_PAYLOAD.encode(), VECTOR_SECRET, 1700000000) == VECTOR_HEADER
    stripe.WebhookSignature.verify_header(VECTOR_PAYLOAD, VECTOR_HEADER, VECTOR_SECRET, tolerance=None)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        stripe.Webhook.construct_event(VECTOR_PAYLOAD, VECTOR_HEADER, VECTOR_SECRET, tolerance=300)
    # Several v1 values (secret rotation): any one that matches is enough.
    stripe.WebhookSignature.verify_header(VECTOR_PAYLOAD, "t=1700000000,v1=deadbeef," + VECTOR_HEADER[13:],
                                          VECTOR_SECRET, tolerance=None)


EVENT = {"id": "evt_1", "object": "event", "type": "checkout.session.completed", "created": 1700000000,
         "data": {"object": {"id": "cs_test_1", "object": "checkout.session", "amount_total": 12500, "currency": "usd",
                             "client_reference_id": "pay_1", "payment_status": "paid", "status": "complete"}}}
SESSION_FIELDS = sorted(EVENT["data"]["object"])


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["id", "type", "created", "t", *SESSION_FIELDS]),
       value=st.one_of(st.text(max_size=20), st.integers()))
def test_changing_any_signed_field_breaks_the_signature(field, value):
    now = int(time.time())
    body = json.dumps(EVENT).encode()
    header = signature_header(body, SECRET, now)
    event = json.loads(body)
    t = now
    if field == "t":
        t = now - 1 - abs(value if isinstance(value, int) else len(value))
    elif field in SESSION_FIELDS:
        if event["data"]["object"][field] == value:
            value = f"{value}x"
        event["data"]["object"][field] = value
    else:
        if event[field] == value:
            value = f"{value}x"
        event[field] = value
    tampered = json.dumps(event).encode()
    forged_header = header.replace(f"t={now}", f"t={t}")
    stripe.Webhook.construct_event(body, header, SECRET)  # the original verifies
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(tampered, forged_header, SECRET)


def test_amount_scaling():
    assert to_stripe(12_500, "USD") == 12_500 and to_stripe(150_000, "VND") == 150_000
    assert to_stripe(150_000, "IDR") == 15_000_000 and from_stripe(15_000_000, "IDR") == 150_000
    assert from_stripe(15_000_050, "IDR") is None and from_stripe(True, "USD") is None


def test_session_expiry_is_kept_inside_stripes_window():
    now = 1_700_000_000
    assert session_expiry(now + 15 * 60, now) == now + 31 * 60
    assert session_expiry(now + 3600, now) == now + 3600
    assert session_expiry(now + 3 * 86400, now) == now + 86400 - 60


# --- the shopper's path ---------------------------------------------------------------------------------------


def test_full_path_success(http, shop, run_jobs, sdk):
    merchant, key = shop
    created, return_url = _pay(http, key, customer={"email": "ana@example.com"})
    assert "/callbacks/stripe/return?session_id=cs_test_" in return_url
    assert run_jobs() >= 1  # checkout.session.completed, signed, to our webhook
    payment = payment_by_public_id(created["id"])
    assert payment.status == "succeeded" and payment.gateway_transaction_id.startswith("pi_test_")
    hook = [e for e in callback_events(payment) if e.message.startswith("webhook:")]
    assert [e.verified for e in hook] == [True] and hook[0].dedupe_key.startswith("stripe:evt_test_")
    session = sdk.v1.checkout.sessions.retrieve(payment.gateway_reference)
    assert session.client_reference_id == order_id(payment) and session.customer_email == "ana@example.com"
    r = http.get(return_url, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == f"/pay/{payment.checkout_token}/result"
    assert "Payment successful" in http.get(r.headers["Location"]).text
    assert transitions(payment, "succeeded") == 1
    assert db.session.query(OutboxEvent).filter_by(payment_id=payment.id, type="payment.succeeded").count() == 1
    assert stripe.api_key is None and stripe.api_base == "https://api.stripe.com"  # nothing global was set


def test_return_alone_is_confirmed_with_stripe(http, shop):
    merchant, key = shop
    created, page_url = _start(http, key)
    payment = payment_by_public_id(created["id"])
    r = http.get(f"/callbacks/stripe/return?session_id={payment.gateway_reference}", allow_redirects=False)
    assert r.status_code == 303  # the session is still open: nothing applied
    assert payment_by_public_id(created["id"]).status == "processing"


def test_discount_and_shipping_use_stripes_own_objects(http, shop, sdk):
    merchant, key = shop
    items = [{"name": "Tea", "quantity": 2, "unit_amount": 5_000}, {"name": "Courier", "unit_amount": 1_500,
             "type": "shipping"}, {"name": "Welcome", "unit_amount": -2_000, "type": "discount"}]
    created, page_url = _start(http, key, amount=9_500, items=items)
    session = sdk.v1.checkout.sessions.retrieve(payment_by_public_id(created["id"]).gateway_reference)
    assert session.amount_total == 9_500 and session.amount_subtotal == 10_000
    assert session.total_details.amount_discount == 2_000 and session.total_details.amount_shipping == 1_500
    assert "Tea × 2" in http.get(page_url).text


@pytest.mark.parametrize("outcome, status", [("delayed", "succeeded"), ("failure", "failed")])
def test_delayed_payment_settles_by_async_event(http, shop, run_jobs, outcome, status):
    merchant, key = shop
    created, return_url = _pay(http, key, outcome=outcome)
    run_jobs()  # checkout.session.completed with payment_status unpaid
    assert payment_by_public_id(created["id"]).status == "processing"
    http.get(return_url)
    assert payment_by_public_id(created["id"]).status == "processing"
    run_jobs(advance=10)  # the bank answers; Stripe sends checkout.session.async_payment_*
    payment = payment_by_public_id(created["id"])
    if status == "succeeded":
        assert payment.status == status and transitions(payment, status) == 1
        assert db.session.query(OutboxEvent).filter_by(payment_id=payment.id, type="payment.succeeded").count() == 1
    else:  # the bank said no: this attempt failed, the shopper may pay another way
        assert_attempt_ended(payment, "failed", "async_payment_failed")
        assert db.session.query(OutboxEvent).filter_by(payment_id=payment.id,
                                                       type="payment.attempt_failed").count() == 1


def test_leaving_checkout_expires_the_session_and_ends_the_attempt(http, shop, run_jobs, sdk):
    merchant, key = shop
    created, cancel_url = _pay(http, key, outcome="cancel")
    payment = payment_by_public_id(created["id"])
    forged = cancel_url.split("&sig=")[0] + "&sig=" + "0" * 32
    assert http.get(forged, allow_redirects=False).status_code == 303
    assert payment_by_public_id(created["id"]).status == "processing"
    assert sdk.v1.checkout.sessions.retrieve(payment.gateway_reference).status == "open"
    r = http.get(cancel_url, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].endswith("/result")
    assert_attempt_ended(payment_by_public_id(created["id"]), "cancelled", "cancelled")
    assert sdk.v1.checkout.sessions.retrieve(payment.gateway_reference).status == "expired"
    # The result page sends the shopper back to choose again.
    assert http.get(r.headers["Location"]).url.endswith(f"/pay/{payment.checkout_token}")
    run_jobs()  # checkout.session.expired arrives afterwards: acknowledged, nothing changes
    payment = payment_by_public_id(created["id"])
    assert payment.status == "pending" and payment.attempts[0].status == "cancelled"


def test_duplicate_webhook_is_applied_once(http, shop):
    merchant, key = shop
    created, return_url = _pay(http, key)
    [body] = _webhooks("checkout.session.completed")
    first, second = _post_webhook(http, body), _post_webhook(http, body)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["result"] == "duplicate"
    payment = payment_by_public_id(created["id"])
    assert payment.status == "succeeded" and transitions(payment, "succeeded") == 1


def test_same_webhook_twice_at_once(http, shop, app):
    import requests

    merchant, key = shop
    created, return_url = _pay(http, key)
    [body] = _webhooks("checkout.session.completed")
    url = f"{app.config['PUBLIC_BASE_URL']}/callbacks/stripe/webhook"
    db.session.rollback()
    answers = race(4, lambda: requests.post(url, data=body, headers=signed_headers(body), timeout=30))
    assert [a.status_code for a in answers] == [200] * 4
    assert sorted(a.json()["result"] for a in answers).count("ok") == 1
    payment = payment_by_public_id(created["id"])
    assert payment.status == "succeeded" and transitions(payment, "succeeded") == 1
    assert db.session.query(OutboxEvent).filter_by(payment_id=payment.id, type="payment.succeeded").count() == 1


# --- refused notifications ------------------------------------------------------------------------------------


def _untouched(created):
    payment = payment_by_public_id(created["id"])
    assert payment.status == "processing"
    last = callback_events(payment)[-1]
    assert last.verified is False
    return payment, last


def test_wrong_signature_is_refused(http, shop):
    merchant, key = shop
    created, return_url = _pay(http, key)
    [body] = _webhooks("checkout.session.completed")
    r = _post_webhook(http, body, header=signature_header(body, "whsec_wrong", int(time.time())))
    assert r.status_code == 400 and r.json() == {"received": False, "result": "invalid_signature"}
    payment, last = _untouched(created)
    assert last.data["json"]["id"] == json.loads(body)["id"]
    old = signature_header(body, SECRET, int(time.time()) - 301)  # outside Stripe's 300 s tolerance
    assert _post_webhook(http, body, header=old).status_code == 400
    assert _post_webhook(http, body, header="").status_code == 400
    _untouched(created)


def test_changed_amount_is_refused(http, shop):
    merchant, key = shop
    created, return_url = _pay(http, key)
    [body] = _webhooks("checkout.session.completed")
    event = json.loads(body)
    event["data"]["object"]["amount_total"] = 100
    tampered = json.dumps(event).encode()
    r = _post_webhook(http, tampered)  # signed with the right secret: only the amount check stops it
    assert r.status_code == 400 and r.json()["result"] == "invalid_amount"
    payment, last = _untouched(created)
    assert "amount $1.00 does not match $125.00" in last.message


def test_unknown_order_is_refused(http, shop):
    merchant, key = shop
    created, return_url = _pay(http, key)
    [body] = _webhooks("checkout.session.completed")
    event = json.loads(body)
    event["data"]["object"].update(id="cs_test_unknown", client_reference_id="pay_unknown")
    r = _post_webhook(http, json.dumps(event).encode())
    assert r.status_code == 404
    orphan = [e for e in callback_events() if e.payment_id is None]
    assert orphan[-1].verified is False and orphan[-1].data["json"]["data"]["object"]["id"] == "cs_test_unknown"
    assert payment_by_public_id(created["id"]).status == "processing"


# --- query, refunds, expiry, credentials ----------------------------------------------------------------------


def _settle_by_query(http, key):
    created, return_url = _pay(http, key)  # the webhook job is never run: the notification never came
    payment = payment_by_public_id(created["id"])
    ctx = context_for(payment.merchant.gateway_account("stripe"))
    result = get_gateway("stripe").query(payment_info(payment), ctx)
    assert result.outcome == Outcome.SUCCEEDED and (result.amount, result.currency) == (12_500, "USD")
    applied, _ = apply_result(payment, payment.current_attempt, result, source="reconciliation")
    db.session.commit()
    assert applied
    return payment_by_public_id(created["id"]), ctx


def test_status_query_settles_a_payment_without_webhook(http, shop):
    merchant, key = shop
    payment, ctx = _settle_by_query(http, key)
    assert payment.status == "succeeded" and payment.gateway_transaction_id.startswith("pi_test_")


def test_partial_then_full_refund(http, shop, run_jobs):
    merchant, key = shop
    payment, ctx = _settle_by_query(http, key)
    gateway = get_gateway("stripe")
    first = gateway.refund(payment_info(payment), 2_500, "re_ours_1", ctx)
    assert first.status == "succeeded" and first.raw["amount"] == 2_500
    again = gateway.refund(payment_info(payment), 2_500, "re_ours_1", ctx)  # replayed by Idempotency-Key
    assert again.gateway_reference == first.gateway_reference
    too_much = gateway.refund(payment_info(payment), 10_001, "re_ours_2", ctx)
    assert too_much.status == "failed" and "greater than unrefunded amount" in too_much.message
    rest = gateway.refund(payment_info(payment), 10_000, "re_ours_3", ctx)
    assert rest.status == "succeeded"
    assert gateway.refund(payment_info(payment), 1, "re_ours_4", ctx).status == "failed"
    run_jobs()  # charge.refunded ×2 reach us: recorded, verified, no status change by themselves
    events = [e for e in callback_events(payment) if "refunded" in e.message]
    assert len(events) == 2 and all(e.verified for e in events)
    assert payment_by_public_id(payment.public_id).status == "succeeded"


def test_short_payment_gets_a_30_minute_session(http, shop, sdk):
    merchant, key = shop
    created, page_url = _start(http, key, expires_in=600)
    session = sdk.v1.checkout.sessions.retrieve(payment_by_public_id(created["id"]).gateway_reference)
    assert 30 * 60 <= session.expires_at - time.time() <= 32 * 60


def test_long_payment_outlives_its_stripe_session(http, shop, sdk, run_jobs):
    merchant, key = shop
    created, page_url = _start(http, key, expires_in=3 * 86400)
    payment = payment_by_public_id(created["id"])
    session = sdk.v1.checkout.sessions.retrieve(payment.gateway_reference)
    assert session.expires_at - time.time() <= 86400
    sdk.v1.checkout.sessions.expire(payment.gateway_reference)  # as Stripe does after 24 h
    run_jobs()
    # That attempt is over; the payment is open for another until its own expiry, two days later.
    payment = payment_by_public_id(created["id"])
    assert (payment.status, payment.attempts[0].status) == ("pending", "expired")
    last = callback_events(payment)[-1]
    assert last.verified and last.data["type"] == "checkout.session.expired" and last.message.startswith("webhook: expired")
    assert 'value="stripe"' in http.get(created["checkout_url"]).text


def test_simulator_speaks_stripes_api(sdk, live_url):
    params = {"mode": "payment", "success_url": "https://x.example/s", "expires_at": int(time.time()) + 3600,
              "line_items": [{"price_data": {"currency": "usd", "unit_amount": 500,
                                             "product_data": {"name": "A"}}, "quantity": 1}]}
    first = sdk.v1.checkout.sessions.create(params=params, options={"idempotency_key": "k1"})
    again = sdk.v1.checkout.sessions.create(params=params, options={"idempotency_key": "k1"})
    assert first.id == again.id and first.amount_total == 500
    with pytest.raises(stripe.IdempotencyError):
        sdk.v1.checkout.sessions.create(params={**params, "client_reference_id": "x"}, options={"idempotency_key": "k1"})
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sdk.v1.checkout.sessions.create(params={**params, "expires_at": int(time.time()) + 600})
    assert exc.value.http_status == 400 and exc.value.param == "expires_at"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sdk.v1.checkout.sessions.retrieve("cs_test_nope")
    assert exc.value.http_status == 404 and exc.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sdk.v1.checkout.sessions.create(params={**params, "line_items": [{"price_data": {
            "currency": "usd", "unit_amount": -5, "product_data": {"name": "A"}}, "quantity": 1}]})
    assert exc.value.param == "line_items[0][price_data][unit_amount]"
    wrong = stripe.StripeClient("sk_test_wrong_key_123456", base_addresses={"api": f"{live_url}/sandbox/stripe"})
    with pytest.raises(stripe.AuthenticationError) as exc:
        wrong.v1.checkout.sessions.retrieve(first.id)
    assert exc.value.http_status == 401 and "Invalid API Key" in exc.value.user_message
    import requests

    basic = requests.get(f"{live_url}/sandbox/stripe/v1/checkout/sessions/{first.id}",
                         auth=(SANDBOX_CREDENTIALS["secret_key"], ""), timeout=10)
    assert basic.status_code == 200 and basic.json()["id"] == first.id


def test_wrong_credentials_make_stripe_unavailable(http, shop):
    from tests.helpers import csrf_token

    merchant, key = shop
    account = merchant.gateway_account("stripe")
    account.credentials = {**account.credentials, "secret_key": "sk_test_wrong_key_123456"}
    db.session.commit()
    created = api_payment(http, key, amount=12_500, currency="USD")
    page = http.get(created["checkout_url"])
    r = http.post(created["checkout_url"], data={"csrf_token": csrf_token(page.text), "method": "stripe"})
    assert r.status_code == 422 and "not available right now" in r.text
    payment = payment_by_public_id(created["id"])
    calls = db.session.query(PaymentEvent).filter_by(payment_id=payment.id, kind="gateway_call").all()
    assert "Invalid API Key provided" in calls[-1].message


def test_refused_webhook_is_retried_with_a_fresh_signature(http, shop, run_jobs, monkeypatch):
    from app.extensions import get_queue
    from app.sandbox import stripe as simulator

    merchant, key = shop
    created, return_url = _pay(http, key)
    # The first attempt carries a timestamp outside our 300 s tolerance (a delivery stuck somewhere)…
    monkeypatch.setattr(simulator, "signed_headers", lambda body: {
        "Content-Type": "application/json", "Stripe-Signature": signature_header(body, SECRET, int(time.time()) - 400)})
    run_jobs()
    assert payment_by_public_id(created["id"]).status == "processing"
    assert get_queue("sandbox").scheduled_job_registry.count == 1
    monkeypatch.undo()
    # …and the retry is signed again at sending time, so it is accepted.
    run_jobs(advance=WEBHOOK_RETRIES[0] + 10)
    payment = payment_by_public_id(created["id"])
    assert payment.status == "succeeded"
    assert [e.verified for e in callback_events(payment) if e.message.startswith("webhook:")] == [False, True]


@pytest.mark.parametrize("currency", ["USD", "BDT"])
def test_offered_to_new_and_demo_merchants(app, http, currency):
    assert_offered_everywhere(app, http, "stripe", currency)


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"data": {"object": "x"}}', b'{"data": {"object": {}}}'])
def test_malformed_webhook_is_refused_without_error(http, body):
    r = http.post("/callbacks/stripe/webhook", data=body, headers=signed_headers(body))
    assert r.status_code in (400, 404) and r.json()["received"] is False


def test_refunds_through_the_refund_service(http, shop, run_jobs, sdk):
    from app.models import Refund
    from app.services.refunds import request_refund

    merchant, key = shop
    payment, ctx = _settle_by_query(http, key)
    run_jobs()
    first = request_refund(payment, 2_500, "damaged", source="test")
    run_jobs()
    db.session.rollback()
    first = db.session.get(Refund, first.id)
    assert first.status == "succeeded" and first.gateway_reference.startswith("re_test_")
    assert payment_by_public_id(payment.public_id).status == "partially_refunded"
    rest = request_refund(payment_by_public_id(payment.public_id), source="test")
    run_jobs()
    db.session.rollback()
    assert db.session.get(Refund, rest.id).status == "succeeded"
    payment = payment_by_public_id(payment.public_id)
    assert payment.status == "refunded" and payment.amount_refunded == 12_500
    stripe_refund = sdk.v1.refunds.retrieve(first.gateway_reference)
    assert stripe_refund.amount == 2_500 and stripe_refund.metadata["refund_id"] == first.public_id
    refunded = [e for e in callback_events(payment) if "refunded" in e.message]  # charge.refunded, acknowledged
    assert len(refunded) == 2 and all(e.verified for e in refunded)


# --- metadata on the charge, and IDR ---------------------------------------------------------------------------


def test_charge_carries_the_payment_intent_metadata_not_the_sessions(http, shop, run_jobs, sdk):
    merchant, key = shop
    created, _ = _pay(http, key)
    run_jobs()
    payment = payment_by_public_id(created["id"])
    session = sdk.v1.checkout.sessions.retrieve(payment.gateway_reference, params={"expand": ["payment_intent"]})
    expected = {"payment_id": payment.public_id, "attempt_id": order_id(payment), "reference": "ORDER-1"}
    assert session.payment_intent.metadata.to_dict() == expected
    get_gateway("stripe").refund(payment_info(payment), 2_500, "re_meta", context_for(
        payment.merchant.gateway_account("stripe")))
    [body] = _webhooks("charge.refunded")
    charge = json.loads(body)["data"]["object"]
    assert charge["metadata"] == expected
    # A session with metadata of its own only: neither its PaymentIntent nor its charge gets it.
    own = sdk.v1.checkout.sessions.create(params={
        "mode": "payment", "success_url": "https://x.example/s", "metadata": {"payment_id": "pay_elsewhere"},
        "line_items": [{"price_data": {"currency": "usd", "unit_amount": 500, "product_data": {"name": "A"}},
                        "quantity": 1}]})
    assert http.post(own.url, data={"outcome": "success"}, allow_redirects=False).status_code == 303
    intent = sdk.v1.checkout.sessions.retrieve(own.id, params={"expand": ["payment_intent"]}).payment_intent
    assert own.metadata.to_dict() == {"payment_id": "pay_elsewhere"} and intent.metadata.to_dict() == {}
    sdk.v1.refunds.create(params={"payment_intent": intent.id, "amount": 100})
    [_, body] = _webhooks("charge.refunded")
    assert json.loads(body)["data"]["object"]["metadata"] == {}


def _refunded_event(http, key, run_jobs, **fields):
    """A paid payment, refunded in part at Stripe; (payment, the charge.refunded event as Stripe sent it)."""
    created, _ = _pay(http, key, **fields)
    run_jobs()
    payment = payment_by_public_id(created["id"])
    result = get_gateway("stripe").refund(payment_info(payment), payment.amount // 5, "re_1", context_for(
        payment.merchant.gateway_account("stripe")))
    assert result.status == "succeeded"
    [body] = _webhooks("charge.refunded")
    return payment, json.loads(body)


@pytest.mark.parametrize(("metadata", "intent", "status"), [
    ("ours", "ours", 200), (None, "ours", 200), (None, "pi_test_someone_else", 404), ("ours", "pi_test_x", 404)])
def test_charge_refunded_is_matched_by_metadata_else_by_payment_intent(http, shop, run_jobs, metadata, intent,
                                                                       status):
    merchant, key = shop
    payment, event = _refunded_event(http, key, run_jobs)
    charge = event["data"]["object"]
    if metadata is None:
        charge.pop("metadata")
    if intent != "ours":
        charge["payment_intent"] = intent
    r = _post_webhook(http, json.dumps(event).encode())
    assert r.status_code == status
    hooks = [e for e in callback_events() if e.data.get("type") == "charge.refunded"
             or e.data.get("json", {}).get("type") == "charge.refunded"]
    assert [(e.payment_id, e.verified) for e in hooks] == [(payment.id, True) if status == 200
                                                           else (payment.id if metadata else None, False)]


def test_idr_round_trip_is_rupiah_times_100_at_stripe(http, shop, run_jobs, sdk):
    merchant, key = shop
    created, _ = _pay(http, key, amount=150_000, currency="IDR")
    session = sdk.v1.checkout.sessions.retrieve(payment_by_public_id(created["id"]).gateway_reference)
    assert (session.currency, session.amount_total) == ("idr", 15_000_000)
    run_jobs()  # checkout.session.completed: 15,000,000 at Stripe is our 150,000
    payment = payment_by_public_id(created["id"])
    assert payment.status == "succeeded" and payment.amount == 150_000
    result = get_gateway("stripe").refund(payment_info(payment), 50_000, "re_idr", context_for(
        payment.merchant.gateway_account("stripe")))
    assert result.status == "succeeded" and result.raw["amount"] == 5_000_000
    run_jobs()  # charge.refunded for 15,000,000 matches our 150,000
    refunded = [e for e in callback_events(payment) if "refunded" in e.message]
    assert [e.verified for e in refunded] == [True]
    assert to_stripe(1, "IDR") == 100 and from_stripe(100, "IDR") == 1 and from_stripe(150, "IDR") is None
