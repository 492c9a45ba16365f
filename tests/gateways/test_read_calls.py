"""Read calls SDKs commonly make (issue 14, item 8), through the official SDKs over real HTTP:
Stripe `PaymentIntent.retrieve` (`expand[]=latest_charge`, and `charges`, gone at the pinned API version) and
`checkout.Session.list` (`payment_intent` filter), our Stripe query by PaymentIntent; Midtrans expire."""

import json
from dataclasses import replace

import midtransclient
import pytest
import stripe

from app.gateways import get_gateway
from app.gateways.base import Outcome
from app.gateways.midtrans import verify_notification
from app.sandbox.midtrans import SANDBOX_CREDENTIALS as MIDTRANS
from app.sandbox.stripe import SANDBOX_CREDENTIALS as STRIPE
from app.services.gateways import context_for, payment_info
from tests.gateways._sc_helpers import api_payment, choose_method, payment_by_public_id, queued_notifications


@pytest.fixture
def sdk(live_url):
    return stripe.StripeClient(STRIPE["secret_key"], base_addresses={"api": f"{live_url}/sandbox/stripe"},
                               max_network_retries=0)


def _stripe_paid(http, factories, amount=12_500):
    merchant, key = factories.merchant()
    created = api_payment(http, key, amount=amount, currency="USD")
    page_url = choose_method(http, created, "stripe")
    assert http.post(page_url, data={"outcome": "success"}, allow_redirects=False).status_code == 303
    return payment_by_public_id(created["id"])


def test_payment_intent_retrieve_with_its_latest_charge(http, factories, sdk):
    payment = _stripe_paid(http, factories)
    session = sdk.v1.checkout.sessions.retrieve(payment.gateway_reference)
    intent = sdk.v1.payment_intents.retrieve(session.payment_intent)
    assert intent.object == "payment_intent" and intent.status == "succeeded" and intent.amount == 12_500
    assert isinstance(intent.latest_charge, str) and intent.amount_received == 12_500
    expanded = sdk.v1.payment_intents.retrieve(session.payment_intent, params={"expand": ["latest_charge"]})
    assert expanded.latest_charge.object == "charge" and expanded.latest_charge.amount == 12_500
    assert "charges" not in expanded  # removed from PaymentIntent in API version 2022-11-15
    with pytest.raises(stripe.InvalidRequestError, match=r"cannot be expanded \(charges\)"):
        sdk.v1.payment_intents.retrieve(session.payment_intent, params={"expand": ["charges"]})
    with pytest.raises(stripe.InvalidRequestError) as missing:
        sdk.v1.payment_intents.retrieve("pi_nope")
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"


def test_session_retrieve_expands_nested_paths(http, factories, sdk):
    payment = _stripe_paid(http, factories)
    session = sdk.v1.checkout.sessions.retrieve(payment.gateway_reference,
                                                params={"expand": ["payment_intent.latest_charge"]})
    assert session.payment_intent.latest_charge.payment_intent == session.payment_intent.id


def test_session_list_by_payment_intent(http, factories, sdk):
    first, second = _stripe_paid(http, factories), _stripe_paid(http, factories, amount=5_000)
    by_intent = sdk.v1.checkout.sessions.list(params={"payment_intent": second.gateway_transaction_id or
                                                      sdk.v1.checkout.sessions.retrieve(
                                                          second.gateway_reference).payment_intent})
    assert [s.id for s in by_intent.data] == [second.gateway_reference] and by_intent.has_more is False
    assert sdk.v1.checkout.sessions.list(params={"payment_intent": "pi_nope"}).data == []
    newest = sdk.v1.checkout.sessions.list(params={"limit": 1, "expand": ["data.payment_intent"]})
    assert newest.object == "list" and newest.has_more is True and newest.data[0].id == second.gateway_reference
    assert newest.data[0].payment_intent.object == "payment_intent"
    rest = sdk.v1.checkout.sessions.list(params={"starting_after": second.gateway_reference})
    assert [s.id for s in rest.data] == [first.gateway_reference]
    assert [s.id for s in sdk.v1.checkout.sessions.list(params={"status": "complete"}).data] == [
        second.gateway_reference, first.gateway_reference]
    with pytest.raises(stripe.InvalidRequestError):
        sdk.v1.checkout.sessions.list(params={"limit": 101})


def test_our_query_finds_the_session_by_its_payment_intent(http, factories, sdk):
    payment = _stripe_paid(http, factories)
    intent = sdk.v1.checkout.sessions.retrieve(payment.gateway_reference).payment_intent
    info = replace(payment_info(payment), gateway_reference=None, gateway_transaction_id=intent)
    result = get_gateway("stripe").query(info, context_for(payment.merchant.gateway_account("stripe")))
    assert result.outcome == Outcome.SUCCEEDED and result.gateway_reference == payment.gateway_reference
    assert (result.amount, result.gateway_transaction_id) == (12_500, intent)


# --- Midtrans expire ---------------------------------------------------------------------------------------------


@pytest.fixture
def midtrans(live_url):
    snap = midtransclient.Snap(is_production=False, server_key=MIDTRANS["server_key"])
    snap.api_config.SNAP_SANDBOX_BASE_URL = f"{live_url}/sandbox/midtrans/snap/v1"
    core = midtransclient.CoreApi(is_production=False, server_key=MIDTRANS["server_key"])
    core.api_config.CORE_SANDBOX_BASE_URL = f"{live_url}/sandbox/midtrans"
    return snap, core


def _midtrans_order(http, snap, order_id, outcome):
    created = snap.create_transaction({"transaction_details": {"order_id": order_id, "gross_amount": 10_000}})
    if outcome:
        assert http.post(created["redirect_url"], data={"outcome": outcome}, allow_redirects=False).status_code == 302
    return created


def test_expire_of_a_pending_transaction(http, midtrans):
    snap, core = midtrans
    _midtrans_order(http, snap, "exp-pending", "pending")
    assert core.transactions.status("exp-pending")["transaction_status"] == "pending"
    expired = core.transactions.expire("exp-pending")  # HTTP 200, status_code 407: the SDK returns it
    assert (expired["status_code"], expired["status_message"], expired["transaction_status"]) == (
        "407", "Success, transaction has expired", "expire")
    assert {"transaction_id", "order_id", "payment_type", "transaction_time", "gross_amount"} <= set(expired)
    assert core.transactions.status("exp-pending")["transaction_status"] == "expire"
    # notified as the docs' expire notification sample: status_code 202, signed with that status_code
    body = json.loads(queued_notifications()[-1][1]["data"])
    assert (body["transaction_status"], body["status_code"]) == ("expire", "202")
    assert verify_notification(body, MIDTRANS["server_key"])


def assert_cannot_modify(call, order_id):
    """Midtrans' refusal to change a transaction in the state it is in: 412 and its message."""
    with pytest.raises(midtransclient.error_midtrans.MidtransAPIError) as refused:
        call(order_id)
    assert refused.value.http_status_code == 412
    assert refused.value.api_response_dict["status_message"] == "Merchant cannot modify the status of the transaction"


@pytest.mark.parametrize("outcome", ["success", "challenge", "failure", "cancel"])
def test_expire_of_a_transaction_that_is_not_pending_is_412(http, midtrans, outcome):
    snap, core = midtrans
    _midtrans_order(http, snap, f"exp-{outcome}", outcome)
    assert_cannot_modify(core.transactions.expire, f"exp-{outcome}")


def test_expire_twice_and_of_unknown_orders(http, midtrans):
    snap, core = midtrans
    _midtrans_order(http, snap, "exp-twice", "pending")
    core.transactions.expire("exp-twice")
    with pytest.raises(midtransclient.error_midtrans.MidtransAPIError) as again:
        core.transactions.expire("exp-twice")
    assert again.value.http_status_code == 412
    _midtrans_order(http, snap, "exp-unpaid", None)  # a Snap order nobody tried to pay has no transaction
    for order_id in ("exp-unpaid", "no-such-order"):
        with pytest.raises(midtransclient.error_midtrans.MidtransAPIError) as missing:
            core.transactions.expire(order_id)
        assert missing.value.http_status_code == 404


@pytest.mark.parametrize("name", ["notification_expire", "expire_answer"])
def test_midtrans_published_expire_bodies_map_to_expired(name):
    from app.gateways.midtrans import MidtransGateway
    from tests.gateways.fixtures import load

    answer, _source = load("midtrans", name)
    result = MidtransGateway()._result(answer)
    assert result.outcome == Outcome.EXPIRED and result.failure_code == "midtrans_expire"
    assert result.amount == int(answer["gross_amount"].split(".")[0]) and result.order_id == answer["order_id"]


def test_the_simulators_expire_answer_has_the_published_fields(http, midtrans):
    from tests.gateways.fixtures import load

    snap, core = midtrans
    _midtrans_order(http, snap, "exp-fields", "pending")
    recorded, _source = load("midtrans", "expire_answer")
    assert set(recorded) <= set(core.transactions.expire("exp-fields"))


# --- Midtrans approve / deny of a payment challenged by its fraud detection ---------------------------------


@pytest.mark.parametrize(("decision", "status", "fraud", "notified_code"), [
    ("approve", "capture", "accept", "200"), ("deny", "deny", "deny", "202")])
def test_approve_and_deny_of_a_challenged_card_payment(http, midtrans, decision, status, fraud, notified_code):
    snap, core = midtrans
    _midtrans_order(http, snap, f"fds-{decision}", "challenge")
    assert core.transactions.status(f"fds-{decision}")["fraud_status"] == "challenge"
    answer = getattr(core.transactions, decision)(f"fds-{decision}")  # the official SDK's approve / deny
    assert answer["status_code"] == "200"
    assert answer["status_message"] == f"Success, transaction is {'approved' if decision == 'approve' else 'denied'}"
    assert (answer["transaction_status"], answer["fraud_status"]) == (status, fraud)
    assert {"transaction_id", "order_id", "payment_type", "transaction_time", "gross_amount", "masked_card"} <= set(answer)
    assert core.transactions.status(f"fds-{decision}")["transaction_status"] == status
    # Then Midtrans notifies the new status, signed as sent.
    body = json.loads(queued_notifications()[-1][1]["data"])
    assert (body["transaction_status"], body["fraud_status"], body["status_code"]) == (status, fraud, notified_code)
    assert verify_notification(body, MIDTRANS["server_key"])
    # Decided once: a second approve or deny is refused as Midtrans refuses it.
    for again in ("approve", "deny"):
        assert_cannot_modify(getattr(core.transactions, again), f"fds-{decision}")


@pytest.mark.parametrize("outcome", ["success", "pending", "failure"])
def test_approve_or_deny_of_a_transaction_not_challenged_is_412(http, midtrans, outcome):
    snap, core = midtrans
    _midtrans_order(http, snap, f"fds-{outcome}", outcome)
    assert_cannot_modify(core.transactions.approve, f"fds-{outcome}")
    with pytest.raises(midtransclient.error_midtrans.MidtransAPIError) as missing:
        core.transactions.deny("no-such-order")
    assert missing.value.http_status_code == 404
