"""Nagad as other people's clients see it (issue 14, items 1 and 9).

- `nagadpy` (pins cryptography<42, so it runs in a virtualenv of its own, tests/gateways/compat.py) is driven
  unchanged against the simulator over real HTTP: initialize without `accountNumber` (its own sample, Nagad's,
  marks the field "not mandatory"), complete, the shopper's page, verify.
- `originalRequestDate` of purchase/cancel is the cancel request's own date, as every client sends it.
"""

import json
from dataclasses import replace
from datetime import timedelta

import pytest
import requests

from app.gateways.nagad import dhaka_now, load_private_key, load_public_key, seal
from app.sandbox import nagad as sim
from tests.gateways._bd_helpers import adapter_and_context, pay
from tests.gateways.compat import compat_python, run_script

HEADERS = {"X-KM-Api-Version": "v-0.2.0", "X-KM-IP-V4": "127.0.0.1", "X-KM-Client-Type": "PC_WEB"}
MERCHANT_PRIVATE = load_private_key(sim.MERCHANT_PRIVATE_KEY)
NAGAD_PUBLIC = load_public_key(sim.NAGAD_PUBLIC_KEY)
MERCHANT_ID = sim.SANDBOX_CREDENTIALS["merchant_id"]


def _initialize(live_url, order_id, **extra):
    now = dhaka_now()
    plain = json.dumps({"merchantId": MERCHANT_ID, "datetime": now, "orderId": order_id, "challenge": "c" * 40})
    sensitive, signature = seal(plain, NAGAD_PUBLIC, MERCHANT_PRIVATE)
    return requests.post(f"{live_url}/sandbox/nagad/api/dfs/check-out/initialize/{MERCHANT_ID}/{order_id}",
                         headers=HEADERS, timeout=10,
                         json={"dateTime": now, "sensitiveData": sensitive, "signature": signature, **extra})


def test_initialize_without_account_number_is_accepted(live_url):
    answer = _initialize(live_url, "ORDER1")
    assert answer.status_code == 200 and set(answer.json()) == {"sensitiveData", "signature"}


def test_initialize_with_another_account_number_is_refused(live_url):
    answer = _initialize(live_url, "ORDER2", accountNumber="01999999999")
    assert answer.status_code == 400 and answer.json()["reason"] == "InvalidMerchantAccount"


def test_the_adapter_sends_the_refund_requests_own_date(http, factories, monkeypatch):
    merchant, payment, back = pay(http, factories, "nagad", "success", 125_050, wallet="01711111111")
    http.get(back)
    gateway, info, ctx = adapter_and_context(payment, "nagad")
    sealed = []
    real_seal = type(gateway)._seal
    monkeypatch.setattr(type(gateway), "_seal", lambda self, data, ctx: sealed.append(data) or real_seal(self, data, ctx))
    # a payment made three days ago is refunded today: the date sent is today's, in Bangladesh
    info = replace(info, created_at=info.created_at - timedelta(days=3))
    assert gateway.refund(info, 5_000, "re_date", ctx).status == "succeeded"
    assert sealed[-1]["originalRequestDate"] == dhaka_now("%Y%m%d")


@pytest.mark.parametrize("date", ["", "2026-01-01", "20261301", "19990101", "not a date"])
def test_the_simulator_refuses_a_request_date_that_is_not_one(http, factories, date):
    merchant, payment, back = pay(http, factories, "nagad", "success", 125_050, wallet="01711111111")
    http.get(back)
    gateway, info, ctx = adapter_and_context(payment, "nagad")
    body = {"merchantId": MERCHANT_ID, "originalRequestDate": date, "originalAmount": "1250.50",
            "cancelAmount": "10.00", "referenceNo": "re_x", "referenceMessage": "Refund"}
    sensitive, signature = seal(json.dumps(body), NAGAD_PUBLIC, MERCHANT_PRIVATE)
    answer = requests.post(f"{http.base_url}/sandbox/nagad/api/dfs/purchase/cancel", headers=HEADERS, timeout=10,
                           params={"paymentRefId": info.gateway_reference, "orderId": info.order_id},
                           json={"sensitiveDataCancelRequest": sensitive, "signature": signature})
    assert answer.status_code == 400 and answer.json()["reason"] == "InvalidSensitiveData"


NAGADPY_FLOW = r"""
import json, os, requests
from nagadpy.payment import NagadPayment
from nagadpy.payment_verify import NagadPaymentVerify
base = os.environ["BASE"]
payment = NagadPayment(base_url=base, merchant_id=os.environ["MERCHANT_ID"], callback_url=os.environ["CALLBACK"],
                       private_key=os.environ["PRIVATE_KEY"], public_key=os.environ["PUBLIC_KEY"],
                       client_ip_address="127.0.0.1")
completed = payment.checkout_process("125.50", "NGPY1")
page = completed["callBackUrl"]
back = requests.post(page, data={"outcome": "success", "wallet": "01711111111"}, allow_redirects=False)
reference = page.rstrip("/").rsplit("/", 1)[1]
verified = NagadPaymentVerify(base_url=base).verify_payment(reference)
print(json.dumps({"completed": completed, "redirect": back.headers.get("Location", ""), "verified": verified}))
"""


def test_nagadpy_full_flow(live_url):
    python = compat_python("nagadpy", "nagadpy==0.0.2", "requests")
    out = run_script(python, NAGADPY_FLOW, BASE=f"{live_url}/sandbox/nagad/api/dfs", MERCHANT_ID=MERCHANT_ID,
                     CALLBACK="https://shop.example/nagad", PRIVATE_KEY=sim.MERCHANT_PRIVATE_KEY,
                     PUBLIC_KEY=sim.NAGAD_PUBLIC_KEY)
    assert out["completed"]["status"] == "Success"
    assert out["redirect"].startswith("https://shop.example/nagad?") and "status=Success" in out["redirect"]
    verified = out["verified"]
    assert (verified["status"], verified["orderId"], verified["amount"]) == ("Success", "NGPY1", "125.50")
