"""The built-in test acquirer end to end over real HTTP: API → checkout → card page → one-time code → result,
each decline, the signed webhook (applied once, duplicates and forgeries refused), with the timeline and the
outbox checked row by row."""

import json
import logging
import re

import pytest
from sqlalchemy import select

from app.extensions import db, get_queue, get_redis
from app.gateways.testcard import SIGNATURE_HEADER, sign, verify_signature
from app.models import OutboxEvent, Payment, PaymentEvent
from app.sandbox.testcard import SANDBOX_CREDENTIALS, expiry_ok, luhn_ok
from tests.helpers import csrf_token, reload

OTP_CARD, DECLINED, NO_FUNDS, PLAIN_VISA = ("4444 4444 4444 4444", "4000 0000 0000 0002", "4000 0000 0000 9995",
                                            "4242 4242 4242 4242")


@pytest.fixture
def shop(factories):
    merchant, key = factories.merchant(name="Warung Sari")
    return merchant, {"Authorization": f"Bearer {key}"}


def create_payment(http, headers, **fields):
    body = {"amount": 2_500, "currency": "USD", "reference": "ORD-1", "return_url": "https://shop.example/done",
            "cancel_url": "https://shop.example/cart", **fields}
    r = http.post("/api/v1/payments", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def choose_testcard(http, created):
    page = http.get(created["checkout_url"])
    assert page.status_code == 200
    assert 'value="testcard"' in page.text
    r = http.post(created["checkout_url"], data={"csrf_token": csrf_token(page.text), "method": "testcard"},
                  allow_redirects=False)
    assert r.status_code == 303, r.text
    card_url = r.headers["Location"]
    assert "/sandbox/testcard/pay/cs_test_" in card_url
    form = http.get(card_url)
    for autocomplete in ("cc-number", "cc-exp", "cc-csc", "cc-name"):
        assert f'autocomplete="{autocomplete}"' in form.text
    return card_url


def submit_card(http, card_url, number, exp="12/39", cvc="123", name="Sari Dewi", **kwargs):
    return http.post(card_url, data={"card_number": number, "exp": exp, "cvc": cvc, "name": name}, **kwargs)


def payment_of(created):
    db.session.rollback()
    return db.session.scalar(select(Payment).where(Payment.public_id == created["id"]))


def timeline(payment):
    """The payment's timeline without its attempts' own lines (those are checked by `attempts()`)."""
    db.session.rollback()
    return [(e.kind, e.from_status, e.to_status, e.verified)
            for e in db.session.scalars(select(PaymentEvent).where(PaymentEvent.payment_id == payment.id,
                                                                   PaymentEvent.kind != "attempt")
                                        .order_by(PaymentEvent.id))]


def attempts(payment):
    """[(number, gateway, status, failure_code, failure_reason)] of the payment's attempts."""
    db.session.rollback()
    return [(a.number, a.gateway, a.status, a.failure_code, a.failure_reason) for a in reload(payment).attempts]


def last_event(payment):
    return db.session.scalars(select(PaymentEvent).where(PaymentEvent.payment_id == payment.id)
                              .order_by(PaymentEvent.id.desc())).first()


def outbox_types(payment):
    db.session.rollback()
    return [e.type for e in db.session.scalars(select(OutboxEvent).where(OutboxEvent.payment_id == payment.id)
                                               .order_by(OutboxEvent.id))]


STARTED = [("note", None, "pending", None), ("gateway_call", None, None, None),
           ("status_change", "pending", "processing", None)]


def test_otp_card_pays_and_the_history_is_complete(http, shop, caplog):
    caplog.set_level(logging.DEBUG)
    _, headers = shop
    created = create_payment(http, headers)
    card_url = choose_testcard(http, created)
    payment = payment_of(created)
    assert payment.status == "processing"
    assert timeline(payment) == STARTED

    r = submit_card(http, card_url, OTP_CARD)
    assert r.url.endswith("/otp")
    assert 'autocomplete="one-time-code"' in r.text
    assert "123456" in r.text  # the sandbox says which code to use
    r = http.post(r.url, data={"otp": "123456"})
    assert r.status_code == 200
    assert r.url.endswith(f"/pay/{payment.checkout_token}/result")
    assert "Payment successful" in r.text
    assert "Visa •••• 4444" in r.text

    reload(payment)
    assert payment.status == "succeeded"
    assert payment.card_summary == "Visa •••• 4444"
    assert payment.gateway == "testcard"
    assert payment.gateway_reference.startswith("cs_test_")
    assert payment.gateway_transaction_id.startswith("ch_test_")
    assert payment.paid_at is not None and payment.late_success is False
    assert timeline(payment) == STARTED + [("status_change", "processing", "succeeded", None),
                                           ("callback", None, None, True)]
    assert outbox_types(payment) == ["payment.processing", "payment.succeeded"]
    succeeded = db.session.scalars(select(OutboxEvent).where(OutboxEvent.type == "payment.succeeded")).one()
    assert succeeded.payload["data"]["object"]["status"] == "succeeded"
    assert succeeded.payload["data"]["object"]["card"] == "Visa •••• 4444"

    r = http.get(f"/api/v1/payments/{created['id']}", headers=headers)
    assert r.json()["status"] == "succeeded"

    # Only the brand and the last four digits are ever kept or logged, here or at the acquirer.
    full = "4444444444444444"
    assert full not in json.dumps([e.data for e in payment.events]) + json.dumps(
        [o.payload for o in db.session.scalars(select(OutboxEvent))])
    redis = get_redis()
    assert not any(full in (redis.get(k) or b"").decode() for k in redis.keys("sandbox:*") if redis.type(k) == b"string")
    assert full not in caplog.text and "4444 4444 4444 4444" not in caplog.text


def test_the_acquirers_webhook_after_the_return_is_a_verified_duplicate(http, shop, run_jobs):
    _, headers = shop
    created = create_payment(http, headers)
    card_url = choose_testcard(http, created)
    submit_card(http, card_url, PLAIN_VISA)
    payment = payment_of(created)
    assert payment.status == "succeeded"
    before = timeline(payment)

    assert run_jobs() >= 1
    reload(payment)
    assert payment.status == "succeeded"
    assert payment.version == 3  # the attempt, processing, succeeded: the webhook changed nothing
    added = timeline(payment)[len(before):]
    assert added == [("callback", None, None, True)]
    webhook = last_event(payment)
    assert webhook.message == "webhook: succeeded (already applied, no change)"
    assert webhook.dedupe_key.startswith("testcard:evt_test_")
    assert outbox_types(payment) == ["payment.processing", "payment.succeeded"]


def test_the_webhook_alone_settles_a_payment_whose_shopper_never_came_back(http, shop, run_jobs):
    _, headers = shop
    created = create_payment(http, headers)
    card_url = choose_testcard(http, created)
    r = submit_card(http, card_url, PLAIN_VISA, allow_redirects=False)
    assert r.status_code == 303  # the shopper closes the tab here
    payment = payment_of(created)
    assert payment.status == "processing"
    run_jobs()
    reload(payment)
    assert payment.status == "succeeded"
    assert timeline(payment)[-2:] == [("status_change", "processing", "succeeded", None),
                                      ("callback", None, None, True)]
    # The browser return arriving late is a duplicate: the acquirer is asked again, nothing changes.
    r = http.get(r.headers["Location"])
    assert "Payment successful" in r.text
    reload(payment)
    assert payment.version == 3
    assert outbox_types(payment) == ["payment.processing", "payment.succeeded"]


@pytest.mark.parametrize("card, code, reason, told", [
    (DECLINED, "card_declined", "declined", "Your payment was declined."),
    (NO_FUNDS, "insufficient_funds", "insufficient_funds", "There was not enough money in the account."),
])
def test_a_declined_card_ends_the_attempt_and_the_shopper_can_try_again(http, shop, run_jobs, card, code,
                                                                         reason, told):
    _, headers = shop
    created = create_payment(http, headers)
    r = submit_card(http, choose_testcard(http, created), card)
    payment = payment_of(created)
    # Back on the checkout page, told in plain words why, with the methods to try again.
    assert r.url.endswith(f"/pay/{payment.checkout_token}")
    assert told in r.text and 'value="testcard"' in r.text
    assert "Your card was declined." not in r.text and code not in r.text  # the acquirer's own words are not shown
    assert payment.status == "pending"
    assert attempts(payment) == [(1, "testcard", "failed", code, reason)]
    assert payment.attempts[0].failure_message.startswith("Your card")  # kept for the merchant
    assert timeline(payment) == STARTED + [("status_change", "processing", "pending", None),
                                           ("callback", None, None, True)]
    assert outbox_types(payment) == ["payment.processing", "payment.attempt_failed"]
    failed = db.session.scalars(select(OutboxEvent).where(OutboxEvent.type == "payment.attempt_failed")).one()
    assert failed.payload["data"]["object"]["attempt"]["failure_code"] == code
    assert failed.payload["data"]["object"]["status"] == "pending"
    run_jobs()  # the acquirer's webhook of the same decline changes nothing
    assert timeline(payment)[-1] == ("callback", None, None, True)
    assert outbox_types(payment) == ["payment.processing", "payment.attempt_failed"]
    api = http.get(f"/api/v1/payments/{created['id']}", headers=headers).json()
    assert api["status"] == "pending" and api["attempts"][0]["failure_code"] == code


def test_a_decline_then_a_good_card_pays_one_payment(http, shop, run_jobs):
    _, headers = shop
    created = create_payment(http, headers)
    submit_card(http, choose_testcard(http, created), DECLINED)
    r = submit_card(http, choose_testcard(http, created), PLAIN_VISA)
    assert "Payment successful" in r.text
    payment = payment_of(created)
    run_jobs()
    reload(payment)
    assert payment.status == "succeeded" and not payment.double_payment
    assert [a[:3] for a in attempts(payment)] == [(1, "testcard", "failed"), (2, "testcard", "succeeded")]
    assert payment.succeeded_attempt_id == payment.attempts[1].id
    assert payment.gateway_reference == payment.attempts[1].reference != payment.attempts[0].reference
    assert outbox_types(payment) == ["payment.processing", "payment.attempt_failed", "payment.processing",
                                     "payment.succeeded"]
    api = http.get(f"/api/v1/payments/{created['id']}/attempts", headers=headers).json()
    assert [a["status"] for a in api["data"]] == ["failed", "succeeded"]


def test_the_last_allowed_try_failing_fails_the_payment(http, shop, app, monkeypatch):
    monkeypatch.setitem(app.config, "CHECKOUT_MAX_ATTEMPTS", 2)
    _, headers = shop
    created = create_payment(http, headers)
    submit_card(http, choose_testcard(http, created), DECLINED)
    r = submit_card(http, choose_testcard(http, created), NO_FUNDS)
    payment = payment_of(created)
    assert payment.status == "failed" and payment.failure_code == "insufficient_funds"
    assert r.url.endswith("/result") and "Payment failed" in r.text
    assert http.get(created["checkout_url"]).status_code == 410
    assert outbox_types(payment)[-2:] == ["payment.failed", "payment.attempt_failed"]


def test_three_wrong_codes_end_the_attempt(http, shop):
    _, headers = shop
    created = create_payment(http, headers)
    r = submit_card(http, choose_testcard(http, created), OTP_CARD)
    otp_url = r.url
    for left in (2, 1):
        r = http.post(otp_url, data={"otp": "000000"})
        assert r.status_code == 422
        assert f"{left} attempt" in r.text
        assert payment_of(created).status == "processing"
    r = http.post(otp_url, data={"otp": "654321"})
    assert "The one-time code was wrong." in r.text
    payment = payment_of(created)
    assert payment.status == "pending"
    assert attempts(payment) == [(1, "testcard", "failed", "authentication_failed", "wrong_code")]
    assert outbox_types(payment) == ["payment.processing", "payment.attempt_failed"]


@pytest.mark.parametrize("fields, error", [
    ({"number": "4242 4242 4242 4241"}, "This card number is not valid."),
    ({"number": "1234"}, "This card number is not valid."),
    ({"number": PLAIN_VISA, "exp": "01/20"}, "Enter a future expiry date as MM/YY."),
    ({"number": PLAIN_VISA, "exp": "13/39"}, "Enter a future expiry date as MM/YY."),
    ({"number": PLAIN_VISA, "cvc": "12"}, "Enter the 3 or 4 digit security code."),
    ({"number": PLAIN_VISA, "name": "  "}, "Enter the name on the card."),
])
def test_invalid_card_details_are_a_form_error_and_change_nothing(http, shop, run_jobs, fields, error):
    _, headers = shop
    created = create_payment(http, headers)
    card_url = choose_testcard(http, created)
    r = submit_card(http, card_url, **fields)
    assert r.status_code == 422
    assert error in r.text
    assert 'aria-invalid="true"' in r.text
    payment = payment_of(created)
    assert payment.status == "processing"
    assert timeline(payment) == STARTED
    assert get_queue("sandbox").count == 0  # the acquirer sent nothing
    assert get_queue("sandbox").scheduled_job_registry.count == 0
    # The session is still open: the shopper can correct the card and pay.
    assert "Payment successful" in submit_card(http, card_url, PLAIN_VISA).text


def test_cancelling_at_the_acquirer_ends_the_attempt_only(http, shop):
    _, headers = shop
    created = create_payment(http, headers)
    r = http.post(choose_testcard(http, created), data={"outcome": "cancel"})
    assert "The payment was cancelled. You can try again" in r.text and 'value="testcard"' in r.text
    payment = payment_of(created)
    assert payment.status == "pending"
    assert attempts(payment) == [(1, "testcard", "cancelled", "cancelled", "cancelled")]
    assert outbox_types(payment) == ["payment.processing", "payment.attempt_failed"]


# --- webhooks that must be refused --------------------------------------------------------------------------


def queued_notification():
    jobs = get_queue("sandbox").jobs
    assert len(jobs) == 1
    return jobs[0].kwargs["data"]


@pytest.fixture
def paid_webhook(http, shop):
    """A payment the shopper paid but never returned from, and the acquirer's webhook body (not yet sent)."""
    _, headers = shop
    created = create_payment(http, headers)
    submit_card(http, choose_testcard(http, created), PLAIN_VISA, allow_redirects=False)
    return payment_of(created), queued_notification()


def post_webhook(http, body, signature):
    return http.post("/callbacks/testcard/webhook", data=body,
                     headers={"Content-Type": "application/json", **({SIGNATURE_HEADER: signature} if signature else {})})


def assert_refused(payment, response, status, message):
    assert response.status_code == status, response.text
    assert response.json()["received"] is False
    reload(payment)
    assert payment.status == "processing"
    last = last_event(payment)
    assert (last.kind, last.verified) == ("callback", False)
    assert message in last.message
    assert outbox_types(payment) == ["payment.processing"]


def test_a_webhook_with_a_forged_signature_is_refused_and_recorded(http, paid_webhook):
    payment, body = paid_webhook
    r = post_webhook(http, body, sign("not-the-secret", body))
    assert_refused(payment, r, 401, "invalid Testcard-Signature")
    assert_refused(payment, post_webhook(http, body, None), 401, "invalid Testcard-Signature")


def test_a_webhook_with_a_tampered_body_is_refused(http, paid_webhook):
    payment, body = paid_webhook
    signature = sign(SANDBOX_CREDENTIALS["webhook_secret"], body)
    tampered = body.replace(b'"amount":2500', b'"amount":25')
    assert tampered != body
    assert_refused(payment, post_webhook(http, tampered, signature), 401, "invalid Testcard-Signature")


def test_a_signed_webhook_with_the_wrong_amount_or_currency_is_refused(http, paid_webhook):
    payment, body = paid_webhook
    secret = SANDBOX_CREDENTIALS["webhook_secret"]
    for change in ((b'"amount":2500', b'"amount":25'), (b'"currency":"USD"', b'"currency":"VND"')):
        wrong = body.replace(*change)
        assert wrong != body
        assert_refused(payment, post_webhook(http, wrong, sign(secret, wrong)), 400, "does not match")


def test_a_stale_signature_is_refused(http, paid_webhook):
    payment, body = paid_webhook
    old = sign(SANDBOX_CREDENTIALS["webhook_secret"], body, timestamp=1_700_000_000)
    assert_refused(payment, post_webhook(http, body, old), 401, "invalid Testcard-Signature")


def test_a_webhook_for_an_unknown_session_is_refused_and_kept(http, paid_webhook):
    payment, body = paid_webhook
    event = json.loads(body)
    event["data"]["object"].update(id="cs_test_unknown", reference="pay_unknown")
    unknown = json.dumps(event).encode()
    r = post_webhook(http, unknown, sign(SANDBOX_CREDENTIALS["webhook_secret"], unknown))
    assert r.status_code == 404
    db.session.rollback()
    orphan = db.session.scalars(select(PaymentEvent).where(PaymentEvent.payment_id.is_(None))).one()
    assert (orphan.kind, orphan.verified, orphan.gateway) == ("callback", False, "testcard")
    assert orphan.data["json"]["data"]["object"]["id"] == "cs_test_unknown"
    reload(payment)
    assert payment.status == "processing"


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"data": 5}', b"[" * 3000])
def test_malformed_webhooks_are_refused_without_a_500(http, paid_webhook, body):
    payment, _ = paid_webhook
    r = post_webhook(http, body, "t=1,v1=00")
    assert r.status_code in (400, 404)
    assert r.json()["received"] is False
    reload(payment)
    assert payment.status == "processing"


def test_the_same_event_twice_applies_once(http, paid_webhook):
    payment, body = paid_webhook
    secret = SANDBOX_CREDENTIALS["webhook_secret"]
    first = post_webhook(http, body, sign(secret, body))
    second = post_webhook(http, body, sign(secret, body))
    assert (first.json()["result"], second.json()["result"]) == ("ok", "duplicate")
    reload(payment)
    assert payment.status == "succeeded" and payment.version == 3
    assert outbox_types(payment) == ["payment.processing", "payment.succeeded"]
    callbacks = payment.events.filter_by(kind="callback").all()
    assert len(callbacks) == 2 and all(c.verified for c in callbacks)
    assert callbacks[1].message.endswith("duplicate event, ignored")


def test_an_unknown_callback_kind_or_session_on_return_is_a_clear_page(http):
    r = http.get("/callbacks/testcard/return?session_id=cs_test_nope")
    assert r.status_code == 404
    assert "could not find this payment" in r.text
    r = http.get("/callbacks/nogateway/webhook")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


# --- pure helpers ------------------------------------------------------------------------------------------


def test_signature_helpers():
    body = b'{"a":1}'
    header = sign("s3cret", body, timestamp=1_000)
    assert re.fullmatch(r"t=1000,v1=[0-9a-f]{64}", header)
    assert verify_signature("s3cret", body, header, now=1_000)
    assert verify_signature("s3cret", body, header + ",v1=deadbeef", now=1_100)
    assert not verify_signature("s3cret", body, header, now=1_000 + 301)
    assert not verify_signature("other", body, header, now=1_000)
    assert not verify_signature("s3cret", body + b" ", header, now=1_000)
    assert not verify_signature("s3cret", body, "v1=abc", now=1_000)
    assert not verify_signature("", body, header, now=1_000)


@pytest.mark.parametrize("number, ok", [("4242424242424242", True), ("4000000000000002", True),
                                        ("4242424242424241", False), ("4444444444444444", False),
                                        ("12345678901", False), ("abcd", False)])
def test_luhn(number, ok):
    assert luhn_ok(number) is ok


def test_expiry():
    from datetime import datetime

    now = datetime(2026, 11, 23)
    assert expiry_ok("11/26", now) and expiry_ok("12 / 2030", now)
    assert not expiry_ok("10/26", now) and not expiry_ok("00/30", now) and not expiry_ok("1130", now)
