"""Midtrans' own published HTTP notification samples (tests/gateways/fixtures/midtrans, from its docs) read by our
adapter: outcome_of, parse_amount and verify_notification.

Midtrans does not publish the server key its samples were signed with, and its samples cannot all come from one
key: the 3DS page's capture and settlement samples share order_id, status_code and gross_amount yet carry different
signature_keys. So the published signatures are checked only for shape (128 hex digits of SHA-512), and each real
body is re-signed with a test key: it verifies, and a change to any signed field, or another key, does not.
"""

import hashlib
import re

import pytest

from app.gateways.base import Outcome
from app.gateways.midtrans import outcome_of, parse_amount, signature_key, verify_notification
from tests.gateways.fixtures import load

TEST_KEY = "SB-Mid-server-paysmith-test"

NOTIFICATIONS = [
    # name, outcome, needs_review, amount in rupiah
    ("notification_capture_accept", Outcome.SUCCEEDED, False, 145000),
    ("notification_capture_challenge", Outcome.PROCESSING, True, 145000),
    ("notification_settlement", Outcome.SUCCEEDED, False, 145000),
    ("notification_deny", Outcome.FAILED, False, 145000),
    ("notification_expire", Outcome.EXPIRED, False, 698879),
]


def _resigned(body, key=TEST_KEY):
    expected = hashlib.sha512(f"{body['order_id']}{body['status_code']}{body['gross_amount']}{key}".encode())
    return {**body, "signature_key": expected.hexdigest()}


@pytest.mark.parametrize(("name", "outcome", "review", "amount"), NOTIFICATIONS)
def test_published_notifications_map_to_our_outcome(name, outcome, review, amount):
    body, _source = load("midtrans", name)
    assert outcome_of(body["transaction_status"], body.get("fraud_status")) == (outcome, review)
    assert parse_amount(body["gross_amount"]) == amount


@pytest.mark.parametrize("name", [n for n, *_ in NOTIFICATIONS])
def test_published_signature_is_sha512_hex_but_not_ours(name):
    body, _source = load("midtrans", name)
    assert re.fullmatch(r"[0-9a-f]{128}", body["signature_key"])
    assert verify_notification(body, TEST_KEY) is False


def test_the_docs_samples_are_not_signed_with_one_key():
    capture, _ = load("midtrans", "notification_capture_accept")
    settlement, _ = load("midtrans", "notification_settlement")
    signed = ("order_id", "status_code", "gross_amount")
    assert [capture[k] for k in signed] == [settlement[k] for k in signed]
    assert capture["signature_key"] != settlement["signature_key"]


@pytest.mark.parametrize("name", [n for n, *_ in NOTIFICATIONS])
def test_a_real_body_resigned_with_our_key_verifies(name):
    body, _source = load("midtrans", name)
    resigned = _resigned(body)
    assert resigned["signature_key"] == signature_key(body["order_id"], body["status_code"], body["gross_amount"],
                                                      TEST_KEY)
    assert verify_notification(resigned, TEST_KEY) is True
    assert verify_notification({**resigned, "signature_key": resigned["signature_key"].upper()}, TEST_KEY) is True
    assert verify_notification(resigned, TEST_KEY + "x") is False
    assert verify_notification(resigned, "") is False


@pytest.mark.parametrize("name", [n for n, *_ in NOTIFICATIONS])
@pytest.mark.parametrize(("field", "value"), [("order_id", "C17551"), ("status_code", "200 "),
                                              ("gross_amount", "1.00"), ("gross_amount", "145000")])
def test_a_tampered_real_body_does_not_verify(name, field, value):
    resigned = _resigned(load("midtrans", name)[0])
    if resigned[field] == value:
        value += "0"
    assert verify_notification({**resigned, field: value}, TEST_KEY) is False


def test_unsigned_fields_are_not_covered():
    """transaction_status and fraud_status are outside the signature: why we ask the status API before acting."""
    resigned = _resigned(load("midtrans", "notification_capture_challenge")[0])
    forged = {**resigned, "fraud_status": "accept"}
    assert verify_notification(forged, TEST_KEY) is True
    assert outcome_of(forged["transaction_status"], forged["fraud_status"]) == (Outcome.SUCCEEDED, False)


@pytest.mark.parametrize(("value", "rupiah"), [("145000.00", 145000), ("698879.00", 698879), (145000, 145000),
                                                ("145000.50", None), (145000.0, None), (True, None), (None, None)])
def test_parse_amount_on_midtrans_formats(value, rupiah):
    assert parse_amount(value) == rupiah
