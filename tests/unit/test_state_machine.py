"""The payment state machine: the transition table, random walks through it, and racing transitions."""

import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.extensions import db
from app.models import OutboxEvent, Payment, PaymentEvent
from app.state_machine import LATE_SUCCESS_FROM, TERMINAL, TRANSITIONS, Status, can_transition, transition

S = Status
#: How to reach each status from pending, through transition() itself.
PATHS = {
    S.PENDING: [],
    S.PROCESSING: [S.PROCESSING],
    S.SUCCEEDED: [S.SUCCEEDED],
    S.FAILED: [S.PROCESSING, S.FAILED],
    S.CANCELLED: [S.CANCELLED],
    S.EXPIRED: [S.EXPIRED],
    S.PARTIALLY_REFUNDED: [S.SUCCEEDED, S.PARTIALLY_REFUNDED],
    S.REFUNDED: [S.SUCCEEDED, S.REFUNDED],
}
#: The documented graph, written out by hand (not derived from TRANSITIONS) so the table itself is tested.
ALLOWED = {
    ("pending", "processing"), ("pending", "succeeded"), ("pending", "failed"), ("pending", "cancelled"),
    ("pending", "expired"),
    ("processing", "succeeded"), ("processing", "failed"), ("processing", "cancelled"), ("processing", "expired"),
    ("processing", "pending"),  # the attempt at the gateway failed: the shopper may try again
    ("succeeded", "partially_refunded"), ("succeeded", "refunded"),
    ("partially_refunded", "partially_refunded"), ("partially_refunded", "refunded"),
}
LATE = {("failed", "succeeded"), ("cancelled", "succeeded"), ("expired", "succeeded")}


def count(model, **where):
    query = select(func.count()).select_from(model)
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    return db.session.scalar(query)


def reach(payment, status):
    for step in PATHS[status]:
        assert transition(payment, step, reason="setup", source="test")
    db.session.commit()
    assert payment.status == status


@pytest.fixture
def merchant(factories):
    return factories.merchant()[0]


def test_terminal_states_are_the_documented_ones():
    assert TERMINAL == {S.FAILED, S.CANCELLED, S.EXPIRED, S.REFUNDED}
    assert LATE_SUCCESS_FROM == {S.FAILED, S.CANCELLED, S.EXPIRED}


@pytest.mark.parametrize("current", list(Status))
@pytest.mark.parametrize("target", list(Status))
def test_transition_table(current, target, merchant, factories):
    allowed = (current.value, target.value) in ALLOWED
    late = (current.value, target.value) in LATE
    assert can_transition(current, target) == allowed
    assert can_transition(current, target, late_success=True) == (allowed or late)
    assert (target in TRANSITIONS[current]) == allowed

    payment = factories.payment(merchant)
    reach(payment, current)
    version, events, outbox = payment.version, count(PaymentEvent), count(OutboxEvent)
    applied = transition(payment, target, reason="table test", source="test")
    db.session.commit()
    assert applied == allowed
    db.session.refresh(payment)
    if allowed:
        assert payment.status == target
        assert payment.version > version
        assert count(PaymentEvent) > events
    else:
        assert payment.status == current
        assert payment.version == version
        assert count(PaymentEvent) == events
        assert count(OutboxEvent) == outbox


@pytest.mark.parametrize("current", sorted(LATE_SUCCESS_FROM))
def test_late_success_needs_the_explicit_flag_and_is_marked(current, merchant, factories):
    payment = factories.payment(merchant)
    reach(payment, current)
    assert transition(payment, S.SUCCEEDED, reason="gateway confirmed", source="test") is False
    assert transition(payment, S.SUCCEEDED, reason="gateway confirmed", source="callback:testcard",
                      late_success=True) is True
    db.session.commit()
    assert payment.status == S.SUCCEEDED
    assert payment.late_success is True
    assert payment.paid_at is not None
    event = payment.events.filter_by(kind="status_change", to_status="succeeded").one()
    assert event.from_status == current
    assert "late success" in event.message
    outbox = db.session.scalars(select(OutboxEvent).where(OutboxEvent.type == "payment.succeeded")).one()
    assert outbox.payload["data"]["object"]["late_success"] is True


def test_a_transition_writes_its_event_and_outbox_row_with_the_new_state(merchant, factories):
    payment = factories.payment(merchant)
    assert transition(payment, S.PROCESSING, reason="Shopper chose Card", source="checkout", gateway="testcard",
                      data={"why": "test"}, changes={"gateway": "testcard"})
    db.session.commit()
    event = payment.events.filter_by(kind="status_change").one()
    assert (event.from_status, event.to_status, event.gateway) == ("pending", "processing", "testcard")
    assert event.message == "Shopper chose Card [checkout]"
    assert event.data == {"why": "test"}
    outbox = db.session.scalars(select(OutboxEvent)).one()
    assert outbox.type == "payment.processing"
    assert outbox.merchant_id == merchant.id and outbox.payment_id == payment.id
    assert outbox.payload["type"] == "payment.processing"
    assert outbox.payload["id"] == outbox.public_id
    assert outbox.payload["data"]["object"]["status"] == "processing"
    assert outbox.payload["data"]["object"]["gateway"] == "testcard"


steps = st.lists(st.tuples(st.sampled_from(list(Status)), st.booleans()), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(walk=steps)
def test_random_walks_never_leave_the_graph(walk, merchant, factories):
    payment = factories.payment(merchant)
    history = [payment.status]
    for target, late_flag in walk:
        before, version = Status(payment.status), payment.version
        events = count(PaymentEvent, payment_id=payment.id, kind="status_change")
        outbox = count(OutboxEvent, payment_id=payment.id)
        applied = transition(payment, target, reason="walk", source="test", late_success=late_flag)
        db.session.commit()
        db.session.refresh(payment)
        edge = (before.value, target.value)
        if applied:
            assert edge in ALLOWED or (late_flag and edge in LATE)
            assert payment.status == target
            assert payment.version == version + 1
            if target == S.SUCCEEDED:
                assert payment.late_success == (edge in LATE)
            assert count(PaymentEvent, payment_id=payment.id, kind="status_change") == events + 1
            assert count(OutboxEvent, payment_id=payment.id) == outbox + 1
            newest = db.session.scalars(select(OutboxEvent).where(OutboxEvent.payment_id == payment.id)
                                        .order_by(OutboxEvent.id.desc())).first()
            assert newest.type == f"payment.{target.value}"
        else:
            assert not (edge in ALLOWED or (late_flag and edge in LATE))
            assert payment.status == before
            assert payment.version == version
            assert count(PaymentEvent, payment_id=payment.id, kind="status_change") == events
            assert count(OutboxEvent, payment_id=payment.id) == outbox
        if before in TERMINAL and applied:
            assert late_flag and before in LATE_SUCCESS_FROM and target == S.SUCCEEDED
        history.append(payment.status)
    # Once refunded, always refunded; once paid, never unpaid.
    if "refunded" in history:
        assert history[-1] == "refunded"
    paid = {"succeeded", "partially_refunded", "refunded"}
    first_paid = next((i for i, s in enumerate(history) if s in paid), None)
    if first_paid is not None:
        assert all(s in paid for s in history[first_paid:])


def _race(app, payment_id, targets):
    """Each thread loads the payment, then all try their transition at once. Returns what each got."""
    barrier = threading.Barrier(len(targets))
    results = [None] * len(targets)
    errors = []

    def worker(i, target):
        try:
            with app.app_context():
                payment = db.session.get(Payment, payment_id)
                assert payment.status == "pending"
                db.session.expunge(payment)  # keep the stale snapshot, end the transaction
                db.session.commit()
                barrier.wait(timeout=30)
                db.session.add(payment)
                results[i] = transition(payment, target, reason=f"race {i}", source="test")
                db.session.commit()
                db.session.remove()
        except Exception as exc:  # surfaced in the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(i, t)) for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


@pytest.mark.parametrize("targets", [
    [S.SUCCEEDED, S.SUCCEEDED],
    [S.SUCCEEDED, S.CANCELLED],
    [S.PROCESSING, S.PROCESSING, S.PROCESSING, S.PROCESSING],
])
def test_racing_transitions_apply_exactly_once(app, merchant, factories, targets):
    payment = factories.payment(merchant)
    results = _race(app, payment.id, targets)
    assert results.count(True) == 1, results
    assert results.count(False) == len(targets) - 1
    db.session.rollback()
    db.session.refresh(payment)
    winner = targets[results.index(True)]
    assert payment.status == winner
    assert payment.version == 1
    assert count(PaymentEvent, payment_id=payment.id, kind="status_change") == 1
    assert count(OutboxEvent, payment_id=payment.id) == 1
