"""Khalti's own published lookup answers (tests/gateways/fixtures/khalti, from its docs) read by our adapter."""

import pytest

from app.gateways.base import Outcome
from app.gateways.khalti import result_from_lookup
from tests.gateways.fixtures import load


@pytest.mark.parametrize(("name", "outcome", "amount"), [
    ("lookup_completed", Outcome.SUCCEEDED, 1000),
    ("lookup_pending", Outcome.PROCESSING, None),
    ("lookup_refunded", Outcome.REFUNDED, 1000),
    ("lookup_expired", Outcome.EXPIRED, None),
    ("lookup_canceled", Outcome.CANCELLED, None),
])
def test_published_lookup_answers(name, outcome, amount):
    answer, _source = load("khalti", name)
    result = result_from_lookup(answer, "att_1")
    assert (result.outcome, result.amount, result.currency) == (outcome, amount, "NPR")
    assert result.gateway_reference == answer["pidx"]
    assert result.gateway_transaction_id == answer["transaction_id"]


def test_both_spellings_of_partially_refunded():
    """The docs' status-code table says "Partially Refunded", its payload table "Partially refunded"."""
    for status in ("Partially Refunded", "Partially refunded"):
        assert result_from_lookup({"status": status, "total_amount": 1000}).outcome == Outcome.PARTIALLY_REFUNDED
