"""Real Nagad verify answers (tests/gateways/fixtures/nagad, quoted in public integrations) read by our adapter.

Nagad does not sign verify/payment (plain JSON), so there is no signature to check: what the adapter checks is
that the answer names our merchantId, orderId and paymentRefId, then maps `status` and the amount. No real
Aborted/Cancelled/Failed verify answer was found quoted anywhere (integrations only test `status === 'Aborted'`
on the callback), so only Success answers are recorded.
"""

from types import SimpleNamespace

import pytest

from app.gateways.base import GatewayContext, GatewayError, Outcome
from app.gateways.nagad import NagadGateway
from tests.gateways.fixtures import load


class _Answer:
    status_code = 200

    def __init__(self, data):
        self._data = data

    def json(self):
        return self._data


def _query(answer, **payment):
    gateway = NagadGateway()
    calls = []

    def http(method, url, **kwargs):
        calls.append((method, url))
        return _Answer(answer)

    gateway.http = http
    ctx = GatewayContext(code="nagad", credentials={"merchant_id": answer["merchantId"]}, mode="sandbox",
                         base_url=NagadGateway.base_urls["sandbox"], public_base_url="https://pay.example")
    info = SimpleNamespace(order_id=answer["orderId"], gateway_reference=answer["paymentRefId"], **payment)
    result = gateway.query(info, ctx)
    return result, calls


@pytest.mark.parametrize(("name", "amount"), [("verify_success", 500), ("verify_success_2022", 2000)])
def test_published_success_answers(name, amount):
    answer, _source = load("nagad", name)
    result, calls = _query(answer)
    assert calls == [("GET", f"{NagadGateway.base_urls['sandbox']}/api/dfs/verify/payment/{answer['paymentRefId']}")]
    assert (result.outcome, result.amount, result.currency) == (Outcome.SUCCEEDED, amount, "BDT")
    assert result.order_id == answer["orderId"]
    assert result.gateway_reference == answer["paymentRefId"]
    assert result.gateway_transaction_id == answer["issuerPaymentRefNo"]
    assert result.failure_code is None
    assert result.card_summary == f"Nagad {answer['clientMobileNo']}"  # masked by Nagad: 016****7504


@pytest.mark.parametrize("field", ["merchantId", "orderId", "paymentRefId"])
def test_a_real_answer_for_another_payment_is_refused(field):
    answer, _source = load("nagad", "verify_success")
    gateway = NagadGateway()
    gateway.http = lambda method, url, **kw: _Answer(answer)
    expected = {"merchantId": answer["merchantId"], "orderId": answer["orderId"],
                "paymentRefId": answer["paymentRefId"], field: "someone-else"}
    ctx = GatewayContext(code="nagad", credentials={"merchant_id": expected["merchantId"]}, mode="sandbox",
                         base_url="http://nagad.test", public_base_url="https://pay.example")
    info = SimpleNamespace(order_id=expected["orderId"], gateway_reference=expected["paymentRefId"])
    with pytest.raises(GatewayError) as exc:
        gateway.query(info, ctx)
    assert exc.value.code == "mismatch" and exc.value.raw == answer


def test_real_answers_carry_whole_taka_amounts_and_null_optionals():
    """Real answers give `amount` as "5"/"20" (no decimals) and JSON nulls for unset fields; both parse."""
    for name in ("verify_success", "verify_success_2022"):
        answer, _source = load("nagad", name)
        assert "." not in answer["amount"] and answer["additionalMerchantInfo"] is None
        result, _calls = _query(answer)
        assert result.amount == int(answer["amount"]) * 100
