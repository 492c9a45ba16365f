"""The daily payment totals the overview reads always equal a GROUP BY of the payments themselves, whatever
path moved them (the state machine, the set-based expiry sweep, a back-dated or bulk-updated row), before and
after the roll-up, and two roll-ups at once count every change once."""

import random
import threading
from datetime import timedelta

from sqlalchemy import func, select, update

from app.extensions import db
from app.models import Payment, PaymentTotalChange, utcnow
from app.services import expiry
from app.services.totals import roll_up, totals_statement
from app.state_machine import Status, transition, transition_many
from tests.web.dashboard.test_payments import _set

FAR_BACK = (utcnow() - timedelta(days=400)).date()


def _order(row):
    return tuple("" if v is None else str(v) for v in row)


def _truth(merchant_id):
    """What the totals must say: the payments grouped directly."""
    day = func.date(Payment.created_at)
    rows = db.session.execute(
        select(Payment.currency, Payment.gateway, Payment.status, day, func.count(), func.sum(Payment.amount))
        .where(Payment.merchant_id == merchant_id).group_by(Payment.currency, Payment.gateway, Payment.status, day))
    return sorted(((c, g, s, str(d), n, int(a)) for c, g, s, d, n, a in rows), key=_order)


def _totals(merchant_id):
    db.session.rollback()
    return sorted(((c, g, s, str(d), int(n), int(a))
                  for c, g, s, d, n, a in db.session.execute(totals_statement(merchant_id, FAR_BACK))), key=_order)


def test_totals_follow_every_path_before_and_after_the_roll_up(factories):
    merchant, _ = factories.merchant()
    other, _ = factories.merchant()
    rng = random.Random(15)
    payments = [factories.payment(merchant, currency=rng.choice(["USD", "VND"]), amount=rng.randrange(100, 90_000))
                for _ in range(12)]
    factories.payment(other, currency="USD", amount=777)
    assert _totals(merchant.id) == _truth(merchant.id) and len(_truth(merchant.id)) <= 2

    _set(payments[0], Status.SUCCEEDED, days_ago=3)  # through an attempt, then back-dated
    _set(payments[1], Status.SUCCEEDED, gateway="vnpay")
    _set(payments[2], Status.FAILED, days_ago=40)
    transition(payments[3], Status.CANCELLED, reason="test", source="test")
    transition(payments[1], Status.PARTIALLY_REFUNDED, reason="test", source="test")
    transition(payments[1], Status.PARTIALLY_REFUNDED, reason="test", source="test")  # same status: no change
    db.session.commit()
    assert _totals(merchant.id) == _truth(merchant.id)
    assert roll_up() > 0
    assert db.session.scalar(select(func.count()).select_from(PaymentTotalChange)) == 0
    assert _totals(merchant.id) == _truth(merchant.id)

    # The set-based expiry sweep (one UPDATE of many rows) and a bulk back-dating.
    db.session.execute(update(Payment).where(Payment.id.in_([p.id for p in payments[4:9]]))
                       .values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert expiry.expire_overdue(batch_size=2) == 5
    db.session.execute(update(Payment).where(Payment.id.in_([p.id for p in payments[6:11]]))
                       .values(created_at=utcnow() - timedelta(days=2)))
    db.session.commit()
    assert _totals(merchant.id) == _truth(merchant.id)
    roll_up(batch=3)  # several batches
    assert _totals(merchant.id) == _truth(merchant.id)
    assert _totals(other.id) == _truth(other.id) == [("USD", None, "pending", _truth(other.id)[0][3], 1, 777)]


def test_moves_that_cancel_out_leave_no_row_and_zero_totals_are_not_shown(factories):
    merchant, _ = factories.merchant()
    payment = factories.payment(merchant, currency="USD", amount=1000)
    roll_up()
    candidates = [(payment.id, payment.status, payment.version)]
    assert transition_many(candidates, Status.EXPIRED, reason="test", source="test")
    db.session.commit()
    roll_up()
    assert _totals(merchant.id) == _truth(merchant.id)
    assert [row[2] for row in _totals(merchant.id)] == ["expired"]  # the emptied pending total is not listed


def test_two_roll_ups_at_once_count_each_change_once(app, factories):
    merchant, _ = factories.merchant()
    for i in range(40):
        payment = factories.payment(merchant, currency="USD", amount=100 + i)
        if i % 2:
            _set(payment, Status.SUCCEEDED)
    db.session.commit()
    errors, start = [], threading.Barrier(2)

    def run():
        try:
            with app.app_context():
                start.wait()
                roll_up(batch=7)
                db.session.remove()
        except Exception as exc:  # noqa: BLE001 — reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert db.session.scalar(select(func.count()).select_from(PaymentTotalChange)) == 0
    assert _totals(merchant.id) == _truth(merchant.id)


def test_the_migration_fills_the_totals_from_the_payments_already_there(factories):
    from flask_migrate import downgrade, upgrade

    merchant, _ = factories.merchant()
    for i in range(5):
        payment = factories.payment(merchant, currency="USD", amount=100 + i)
        if i % 2:
            _set(payment, Status.SUCCEEDED, days_ago=i)
    db.session.commit()
    merchant_id = merchant.id
    db.session.remove()
    downgrade(revision="0006")  # the totals and their triggers are gone …
    upgrade()  # … and come back, filled from the payments
    assert db.session.scalar(select(func.count()).select_from(PaymentTotalChange)) == 0
    assert _totals(merchant_id) == _truth(merchant_id)
