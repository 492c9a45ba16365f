"""VNPay through real HTTP: API → checkout → simulator → return + IPN, and the adapter's query and refunds."""

import hashlib
import hmac
import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.extensions import get_queue, get_redis
from app.gateways.base import GatewayError
from app.gateways.vnpay import (
    QUERY_FIELDS,
    REFUND_FIELDS,
    from_vnp_amount,
    hash_data,
    pipe_checksum,
    sign_params,
    signed_url,
    verify_params,
    vn_time,
)
from app.sandbox._common import load
from app.sandbox.vnpay import SANDBOX_CREDENTIALS
from app.services.gateways import update_gateway_account
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
    settle_by_query,
    transitions,
    unmatched_callbacks,
)
from tests.helpers import reload

SECRET = SANDBOX_CREDENTIALS["hash_secret"]
VN = "vnpay"


def start(http, factories, **fields):
    merchant, key = factories.merchant()
    payment = api_payment(http, key, **fields)
    return payment, choose_method(http, payment, VN)


def pay(http, factories, outcome="success", **fields):
    """Through the simulator's page; return (payment, the signed result params VNPay sent to the return URL)."""
    payment, pay_url = start(http, factories, **fields)
    page_url = follow(http, http.get(pay_url, allow_redirects=False))
    page = http.get(page_url)
    assert page.status_code == 200 and {"success", "failure", "cancel"} <= form_action_outcomes(page.text)
    back = http.post(page_url, data={"outcome": outcome}, allow_redirects=False)
    return_url = follow(http, back)
    assert return_url.startswith(f"{http.base_url}/callbacks/vnpay/return?")
    shown = http.get(return_url, allow_redirects=False)
    assert shown.status_code == 303 and shown.headers["Location"].endswith(f"/pay/{payment.checkout_token}/result")
    return payment, query_of(return_url)


def ipn(http, params):
    response = http.get("/callbacks/vnpay/ipn?" + urlencode(params))
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    return response.json()


def resign(params, **changes):
    params = {**params, **changes}
    params.pop("vnp_SecureHash", None)
    return {**params, "vnp_SecureHash": sign_params(SECRET, params)}


# --- the whole path ------------------------------------------------------------------------------------------


def test_success_through_checkout_simulator_return_and_ipn(http, factories, run_jobs):
    payment, pay_url = start(http, factories, amount=150_000)
    sent = query_of(pay_url)
    assert pay_url.startswith(f"{http.base_url}/sandbox/vnpay/paymentv2/vpcpay.html?")
    assert sent["vnp_Amount"] == "15000000" and sent["vnp_TxnRef"] == order_id(payment)
    assert sent["vnp_ReturnUrl"] == f"{http.base_url}/callbacks/vnpay/return"
    assert sent["vnp_ExpireDate"] == (payment.expires_at + timedelta(hours=7)).strftime("%Y%m%d%H%M%S")
    assert "vnp_SecureHashType" not in sent and verify_params(SECRET, sent)

    page_url = follow(http, http.get(pay_url, allow_redirects=False))
    back = http.post(page_url, data={"outcome": "success"}, allow_redirects=False)
    result_page = http.get(follow(http, back))
    assert result_page.status_code == 200
    # The browser's word alone never marks the payment paid.
    assert reload(payment).status == "processing"
    assert [e.verified for e in events(payment, "callback")] == [None]

    run_jobs()  # the simulator's IPN
    assert reload(payment).status == "succeeded"
    assert payment.gateway_transaction_id and payment.gateway == VN
    assert "payment.succeeded" in outbox_types(payment)
    ipn_event = events(payment, "callback")[-1]
    assert ipn_event.verified is True and ipn_event.data["query"]["vnp_ResponseCode"] == "00"


@pytest.mark.parametrize(("outcome", "status", "code"), [("failure", "failed", "vnpay_51"),
                                                          ("cancel", "cancelled", "vnpay_24")])
def test_failure_and_cancel(http, factories, run_jobs, outcome, status, code):
    payment, _ = pay(http, factories, outcome)
    run_jobs()
    attempt = assert_attempt_ended(payment, status, code)
    assert attempt.transaction_id is None if outcome == "cancel" else attempt.transaction_id
    # The shopper reads VNPay's code in plain words; the merchant's timeline keeps VNPay's own meaning.
    assert attempt.failure_reason == {"vnpay_51": "insufficient_funds", "vnpay_24": "cancelled"}[code]
    assert attempt.failure_message == {"vnpay_51": "VNPay response code 51: insufficient balance",
                                       "vnpay_24": "VNPay response code 24: the shopper cancelled"}[code]
    page = http.get(f"/pay/{payment.checkout_token}").text
    assert {"vnpay_51": "There was not enough money", "vnpay_24": "The payment was cancelled."}[code] in page
    assert "response code" not in page


def test_duplicate_ipn_is_answered_02_and_changes_nothing(http, factories, run_jobs):
    payment, params = pay(http, factories)
    run_jobs()
    assert reload(payment).status == "succeeded"
    assert ipn(http, params) == {"RspCode": "02", "Message": "Order already confirmed"}
    assert transitions(payment).count(("processing", "succeeded")) == 1
    assert outbox_types(payment).count("payment.succeeded") == 1


def test_simulator_retries_the_ipn_until_confirmed(http, factories, run_jobs):
    payment, params = pay(http, factories)
    queue = get_queue("sandbox")
    job = queue.jobs[0]
    url = job.args[1]
    # The merchant is down for the first attempt: the simulator schedules the next one.
    job.args = ("GET", url.replace("/callbacks/vnpay/ipn", "/callbacks/vnpay/nowhere"))
    job.save()
    run_jobs()
    assert reload(payment).status == "processing"
    [retry_id] = queue.scheduled_job_registry.get_job_ids()
    retry = queue.fetch_job(retry_id)
    assert retry.kwargs["attempt"] == 1
    retry.args = ("GET", url)  # the merchant is back
    retry.save()
    run_jobs(advance=301)
    assert reload(payment).status == "succeeded"


def ipn_answer(code):
    return (200, json.dumps({"RspCode": code, "Message": "x"}).encode(), {"Content-Type": "application/json"})


@pytest.fixture
def merchant_ipn():
    """A loopback merchant whose IPN answers are scripted; the queued IPN is sent there instead."""
    made = []

    def make(*answers):
        made.append(ScriptedReceiver(*answers))
        redirect_queued_notification(made[-1].url + "/ipn")
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.mark.parametrize("answer", [ipn_answer("01"), ipn_answer("04"), ipn_answer("97"), ipn_answer("99"),
                                    (500, b"oops", {})])
def test_ipn_is_called_10_times_5_minutes_apart_until_confirmed(http, factories, run_jobs, merchant_ipn, answer):
    pay(http, factories)
    merchant = merchant_ipn(answer)
    assert deliver_all(run_jobs) == pytest.approx([300] * 9, abs=5)
    assert len(merchant.hits) == 10 and {(m, p.split("?")[0]) for _, m, p, _ in merchant.hits} == {("GET", "/ipn")}


@pytest.mark.parametrize("code", ["00", "02"])
def test_ipn_answered_00_or_02_is_not_retried(http, factories, run_jobs, merchant_ipn, code):
    pay(http, factories)
    merchant = merchant_ipn(ipn_answer(code))
    assert deliver_all(run_jobs) == []
    assert len(merchant.hits) == 1


def test_ipn_retried_after_01_stops_at_00(http, factories, run_jobs, merchant_ipn):
    pay(http, factories)
    merchant = merchant_ipn(ipn_answer("01"), ipn_answer("01"), ipn_answer("00"))
    assert deliver_all(run_jobs) == pytest.approx([300, 300], abs=5)
    assert len(merchant.hits) == 3


def test_same_ipn_twice_at_once_applies_once(http, factories):
    payment, params = pay(http, factories)
    get_queue("sandbox").empty()
    answers = race(4, lambda: ipn(http, params)["RspCode"])
    assert sorted(answers) == ["00", "02", "02", "02"]
    assert reload(payment).status == "succeeded"
    assert transitions(payment).count(("processing", "succeeded")) == 1
    assert outbox_types(payment).count("payment.succeeded") == 1


# --- refused notifications ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("tamper", "answer"), [
    ("signature", {"RspCode": "97", "Message": "Invalid signature"}),
    ("amount", {"RspCode": "04", "Message": "invalid amount"}),
    ("unsigned_amount", {"RspCode": "97", "Message": "Invalid signature"}),
    ("order", {"RspCode": "01", "Message": "Order not found"}),
])
def test_refused_ipn_leaves_the_payment_untouched(http, factories, tamper, answer):
    payment, params = pay(http, factories)
    get_queue("sandbox").empty()
    if tamper == "signature":
        params = {**params, "vnp_SecureHash": sign_params("not-the-secret", params)}
    elif tamper == "amount":
        params = resign(params, vnp_Amount=str(int(params["vnp_Amount"]) - 100))
    elif tamper == "unsigned_amount":
        params = {**params, "vnp_Amount": "100"}
    else:
        params = resign(params, vnp_TxnRef="pay_doesnotexist")
    assert ipn(http, params) == answer
    assert reload(payment).status == "processing" and payment.gateway_transaction_id is None
    assert outbox_types(payment) == ["payment.processing"]
    if tamper == "order":
        [kept] = unmatched_callbacks(VN)
        assert kept.verified is False and kept.data["query"]["vnp_TxnRef"] == "pay_doesnotexist"
    else:
        assert events(payment, "callback")[-1].verified is False


def test_ipn_without_params_is_99(http):
    assert http.get("/callbacks/vnpay/ipn").json() == {"RspCode": "99", "Message": "Invalid request"}


# --- query and refunds through the adapter -----------------------------------------------------------------



def test_query_settles_a_payment_whose_ipn_never_came(http, factories):
    payment, _ = pay(http, factories)
    get_queue("sandbox").empty()  # the IPN is lost
    result, applied = settle_by_query(payment, VN)
    assert result.outcome == "succeeded" and result.amount == payment.amount and result.currency == "VND"
    assert applied and reload(payment).status == "succeeded"
    assert payment.gateway_transaction_id == result.gateway_transaction_id


def test_query_before_the_shopper_paid_knows_nothing(http, factories):
    payment, _ = start(http, factories)
    gateway, info, ctx = adapter_for(payment, VN)
    assert gateway.query(info, ctx).outcome == "none"


def test_partial_then_full_refund(http, factories, run_jobs):
    payment, _ = pay(http, factories, amount=150_000)
    run_jobs()
    gateway, info, ctx = adapter_for(payment, VN)
    first = gateway.refund(info, 50_000, "rf_first", ctx)
    assert first.status == "succeeded" and first.raw["vnp_TransactionType"] == "03"
    assert first.raw["vnp_Amount"] == "5000000"
    too_much = gateway.refund(info, 200_000, "rf_too_much", ctx)  # more than was ever paid
    assert (too_much.status, too_much.raw["vnp_ResponseCode"]) == ("failed", "93")
    assert too_much.message == "VNPay refund 93: invalid amount (it must be at most the amount paid)"
    full = gateway.refund(info, 150_000, "rf_full", ctx)  # type 02 after a partial refund
    assert (full.status, full.raw["vnp_ResponseCode"]) == ("failed", "04")
    assert full.message == "VNPay refund 04: a full refund is not allowed after a partial refund"
    over = gateway.refund(info, 110_000, "rf_over", ctx)  # partial, but more than is left
    assert (over.status, over.raw["vnp_ResponseCode"]) == ("failed", "02")
    assert over.message == "VNPay refund 02: the total refunded would be greater than the original amount"
    rest = gateway.refund(info, 100_000, "rf_rest", ctx)
    assert rest.status == "succeeded"
    more = gateway.refund(info, 1_000, "rf_more", ctx)
    assert (more.status, more.raw["vnp_ResponseCode"]) == ("failed", "02")
    assert load("vnpay", "txn", order_id(payment))["amount_refunded"] == 15_000_000


def test_refund_of_an_unpaid_order_is_91(http, factories):
    payment, _ = start(http, factories)
    gateway, info, ctx = adapter_for(payment, VN)
    result = gateway.refund(info, payment.amount, "rf_unpaid", ctx)
    assert (result.status, result.raw["vnp_ResponseCode"]) == ("failed", "91")
    assert result.message == "VNPay refund 91: no such transaction to refund"


def test_refund_answered_99_is_unknown_and_waits_for_a_person(http, factories, run_jobs):
    """VNPay's 99 (and 98, 94) says nothing about whether the refund was made, and VNPay does not de-duplicate
    refunds on our id: the refund service does not send it again by itself."""
    payment, _ = pay(http, factories)
    run_jobs()
    gateway, info, ctx = adapter_for(payment, VN)
    result = gateway.refund(info, 10_000, "rf_99", replace(ctx, credentials={**ctx.credentials, "tmn_code": "NOPE0000"}))
    assert (result.status, result.raw["vnp_ResponseCode"]) == ("unknown", "99")
    assert load("vnpay", "txn", order_id(payment))["amount_refunded"] == 0

    update_gateway_account(payment.merchant, "vnpay", enabled=True, mode="sandbox", credentials={"tmn_code": "NOPE0000"})
    refund = refund_through_service(payment, 10_000, run_jobs)
    assert refund.status == "pending" and refund.needs_attention and refund.attempts == 1
    assert "VNPay refund 99" in refund.failure_message and payment.amount_refunded == 10_000  # still reserved


def test_full_refund_is_type_02(http, factories, run_jobs):
    payment, _ = pay(http, factories, amount=20_000)
    run_jobs()
    gateway, info, ctx = adapter_for(payment, VN)
    result = gateway.refund(info, 20_000, "rf_full", ctx)
    assert result.status == "succeeded" and result.raw["vnp_TransactionType"] == "02"
    again = gateway.refund(info, 20_000, "rf_full", ctx)  # the same request id within 5 minutes: 94
    assert (again.status, again.raw["vnp_ResponseCode"]) == ("unknown", "94")  # our earlier attempt got there
    assert load("vnpay", "txn", order_id(payment))["amount_refunded"] == 2_000_000  # refunded once
    [key] = get_redis().keys("sandbox:vnpay:request:*rffull")
    assert 0 < get_redis().ttl(key) <= 300  # VNPay's duplicate window is 5 minutes


def test_refund_of_a_failed_payment_is_refused(http, factories, run_jobs):
    payment, _ = pay(http, factories, "failure")
    run_jobs()
    gateway, info, ctx = adapter_for(payment, VN)
    result = gateway.refund(info, payment.amount, "rf_x", ctx)
    assert result.status == "failed" and result.raw["vnp_ResponseCode"] == "95"


# The checksum orders, written out once more from VNPay's docs (independent of the module's field lists).
REFUND_ORDER = ("RequestId|Version|Command|TmnCode|TransactionType|TxnRef|Amount|TransactionNo|TransactionDate|"
                "CreateBy|CreateDate|IpAddr|OrderInfo")
REFUND_ANSWER_ORDER = ("ResponseId|Command|ResponseCode|Message|TmnCode|TxnRef|Amount|BankCode|PayDate|"
                       "TransactionNo|TransactionType|TransactionStatus|OrderInfo")
QUERY_ANSWER_ORDER = REFUND_ANSWER_ORDER + "|PromotionCode|PromotionAmount"


def checksum_in_order(order, values, secret=SECRET):
    joined = "|".join(str(values.get(f"vnp_{name}", "")) for name in order.split("|"))
    return hmac.new(secret.encode(), joined.encode(), hashlib.sha512).hexdigest()


def api_call(http, body, order=REFUND_ORDER, secret=SECRET):
    body = {**body, "vnp_SecureHash": checksum_in_order(order, body, secret)}
    response = http.post("/sandbox/vnpay/merchant_webapi/api/transaction", json=body)
    assert response.status_code == 200
    return response.json()


def refund_body(payment, params, **changes):
    return {"vnp_RequestId": f"r{time.time_ns()}", "vnp_Version": "2.1.0", "vnp_Command": "refund",
            "vnp_TmnCode": SANDBOX_CREDENTIALS["tmn_code"], "vnp_TransactionType": "03",
            "vnp_TxnRef": order_id(payment), "vnp_Amount": "1000000", "vnp_TransactionNo": params["vnp_TransactionNo"],
            "vnp_TransactionDate": load("vnpay", "txn", order_id(payment))["create_date"], "vnp_CreateBy": "test",
            "vnp_CreateDate": vn_time(datetime.now(UTC)), "vnp_IpAddr": "127.0.0.1", "vnp_OrderInfo": "Refund",
            **changes}


def test_simulator_answers_are_signed_in_vnpays_response_order(http, factories, run_jobs):
    payment, params = pay(http, factories)
    run_jobs()
    refund = api_call(http, refund_body(payment, params))
    assert refund["vnp_ResponseCode"] == "00"
    assert refund["vnp_SecureHash"] == checksum_in_order(REFUND_ANSWER_ORDER, refund)
    refused = api_call(http, refund_body(payment, params, vnp_Amount="999999900"))
    assert refused["vnp_ResponseCode"] == "93"
    assert refused["vnp_SecureHash"] == checksum_in_order(REFUND_ANSWER_ORDER, refused)
    query = api_call(http, {"vnp_RequestId": f"q{time.time_ns()}", "vnp_Version": "2.1.0", "vnp_Command": "querydr",
                            "vnp_TmnCode": SANDBOX_CREDENTIALS["tmn_code"], "vnp_TxnRef": order_id(payment),
                            "vnp_TransactionDate": refund_body(payment, params)["vnp_TransactionDate"],
                            "vnp_CreateDate": vn_time(datetime.now(UTC)), "vnp_IpAddr": "127.0.0.1",
                            "vnp_OrderInfo": "Query"},
                     order="RequestId|Version|Command|TmnCode|TxnRef|TransactionDate|CreateDate|IpAddr|OrderInfo")
    assert query["vnp_ResponseCode"] == "00" and query["vnp_PromotionCode"] == query["vnp_PromotionAmount"] == ""
    assert query["vnp_SecureHash"] == checksum_in_order(QUERY_ANSWER_ORDER, query)
    assert query["vnp_SecureHash"] != checksum_in_order(REFUND_ANSWER_ORDER, query)  # the empty fields count


def test_simulator_refund_codes_for_bad_checksum_and_duplicates(http, factories, run_jobs):
    payment, params = pay(http, factories)
    run_jobs()
    forged = api_call(http, refund_body(payment, params), secret="not-the-secret")
    assert forged["vnp_ResponseCode"] == "97"
    body = refund_body(payment, params)
    assert api_call(http, body)["vnp_ResponseCode"] == "00"
    assert api_call(http, body)["vnp_ResponseCode"] == "94"
    assert load("vnpay", "txn", order_id(payment))["amount_refunded"] == 1_000_000


@pytest.mark.parametrize("answer", [
    {"vnp_ResponseCode": "00", "vnp_Message": "Refund success"},  # unsigned
    {"vnp_ResponseCode": "00", "vnp_Message": "Refund success", "vnp_SecureHash": "ab" * 64},  # forged
    {"vnp_ResponseCode": "91", "vnp_Message": "Transaction not found"},  # an unsigned refusal is not trusted either
])
def test_adapter_refuses_an_answer_without_a_valid_checksum(http, factories, run_jobs, answer):
    payment, _ = pay(http, factories)
    run_jobs()
    gateway, info, ctx = adapter_for(payment, VN)
    fake = ScriptedReceiver((200, json.dumps({"vnp_ResponseId": "x", "vnp_Command": "refund", **answer}).encode(),
                             {"Content-Type": "application/json"}))
    try:
        for call in (lambda c: gateway.refund(info, 10_000, "rf_fake", c), lambda c: gateway.query(info, c)):
            with pytest.raises(GatewayError, match="no valid checksum"):
                call(replace(ctx, base_url=fake.url))
    finally:
        fake.close()
    assert len(fake.hits) == 2


def test_adapter_checks_answers_with_vnpays_response_order(http, factories, run_jobs):
    payment, _ = pay(http, factories)
    run_jobs()
    gateway, info, ctx = adapter_for(payment, VN)
    answer = {"vnp_ResponseId": "x", "vnp_Command": "refund", "vnp_ResponseCode": "00", "vnp_Message": "ok",
              "vnp_TmnCode": SANDBOX_CREDENTIALS["tmn_code"], "vnp_TxnRef": order_id(payment),
              "vnp_Amount": "1000000", "vnp_BankCode": "NCB", "vnp_PayDate": "20260101120000",
              "vnp_TransactionNo": "123", "vnp_TransactionType": "03", "vnp_TransactionStatus": "05",
              "vnp_OrderInfo": "Refund"}
    fake = ScriptedReceiver((200, json.dumps({**answer, "vnp_SecureHash": checksum_in_order(
        REFUND_ANSWER_ORDER, answer)}).encode(), {"Content-Type": "application/json"}))
    try:
        result = gateway.refund(info, 10_000, "rf_fake", replace(ctx, base_url=fake.url))
    finally:
        fake.close()
    assert (result.status, result.gateway_reference) == ("succeeded", "123")


def test_simulator_refuses_wrong_credentials(http, factories):
    payment, pay_url = start(http, factories)
    forged = {**query_of(pay_url)}
    forged["vnp_SecureHash"] = sign_params("wrong", forged)
    page = http.get("/sandbox/vnpay/paymentv2/vpcpay.html?" + urlencode(forged))
    assert page.status_code == 400 and "code=70" in page.text
    gateway, info, ctx = adapter_for(payment, VN)
    bad = replace(ctx, credentials={"tmn_code": "NOPE0000", "hash_secret": SECRET})
    with pytest.raises(GatewayError) as exc:
        gateway.query(info, bad)
    assert exc.value.code == "02"


def test_simulator_refuses_amounts_outside_vnpays_range(http, factories):
    payment, pay_url = start(http, factories, amount=4_000)
    page = http.get(pay_url)
    assert page.status_code == 400 and "code=03" in page.text and "5,000" in page.text


def test_dates_are_gmt7_whatever_the_server_zone(http, factories, monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")  # the live server runs in this process: it sees it too
    time.tzset()
    try:
        payment, pay_url = start(http, factories)
        created = datetime.strptime(query_of(pay_url)["vnp_CreateDate"], "%Y%m%d%H%M%S")
        vietnam_now = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=7)
        assert abs((created - vietnam_now).total_seconds()) < 10
        assert vn_time(datetime(2021, 1, 1, 0, 0)) == "20210101070000"
    finally:
        monkeypatch.undo()
        time.tzset()


# --- signatures ----------------------------------------------------------------------------------------------

IPN_VECTOR = {
    "vnp_Amount": "1000000", "vnp_BankCode": "NCB", "vnp_BankTranNo": "VNP14422574", "vnp_CardType": "ATM",
    "vnp_OrderInfo": "Thanh toan don hang 2024-05-21T02:17:31.249Z", "vnp_PayDate": "20240521091806",
    "vnp_ResponseCode": "00", "vnp_TmnCode": "TEST_TMN_CODE", "vnp_TransactionNo": "14422574",
    "vnp_TransactionStatus": "00", "vnp_TxnRef": "1716257871703",
}


def test_published_ipn_vector():
    assert hash_data(IPN_VECTOR) == (
        "vnp_Amount=1000000&vnp_BankCode=NCB&vnp_BankTranNo=VNP14422574&vnp_CardType=ATM&vnp_OrderInfo=Thanh+toan+"
        "don+hang+2024-05-21T02%3A17%3A31.249Z&vnp_PayDate=20240521091806&vnp_ResponseCode=00&vnp_TmnCode="
        "TEST_TMN_CODE&vnp_TransactionNo=14422574&vnp_TransactionStatus=00&vnp_TxnRef=1716257871703")
    expected = ("649982421beb422556a1374713c74e58e716ecbd05007c0c0e1f7effdfaf361dbf146889ca446139afe11b9954c4d5c4"
                "86e99e3b86fcfab6957f29eb0be72895")
    assert sign_params("test_secret", IPN_VECTOR) == expected
    assert verify_params("test_secret", {**IPN_VECTOR, "vnp_SecureHash": expected.upper(), "vnp_SecureHashType": "x"})
    assert not verify_params("test_secret", {**IPN_VECTOR, "vnp_ResponseCode": "99", "vnp_SecureHash": expected})


def test_derived_pay_url_vector():
    params = dict(vnp_Amount="100000", vnp_BankCode="NCB", vnp_Command="pay", vnp_CreateDate="20210101070000",
                  vnp_CurrCode="VND", vnp_IpAddr="127.0.0.1", vnp_Locale="vn", vnp_OrderInfo="Test order",
                  vnp_OrderType="other", vnp_ReturnUrl="https://example.com/return", vnp_TmnCode="TEST_TMN_CODE",
                  vnp_TxnRef="ref1234567", vnp_Version="2.1.0")
    assert sign_params("test_secret", params) == (
        "d8e4eb24f51f157d6898a30ced0539e4f8f6dec834c0ab10d6cf9d768f9785ce8ba2edf1aab9a12d4561b162cde07d9b40883795"
        "23e61c642056d8b04095132b")


def test_derived_querydr_and_refund_checksums():
    query = dict(zip(QUERY_FIELDS, "REQ0001|2.1.0|querydr|TEST_TMN_CODE|ref1234567|20210101070000|20210101080000|"
                                   "127.0.0.1|Query order ref1234567".split("|"), strict=True))
    assert pipe_checksum("test_secret", query, QUERY_FIELDS).startswith("8ee454d1f258e1959ee0ad1fc174aaee")
    refund = dict(zip(REFUND_FIELDS, "REQ0002|2.1.0|refund|TEST_TMN_CODE|02|ref1234567|100000|0|20210101070000|admin|"
                                     "20210101090000|127.0.0.1|Refund ref1234567".split("|"), strict=True))
    assert pipe_checksum("test_secret", refund, REFUND_FIELDS).startswith("11a59a8fc29352af4f6369087a2dc169")


@settings(max_examples=60, deadline=None)
@given(field=st.sampled_from(sorted(IPN_VECTOR)), value=st.text(min_size=1, max_size=30))
def test_changing_any_signed_field_breaks_the_signature(field, value):
    signed = {**IPN_VECTOR, "vnp_SecureHash": sign_params("test_secret", IPN_VECTOR)}
    if value == IPN_VECTOR[field]:
        value += "x"
    assert not verify_params("test_secret", {**signed, field: value})


@settings(max_examples=30, deadline=None)
@given(field=st.sampled_from(QUERY_FIELDS), value=st.text(alphabet="0123456789abcXYZ", min_size=1, max_size=12))
def test_changing_any_querydr_field_changes_the_checksum(field, value):
    base = dict(zip(QUERY_FIELDS, ["R1", "2.1.0", "querydr", "T", "ref", "20210101070000", "20210101080000",
                                   "127.0.0.1", "info"], strict=True))
    if value == base[field]:
        value += "0"
    assert pipe_checksum("s", base, QUERY_FIELDS) != pipe_checksum("s", {**base, field: value}, QUERY_FIELDS)


def test_amount_scaling():
    assert from_vnp_amount("1000000") == 10_000
    assert from_vnp_amount("1000050") is None and from_vnp_amount("-100") is None and from_vnp_amount("") is None


def test_offered_to_new_merchants_and_on_the_demo_checkout(app, http):
    assert_offered_everywhere(app, http, "vnpay", "VND")


def test_partial_and_full_refund_through_the_refund_service(http, factories, run_jobs):
    payment, params = pay(http, factories, amount=150_000)
    run_jobs()
    first = refund_through_service(payment, 40_000, run_jobs)
    assert first.status == "succeeded" and payment.status == "partially_refunded"
    rest = refund_through_service(payment, 110_000, run_jobs)
    assert rest.status == "succeeded" and payment.status == "refunded" and payment.amount_refunded == 150_000
    assert load("vnpay", "txn", order_id(payment))["amount_refunded"] == 15_000_000


# --- empty parameters (issue 14 item 10) ---------------------------------------------------------------------
# VNPay's PHP/Python/Node demos hash every parameter sent, empty or not; its Java/.NET demos skip empty values.
# These are written from those demos, independently of the adapter and the simulator.


def php_style(params):
    keys = sorted(k for k in params if k.startswith("vnp_") and k not in ("vnp_SecureHash", "vnp_SecureHashType"))
    return "&".join(f"{quote_plus(k)}={quote_plus(params[k])}" for k in keys)


def java_style(params):
    return php_style({k: v for k, v in params.items() if v != ""})


def _hmac512(secret, data):
    return hmac.new(secret.encode(), data.encode(), hashlib.sha512).hexdigest()


SAFE = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _.:-/", max_size=20)


@settings(max_examples=150, deadline=None)
@given(params=st.dictionaries(st.from_regex(r"vnp_[A-Za-z]{1,12}", fullmatch=True), SAFE, max_size=12))
def test_our_signed_url_verifies_under_both_of_vnpays_rules(params):
    url = signed_url("https://sandbox.vnpayment.vn/paymentv2/vpcpay.html", "s3cret", params)
    sent = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    assert all(v != "" for v in sent.values())  # never an empty parameter
    assert {k: v for k, v in sent.items() if k != "vnp_SecureHash"} == {
        k: v for k, v in params.items() if v != "" and k not in ("vnp_SecureHash", "vnp_SecureHashType")}
    assert sent["vnp_SecureHash"] == _hmac512("s3cret", php_style(sent)) == _hmac512("s3cret", java_style(sent))
    assert verify_params("s3cret", sent)


def test_the_pay_url_we_send_has_no_empty_parameter_and_no_bank_code(http, factories):
    payment, pay_url = start(http, factories)
    sent = dict(parse_qsl(urlsplit(pay_url).query, keep_blank_values=True))
    assert "vnp_BankCode" not in sent and all(v != "" for v in sent.values())
    assert sent["vnp_SecureHash"] == _hmac512(SECRET, php_style(sent)) == _hmac512(SECRET, java_style(sent))


@pytest.mark.parametrize("rule", [php_style, java_style])
def test_simulator_takes_an_empty_bank_code_signed_either_way(http, factories, rule):
    payment, pay_url = start(http, factories)
    params = {k: v for k, v in query_of(pay_url).items() if k != "vnp_SecureHash"}
    params["vnp_BankCode"] = ""
    assert php_style(params) != java_style(params)
    url = "/sandbox/vnpay/paymentv2/vpcpay.html?" + php_style(params) + "&vnp_SecureHash=" + _hmac512(SECRET, rule(params))
    page_url = follow(http, http.get(url, allow_redirects=False))
    page = http.get(page_url)
    assert page.status_code == 200 and {"success", "failure", "cancel"} <= form_action_outcomes(page.text)
    token = dict(parse_qsl(urlsplit(page_url).query))["token"]
    assert "vnp_BankCode" not in load("vnpay", "page", token)["params"]  # as if not sent: the shopper chooses


def test_simulator_refuses_an_empty_parameter_signed_by_neither_rule(http, factories):
    payment, pay_url = start(http, factories)
    params = {k: v for k, v in query_of(pay_url).items() if k != "vnp_SecureHash"}
    params["vnp_BankCode"] = ""
    wrong = _hmac512(SECRET, php_style({**params, "vnp_BankCode": "NCB"}))
    page = http.get("/sandbox/vnpay/paymentv2/vpcpay.html?" + php_style(params) + "&vnp_SecureHash=" + wrong)
    assert page.status_code == 400 and "code=70" in page.text


def test_simulator_refuses_a_required_parameter_sent_empty(http, factories):
    payment, pay_url = start(http, factories)
    params = {k: v for k, v in query_of(pay_url).items() if k != "vnp_SecureHash"}
    params["vnp_OrderType"] = ""
    page = http.get("/sandbox/vnpay/paymentv2/vpcpay.html?" + php_style(params) + "&vnp_SecureHash="
                    + _hmac512(SECRET, php_style(params)))
    assert page.status_code == 400 and "code=03" in page.text and "vnp_OrderType" in page.text


def test_adapter_accepts_vnpays_hash_of_an_empty_value_either_way():
    params = {**IPN_VECTOR, "vnp_BankTranNo": ""}
    for rule in (php_style, java_style):
        assert verify_params("test_secret", {**params, "vnp_SecureHash": _hmac512("test_secret", rule(params))})
    assert not verify_params("test_secret", {**params, "vnp_SecureHash": _hmac512("other", php_style(params))})
