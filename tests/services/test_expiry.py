import time

from sqlalchemy import select

from app.extensions import db, get_redis
from app.models import OutboxEvent, PaymentEvent, utcnow
from app.services import expiry
from tests.helpers import reload
from tests.payflow import open_card_page, pay, submit_card


def wait_until_overdue(*payments):
    latest = max(p.expires_at for p in payments)
    time.sleep(max((latest - utcnow()).total_seconds(), 0) + 0.05)


def outbox_types(payment):
    db.session.rollback()
    return [e.type for e in db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.payment_id == payment.id).order_by(OutboxEvent.id))]


def test_the_job_scheduled_at_creation_expires_the_payment(factories, run_jobs):
    merchant, _ = factories.merchant()
    payment = factories.payment(merchant, expires_in=1)
    run_jobs()
    assert reload(payment).status == "pending"  # not before its time
    wait_until_overdue(payment)
    run_jobs(advance=2)
    payment = reload(payment)
    assert payment.status == "expired" and payment.failure_code == "expired"
    change = payment.events.filter_by(kind="status_change").one()
    assert (change.from_status, change.to_status) == ("pending", "expired") and "[expiry]" in change.message
    assert outbox_types(payment) == ["payment.expired"]
    assert expiry.expire_payment(payment.id) is False  # twice changes nothing


def test_the_sweep_expires_overdue_payments_in_batches_when_the_jobs_were_lost(factories, http):
    merchant, _ = factories.merchant()
    overdue = [factories.payment(merchant, expires_in=1, currency="USD", amount=500) for _ in range(4)]
    open_card_page(http, overdue[0])  # processing at the acquirer
    later = factories.payment(merchant, expires_in=600)
    get_redis().flushdb()  # every timer job lost
    assert reload(overdue[0]).status == "processing"
    wait_until_overdue(*overdue)

    assert expiry.expire_overdue(batch_size=3) == 4
    for payment in overdue:
        payment = reload(payment)
        assert payment.status == "expired" and payment.version >= 1
        [change] = payment.events.filter_by(kind="status_change", to_status="expired").all()
        assert "[expiry]" in change.message
        [event] = db.session.scalars(select(OutboxEvent).where(OutboxEvent.payment_id == payment.id,
                                                               OutboxEvent.type == "payment.expired")).all()
        assert event.payload["id"] == event.public_id and event.payload["type"] == "payment.expired"
        assert event.payload["data"]["object"]["status"] == "expired"
        assert event.payload["data"]["object"]["id"] == payment.public_id
    assert reload(overdue[0]).events.filter_by(kind="status_change").count() == 2  # pending→processing→expired
    assert reload(later).status == "pending"
    assert expiry.expire_overdue() == 0


def test_the_sweep_moves_only_rows_that_did_not_change_meanwhile(factories):
    from app.state_machine import Status, transition_many

    merchant, _ = factories.merchant()
    a, b = factories.payment(merchant, expires_in=1), factories.payment(merchant, expires_in=1)
    stale = [(a.id, "pending", a.version), (b.id, "pending", b.version + 7)]  # b changed since it was read
    moved = transition_many(stale, Status.EXPIRED, reason="test", source="expiry")
    db.session.commit()
    assert moved == [a.id]
    assert reload(a).status == "expired" and reload(b).status == "pending"
    assert db.session.scalar(select(PaymentEvent).where(PaymentEvent.payment_id == b.id,
                                                        PaymentEvent.kind == "status_change")) is None


def test_a_payment_paid_just_before_its_expiry_stays_paid(factories, http, run_jobs):
    merchant, _ = factories.merchant()
    payment = factories.payment(merchant, expires_in=2, currency="USD", amount=5000)
    pay(http, payment)
    assert reload(payment).status == "succeeded"
    wait_until_overdue(payment)
    run_jobs(advance=2)
    assert expiry.expire_overdue() == 0
    assert expiry.expire_payment(payment.id) is False
    payment = reload(payment)
    assert payment.status == "succeeded" and not payment.late_success
    assert "payment.expired" not in outbox_types(payment)


def test_late_success_after_expiry_while_the_shopper_was_on_the_card_page(factories, hooked, receiver, http,
                                                                         run_jobs):
    merchant, _ = hooked
    payment = factories.payment(merchant, expires_in=2, currency="USD", amount=5000)
    card_page = open_card_page(http, payment)
    back = submit_card(http, card_page)  # the acquirer took the money at the last moment
    wait_until_overdue(payment)
    assert expiry.expire_overdue() == 1  # our sweep ran before the confirmation came
    assert reload(payment).status == "expired"

    r = http.get(back)  # the shopper's browser comes back: we ask the acquirer, who says paid
    assert r.status_code == 200
    payment = reload(payment)
    assert payment.status == "succeeded" and payment.late_success
    change = payment.events.filter_by(kind="status_change", to_status="succeeded").one()
    assert change.from_status == "expired" and "late success" in change.message
    run_jobs()  # merchant webhooks, and the acquirer's own notification (a duplicate by now)
    assert reload(payment).status == "succeeded"
    sent = [(r["json"]["type"], r["json"]["data"]["object"]["late_success"]) for r in receiver.requests]
    assert sent == [("payment.processing", False), ("payment.expired", False), ("payment.succeeded", True)]
    assert all(r["verified"] for r in receiver.requests)
