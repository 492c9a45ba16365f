import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import OutboxEvent, Refund
from app.sandbox._common import load
from app.services import refunds
from app.services.errors import ValidationError
from tests.helpers import reload
from tests.payflow import REFUND_DECLINED, pay


@pytest.fixture
def paid(factories, http):
    def make(merchant=None, number="4242 4242 4242 4242", amount=5000):
        merchant = merchant or factories.merchant()[0]
        payment = factories.payment(merchant, currency="USD", amount=amount)
        pay(http, payment, number)
        assert reload(payment).status == "succeeded"
        return payment

    return make


def event_types(payment):
    db.session.rollback()
    return [e.type for e in db.session.scalars(select(OutboxEvent).where(OutboxEvent.payment_id == payment.id)
                                               .order_by(OutboxEvent.id))]


def test_partial_then_full_refund_at_the_acquirer(paid, run_jobs):
    payment = paid()
    run_jobs()
    first = refunds.request_refund(payment, 2000, "damaged", source="test")
    assert first.status == "pending" and reload(payment).amount_refunded == 2000
    run_jobs()
    first, payment = reload(first), reload(payment)
    assert first.status == "succeeded" and first.gateway == "testcard" and first.gateway_reference.startswith("rf_")
    assert payment.status == "partially_refunded" and payment.amount_refunded == 2000

    rest = refunds.request_refund(payment, source="test")  # the whole remaining amount
    assert rest.amount == 3000
    run_jobs()
    payment = reload(payment)
    assert reload(rest).status == "succeeded" and payment.status == "refunded" and payment.amount_refunded == 5000
    session = load("testcard", "session", payment.gateway_reference)
    assert session["amount_refunded"] == 5000 and session["status"] == "refunded"
    types = event_types(payment)
    assert types[-4:] == ["payment.partially_refunded", "refund.succeeded", "payment.refunded", "refund.succeeded"]
    refund_event = db.session.scalars(select(OutboxEvent).where(OutboxEvent.type == "refund.succeeded")
                                     .order_by(OutboxEvent.id)).first()
    assert refund_event.payload["data"]["object"]["id"] == first.public_id
    assert refund_event.payload["data"]["object"]["status"] == "succeeded"

    with pytest.raises(ValidationError) as exc:
        refunds.request_refund(payment, 1, source="test")
    assert exc.value.code == "payment_not_refundable"


def test_over_the_limit_and_unpaid_payments_are_refused(paid, factories, run_jobs):
    payment = paid()
    with pytest.raises(ValidationError) as exc:
        refunds.request_refund(payment, 5001, source="test")
    assert exc.value.code == "refund_exceeds_captured" and exc.value.status == 422
    refunds.request_refund(payment, 4000, source="test")
    with pytest.raises(ValidationError) as exc:
        refunds.request_refund(payment, 1001, source="test")  # 4000 is reserved though still pending
    assert exc.value.code == "refund_exceeds_captured"
    assert reload(payment).amount_refunded == 4000
    assert db.session.scalar(select(db.func.count()).select_from(Refund)) == 1

    merchant, _ = factories.merchant()
    unpaid = factories.payment(merchant)
    with pytest.raises(ValidationError) as exc:
        refunds.request_refund(unpaid, 100, source="test")
    assert exc.value.code == "payment_not_refundable"
    for bad in (0, -5, 1.5, "100", True):
        with pytest.raises(ValidationError):
            refunds.request_refund(payment, bad, source="test")


def test_a_refund_declined_by_the_acquirer_fails_and_releases_the_amount(paid, run_jobs):
    payment = paid(number=REFUND_DECLINED)
    refund = refunds.request_refund(payment, 1500, source="test")
    run_jobs()
    refund, payment = reload(refund), reload(payment)
    assert refund.status == "failed" and refund.failure_message == "The card issuer declined the refund."
    assert payment.status == "succeeded" and payment.amount_refunded == 0
    assert event_types(payment)[-1] == "refund.failed"
    assert "failed: The card issuer declined the refund." in payment.events.filter_by(kind="refund").all()[-1].message
    assert refunds.process_refund(refund.id) == "failed"  # a repeated job changes nothing
    again = refunds.request_refund(payment, 5000, source="test")  # the whole amount is refundable again
    assert again.amount == 5000


def test_an_unreachable_acquirer_leaves_the_refund_pending_and_retries(paid, app, monkeypatch, run_jobs):
    payment = paid()
    refund = refunds.request_refund(payment, 1000, source="test")
    monkeypatch.setitem(app.config, "GATEWAY_BASE_URLS", {"testcard": "http://127.0.0.1:9"})
    run_jobs()
    refund = reload(refund)
    assert refund.status == "pending" and refund.attempts == 1 and "could not be reached" in refund.failure_message
    monkeypatch.setitem(app.config, "GATEWAY_BASE_URLS", {})
    assert refunds.process_refund(refund.id) == "succeeded"
    assert reload(payment).status == "partially_refunded"
