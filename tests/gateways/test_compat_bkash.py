"""bKash as other people's clients and bKash's recorded answers see it (issue 14, items 2-4).

- Recorded real answers (tests/gateways/fixtures/bkash, each naming where it was published) are read by our
  adapter directly: the payment query names the invoice `merchantInvoice`, execute `merchantInvoiceNumber`.
- `pybkash` (sync, httpx) and `bkash-pgw-tokenized` (async, httpx) are driven unchanged against the simulator
  over real HTTP (the live test server): grant, create (pybkash sends the amount as a JSON number), the wallet
  page, execute, query, searchTransaction, refund.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from app.gateways.base import Outcome
from app.gateways.bkash import BkashGateway
from app.sandbox import bkash as sim
from tests.gateways.fixtures import load

CREDS = sim.SANDBOX_CREDENTIALS
WALLET = "01770618575"


# --- recorded answers, read by our adapter ----------------------------------------------------------------------


def test_a_recorded_query_answer_gives_the_invoice_amount_and_outcome():
    answer, _source = load("bkash", "query_completed")
    result = BkashGateway()._result(answer, raw=answer)
    assert result.outcome == Outcome.SUCCEEDED
    assert (result.amount, result.currency) == (10_000, "BDT")  # "100" taka in paisa
    assert result.order_id == "485605798"  # from merchantInvoice: the query has no merchantInvoiceNumber
    assert (result.gateway_reference, result.gateway_transaction_id) == ("TR0011FN1674417661851", "AAN20A8HOI")


def test_a_recorded_execute_answer_gives_the_invoice_and_wallet():
    answer, _source = load("bkash", "execute_completed")
    result = BkashGateway()._result(answer, raw=answer)
    assert result.outcome == Outcome.SUCCEEDED and result.amount == 1_000
    assert result.order_id == "64ff4dd6*****" and result.card_summary == "bKash 018777*****"


def test_the_simulators_answers_have_the_recorded_fields(http, live_url):
    """Same keys as the recorded answers, for query, execute, search and refund."""
    api = _Api(live_url)
    payment_id = api.create(amount="100")["paymentID"]
    _approve(live_url, payment_id)
    executed = api.call("execute", paymentID=payment_id)
    queried = api.call("payment/status", paymentID=payment_id)
    searched = api.call("general/searchTransaction", trxID=executed["trxID"])
    refunded = api.call("payment/refund", paymentID=payment_id, trxID=executed["trxID"], amount="5", sku="s",
                        reason="r")
    for name, ours in (("execute_completed", executed), ("query_completed", queried),
                       ("search_completed", searched), ("refund_completed", refunded)):
        recorded, _source = load("bkash", name)
        assert set(recorded) <= set(ours), (name, set(recorded) - set(ours))
    assert "merchantInvoiceNumber" not in queried and queried["verificationStatus"] == "Complete"
    assert "merchantInvoice" not in executed


# --- the simulator takes what bKash takes -----------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "echoed"), [(10, "10"), (10.5, "10.5"), ("10", "10"), ("10.50", "10.50"),
                                                (125.05, "125.05")])
def test_create_takes_the_amount_as_a_string_or_a_json_number(live_url, amount, echoed):
    answer = _Api(live_url).create(amount=amount)
    assert answer["statusCode"] == "0000" and answer["amount"] == echoed


@pytest.mark.parametrize("amount", [True, 0, -5, 10.123, "ten", "", None, [10], 1e300])
def test_create_refuses_what_is_not_an_amount(live_url, amount):
    answer = _Api(live_url).create(amount=amount)
    assert answer["statusCode"] in ("2006", "2065")


@given(st.integers(min_value=1, max_value=10**9), st.integers(min_value=0, max_value=99))
def test_an_amount_reads_the_same_as_a_string_and_as_a_number(taka, paisa):
    text = f"{taka}.{paisa:02d}"
    assert Decimal(sim.bkash_amount(text)) == Decimal(sim.bkash_amount(float(text)) or "0") == Decimal(text)


def test_search_of_an_unknown_trx_id_is_2033(live_url):
    assert _Api(live_url).call("general/searchTransaction", trxID="NOPE000000")["statusCode"] == "2033"


# --- third-party clients, unchanged -----------------------------------------------------------------------------


def test_pybkash_full_flow(live_url):
    from pybkash import Client, Token

    token = Token(CREDS["username"], CREDS["password"], CREDS["app_key"], CREDS["app_secret"], sandbox=True)
    token.base_url = f"{live_url}/sandbox/bkash/v1.2.0-beta"
    with Client(token) as client:
        created = client.create_payment(f"{live_url}/shop/bkash", WALLET, 125.5, invoice_number="INV-77")
        _approve(live_url, created.payment_id)
        executed = client.execute_payment(created.payment_id)
        assert executed.transaction_status == "Completed" and executed.merchant_invoice_number == "INV-77"
        queried = client.query_payment(created.payment_id)
        assert (queried.merchant_invoice, queried.verification_status) == ("INV-77", "Complete")
        found = client.search_trx(executed.trx_id)
        assert found.amount == "125.5" and found.transaction_status == "Completed"
        refund = client.execute_refund(created.payment_id, executed.trx_id, 25.5, sku="re_1", reason="test")
        assert refund.transaction_status == "Completed" and refund.amount == "25.5"


def test_bkash_pgw_tokenized_full_flow(live_url):
    from bkash_pgw_tokenized import Bkash

    async def flow():
        client = Bkash({**CREDS, "sandbox": True, "base_url": f"{live_url}/sandbox/bkash/v1.2.0-beta"})
        token = (await client.grant_token())["id_token"]
        created = await client.create_payment(token, mode="0011", payer_reference=WALLET,
                                              callback_url=f"{live_url}/shop/bkash", amount="300",
                                              currency="BDT", intent="sale", merchant_invoice_number="INV-78")
        await asyncio.to_thread(_approve, live_url, created["paymentID"])
        executed = await client.execute_payment(token, created["paymentID"])
        status = await client.payment_status(token, created["paymentID"])
        found = await client.search_transaction(token, executed["trxID"])
        refund = await client.refund(token, payment_id=created["paymentID"], trx_id=executed["trxID"],
                                     amount="300", sku="re_2", reason="test")
        refreshed = await client.refresh_token((await client.grant_token())["refresh_token"])
        return executed, status, found, refund, refreshed

    # in a thread of its own: another test (the browser tests' sync Playwright) may leave a loop on this one
    with ThreadPoolExecutor(1) as pool:
        executed, status, found, refund, refreshed = pool.submit(asyncio.run, flow()).result()
    assert executed["transactionStatus"] == status["transactionStatus"] == found["transactionStatus"] == "Completed"
    assert status["merchantInvoice"] == "INV-78" and refund["refundTrxID"] and refreshed["id_token"]


# --- helpers ------------------------------------------------------------------------------------------------------


class _Api:
    """Plain JSON calls to the simulator's API with a granted token."""

    def __init__(self, live_url):
        self.base = f"{live_url}/sandbox/bkash/v1.2.0-beta/tokenized/checkout"
        grant = requests.post(f"{self.base}/token/grant", headers={"username": CREDS["username"],
                              "password": CREDS["password"]},
                              json={"app_key": CREDS["app_key"], "app_secret": CREDS["app_secret"]}, timeout=10)
        self.headers = {"Authorization": grant.json()["id_token"], "X-APP-Key": CREDS["app_key"]}

    def call(self, path, **body):
        return requests.post(f"{self.base}/{path}", headers=self.headers, json=body, timeout=10).json()

    def create(self, amount):
        return self.call("create", mode="0011", payerReference=WALLET, callbackURL="https://shop.example/cb",
                         amount=amount, currency="BDT", intent="sale", merchantInvoiceNumber="INV-1")


def _approve(live_url, payment_id):
    """The shopper approves on the wallet page (the browser is not followed back)."""
    r = requests.post(f"{live_url}/sandbox/bkash/redirect/tokenized/", params={"paymentID": payment_id},
                      data={"outcome": "success", "wallet": WALLET}, allow_redirects=False, timeout=10)
    assert r.status_code == 302, r.text
