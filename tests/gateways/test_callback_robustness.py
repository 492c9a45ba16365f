"""Regression tests for the fuzzing findings on callbacks (issue 11, part 0): non-ASCII signatures are bad
signatures, unstorable text is recorded escaped, and racing duplicate webhooks are duplicates, never 500s."""

import json

import pytest
from sqlalchemy import select

from app.extensions import db
from app.gateways.midtrans import verify_notification
from app.gateways.sslcommerz import verify_sign
from app.gateways.testcard import SIGNATURE_HEADER, sign, verify_signature
from app.gateways.vnpay import verify_params
from app.models import PaymentEvent
from app.sandbox.testcard import SANDBOX_CREDENTIALS
from app.security import constant_time_equals
from app.webhooks import verify as verify_merchant_webhook
from tests.gateways.helpers import api_payment, choose_method, race
from tests.gateways.test_testcard import (
    PLAIN_VISA,
    choose_testcard,
    create_payment,
    queued_notification,
    submit_card,
)
from tests.helpers import reload


def last_callback():
    db.session.rollback()
    return db.session.scalars(select(PaymentEvent).where(PaymentEvent.kind == "callback")
                              .order_by(PaymentEvent.id.desc())).first()


# --- a non-ASCII signature is a bad signature, never a TypeError ------------------------------------------


def test_constant_time_equals_compares_utf8_bytes():
    assert constant_time_equals("é", "é") and not constant_time_equals("é", "e")
    assert not constant_time_equals("\ud800", "abc") and not constant_time_equals(None, "a")
    assert constant_time_equals(b"abc", "abc")


def test_every_adapters_check_refuses_a_non_ascii_signature():
    assert verify_params("secret", {"vnp_TxnRef": "att_1", "vnp_SecureHash": "é"}) is False
    assert verify_signature("whsec", b"{}", "t=1,v1=é") is False
    assert verify_notification({"order_id": "att_1", "status_code": "200", "gross_amount": "1.00",
                                "signature_key": "é"}, "server-key") is False
    assert verify_sign({"verify_key": "tran_id", "tran_id": "att_1", "verify_sign": "é"}, "store-pass") is False
    assert verify_sign({"verify_key": "tran_id", "tran_id": "att_1", "verify_sign": "x",
                        "verify_sign_sha2": "é"}, "store-pass") is False
    assert verify_merchant_webhook(b"{}", "t=1,v1=é", "secret", now=1) is False


@pytest.fixture
def vnpay_attempt(http, factories):
    _, key = factories.merchant()
    payment = api_payment(http, key)
    choose_method(http, payment, "vnpay")
    reload(payment)
    return payment, payment.attempts[0]


def test_vnpay_ipn_with_a_non_ascii_secure_hash_is_97_and_recorded(http, vnpay_attempt):
    payment, attempt = vnpay_attempt
    r = http.get(f"/callbacks/vnpay/ipn?vnp_TxnRef={attempt.public_id}&vnp_Amount=15000000"
                 "&vnp_SecureHash=%C3%A9")
    assert r.status_code == 200 and r.json()["RspCode"] == "97", r.text
    event = last_callback()
    assert (event.attempt_id, event.verified) == (attempt.id, False)
    assert event.data["query"]["vnp_SecureHash"] == "é"
    assert reload(payment).status == "processing" and reload(attempt).status == "started"  # as before


@pytest.fixture
def testcard_paid(http, factories):
    """A test card payment the shopper paid, and the acquirer's signed webhook body (not yet sent)."""
    _, key = factories.merchant()
    created = create_payment(http, {"Authorization": f"Bearer {key}"})
    submit_card(http, choose_testcard(http, created), PLAIN_VISA, allow_redirects=False)
    return created, queued_notification()


def post_testcard(http, body, signature, method="POST"):
    return http.request(method, "/callbacks/testcard/webhook", data=body,
                        headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature})


def test_testcard_webhook_with_a_non_ascii_signature_is_refused(http, testcard_paid):
    _, body = testcard_paid
    r = post_testcard(http, body, "t=1,v1=\u00e9".encode().decode("latin-1"))
    assert r.status_code == 401 and r.json()["result"] == "invalid_signature", r.text
    assert "invalid Testcard-Signature" in last_callback().message


@pytest.fixture
def stripe_attempt(http, factories):
    _, key = factories.merchant()
    payment = api_payment(http, key, currency="USD", amount=2_500)
    choose_method(http, payment, "stripe")
    reload(payment)
    return payment, payment.attempts[0]


def test_stripe_webhook_and_cancel_with_non_ascii_signatures_are_refused(http, stripe_attempt):
    payment, attempt = stripe_attempt
    event = {"id": "evt_1", "type": "checkout.session.completed",
             "data": {"object": {"object": "checkout.session", "id": attempt.reference,
                                 "client_reference_id": attempt.public_id}}}
    r = http.post("/callbacks/stripe/webhook", data=json.dumps(event),
                  headers={"Content-Type": "application/json",
                           "Stripe-Signature": "t=1,v1=\u00e9".encode().decode("latin-1")})
    assert r.status_code == 400 and r.json()["result"] == "invalid_signature", r.text
    r = http.get(f"/callbacks/stripe/cancel?attempt_id={attempt.public_id}&sig=%C3%A9", allow_redirects=False)
    assert r.status_code == 303, r.text  # the shopper's result page; nothing applied
    assert "cancel link not made by us" in last_callback().message
    reload(payment)
    assert payment.status == "processing" and reload(attempt).status == "started"  # as before


# --- what PostgreSQL cannot store is recorded escaped ---------------------------------------------------


def test_a_json_callback_with_a_lone_surrogate_and_nul_is_recorded_escaped(http, testcard_paid):
    created, body = testcard_paid
    event = json.loads(body)
    event["data"]["object"]["note"] = "\ud800 and \x00"
    tampered = json.dumps(event).encode()  # \\ud800 and \\u0000 escapes: valid JSON
    r = post_testcard(http, tampered, sign(SANDBOX_CREDENTIALS["webhook_secret"], body))
    assert r.status_code == 401, r.text
    recorded = last_callback()
    assert recorded.data["json"]["data"]["object"]["note"] == "\\ud800 and \\u0000"


def test_a_nul_in_a_get_body_is_recorded_escaped(http):
    r = http.request("GET", "/callbacks/testcard/webhook", data=b"junk\x00junk",
                     headers={"Content-Type": "text/plain"})
    assert r.status_code == 404, r.text
    assert last_callback().data["body"] == "junk\\u0000junk"


def test_a_nul_in_a_callback_query_is_recorded_escaped(http):
    r = http.get("/callbacks/vnpay/ipn?vnp_TxnRef=att_%00x")
    assert r.json()["RspCode"] == "01", r.text
    assert last_callback().data["query"]["vnp_TxnRef"] == "att_\\u0000x"


def test_a_callback_that_fails_unexpectedly_is_still_recorded(http, monkeypatch):
    import app.services.callbacks as callbacks

    def boom(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(callbacks, "find_attempt", boom)
    r = http.get("/callbacks/vnpay/ipn?vnp_TxnRef=att_x")
    assert r.json()["RspCode"] == "99"
    event = last_callback()
    assert event.message == "ipn: internal error, not applied" and event.data["query"] == {"vnp_TxnRef": "att_x"}


def test_a_lookup_id_that_is_not_a_string_finds_nothing(http):
    body = json.dumps({"data": {"object": {"reference": 5, "id": ["cs_x"]}}})
    r = post_testcard(http, body, "t=1,v1=00")
    assert r.status_code == 404, r.text


# --- racing duplicates ----------------------------------------------------------------------------------


def test_concurrent_identical_success_webhooks_apply_once_and_never_500(http, testcard_paid):
    created, body = testcard_paid
    signature = sign(SANDBOX_CREDENTIALS["webhook_secret"], body)
    answers = race(8, lambda: post_testcard(http, body, signature))
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    results = sorted(a.json()["result"] for a in answers)
    assert results == ["duplicate"] * 7 + ["ok"], results
    db.session.rollback()
    callbacks = db.session.scalars(select(PaymentEvent).where(PaymentEvent.kind == "callback")).all()
    assert len(callbacks) == 8 and all(c.verified for c in callbacks)
