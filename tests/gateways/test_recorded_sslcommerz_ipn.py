"""Real SSLCommerz IPN posts (tests/gateways/fixtures/sslcommerz/ipn_*) checked by our adapter's verify_sign, and
their fields mapped to our outcome.

Both recorded IPNs were signed by SSLCommerz's sandbox with a password we know: the official Python library's
sample pairs store test_testemi with test_testemi@ssl, and sandbox stores are given `<store_id>@ssl`. So the real
verify_sign (md5) and verify_sign_sha2 (sha256) are checked as they are. No real FAILED/CANCELLED IPN was found
quoted with its signature; a VALID one whose status is changed to FAILED or CANCELLED no longer verifies, and one
re-signed as FAILED/CANCELLED (the same algorithm) does, and maps to our outcome.
"""

import hashlib

import pytest

from app.gateways.base import Outcome
from app.gateways.sslcommerz import REQUIRED_SIGNED, SSLCommerzGateway, signing_string, verify_sign
from tests.gateways.fixtures import load

IPNS = ["ipn_valid_library_sample", "ipn_valid_2020"]


def _ipn(name):
    fields, _source = load("sslcommerz", name)
    return fields, f"{fields['store_id']}@ssl"


def _resign(fields, password):
    md5 = hashlib.md5(signing_string(fields, hashlib.md5(password.encode()).hexdigest()).encode()).hexdigest()
    sha = hashlib.sha256(signing_string(fields, hashlib.sha256(password.encode()).hexdigest()).encode()).hexdigest()
    return {**fields, "verify_sign": md5, "verify_sign_sha2": sha}


@pytest.mark.parametrize("name", IPNS)
def test_real_ipn_verifies_with_its_store_password(name):
    fields, password = _ipn(name)
    assert verify_sign(fields, password) is True
    md5_only = {k: v for k, v in fields.items() if k != "verify_sign_sha2"}
    assert verify_sign(md5_only, password) is True
    assert REQUIRED_SIGNED <= set(fields["verify_key"].split(","))


@pytest.mark.parametrize("name", IPNS)
def test_wrong_password_or_missing_sign_is_refused(name):
    fields, password = _ipn(name)
    assert verify_sign(fields, password + "x") is False
    assert verify_sign(fields, "") is False
    assert verify_sign({k: v for k, v in fields.items() if k != "verify_sign"}, password) is False
    # a right md5 with a wrong sha256 is refused too
    assert verify_sign({**fields, "verify_sign_sha2": "0" * 64}, password) is False


@pytest.mark.parametrize("name", IPNS)
@pytest.mark.parametrize(("field", "value"), [("status", "FAILED"), ("status", "CANCELLED"), ("amount", "1.00"),
                                              ("tran_id", "att_other"), ("val_id", "x"), ("store_id", "other")])
def test_a_tampered_real_ipn_does_not_verify(name, field, value):
    fields, password = _ipn(name)
    assert verify_sign({**fields, field: value}, password) is False


def test_verify_key_naming_an_absent_field_fails():
    fields, password = _ipn("ipn_valid_2020")
    without_error = {k: v for k, v in fields.items() if k != "error"}  # `error` is in its verify_key
    assert verify_sign(without_error, password) is False


def test_fields_outside_verify_key_are_not_covered():
    """The library sample's verify_key omits card_sub_brand and error: changing them keeps the signature valid."""
    fields, password = _ipn("ipn_valid_library_sample")
    assert verify_sign({**fields, "card_sub_brand": "Platinum", "error": "x"}, password) is True


@pytest.mark.parametrize(("name", "amount", "fee", "card"), [
    ("ipn_valid_library_sample", 1000, 25, "VISA •••• 6675"),
    ("ipn_valid_2020", 40000, 1000, "VISA •••• 7491"),
])
def test_real_ipn_fields_map_to_our_outcome(name, amount, fee, card):
    fields, _password = _ipn(name)
    result = SSLCommerzGateway()._result(fields, raw={"ipn": fields})
    assert (result.outcome, result.amount, result.currency) == (Outcome.SUCCEEDED, amount, "BDT")
    assert (result.fee_amount, result.card_summary, result.needs_review) == (fee, card, False)
    assert result.order_id == fields["tran_id"]
    assert result.gateway_transaction_id == fields["bank_tran_id"]


@pytest.mark.parametrize(("status", "outcome"), [("FAILED", Outcome.FAILED), ("CANCELLED", Outcome.CANCELLED)])
def test_real_ipn_resigned_as_failed_or_cancelled(status, outcome):
    fields, password = _ipn("ipn_valid_2020")
    resigned = _resign({**fields, "status": status}, password)
    assert verify_sign(resigned, password) is True
    result = SSLCommerzGateway()._result(resigned, raw={"ipn": resigned})
    assert (result.outcome, result.failure_code) == (outcome, status.lower())
