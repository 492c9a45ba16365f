"""RQ entry points. Jobs take ids, call one service and return; they are enqueued only after a commit.

Queues: `webhooks` (one delivery attempt per job), `webhooks_slow` (the same, for endpoints that were slow
or failing lately), `default` (expiry, refunds, the periodic sweeps) and
`sandbox` (the gateway simulators' notifications). Every job is idempotent: running one twice, or after a
sweep has enqueued it again, changes nothing more.
"""

from datetime import timedelta

from rq import Queue

from app.extensions import get_queue

#: In priority order: a worker takes from `webhooks_slow` (endpoints recently slow or failing) only when the
#: others are empty, so they never hold up the rest.
QUEUES = ["webhooks", "default", "sandbox", "webhooks_slow"]
LANES = {"fast": "webhooks", "slow": "webhooks_slow"}
#: Finished jobs are not kept: the database holds every outcome.
_RESULT_TTL = 0


def _delivery_timeout(app):
    # A POST may take the connect timeout plus the read timeout; leave room to record the answer.
    return 2 * app.config["WEBHOOK_TIMEOUT_SECONDS"] + 30


def enqueue_delivery(app, event_id, delay=None, lane="fast"):
    """One delivery attempt of an outbox event, now or after `delay` seconds, in the fast or slow lane."""
    queue = get_queue(LANES[lane], app)
    kwargs = {"job_timeout": _delivery_timeout(app), "result_ttl": _RESULT_TTL}
    if lane != "fast":
        kwargs["kwargs"] = {"lane": lane}
    if delay:
        # RQ schedules to the whole second: never run before the event's next_attempt_at.
        return queue.enqueue_in(timedelta(seconds=delay + 1), "app.jobs.webhooks.deliver", args=(event_id,),
                                **kwargs)
    return queue.enqueue("app.jobs.webhooks.deliver", args=(event_id,), **kwargs)


def enqueue_deliveries(app, event_ids):
    """Delivery jobs for many events in one Redis round trip."""
    queue = get_queue("webhooks", app)
    timeout = _delivery_timeout(app)
    jobs = [Queue.prepare_data("app.jobs.webhooks.deliver", (event_id,), timeout=timeout, result_ttl=_RESULT_TTL)
            for event_id in event_ids]
    with queue.connection.pipeline() as pipe:
        queue.enqueue_many(jobs, pipeline=pipe)
        pipe.execute()


def _refund_timeout(app):
    # Stopped a minute before its lease ends, so a later run that takes the refund over never overlaps it.
    return app.config["REFUND_LEASE_SECONDS"] - 60


def enqueue_refund(app, refund_id, delay=None):
    """One run of a refund's gateway call, now or after `delay` seconds."""
    queue = get_queue("default", app)
    kwargs = {"job_timeout": _refund_timeout(app), "result_ttl": _RESULT_TTL}
    if delay:
        # RQ schedules to the whole second: never run before the refund's next_attempt_at.
        return queue.enqueue_in(timedelta(seconds=delay + 1), "app.jobs.refunds.process", args=(refund_id,),
                                **kwargs)
    return queue.enqueue("app.jobs.refunds.process", args=(refund_id,), **kwargs)


def enqueue_refunds(app, refund_ids):
    """Refund jobs for many refunds in one Redis round trip."""
    queue = get_queue("default", app)
    timeout = _refund_timeout(app)
    jobs = [Queue.prepare_data("app.jobs.refunds.process", (refund_id,), timeout=timeout, result_ttl=_RESULT_TTL)
            for refund_id in refund_ids]
    with queue.connection.pipeline() as pipe:
        queue.enqueue_many(jobs, pipeline=pipe)
        pipe.execute()


def after_commit(app, event_ids, payments, refund_ids=()):
    """Hook run by the outbox relay after a commit: webhook deliveries, expiry timers, gateway refunds.

    payments: (payment id, expires_at) of payments created in the transaction.
    """
    if event_ids:
        enqueue_deliveries(app, event_ids)
    if payments:
        queue = get_queue("default", app)
        for payment_id, expires_at in payments:
            queue.enqueue_at(expires_at + timedelta(seconds=1), "app.jobs.expiry.expire", payment_id,
                             job_id=f"expire-{payment_id}", result_ttl=_RESULT_TTL)
    if refund_ids:
        enqueue_refunds(app, refund_ids)
