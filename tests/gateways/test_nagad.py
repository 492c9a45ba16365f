"""Nagad through real HTTP (API → checkout → simulator page → return → verify), and its RSA sealing."""

import base64
import json
import string
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.extensions import db
from app.gateways.base import GatewayError, Outcome
from app.gateways.nagad import (
    DHAKA,
    dhaka_now,
    load_private_key,
    load_public_key,
    open_sealed,
    seal,
)
from app.sandbox import nagad as sim
from app.services import reconciliation
from app.services.callbacks import apply_result
from tests.gateways._bd_helpers import (
    adapter_and_context,
    assert_applied_once,
    callbacks,
    choose_outcome,
    concurrent_returns,
    duplicate_return,
    pay,
    pay_another_amount_for,
    refund_through_the_service,
    return_to_result,
    start,
)
from tests.gateways.helpers import (
    assert_attempt_ended,
    assert_offered_everywhere,
    order_id,
    query_of,
    unmatched_callbacks,
)
from tests.helpers import reload

ALPHABET = string.ascii_letters + string.digits + ' .:-_/'
MERCHANT_PRIVATE = load_private_key(sim.MERCHANT_PRIVATE_KEY)
MERCHANT_PUBLIC = load_public_key(sim.MERCHANT_PUBLIC_KEY)
NAGAD_PRIVATE = load_private_key(sim.NAGAD_PRIVATE_KEY)
NAGAD_PUBLIC = load_public_key(sim.NAGAD_PUBLIC_KEY)
SAMPLE = {"merchantId": "683002007104225", "orderId": "pay_0123456789abcdef01234567", "currencyCode": "050",
          "amount": "1250.50", "challenge": "5f1e2d3c4b5a69788796a5b4c3d2e1f0a1b2c3d4"}


def _pay(http, factories, outcome="success", amount=125_050):
    return pay(http, factories, "nagad", outcome, amount, wallet="01711428036")


def test_success_full_path(http, factories):
    merchant, payment, back = _pay(http, factories)
    params = query_of(back)
    assert back.startswith(http.base_url + "/callbacks/nagad/return?")
    assert set(params) == {"merchant", "order_id", "payment_ref_id", "status", "status_code", "message",
                           "payment_dt", "issuer_payment_ref"}
    assert params["status_code"] == "00_0000_000" and params["issuer_payment_ref"]
    assert params["status"] == "Success" and params["order_id"] == order_id(payment)
    assert params["payment_ref_id"] == reload(payment).gateway_reference
    assert "Payment successful" in return_to_result(http, payment, back)
    assert_applied_once(payment, "succeeded")
    assert payment.gateway_transaction_id and payment.card_summary == "Nagad 017****8036"
    event = callbacks(payment)[-1]
    assert event.verified is True and event.data["nagad"]["status"] == "Success"


@pytest.mark.parametrize("outcome,status", [("failure", "failed"), ("cancel", "cancelled")])
def test_failure_and_cancel(http, factories, outcome, status):
    merchant, payment, back = _pay(http, factories, outcome)
    assert http.get(back).status_code == 200
    assert_attempt_ended(payment, status)


def test_duplicate_return_applies_once(http, factories):
    merchant, payment, back = _pay(http, factories)
    duplicate_return(http, payment, back)


def test_concurrent_returns_one_transition(http, factories):
    merchant, payment, back = _pay(http, factories)
    concurrent_returns(payment, back)


def test_forged_success_is_refused(http, factories):
    """The shopper never paid; a hand-made return claiming Success changes nothing."""
    merchant, payment, _ = start(http, factories, "nagad")
    ref = reload(payment).gateway_reference
    r = http.get(f"/callbacks/nagad/return?merchant=683002007104225&order_id={order_id(payment)}"
                 f"&payment_ref_id={ref}&status=Success&status_code=00_0000_000", allow_redirects=False)
    assert r.status_code == 303
    assert reload(payment).status == "processing"
    event = callbacks(payment)[-1]
    assert event.verified is False and "Nagad reports 'Ready'" in event.message


def test_unknown_and_foreign_references(http, factories):
    merchant, payment, _ = start(http, factories, "nagad")
    assert http.get("/callbacks/nagad/return?payment_ref_id=NOPE&status=Success").status_code == 404
    assert http.get("/callbacks/nagad/return?status=Success").status_code == 404
    kept = unmatched_callbacks("nagad")
    assert [e.verified for e in kept] == [False, False] and kept[0].data["query"]["payment_ref_id"] == "NOPE"
    # another merchant's real, paid Nagad payment attached to ours: Nagad's verify names the other order
    other_merchant, other, other_back = _pay(http, factories)
    payment, other = reload(payment), reload(other)
    mine, theirs = payment.current_attempt, other.current_attempt
    ref, theirs.reference = theirs.reference, "moved"
    db.session.flush()
    mine.reference = ref
    db.session.commit()
    http.get(other_back)
    assert reload(payment).status == "processing"
    event = callbacks(payment)[-1]
    assert event.verified is False and "orderId" in event.message


def test_tampered_amount_is_refused(http, factories):
    """A Nagad order completed for another amount than ours: verify's amount does not match."""
    merchant, payment, _ = start(http, factories, "nagad", amount=125_050)
    pay_another_amount_for(http, payment, "nagad", 100, wallet="01711428036")
    assert reload(payment).status == "processing"
    event = callbacks(payment)[-1]
    assert event.verified is False and "amount ৳1.00 does not match ৳1,250.50" in event.message


def test_status_query_settles_a_payment_whose_return_never_came(http, factories):
    merchant, payment, page_url = start(http, factories, "nagad")
    choose_outcome(http, page_url, "success", wallet="01711428036")  # the redirect is never followed
    gateway, info, ctx = adapter_and_context(payment, "nagad")
    result = gateway.query(info, ctx)
    assert result.outcome == Outcome.SUCCEEDED and result.amount == payment.amount
    applied, _ = apply_result(payment, payment.current_attempt, result, source="reconcile")
    db.session.commit()
    assert applied and reload(payment).status == "succeeded"


@pytest.mark.parametrize("status,outcome", [
    ("Success", Outcome.SUCCEEDED), ("Refunded", Outcome.SUCCEEDED), ("PartialRefunded", Outcome.SUCCEEDED),
    ("PartialCancelled", Outcome.SUCCEEDED), ("Aborted", Outcome.CANCELLED), ("Cancelled", Outcome.CANCELLED),
    ("Failed", Outcome.FAILED), ("Fraud", Outcome.FAILED), ("InvalidRequest", Outcome.FAILED),
    ("OrderInitiated", Outcome.PROCESSING), ("Ready", Outcome.PROCESSING), ("InProgress", Outcome.PROCESSING),
])
def test_every_verify_status_is_mapped(http, factories, status, outcome):
    """Nagad's status enum (one community client's list), as verify/payment reports it."""
    merchant, payment, _ = start(http, factories, "nagad")
    gateway, info, ctx = adapter_and_context(payment, "nagad")
    stored = sim.load(sim.CODE, "payment", payment.gateway_reference)
    sim.save(sim.CODE, "payment", payment.gateway_reference, {**stored, "status": status})
    result = gateway.query(info, ctx)
    assert result.outcome == outcome and result.amount == payment.amount


def test_partial_then_full_refund(http, factories):
    merchant, payment, back = _pay(http, factories, amount=125_050)
    http.get(back)
    gateway, info, ctx = adapter_and_context(payment, "nagad")
    first = gateway.refund(info, 25_050, "re_1", ctx)
    assert first.status == "succeeded" and first.gateway_reference == first.raw["cancelTrxId"]
    assert first.raw == {"status": "PartialRefunded", "originalAmount": "1250.50", "cancelAmount": "250.50",
                         "cancelTrxId": first.gateway_reference}
    assert gateway.refund(info, 25_050, "re_1", ctx).gateway_reference == first.gateway_reference
    rest = gateway.refund(info, 100_000, "re_2", ctx)
    assert rest.status == "succeeded" and rest.raw["status"] == "Refunded"
    too_much = gateway.refund(info, 1, "re_3", ctx)
    assert too_much.status == "failed" and "InvalidAmount" in too_much.message


def test_wrong_keys_and_merchant_get_nagad_errors(http, factories):
    merchant, payment, _ = start(http, factories, "nagad")
    gateway, info, ctx = adapter_and_context(payment, "nagad")
    forged = ctx.__class__(**{**ctx.__dict__, "credentials": {**ctx.credentials,
                                                               "merchant_private_key": sim.NAGAD_PRIVATE_KEY}})
    with pytest.raises(GatewayError) as exc:
        gateway.start(info, forged)
    assert exc.value.code == "InvalidSignature"
    other = ctx.__class__(**{**ctx.__dict__, "credentials": {**ctx.credentials, "merchant_id": "683002007100000"}})
    with pytest.raises(GatewayError) as exc:
        gateway.start(info, other)
    assert exc.value.code == "InvalidMerchant"
    # an answer encrypted to us but signed by someone other than Nagad is refused
    sensitive, signature = seal('{"paymentReferenceId":"X","challenge":"Y"}', MERCHANT_PUBLIC, MERCHANT_PRIVATE)
    with pytest.raises(GatewayError) as exc:
        gateway._open({"sensitiveData": sensitive, "signature": signature}, ctx)
    assert "failed verification" in str(exc.value)


def test_initialize_datetime_is_bangladesh_time_whatever_the_server_zone(http, factories, monkeypatch):
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        stamp = dhaka_now()
        expected = datetime.now(UTC) + timedelta(hours=6)
        parsed = datetime.strptime(stamp, "%Y%m%d%H%M%S")
        assert abs(parsed - expected.replace(tzinfo=None)) < timedelta(seconds=5)
        merchant, payment, page = start(http, factories, "nagad")  # the simulator checks it to 5 minutes
        assert page.startswith(http.base_url + "/sandbox/nagad/check-out/")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert dhaka_now(now=datetime(2026, 1, 1, 18, 30, tzinfo=UTC)) == "20260102003000"
    assert DHAKA.utcoffset(None) == timedelta(hours=6)


def test_simulator_serves_the_sandbox_path(http):
    r = http.get("/sandbox/nagad/remote-payment-gateway-1.0/api/dfs/verify/payment/NOPE")
    assert r.status_code == 400 and r.json()["reason"] == "InvalidPaymentRefId"


def test_keys_are_accepted_as_pem_too():
    pem = base64.b64decode(sim.MERCHANT_PUBLIC_KEY)
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_der_public_key(pem).public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    assert load_public_key(key.decode()).public_numbers() == MERCHANT_PUBLIC.public_numbers()


# --- property tests: any change to what is sealed breaks it ---------------------------------------------------


def _sealed(data=SAMPLE):
    plain = json.dumps(data, separators=(",", ":"))
    return plain, *seal(plain, NAGAD_PUBLIC, MERCHANT_PRIVATE)


def test_round_trip():
    plain, sensitive, signature = _sealed()
    assert open_sealed(sensitive, signature, NAGAD_PRIVATE, MERCHANT_PUBLIC) == plain


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(sorted(SAMPLE)), value=st.text(ALPHABET, min_size=1, max_size=20))
def test_changing_any_field_breaks_the_signature(field, value):
    """Re-encrypting a changed payload without the merchant's key: the old signature no longer fits."""
    plain, sensitive, signature = _sealed()
    changed = {**SAMPLE, field: SAMPLE[field] + value}
    _, other_sensitive, _ = _sealed(changed)
    with pytest.raises(ValueError):
        open_sealed(other_sensitive, signature, NAGAD_PRIVATE, MERCHANT_PUBLIC)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_flipping_any_byte_of_ciphertext_or_signature_fails(data):
    plain, sensitive, signature = _sealed()
    which = data.draw(st.sampled_from(["sensitive", "signature"]))
    raw = bytearray(base64.b64decode(sensitive if which == "sensitive" else signature))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    tampered = base64.b64encode(bytes(raw)).decode()
    args = (tampered, signature) if which == "sensitive" else (sensitive, tampered)
    with pytest.raises(ValueError):
        open_sealed(*args, NAGAD_PRIVATE, MERCHANT_PUBLIC)


@settings(max_examples=20, deadline=None)
@given(field=st.sampled_from(sorted(SAMPLE)), value=st.text(ALPHABET, min_size=1, max_size=20))
def test_simulator_refuses_any_changed_field(app, field, value):
    """The simulator's own check: a completed payload changed after signing is refused with InvalidSignature."""
    plain, sensitive, signature = _sealed()
    _, other_sensitive, _ = _sealed({**SAMPLE, field: SAMPLE[field] + value})
    with app.test_request_context():
        assert sim._unseal(sensitive, signature) == SAMPLE
        assert sim._unseal(other_sensitive, signature) is None


def test_offered_to_new_and_demo_merchants(app, http):
    assert_offered_everywhere(app, http, "nagad", "BDT")


def test_refunds_through_the_refund_service(http, factories, run_jobs):
    merchant, payment, back = _pay(http, factories, amount=125_050)
    http.get(back)
    refund_through_the_service(reload(payment), run_jobs, 25_050)
    stored = sim.load(sim.CODE, "payment", payment.gateway_reference)
    assert stored["cancelled"] == "1250.50" and len(stored["refunds"]) == 2
    # verify now says Refunded: the payment was paid, and its refunds are ours to track — nothing changes
    gateway, info, ctx = adapter_and_context(payment, "nagad")
    result = gateway.query(info, ctx)
    assert result.outcome == Outcome.SUCCEEDED and result.raw["status"] == "Refunded"
    assert reconciliation.reconcile_payment(reload(payment)) is False
    assert reload(payment).status == "refunded"


def test_reconciliation_job_settles_a_payment_whose_return_never_came(http, factories):
    merchant, payment, page_url = start(http, factories, "nagad")
    choose_outcome(http, page_url, "success", wallet="01711428036")
    assert reconciliation.reconcile_payment(reload(payment)) is True
    assert reload(payment).status == "succeeded"
