"""bKash tokenized checkout through real HTTP: API → checkout → simulator wallet → return → execute."""

import json
import time

import pytest
import requests

from app.extensions import db, get_redis
from app.gateways.base import GatewayError, Outcome
from app.gateways.bkash import REFRESH_MARGIN_SECONDS, _account_key, find_refund
from app.money import format_plain
from app.sandbox import bkash as sim
from app.services import reconciliation
from app.services.callbacks import apply_result
from tests.gateways import fixtures
from tests.gateways._bd_helpers import (
    adapter_and_context,
    assert_applied_once,
    bdt_payment,
    callbacks,
    choose_outcome,
    concurrent_returns,
    duplicate_return,
    pay,
    pay_another_amount_for,
    refund_through_the_service,
    return_to_result,
    start,
    transitions_to,
)
from tests.gateways.helpers import (
    assert_attempt_ended,
    assert_offered_everywhere,
    choose_method,
    order_id,
    query_of,
    race,
    unmatched_callbacks,
)
from tests.helpers import csrf_token, reload


def _pay(http, factories, outcome="success", amount=125_050):
    return pay(http, factories, "bkash", outcome, amount, wallet="01770618575")


def test_success_full_path(http, factories):
    merchant, payment, back = _pay(http, factories)
    params = query_of(back)
    assert back.startswith(http.base_url + "/callbacks/bkash/return?")
    assert params["status"] == "success" and params["paymentID"] == reload(payment).gateway_reference
    assert "Payment successful" in return_to_result(http, payment, back)
    assert_applied_once(payment, "succeeded")
    assert payment.gateway_transaction_id and payment.card_summary == "bKash 01770618575"
    assert sim.stats("execute") == 1 and sim.stats("query") == 0  # never query what execute answered
    event = callbacks(payment)[0]
    assert event.verified is True and event.data["via"] == "execute"


def test_create_request_is_bkash_shaped(http, factories):
    merchant, key = factories.merchant()
    payment = bdt_payment(http, key, amount=100_000)
    choose_method(http, payment, "bkash")
    stored = sim.load(sim.CODE, "payment", reload(payment).gateway_reference)
    assert stored["amount"] == "1000.00" and stored["currency"] == "BDT" and stored["mode"] == "0011"
    assert stored["intent"] == "sale" and stored["merchantInvoiceNumber"] == order_id(payment)
    assert stored["callbackURL"] == f"{http.base_url}/callbacks/bkash/return"


@pytest.mark.parametrize("outcome,status", [("failure", "failed"), ("cancel", "cancelled")])
def test_failure_and_cancel_confirmed_by_query(http, factories, outcome, status):
    merchant, payment, back = _pay(http, factories, outcome)
    assert http.get(back).status_code == 200
    assert_attempt_ended(payment, status)
    assert sim.stats("execute") == 0 and sim.stats("query") == 1
    assert callbacks(payment)[-1].verified is True


def test_duplicate_return_applies_once_and_never_executes_twice(http, factories):
    merchant, payment, back = _pay(http, factories)
    duplicate_return(http, payment, back)
    assert sim.stats("execute") == 1 and sim.stats("query") == 0


def test_concurrent_returns_one_transition_one_execute(http, factories):
    merchant, payment, back = _pay(http, factories)
    concurrent_returns(payment, back)
    assert sim.stats("execute") == 1


def test_forged_success_for_an_unpaid_payment_is_refused(http, factories):
    merchant, payment, wallet_url = start(http, factories, "bkash")
    payment_id = reload(payment).gateway_reference
    r = http.get(f"/callbacks/bkash/return?paymentID={payment_id}&status=success&signature=abc", allow_redirects=False)
    assert r.status_code == 303
    assert reload(payment).status == "processing"
    event = callbacks(payment)[-1]
    assert event.verified is False and "2056" in event.message  # bKash's error code on the timeline
    # the refused execute released the guard: the shopper can still pay
    back = choose_outcome(http, wallet_url, "success", wallet="01770618575")
    http.get(back)
    assert reload(payment).status == "succeeded"


def test_forged_failure_is_shown_never_applied(http, factories):
    merchant, payment, _ = start(http, factories, "bkash")
    payment_id = reload(payment).gateway_reference
    r = http.get(f"/callbacks/bkash/return?paymentID={payment_id}&status=failure", allow_redirects=False)
    assert r.status_code == 303
    assert reload(payment).status == "processing"
    assert callbacks(payment)[-1].verified is False


def test_unknown_and_malformed_returns(http, factories):
    merchant, payment, _ = start(http, factories, "bkash")
    r = http.get("/callbacks/bkash/return?paymentID=TR0011NOPE&status=success")
    assert r.status_code == 404
    r = http.get(f"/callbacks/bkash/return?paymentID={reload(payment).gateway_reference}&status=paid")
    assert r.status_code == 200  # the shopper sees the result page; nothing changed
    r = http.get("/callbacks/bkash/return")
    assert r.status_code == 404
    assert reload(payment).status == "processing"
    assert callbacks(payment)[-1].verified is False
    kept = unmatched_callbacks("bkash")
    assert [e.verified for e in kept] == [False, False]
    assert kept[0].data["query"] == {"paymentID": "TR0011NOPE", "status": "success"}
    assert sim.stats("execute") == 0


def test_tampered_amount_is_refused(http, factories):
    """A bKash payment for another amount attached to ours: execute's amount does not match ours."""
    merchant, payment, _ = start(http, factories, "bkash", amount=125_050)
    pay_another_amount_for(http, payment, "bkash", 100, wallet="01770618575")
    assert reload(payment).status == "processing"
    event = callbacks(payment)[-1]
    assert event.verified is False and "amount ৳1.00 does not match ৳1,250.50" in event.message


def test_one_grant_for_many_payments_then_refresh(http, factories):
    merchant, key = factories.merchant()
    payments = []
    for i in range(3):
        payment = bdt_payment(http, key, reference=f"INV-{i}")
        choose_method(http, payment, "bkash")
        payments.append(payment)
    assert sim.stats("grant") == 1 and sim.stats("refresh") == 0
    # near expiry: refreshed (not granted again) once, then the new token is used
    gateway, info, ctx = adapter_and_context(payments[0], "bkash")
    token_key = _account_key(ctx) + ":token"
    cached = json.loads(get_redis().get(token_key))
    cached["expires_at"] = time.time() + REFRESH_MARGIN_SECONDS - 1
    get_redis().set(token_key, json.dumps(cached))
    for i in range(2):
        choose_method(http, bdt_payment(http, key, reference=f"R-{i}"), "bkash")
    assert sim.stats("grant") == 1 and sim.stats("refresh") == 1
    assert json.loads(get_redis().get(token_key))["id_token"] != cached["id_token"]


def test_concurrent_first_calls_share_one_grant(app, http, factories):
    merchant, key = factories.merchant()
    payment = bdt_payment(http, key)
    gateway, info, ctx = adapter_and_context(payment, "bkash")

    assert len(set(race(3, lambda: gateway.token(ctx)))) == 1
    assert sim.stats("grant") == 1


def test_revoked_token_is_replaced_once(http, factories):
    merchant, payment, _ = start(http, factories, "bkash")
    gateway, info, ctx = adapter_and_context(payment, "bkash")
    cached = json.loads(get_redis().get(_account_key(ctx) + ":token"))
    get_redis().delete(f"sandbox:bkash:id_token:{cached['id_token']}")  # bKash forgets it early
    assert gateway.query(info, ctx).outcome == Outcome.PROCESSING
    assert sim.stats("grant") + sim.stats("refresh") == 2


def test_api_gateway_refusals_are_answered_like_bkash(http, factories):
    """Authorisation is refused by bKash's API gateway (401/403, a bare message); business errors are 200."""
    merchant, payment, _ = start(http, factories, "bkash")
    gateway, info, ctx = adapter_and_context(payment, "bkash")
    token, app_key = gateway.token(ctx), ctx.credentials["app_key"]

    def status(token, app_key):
        return requests.post(f"{ctx.base_url}/v1.2.0-beta/tokenized/checkout/payment/status", timeout=10,
                             headers={"Authorization": token, "X-APP-Key": app_key},
                             json={"paymentID": "TR0011NOPE"})

    r = status(token, app_key)
    assert r.status_code == 200 and r.json() == {"statusCode": "2002", "statusMessage": "Invalid Payment ID"}
    r = status("not-a-token", app_key)
    assert r.status_code == 401 and r.json() == {"message": "Unauthorized"}
    r = status(token, "not-our-app-key")
    assert r.status_code == 403 and r.json() == {"message": "Forbidden"}
    sim.expire_token(token)
    r = status(token, app_key)
    assert r.status_code == 401 and r.json() == {"message": "The incoming token has expired"}


def test_expired_token_is_replaced_and_the_call_retried_once(http, factories):
    """bKash's clock says the token expired before ours did: refresh it (no grant) and retry the call once."""
    merchant, payment, _ = start(http, factories, "bkash")
    gateway, info, ctx = adapter_and_context(payment, "bkash")
    token_key = _account_key(ctx) + ":token"
    stale = json.loads(get_redis().get(token_key))["id_token"]
    sim.expire_token(stale)
    assert gateway.query(info, ctx).outcome == Outcome.PROCESSING
    assert sim.stats("grant") == 1 and sim.stats("refresh") == 1 and sim.stats("query") == 1
    assert json.loads(get_redis().get(token_key))["id_token"] != stale


def test_wrong_app_key_is_forbidden_and_not_retried(http, factories):
    """A 403 is about the app key, not the token: no new token is asked for (bKash rations grants)."""
    merchant, payment, _ = start(http, factories, "bkash")
    gateway, info, ctx = adapter_and_context(payment, "bkash")
    bad = ctx.__class__(**{**ctx.__dict__, "credentials": {**ctx.credentials, "app_key": "not-our-app-key"}})
    get_redis().set(_account_key(bad) + ":token", get_redis().get(_account_key(ctx) + ":token"))
    with pytest.raises(GatewayError) as exc:
        gateway.query(info, bad)
    assert exc.value.code == "403" and "Forbidden" in str(exc.value)
    assert sim.stats("grant") == 1 and sim.stats("refresh") == 0


def test_wrong_credentials_get_bkash_errors(http, factories, app):
    merchant, payment, _ = start(http, factories, "bkash")
    gateway, info, ctx = adapter_and_context(payment, "bkash")
    get_redis().delete(_account_key(ctx) + ":token")  # no cached token: the grant itself is refused
    bad = ctx.__class__(**{**ctx.__dict__, "credentials": {**ctx.credentials, "app_secret": "wrong"}})
    with pytest.raises(GatewayError) as exc:
        gateway.start(info, bad)
    assert exc.value.code == "2001" and "Invalid App Key" in str(exc.value)
    bad = ctx.__class__(**{**ctx.__dict__, "credentials": {**ctx.credentials, "password": "wrong"}})
    with pytest.raises(GatewayError) as exc:
        gateway.start(info, bad)
    assert exc.value.code == "401"


def test_execute_timeout_is_settled_by_query_never_executed_twice(http, factories, app, monkeypatch):
    monkeypatch.setitem(app.config, "BKASH_EXECUTE_TIMEOUT_SECONDS", 0.3)
    merchant, payment, back = _pay(http, factories)
    sim.set_execute_delay(1.0)
    try:
        http.get(back)
        payment = reload(payment)
        assert payment.status == "succeeded"  # execute's answer was lost; the query settled it
        assert sim.stats("execute") == 1 and sim.stats("query") == 1
        assert callbacks(payment)[-1].data["via"] == "query"
        http.get(back)  # a second return for the settled attempt asks nothing and never executes again
        assert sim.stats("execute") == 1 and sim.stats("query") == 1
        assert len(transitions_to(payment, "succeeded")) == 1
    finally:
        sim.set_execute_delay(0)


def test_execute_answered_2117_is_settled_by_query(http, factories):
    """An execute of ours reached bKash but neither its answer nor our guard survived: the next execute gets
    2117, so the outcome is unknown to us and a query (never another execute) settles it."""
    merchant, payment, back = _pay(http, factories)
    gateway, info, ctx = adapter_and_context(payment, "bkash")
    gateway._call(ctx, "execute", {"paymentID": payment.gateway_reference})  # its answer is lost
    assert "Payment successful" in return_to_result(http, payment, back)
    assert_applied_once(payment, "succeeded")
    assert sim.stats("execute") == 2 and sim.stats("query") == 1
    event = callbacks(payment)[-1]
    assert event.verified is True and event.data["via"] == "query"
    assert event.data["bkash"]["transactionStatus"] == "Completed"
    http.get(back)  # a later return for the settled attempt asks nothing, never executes again
    assert sim.stats("execute") == 2 and sim.stats("query") == 1
    assert_applied_once(payment, "succeeded")


def test_status_query_settles_a_payment_whose_return_never_came(http, factories):
    merchant, payment, wallet_url = start(http, factories, "bkash")
    choose_outcome(http, wallet_url, "cancel")  # the shopper closed the tab before the redirect
    gateway, info, ctx = adapter_and_context(payment, "bkash")
    result = gateway.query(info, ctx)
    assert result.outcome == Outcome.CANCELLED
    applied, _ = apply_result(payment, payment.current_attempt, result, source="reconcile")
    db.session.commit()
    assert applied
    assert_attempt_ended(payment, "cancelled")


def test_query_never_asks_about_an_executed_payment(http, factories):
    merchant, payment, back = _pay(http, factories)
    http.get(back)
    gateway, info, ctx = adapter_and_context(payment, "bkash")
    result = gateway.query(info, ctx)
    assert result.outcome == Outcome.SUCCEEDED and result.amount == payment.amount
    assert sim.stats("query") == 0


def test_partial_then_full_refund(http, factories):
    merchant, payment, back = _pay(http, factories, amount=125_050)
    http.get(back)
    gateway, info, ctx = adapter_and_context(payment, "bkash")
    first = gateway.refund(info, 25_050, "re_1", ctx)
    assert first.status == "succeeded" and first.raw["amount"] == "250.50"
    assert {"completedTime", "transactionStatus", "originalTrxID", "refundTrxID", "amount", "currency",
            "charge"} <= set(first.raw) and first.raw["originalTrxID"] == payment.gateway_transaction_id
    again = gateway.refund(info, 25_050, "re_1", ctx)  # a retry of the same refund is not a second one
    assert again.gateway_reference == first.gateway_reference
    rest = gateway.refund(info, 100_000, "re_2", ctx)
    assert rest.status == "succeeded"
    too_much = gateway.refund(info, 1, "re_3", ctx)
    assert too_much.status == "failed" and "2006" in too_much.message
    stored = sim.load(sim.CODE, "payment", payment.gateway_reference)
    assert stored["refunded"] == format_plain(125_050, "BDT")


def test_refund_status_is_the_refund_call_with_only_payment_and_trx_ids(http, factories):
    merchant, payment, back = _pay(http, factories, amount=125_050)
    http.get(back)
    gateway, info, ctx = adapter_and_context(payment, "bkash")
    ids = {"paymentID": payment.gateway_reference, "trxID": payment.gateway_transaction_id}
    refund = gateway.refund(info, 25_050, "re_1", ctx)
    status = gateway._call(ctx, "payment/refund", ids)
    assert status["refundTrxID"] == refund.gateway_reference and status["transactionStatus"] == "Completed"
    assert status["originalTrxID"] == ids["trxID"] and status["amount"] == "250.50"
    assert {"completedTime", "currency", "charge"} <= set(status)
    assert status["refundTransactions"] == [{
        "refundTrxID": refund.gateway_reference, "refundAmount": "250.50", "transactionStatus": "Completed",
        "sku": "re_1", "reason": "Refund re_1", "refundTime": status["completedTime"]}]
    assert sim.load(sim.CODE, "payment", ids["paymentID"])["refunded"] == "250.50"  # asking refunds nothing


def test_bkash_error_on_start_is_on_the_timeline(http, factories):
    merchant, key = factories.merchant()
    account = merchant.gateway_account("bkash")
    account.credentials = {**account.credentials, "app_key": "not-our-app-key"}
    db.session.commit()
    payment = bdt_payment(http, key)
    url = f"/pay/{payment.checkout_token}"
    page = http.get(url)
    r = http.post(url, data={"csrf_token": csrf_token(page.text), "method": "bkash"}, allow_redirects=False)
    assert r.status_code == 422 and "This payment method is not available right now" in r.text
    db.session.rollback()
    event = payment.events.filter_by(kind="gateway_call").one()
    assert "2001" in event.message and "Invalid App Key" in event.message
    assert event.data == {"statusCode": "2001", "statusMessage": "Invalid App Key"}
    assert reload(payment).status == "pending"


def test_a_guard_left_pending_by_a_dead_process_is_settled_by_query(http, factories):
    """A process died after sending execute: bKash may have executed, so we query, never execute again."""
    merchant, payment, back = _pay(http, factories)
    gateway, info, ctx = adapter_and_context(payment, "bkash")
    get_redis().set(gateway._execute_key(ctx, payment.gateway_reference), f"pending:{time.time() - 3600}")
    http.get(back)
    assert sim.stats("execute") == 0 and sim.stats("query") == 1
    assert reload(payment).status == "processing"  # bKash says Initiated: nothing to apply yet
    assert callbacks(payment)[-1].data["via"] == "query"


def test_many_requests_refused_one_token_replace_it_once(app, http, factories):
    merchant, payment, _ = start(http, factories, "bkash")
    gateway, info, ctx = adapter_and_context(payment, "bkash")
    stale = gateway.token(ctx)
    get_redis().delete(f"sandbox:bkash:id_token:{stale}")

    assert len(set(race(4, lambda: gateway.token(ctx, stale=stale)))) == 1
    assert sim.stats("grant") + sim.stats("refresh") == 2


def test_offered_to_new_and_demo_merchants(app, http):
    assert_offered_everywhere(app, http, "bkash", "BDT")


def test_refunds_through_the_refund_service(http, factories, run_jobs):
    merchant, payment, back = _pay(http, factories, amount=125_050)
    http.get(back)
    refund_through_the_service(reload(payment), run_jobs, 25_050)
    stored = sim.load(sim.CODE, "payment", payment.gateway_reference)
    assert [r["amount"] for r in stored["refunds"]] == ["250.50", "1000.00"]


def test_reconciliation_job_settles_an_abandoned_payment(http, factories):
    """The shopper cancelled at bKash and closed the tab: the reconciliation service asks and applies."""
    merchant, payment, wallet_url = start(http, factories, "bkash")
    choose_outcome(http, wallet_url, "cancel")
    assert reconciliation.reconcile_payment(reload(payment)) is True
    assert_attempt_ended(payment, "cancelled")
    assert sim.stats("execute") == 0


# --- refunds found by their sku (issue 14 item 11) -----------------------------------------------------------


def test_recorded_refund_status_is_read_by_sku_never_by_amount():
    answer, source = fixtures.load("bkash", "refund_status_transactions")
    assert "bkash-rs" in source
    assert find_refund(answer, "TEST-SKU-002")["refundTrxID"] == "TESTREFUND0002"
    assert find_refund(answer, "TEST-SKU-001")["refundTrxID"] == "TESTREFUND0001"
    assert find_refund(answer, "TEST-SKU-003") is None
    same_amount = {**answer, "refundTransactions": [{**t, "refundAmount": "5.00"} for t in answer["refundTransactions"]]}
    assert find_refund(same_amount, "TEST-SKU-002")["refundTrxID"] == "TESTREFUND0002"
    recorded, _ = fixtures.load("bkash", "refund_completed")  # the single-refund answer has no sku: not ours
    assert find_refund(recorded, "re_1") is None


def _refunds_at_bkash(payment):
    return sim.load(sim.CODE, "payment", payment.gateway_reference)["refunds"]


def test_two_pending_partial_refunds_of_the_same_amount_are_told_apart_by_sku(http, factories):
    merchant, payment, back = _pay(http, factories, amount=125_050)
    http.get(back)
    gateway, info, ctx = adapter_and_context(payment, "bkash")
    sim.set_refund_status("Pending")
    try:
        first = gateway.refund(info, 25_000, "re_a", ctx)
    finally:
        sim.set_refund_status(None)
    second = gateway.refund(info, 25_000, "re_b", ctx)
    assert first.status == "pending" and second.status == "succeeded"
    assert first.gateway_reference != second.gateway_reference
    sent = _refunds_at_bkash(payment)
    assert [(r["sku"], r["amount"]) for r in sent] == [("re_a", "250.00"), ("re_b", "250.00")]

    again = gateway.refund(info, 25_000, "re_a", ctx)  # re-checked by the refund status, not re-sent
    assert again.status == "pending" and again.gateway_reference == first.gateway_reference
    sim.settle_refunds(payment.gateway_reference)
    done = gateway.refund(info, 25_000, "re_a", ctx)
    assert done.status == "succeeded" and done.gateway_reference == first.gateway_reference
    assert done.raw["via"] == "refund status"
    assert gateway.refund(info, 25_000, "re_b", ctx).gateway_reference == second.gateway_reference
    assert len(_refunds_at_bkash(payment)) == 2  # nothing was sent twice
    assert sim.load(sim.CODE, "payment", payment.gateway_reference)["refunded"] == "500.00"


def test_a_refund_failed_at_bkash_after_pending_is_failed(http, factories):
    merchant, payment, back = _pay(http, factories)
    http.get(back)
    gateway, info, ctx = adapter_and_context(payment, "bkash")
    sim.set_refund_status("Pending")
    try:
        assert gateway.refund(info, 10_000, "re_f", ctx).status == "pending"
    finally:
        sim.set_refund_status(None)
    sim.settle_refunds(payment.gateway_reference, "Failed")
    assert gateway.refund(info, 10_000, "re_f", ctx).status == "failed"


def _answer_lost(gateway, monkeypatch, *, reached):
    """The refund call times out: after bKash made the refund (`reached`) or before it got the request."""
    real = gateway._call

    def call(ctx, path, body, **kw):
        if path == "payment/refund" and "amount" in body:
            monkeypatch.setattr(gateway, "_call", real)  # once
            if reached:
                real(ctx, path, body, **kw)
            raise GatewayError("bKash did not answer in time", timeout=True)
        return real(ctx, path, body, **kw)

    monkeypatch.setattr(gateway, "_call", call)


def test_a_refund_whose_answer_was_lost_is_settled_by_its_sku(http, factories, monkeypatch):
    merchant, payment, back = _pay(http, factories)
    http.get(back)
    gateway, info, ctx = adapter_and_context(payment, "bkash")
    gateway.refund(info, 10_000, "re_other", ctx)  # another refund of the same amount is not ours
    _answer_lost(gateway, monkeypatch, reached=True)
    result = gateway.refund(info, 10_000, "re_lost", ctx)
    assert result.status == "succeeded"
    assert result.gateway_reference == next(r["refundTrxID"] for r in _refunds_at_bkash(payment)
                                            if r["sku"] == "re_lost")
    assert len(_refunds_at_bkash(payment)) == 2


def test_a_refund_bkash_never_got_is_unknown_then_sent_once_when_retried(http, factories, monkeypatch):
    merchant, payment, back = _pay(http, factories)
    http.get(back)
    gateway, info, ctx = adapter_and_context(payment, "bkash")
    gateway.refund(info, 10_000, "re_other", ctx)
    _answer_lost(gateway, monkeypatch, reached=False)
    assert gateway.refund(info, 10_000, "re_gone", ctx).status == "unknown"  # a person decides
    assert len(_refunds_at_bkash(payment)) == 1
    retried = gateway.refund(info, 10_000, "re_gone", ctx)  # the person's retry: bKash does not list it
    assert retried.status == "succeeded" and len(_refunds_at_bkash(payment)) == 2
    assert gateway.refund(info, 10_000, "re_gone", ctx).gateway_reference == retried.gateway_reference
    assert len(_refunds_at_bkash(payment)) == 2


def test_an_answer_without_a_status_is_never_taken_for_an_unsent_refund(http, factories, monkeypatch):
    merchant, payment, back = _pay(http, factories)
    http.get(back)
    gateway, info, ctx = adapter_and_context(payment, "bkash")
    real = gateway._call

    def call(ctx, path, body, **kw):
        data = real(ctx, path, body, **kw)
        return {k: v for k, v in data.items() if k != "transactionStatus"} if "amount" in body else data

    monkeypatch.setattr(gateway, "_call", call)
    assert gateway.refund(info, 10_000, "re_odd", ctx).status == "pending"
    monkeypatch.setattr(gateway, "_call", real)
    assert gateway.refund(info, 10_000, "re_odd", ctx).status == "succeeded"  # found by sku, not re-sent
    assert len(_refunds_at_bkash(payment)) == 1
