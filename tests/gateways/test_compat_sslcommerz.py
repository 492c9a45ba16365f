"""SSLCommerz as its official Python library and its recorded answers see it (issue 14, items 5 and 6).

- Real validation answers (tests/gateways/fixtures/sslcommerz, each naming its source) are read by our adapter
  directly, and the simulator's validation answer carries every field they carry.
- `sslcommerz-lib` (SSLCommerz's official Python library, 1.0) is driven unchanged against the simulator over
  real HTTP: createSession, the hosted page, `hash_validate_ipn` on what the simulator signs,
  validationTransactionOrder, transaction_query_tranid, init_refund (which sends no refund_trans_id),
  query_refund_status.
"""

import pytest
import requests

from app.gateways.base import Outcome
from app.gateways.sslcommerz import SSLCommerzGateway
from app.sandbox import sslcommerz as sim
from tests.gateways._sc_helpers import form_fields
from tests.gateways.fixtures import load

STORE = sim.SANDBOX_CREDENTIALS
ISSUE_FIELDS = {"emi_instalment", "emi_amount", "emi_description", "emi_issuer", "account_details", "card_ref_id",
                "offer_avail", "campaign_code", "card_category", "card_sub_brand", "isTokeizeSuccess"}


def test_a_recorded_validation_answer_maps_to_a_success_with_its_fee():
    answer, _source = load("sslcommerz", "validation_valid")
    result = SSLCommerzGateway()._result(answer, raw=answer)
    assert result.outcome == Outcome.SUCCEEDED and not result.needs_review
    assert (result.amount, result.currency, result.fee_amount) == (35_600, "BDT", 890)  # 356.00 - 347.10
    assert result.order_id == "42751b81-cbb7-4ddb-bb35-4718d5dd4d32"
    assert result.gateway_transaction_id == "2202281328380bKgf4dHBaJzjkU"


def test_a_recorded_risky_validation_answer_is_held_for_review():
    answer, _source = load("sslcommerz", "validation_risky")
    result = SSLCommerzGateway()._result(answer, raw=answer)
    assert result.outcome == Outcome.PROCESSING and result.needs_review


@pytest.fixture
def sslcz(live_url, monkeypatch):
    from sslcommerz_lib import SSLCOMMERZ

    client = SSLCOMMERZ({"store_id": STORE["store_id"], "store_pass": STORE["store_passwd"], "issandbox": True})
    base = f"{live_url}/sandbox/sslcommerz"
    client.createSessionUrl = base + "/gwprocess/v4/api.php"
    client.validation_url = base + "/validator/api/validationserverAPI.php"
    client.transaction_url = base + "/validator/api/merchantTransIDvalidationAPI.php"
    return client


def _paid(sslcz, tran_id="SCLIB-1", amount="150.25"):
    session = sslcz.createSession({
        "total_amount": amount, "currency": "BDT", "tran_id": tran_id, "success_url": "https://shop.example/ok",
        "fail_url": "https://shop.example/fail", "cancel_url": "https://shop.example/cancel", "emi_option": 0,
        "cus_name": "test", "cus_email": "test@test.com", "cus_phone": "01700000000", "cus_add1": "address",
        "cus_city": "Dhaka", "cus_country": "Bangladesh", "shipping_method": "NO", "multi_card_name": "",
        "num_of_item": 1, "product_name": "Test", "product_category": "Test Category",
        "product_profile": "general"})
    assert session["status"] == "SUCCESS", session
    page = requests.post(session["GatewayPageURL"], data={"outcome": "success"}, timeout=10)
    action, fields = form_fields(page.text)
    assert action == "https://shop.example/ok"
    return fields


def test_sslcommerz_lib_full_flow(sslcz):
    fields = _paid(sslcz)
    assert sslcz.hash_validate_ipn(fields) is True
    assert sslcz.hash_validate_ipn({**fields, "amount": "1.00"}) is False
    validated = sslcz.validationTransactionOrder(fields["val_id"])
    assert validated["status"] == "VALID" and validated["APIConnect"] == "DONE"
    assert ISSUE_FIELDS <= set(validated)
    assert sslcz.validationTransactionOrder(fields["val_id"])["status"] == "VALIDATED"
    found = sslcz.transaction_query_tranid("SCLIB-1")
    assert found["no_of_trans_found"] == 1 and found["element"][0]["status"] == "VALID"
    refund = sslcz.init_refund(fields["bank_tran_id"], "50.25", "customer asked")  # no refund_trans_id
    assert refund["APIConnect"] == "DONE" and refund["status"] == "success" and refund["refund_ref_id"]
    status = sslcz.query_refund_status(refund["refund_ref_id"])
    assert status["status"] == "refunded"


def test_the_simulators_validation_answer_has_every_recorded_field(sslcz):
    fields = _paid(sslcz, "SCLIB-2")
    ours = sslcz.validationTransactionOrder(fields["val_id"])
    recorded, _source = load("sslcommerz", "validation_valid")
    assert set(recorded) <= set(ours), set(recorded) - set(ours)
    # the same JSON types as the recorded answer (offer_avail and isTokeizeSuccess are numbers there)
    assert {k: type(v) for k, v in ours.items() if k in recorded} == {
        k: type(v) for k, v in recorded.items() if k in ours}
