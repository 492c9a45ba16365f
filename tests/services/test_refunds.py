import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import select, update

from app.extensions import db, get_queue
from app.gateways import REGISTRY
from app.gateways.testcard import TestCardGateway
from app.jobs.schedule import run_periodic
from app.models import OutboxEvent, PaymentEvent, Refund, utcnow
from app.sandbox._common import load
from app.services import refunds
from app.services.errors import ValidationError
from tests.gateways.helpers import race
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


def come_due(refund):
    """As if the backoff had passed: the refund's next gateway call is due now."""
    db.session.rollback()
    db.session.execute(update(Refund).where(Refund.id == refund.id).values(next_attempt_at=utcnow()))
    db.session.commit()


def refund_jobs(registry="scheduled"):
    queue = get_queue("default")
    ids = queue.scheduled_job_registry.get_job_ids() if registry == "scheduled" else queue.job_ids
    return [job.args for job in map(queue.fetch_job, ids) if job and job.func_name == "app.jobs.refunds.process"]


def refund_notes(refund):
    db.session.rollback()
    return [e.message for e in db.session.scalars(
        select(PaymentEvent).where(PaymentEvent.payment_id == refund.payment_id, PaymentEvent.kind == "refund")
        .order_by(PaymentEvent.id))]


@pytest.mark.parametrize("idempotent", [True, False])
def test_an_unreachable_acquirer_leaves_the_refund_pending_and_retries(paid, app, monkeypatch, run_jobs,
                                                                       idempotent):
    # Connection refused: the request never left, so even a gateway that does not de-duplicate is asked again.
    monkeypatch.setattr(TestCardGateway, "refund_idempotent", idempotent)
    payment = paid()
    refund = refunds.request_refund(payment, 1000, source="test")
    monkeypatch.setitem(app.config, "GATEWAY_BASE_URLS", {"testcard": "http://127.0.0.1:9"})
    run_jobs()
    refund = reload(refund)
    assert refund.status == "pending" and refund.attempts == 1 and "could not be reached" in refund.failure_message
    due_in = (refund.next_attempt_at - utcnow()).total_seconds()
    assert 55 < due_in <= 60 and refund_jobs() == [(refund.id,)]
    assert refunds.process_refund(refund.id) == "pending" and reload(refund).attempts == 1  # not due yet
    assert refunds.sweep_due_refunds() == 0
    monkeypatch.setitem(app.config, "GATEWAY_BASE_URLS", {})
    come_due(refund)
    run_jobs(advance=61)  # the scheduled retry
    refund = reload(refund)
    assert refund.status == "succeeded" and refund.attempts == 2 and refund.next_attempt_at is None
    assert reload(payment).status == "partially_refunded"
    assert "attempt 1: Card (test acquirer) could not be reached: ConnectionError; next attempt in 1 min" in \
        refund_notes(refund)[1]


def test_a_refund_accepted_while_redis_is_down_is_processed_by_the_sweep(paid, app, monkeypatch, run_jobs):
    payment = paid()
    run_jobs()
    down = redis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    monkeypatch.setitem(app.extensions, "paysmith_redis", down)
    refund = refunds.request_refund(payment, 1000, source="test")  # commits; enqueueing fails quietly
    monkeypatch.undo()  # Redis is back, without the job
    assert reload(refund).status == "pending" and refund_jobs("queued") == []
    assert run_periodic("refunds") == 1
    run_jobs()
    assert reload(refund).status == "succeeded" and refund.attempts == 1
    assert reload(payment).status == "partially_refunded"
    assert refunds.sweep_due_refunds() == 0


def test_two_runs_at_once_call_the_gateway_once(paid, app, monkeypatch, receiver):
    """A duplicate job, or a retry racing the sweep: only the run that claims the refund calls the gateway."""
    payment = paid()
    refund = refunds.request_refund(payment, 1000, source="test")
    monkeypatch.setitem(app.config, "GATEWAY_BASE_URLS", {"testcard": receiver.url})
    receiver.responses = [-1, -1]  # the acquirer takes a second to answer
    refund_id = refund.id
    results = race(2, lambda: refunds.process_refund(refund_id))
    assert len(receiver.requests) == 1, [r["path"] for r in receiver.requests]
    assert receiver.requests[0]["headers"]["Idempotency-Key"] == refund.public_id
    assert reload(refund).attempts == 1 and "pending" in results


def test_a_timeout_at_a_gateway_that_does_not_deduplicate_waits_for_a_person(paid, app, monkeypatch, receiver,
                                                                             run_jobs):
    payment = paid()
    refund = refunds.request_refund(payment, 1000, source="test")
    monkeypatch.setattr(TestCardGateway, "refund_idempotent", False)
    monkeypatch.setattr(TestCardGateway, "timeout_seconds", 0.5)
    monkeypatch.setitem(app.config, "GATEWAY_BASE_URLS", {"testcard": receiver.url})
    receiver.responses = [-3]  # answers after our timeout: the refund may or may not have been made
    run_jobs()
    refund = reload(refund)
    assert (refund.status, refund.attempts, refund.next_attempt_at) == ("pending", 1, None)
    assert refund.needs_attention and refund_jobs() == [] and len(receiver.requests) == 1
    note = refund_notes(refund)[-1]
    assert "attempt 1: Card (test acquirer) did not answer in time. Needs attention: the outcome is unknown" in note
    assert "does not de-duplicate refund requests" in note and "check this refund at Card (test acquirer)" in note
    assert refunds.sweep_due_refunds() == 0
    assert refunds.process_refund(refund.id) == "pending"  # a stray job does not send it again
    assert len(receiver.requests) == 1 and reload(refund).attempts == 1
    assert reload(payment).amount_refunded == 1000  # still reserved


def test_a_timeout_at_a_gateway_that_deduplicates_is_retried(paid, app, monkeypatch, receiver, run_jobs):
    payment = paid()
    refund = refunds.request_refund(payment, 1000, source="test")
    monkeypatch.setattr(TestCardGateway, "timeout_seconds", 0.5)
    monkeypatch.setitem(app.config, "GATEWAY_BASE_URLS", {"testcard": receiver.url})
    receiver.responses = [-3]
    run_jobs()
    refund = reload(refund)
    assert refund.status == "pending" and refund.next_attempt_at is not None and refund_jobs() == [(refund.id,)]
    monkeypatch.setitem(app.config, "GATEWAY_BASE_URLS", {})
    come_due(refund)
    run_jobs(advance=61)  # the same Idempotency-Key: the acquirer makes the refund once
    assert reload(refund).status == "succeeded" and reload(payment).amount_refunded == 1000


def _worker_died_mid_call(refund):
    """As if a run claimed the refund, sent the request, and its worker was killed before recording the answer;
    then its lease ran out."""
    db.session.rollback()
    now = utcnow()
    assert refunds._claim(refund.id, now, now) == [refund.id] and refunds._start_call(refund.id, now)
    db.session.execute(update(Refund).where(Refund.id == refund.id).values(next_attempt_at=utcnow()))
    db.session.commit()


@pytest.mark.parametrize("idempotent", [False, True])
def test_a_worker_that_died_during_the_call(paid, monkeypatch, idempotent):
    """At a gateway that does not de-duplicate, the refund may have been made: a person decides. At one that
    does, sending it again with the same key is safe and settles it."""
    payment = paid()
    refund = refunds.request_refund(payment, 1000, source="test")
    monkeypatch.setattr(TestCardGateway, "refund_idempotent", idempotent)
    calls, real_refund = [], TestCardGateway.refund
    monkeypatch.setattr(TestCardGateway, "refund", lambda self, *a: calls.append(a[2]) or real_refund(self, *a))
    _worker_died_mid_call(refund)
    assert reload(refund).in_call and refunds.sweep_due_refunds() == 1  # the sweep finds the lapsed lease

    status = refunds.process_refund(refund.id)
    refund = reload(refund)
    if idempotent:  # sent again under the same refund id (the acquirer's Idempotency-Key)
        assert status == "succeeded" and calls == [refund.public_id] and not refund.in_call
        return
    assert status == "pending" and calls == []
    assert refund.needs_attention and not refund.in_call and refund.attempts == 1
    note = refund_notes(refund)[-1]
    assert "attempt 1: the worker stopped during the gateway call. Needs attention: the outcome is unknown" in note
    assert refunds.process_refund(refund.id) == "pending" and calls == []  # a stray job sends nothing either
    assert reload(payment).amount_refunded == 1000  # still reserved until a person decides


def test_after_the_last_attempt_the_refund_waits_for_a_person_and_can_be_retried(paid, app, monkeypatch, run_jobs):
    monkeypatch.setitem(app.config, "REFUND_MAX_ATTEMPTS", 2)
    payment = paid()
    refund = refunds.request_refund(payment, 1000, source="test")
    monkeypatch.setitem(app.config, "GATEWAY_BASE_URLS", {"testcard": "http://127.0.0.1:9"})
    run_jobs()
    come_due(refund)
    run_jobs(advance=61)
    refund = reload(refund)
    assert (refund.status, refund.attempts, refund.next_attempt_at) == ("pending", 2, None)
    assert refund.needs_attention and refund_jobs() == [] and refunds.sweep_due_refunds() == 0
    assert "attempt 2: Card (test acquirer) could not be reached: ConnectionError. Needs attention: no more " \
           "automatic attempts after 2" in refund_notes(refund)[-1]
    assert refunds.process_refund(refund.id) == "pending" and reload(refund).attempts == 2

    assert refunds.retry_now(refund, source="test")
    assert not refunds.retry_now(refund, source="test")  # already queued
    run_jobs()  # one more attempt, still unreachable: it waits again
    refund = reload(refund)
    assert (refund.attempts, refund.next_attempt_at) == (3, None)
    monkeypatch.setitem(app.config, "GATEWAY_BASE_URLS", {})
    assert refunds.retry_now(refund, source="test")
    run_jobs()
    assert reload(refund).status == "succeeded" and refund.attempts == 4
    assert not refunds.retry_now(refund, source="test") and not refunds.mark_failed(refund, source="test")
    assert reload(payment).status == "partially_refunded"


def test_mark_failed_releases_the_amount_only_for_a_refund_that_waits(paid, app, monkeypatch, run_jobs):
    monkeypatch.setitem(app.config, "REFUND_MAX_ATTEMPTS", 1)
    payment = paid()
    refund = refunds.request_refund(payment, 1000, source="test")
    assert not refunds.mark_failed(refund, source="test")  # due: a job will ask the gateway
    monkeypatch.setitem(app.config, "GATEWAY_BASE_URLS", {"testcard": "http://127.0.0.1:9"})
    run_jobs()
    assert reload(refund).needs_attention
    assert refunds.mark_failed(refund, source="test")
    refund, payment = reload(refund), reload(payment)
    assert (refund.status, refund.next_attempt_at) == ("failed", None)
    assert "marked failed by a person: the gateway shows no such refund" in refund.failure_message
    assert payment.amount_refunded == 0 and payment.status == "succeeded"
    assert event_types(payment)[-1] == "refund.failed"
    assert not refunds.mark_failed(refund, source="test") and not refunds.retry_now(refund, source="test")


def test_which_gateways_deduplicate_refund_requests():
    assert {code: g.refund_idempotent for code, g in REGISTRY.items()} == {
        "testcard": True,  # Idempotency-Key
        "stripe": True,  # Idempotency-Key
        "midtrans": True,  # refund_key
        # SSLCommerz's answer to a repeated refund_trans_id is not known (app/gateways/sslcommerz.py)
        "vnpay": False, "khalti": False, "bkash": False, "nagad": False, "sslcommerz": False, "rocket": False,
    }


def _refunds_of(payments):
    """One pending refund per payment, due now, with no job queued (as after a Redis outage)."""
    made = [refunds.request_refund(payment, 1000, source="test") for payment in payments]
    get_queue("default").empty()
    return [reload(refund) for refund in made]


def test_the_sweep_processes_a_batch_of_due_refunds_in_one_job(paid, run_jobs, monkeypatch):
    payments = [paid() for _ in range(4)]
    run_jobs()
    made = _refunds_of(payments)
    monkeypatch.setattr(refunds, "REFUND_BATCH", 3)  # two claims of the one job
    assert refunds.sweep_due_refunds() == 4
    assert [job.func_name for job in get_queue("default").jobs] == ["app.jobs.refunds.process_due"]
    assert run_jobs() >= 1 and refund_jobs("queued") == []
    assert [(r.status, r.attempts, r.in_call) for r in map(reload, made)] == [("succeeded", 1, False)] * 4
    assert refunds.sweep_due_refunds() == 0 and get_queue("default").count == 0


def test_two_sweeps_racing_claim_disjoint_refunds_and_call_each_once(paid, app, monkeypatch, receiver):
    payments = [paid() for _ in range(6)]
    made = _refunds_of(payments)
    monkeypatch.setitem(app.config, "GATEWAY_BASE_URLS", {"testcard": receiver.url})
    receiver.responses = [-1] * 12  # every acquirer answer takes a second: the two jobs overlap
    results = race(2, lambda: refunds.process_due_refunds(batch_size=3))
    keys = [r["headers"]["Idempotency-Key"] for r in receiver.requests]
    assert sorted(keys) == sorted(r.public_id for r in made), keys  # each refund called exactly once
    # Between them they settled all six (which sweep took how many depends on the threads' timing).
    assert sum(sum(outcome.values()) for outcome in results) == 6
    assert all(reload(r).attempts == 1 and not reload(r).in_call for r in made)


def test_a_batch_retries_through_the_sweep_and_hands_lapsed_calls_to_a_person(paid, app, monkeypatch):
    """A gateway that could not be reached: the refund of a batch is due again later with no job of its own.
    A refund whose worker died mid-call at a gateway that does not de-duplicate is not claimed again."""
    first, second = _refunds_of([paid(), paid()])
    monkeypatch.setattr(TestCardGateway, "refund_idempotent", False)
    _worker_died_mid_call(second)
    monkeypatch.setitem(app.config, "GATEWAY_BASE_URLS", {"testcard": "http://127.0.0.1:9"})
    assert refunds.process_due_refunds() == {"pending": 1}
    first, second = reload(first), reload(second)
    assert first.attempts == 1 and 55 < (first.next_attempt_at - utcnow()).total_seconds() <= 60
    assert refund_jobs() == [] and refund_jobs("queued") == []  # the sweep finds it when due
    assert second.needs_attention and second.attempts == 1 and not second.in_call
    monkeypatch.setitem(app.config, "GATEWAY_BASE_URLS", {})
    come_due(first)
    assert refunds.process_due_refunds() == {"succeeded": 1}
    assert reload(first).attempts == 2 and reload(second).needs_attention


def test_a_batch_job_out_of_time_gives_the_rest_back(paid, app, monkeypatch):
    made = _refunds_of([paid(), paid()])
    monkeypatch.setattr(refunds, "_SLOWEST_CALL_SECONDS", 1000)  # no time left after the first call
    assert refunds.process_due_refunds() == {"succeeded": 1}
    statuses = sorted((r.status, r.attempts) for r in map(reload, made))
    assert statuses == [("pending", 0), ("succeeded", 1)]
    assert refunds.sweep_due_refunds() == 1  # due again at once
