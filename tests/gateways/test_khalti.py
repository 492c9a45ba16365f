"""Khalti ePayment through real HTTP: API → checkout → simulator → return (never trusted: lookup decides),
and the adapter's query and refunds."""

from dataclasses import replace
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.gateways.base import CallbackRequest, GatewayError
from app.gateways.khalti import result_from_lookup
from app.sandbox._common import load, save
from tests.gateways.helpers import (
    adapter_for,
    api_payment,
    assert_attempt_ended,
    assert_offered_everywhere,
    choose_method,
    events,
    follow,
    form_action_outcomes,
    order_id,
    outbox_types,
    query_of,
    race,
    refund_through_service,
    settle_by_query,
    transitions,
    unmatched_callbacks,
)
from tests.helpers import csrf_token, reload

KH = "khalti"


def start(http, factories, **fields):
    merchant, key = factories.merchant()
    payment = api_payment(http, key, **{"amount": 150_000, "currency": "NPR",
                                        "customer": {"name": "Sita Sharma", "phone": "9800000001"}, **fields})
    return payment, choose_method(http, payment, KH)


def choose(http, page_url, outcome):
    """Press an outcome button on Khalti's page; return the return URL it sends the browser to."""
    page = http.get(page_url)
    assert page.status_code == 200 and {"success", "failure", "cancel"} <= form_action_outcomes(page.text)
    return follow(http, http.post(page_url, data={"outcome": outcome}, allow_redirects=False))


def come_back(http, payment, return_url):
    shown = http.get(return_url, allow_redirects=False)
    assert shown.status_code == 303 and shown.headers["Location"].endswith(f"/pay/{payment.checkout_token}/result")
    return shown


def pay(http, factories, outcome="success", **fields):
    payment, page_url = start(http, factories, **fields)
    return_url = choose(http, page_url, outcome)
    come_back(http, payment, return_url)
    return payment, return_url


def test_success_through_checkout_simulator_and_lookup(http, factories):
    payment, page_url = start(http, factories)
    sent = events(payment, "gateway_call")[-1].data["request"]
    assert sent["amount"] == 150_000 and sent["purchase_order_id"] == order_id(payment)
    assert sent["return_url"] == f"{http.base_url}/callbacks/khalti/return"
    assert sent["customer_info"] == {"name": "Sita Sharma", "phone": "9800000001"}
    assert reload(payment).gateway_reference == query_of(page_url)["pidx"]

    return_url = choose(http, page_url, "success")
    back = query_of(return_url)
    assert back["status"] == "Completed" and back["purchase_order_id"] == order_id(payment)
    assert "Payment successful" in http.get(return_url).text
    assert reload(payment).status == "succeeded" and payment.gateway_transaction_id == back["transaction_id"]
    assert payment.fee_amount == 0
    assert "payment.succeeded" in outbox_types(payment)
    last = events(payment, "callback")[-1]
    assert last.verified is True and last.data["lookup"]["status"] == "Completed"


@pytest.mark.parametrize(("outcome", "status"), [("failure", "expired"), ("cancel", "cancelled")])
def test_failure_and_cancel(http, factories, outcome, status):
    payment, _ = pay(http, factories, outcome)
    assert_attempt_ended(payment, status)


def test_duplicate_return_applies_once(http, factories):
    payment, return_url = pay(http, factories)
    come_back(http, payment, return_url)
    assert transitions(payment).count(("processing", "succeeded")) == 1
    assert outbox_types(payment).count("payment.succeeded") == 1
    assert "already applied" in events(payment, "callback")[-1].message


def test_same_return_twice_at_once_applies_once(http, factories):
    payment, page_url = start(http, factories)
    return_url = choose(http, page_url, "success")
    answers = race(4, lambda: http.get(return_url, allow_redirects=False).status_code)
    assert answers == [303] * 4
    assert reload(payment).status == "succeeded"
    assert transitions(payment).count(("processing", "succeeded")) == 1


def test_forged_return_parameters_are_not_believed(http, factories):
    payment, page_url = start(http, factories)  # never paid at Khalti
    forged = {"pidx": query_of(page_url)["pidx"], "status": "Completed", "amount": 150_000, "total_amount": 150_000,
              "transaction_id": "FAKE", "purchase_order_id": order_id(payment)}
    come_back(http, payment, "/callbacks/khalti/return?" + urlencode(forged))
    assert reload(payment).status == "processing" and payment.gateway_transaction_id is None
    assert outbox_types(payment) == ["payment.processing"]
    last = events(payment, "callback")[-1]
    assert last.data["return"]["status"] == "Completed" and last.data["lookup"]["status"] == "Initiated"


def test_amount_differing_at_khalti_is_refused(http, factories):
    payment, page_url = start(http, factories)
    pidx = query_of(page_url)["pidx"]
    state = load(KH, "payment", pidx)
    save(KH, "payment", pidx, {**state, "total_amount": 100_000})  # Khalti says it took a different amount
    come_back(http, payment, choose(http, page_url, "success"))
    assert reload(payment).status == "processing"
    last = events(payment, "callback")[-1]
    assert last.verified is False and "amount" in last.message


def test_another_pidx_is_refused(http, factories):
    payment, page_url = start(http, factories)
    other, other_page = start(http, factories)
    other_return = choose(http, other_page, "success")
    hijack = {**query_of(other_return), "purchase_order_id": order_id(payment)}
    come_back(http, payment, "/callbacks/khalti/return?" + urlencode(hijack))
    assert reload(payment).status == "processing"
    assert events(payment, "callback")[-1].verified is False


def test_unknown_order_is_404_and_kept(http):
    r = http.get("/callbacks/khalti/return?" + urlencode({"pidx": "nope", "purchase_order_id": "pay_nope",
                                                          "status": "Completed"}))
    assert r.status_code == 404
    assert [e.verified for e in unmatched_callbacks(KH)] == [False]



def test_query_settles_a_shopper_who_never_came_back(http, factories):
    payment, page_url = start(http, factories)
    choose(http, page_url, "success")  # the browser closes before the return
    result, applied = settle_by_query(payment, KH)
    assert result.outcome == "succeeded" and result.amount == 150_000
    assert applied and reload(payment).status == "succeeded"


def test_partial_and_full_refund(http, factories):
    payment, _ = pay(http, factories)
    gateway, info, ctx = adapter_for(payment, KH)
    assert gateway.refund(info, 50_000, "rf_1", ctx).status == "succeeded"
    assert gateway.query(info, ctx).outcome == "partially_refunded"
    assert gateway.refund(info, 200_000, "rf_2", ctx).status == "failed"
    rest = gateway.refund(info, 100_000, "rf_3", ctx)
    assert rest.status == "succeeded" and rest.message == "Transaction refund successful."
    assert gateway.query(info, ctx).outcome == "refunded"


def test_full_refund_sends_an_empty_body(http, factories):
    payment, _ = pay(http, factories, amount=2_000)
    gateway, info, ctx = adapter_for(payment, KH)
    assert gateway.refund(info, 2_000, "rf_full", ctx).status == "succeeded"
    assert gateway.query(info, ctx).raw["refunded"] is True


def test_amount_below_khaltis_minimum_is_refused_at_checkout(http, factories):
    merchant, key = factories.merchant()
    payment = api_payment(http, key, amount=999, currency="NPR")
    page = http.get(f"/pay/{payment.checkout_token}")
    r = http.post(f"/pay/{payment.checkout_token}", data={"csrf_token": csrf_token(page.text), "method": KH})
    assert r.status_code == 422 and "This payment method is not available right now" in r.text
    assert "1000 paisa" in events(payment, "gateway_call")[-1].message


def test_wrong_credentials_get_khaltis_errors(http, factories):
    payment, _ = start(http, factories)
    gateway, info, ctx = adapter_for(payment, KH)
    wrong = replace(ctx, credentials={"secret_key": "nope"})
    with pytest.raises(GatewayError, match="Invalid token."):
        gateway.query(info, wrong)
    r = http.post("/sandbox/khalti/api/v2/epayment/lookup/", json={"pidx": "x"},
                  headers={"Authorization": "Bearer x"})
    assert r.status_code == 401 and r.json()["detail"] == "Authentication credentials were not provided."


def test_lookup_mapping():
    assert [result_from_lookup({"status": s}).outcome for s in (
        "Completed", "Pending", "Initiated", "Refunded", "Partially Refunded", "Expired", "User canceled")] == [
        "succeeded", "processing", "processing", "refunded", "partially_refunded", "expired", "cancelled"]
    assert result_from_lookup({"status": "Pending", "total_amount": 1000}).amount is None


def test_whatever_the_return_says_the_lookup_decides(http, factories):
    payment, page_url = start(http, factories)
    choose(http, page_url, "cancel")
    gateway, info, ctx = adapter_for(payment, KH)
    truth = gateway.query(info, ctx)

    @settings(max_examples=25, deadline=None)
    @given(st.dictionaries(st.sampled_from(["status", "amount", "total_amount", "transaction_id", "mobile"]),
                           st.one_of(st.sampled_from(["Completed", "150000", "1", ""]), st.text(max_size=10))))
    def check(args):
        req = CallbackRequest("GET", {**args, "pidx": info.gateway_reference}, {}, {})
        result = gateway.verify_callback("return", req, info, ctx)
        assert (result.outcome, result.amount, result.gateway_transaction_id) == (
            truth.outcome, truth.amount, truth.gateway_transaction_id)

    check()


def test_offered_to_new_merchants_and_on_the_demo_checkout(app, http):
    assert_offered_everywhere(app, http, "khalti", "NPR")


def test_partial_and_full_refund_through_the_refund_service(http, factories, run_jobs):
    payment, _ = pay(http, factories)
    first = refund_through_service(payment, 50_000, run_jobs)
    assert first.status == "succeeded" and payment.status == "partially_refunded"
    rest = refund_through_service(payment, 100_000, run_jobs)
    assert rest.status == "succeeded" and payment.status == "refunded" and payment.amount_refunded == 150_000
    gateway, info, ctx = adapter_for(payment, KH)
    assert gateway.query(info, ctx).raw["status"] == "Refunded"
