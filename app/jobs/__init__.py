"""RQ entry points. Jobs take ids, call one service and return; they are enqueued only after a commit.

Queues: `webhooks` (a batch of deliveries per job), `webhooks_slow` (the same, for endpoints that were slow
or failing lately), `default` (expiry, refunds, the periodic sweeps) and
`sandbox` (the gateway simulators' notifications). Every job is idempotent: running one twice, or after a
sweep has enqueued it again, changes nothing more.
"""

from datetime import timedelta

from rq import Queue

from app.extensions import get_queue, get_redis

#: In priority order: a worker takes from `webhooks_slow` (endpoints recently slow or failing) only when the
#: others are empty, so they never hold up the rest.
QUEUES = ["webhooks", "default", "sandbox", "webhooks_slow"]
LANES = {"fast": "webhooks", "slow": "webhooks_slow"}
#: Finished jobs are not kept: the database holds every outcome.
_RESULT_TTL = 0


def _delivery_timeout(app):
    # The batch's deadline, one more request's timeouts, and room to record the answers.
    config = app.config
    return int(config["WEBHOOK_BATCH_SECONDS"] + config["WEBHOOK_CONNECT_TIMEOUT_SECONDS"]
               + config["WEBHOOK_TIMEOUT_SECONDS"] + 60)


def _enqueue(queue, func, arg, *, timeout, delay=None, **options):
    """One job `func(arg)`, now or after `delay` seconds."""
    options.update(job_timeout=timeout, result_ttl=_RESULT_TTL)
    if delay:
        # RQ schedules to the whole second: never run before the row's next_attempt_at.
        return queue.enqueue_in(timedelta(seconds=delay + 1), func, args=(arg,), **options)
    return queue.enqueue(func, args=(arg,), **options)


def _enqueue_many(queue, func, args, *, timeout):
    """A job `func(arg)` for every arg, in one Redis round trip."""
    jobs = [Queue.prepare_data(func, (arg,), timeout=timeout, result_ttl=_RESULT_TTL) for arg in args]
    with queue.connection.pipeline() as pipe:
        queue.enqueue_many(jobs, pipeline=pipe)
        pipe.execute()


def _kick_key(lane):
    return f"paysmith:webhooks:job-queued:{lane}"


def kick_deliveries(app, lanes=("fast", "slow"), force=False):
    """Queue one batch job per lane unless one is already waiting (a job clears its mark when it starts)."""
    redis = get_redis(app)
    for lane in lanes:
        if redis.set(_kick_key(lane), 1, nx=not force, ex=60):
            get_queue(LANES[lane], app).enqueue("app.jobs.webhooks.deliver_batch", lane,
                                               job_timeout=_delivery_timeout(app), result_ttl=_RESULT_TTL)


def started_delivery_job(app, lane):
    get_redis(app).delete(_kick_key(lane))


def schedule_deliveries(app, lane, at):
    """A batch job of the lane at `at` (naive UTC), when retries fall due; one per lane and second."""
    from datetime import UTC

    when = at.replace(tzinfo=UTC) + timedelta(seconds=1)  # RQ schedules to the whole second
    get_queue(LANES[lane], app).enqueue_at(when, "app.jobs.webhooks.deliver_batch", lane,
                                           job_id=f"webhooks-{lane}-at-{int(when.timestamp())}",
                                           job_timeout=_delivery_timeout(app), result_ttl=_RESULT_TTL)


def _refund_timeout(app):
    # Stopped a minute before its lease ends, so a later run that takes the refund over never overlaps it.
    return app.config["REFUND_LEASE_SECONDS"] - 60


def enqueue_refund(app, refund_id, delay=None):
    """One run of a refund's gateway call, now or after `delay` seconds."""
    return _enqueue(get_queue("default", app), "app.jobs.refunds.process", refund_id,
                    timeout=_refund_timeout(app), delay=delay)


def enqueue_refunds(app, refund_ids):
    """Refund jobs for many refunds just requested, in one Redis round trip."""
    _enqueue_many(get_queue("default", app), "app.jobs.refunds.process", refund_ids, timeout=_refund_timeout(app))


def enqueue_refund_batch(app):
    """One job that claims due refunds in batches and calls their gateways (the sweep's); with the same
    timeout as a refund job, which its time budget keeps to."""
    return get_queue("default", app).enqueue("app.jobs.refunds.process_due", job_timeout=_refund_timeout(app),
                                             result_ttl=_RESULT_TTL)


def enqueue_receipts(app, receipt_ids):
    """One send job per receipt, in one Redis round trip."""
    _enqueue_many(get_queue("default", app), "app.jobs.receipts.send", receipt_ids,
                  timeout=2 * app.config["MAIL_TIMEOUT_SECONDS"] + 30)


def after_commit(app, webhooks, payments, refund_ids=()):
    """Hook run by the outbox relay after a commit: webhook deliveries, expiry timers, gateway refunds.

    webhooks: whether the transaction wrote webhook deliveries; payments: (payment id, expires_at) of payments
    created in the transaction.
    """
    if webhooks:
        kick_deliveries(app)
    if payments:
        queue = get_queue("default", app)
        for payment_id, expires_at in payments:
            queue.enqueue_at(expires_at + timedelta(seconds=1), "app.jobs.expiry.expire", payment_id,
                             job_id=f"expire-{payment_id}", result_ttl=_RESULT_TTL)
    if refund_ids:
        enqueue_refunds(app, refund_ids)
