"""Rocket: every SSLCommerz test again under /callbacks/rocket with the merchant's `rocket` account, plus
what makes Rocket its own method (the DBBL channel preselected, taka only, its own settings row)."""

import pytest

from app.gateways import get_gateway
from app.sandbox._common import load
from tests.gateways._sc_helpers import api_payment, choose_method
from tests.gateways.test_sslcommerz import *  # noqa: F401,F403 — the same contract, run for Rocket


@pytest.fixture
def code():
    return "rocket"


def test_rocket_lands_on_the_dbbl_channel(http, factories):
    merchant, key = factories.merchant()
    assert merchant.gateway_account("rocket").credentials["store_id"]
    created = api_payment(http, key)
    page_url = choose_method(http, created, "rocket")
    assert "/sandbox/rocket/EasyCheckOut/" in page_url
    session = load("sslcommerz", "session", page_url.rsplit("/", 1)[1])
    assert session["multi_card_name"] == "dbblmobilebanking"
    assert session["urls"]["ipn_url"].endswith("/callbacks/rocket/ipn")
    page = http.get(page_url)
    assert "Pay with Rocket" in page.text
    r = http.post(page_url, data={"outcome": "success"})
    assert "DBBLMOBILEB" in r.text


def test_rocket_is_offered_for_taka_only(http, factories):
    merchant, key = factories.merchant()
    assert not get_gateway("rocket").supports("USD") and get_gateway("sslcommerz").supports("USD")
    created = api_payment(http, key, currency="USD", amount=2_000)
    page = http.get(created["checkout_url"])
    assert 'value="sslcommerz"' in page.text and 'value="rocket"' not in page.text
