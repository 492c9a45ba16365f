"""Khalti as `nepal-gateways` (a client written against Khalti's ePayment v2) sees it, unchanged, over real HTTP:
initiate, the hosted page, the browser return, verification by lookup (issue 14's compatibility list)."""

from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from app.sandbox.khalti import SANDBOX_CREDENTIALS


@pytest.fixture
def khalti(live_url):
    from nepal_gateways import KhaltiClient

    client = KhaltiClient({"mode": "sandbox", "live_secret_key": SANDBOX_CREDENTIALS["secret_key"],
                           "return_url_config": "https://shop.example/khalti/return",
                           "website_url_config": "https://shop.example"})
    base = f"{live_url}/sandbox/khalti/api/v2/"  # the library's own paths under the simulator's base
    client.initiation_endpoint, client.lookup_endpoint = base + "epayment/initiate/", base + "epayment/lookup/"
    return client


def _returned(khalti, outcome):
    started = khalti.initiate_payment(amount=15_000, order_id="NG-1", description="Two momos")
    assert started.is_redirect_required and started.redirect_url
    back = requests.post(started.redirect_url, data={"outcome": outcome}, allow_redirects=False, timeout=10)
    assert back.status_code == 302 and back.headers["Location"].startswith("https://shop.example/khalti/return?")
    return dict(parse_qsl(urlsplit(back.headers["Location"]).query))


def test_nepal_gateways_khalti_paid(khalti):
    verified = khalti.verify_payment(_returned(khalti, "success"), order_id_from_merchant_system="NG-1",
                                     amount_from_merchant_system=15_000)
    assert verified.is_successful and verified.status_code == "Completed" and verified.verified_amount == 15_000


def test_nepal_gateways_khalti_cancelled(khalti):
    """Khalti answers a cancelled payment's lookup with HTTP 400 (its docs' status-code table); the library
    raises its typed VerificationError with Khalti's body."""
    from nepal_gateways.core.exceptions import VerificationError

    with pytest.raises(VerificationError, match="User canceled"):
        khalti.verify_payment(_returned(khalti, "cancel"))
