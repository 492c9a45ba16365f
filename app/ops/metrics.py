"""Prometheus metrics: the series, one-line recording functions for the code that knows what happened, and the
`/metrics` exposition (in `app.ops.routes`).

Recorded where it happens (each call a single line, so it is easy to find and to keep):
- `http_request(method, route, status, seconds)` — every request, by URL rule (never the raw path);
- `callback(gateway, ack, applied)` — every gateway callback, by verdict: applied, accepted (valid, nothing to
  change: a browser return, a refund confirmation), duplicate, refused (with the reason: not_found,
  invalid_signature, invalid_amount, invalid_request) or error;
- `payment_transition(from, to)` / `attempt_transition(gateway, from, to)` — from the state machine when its
  compare-and-set UPDATE moved the row; counted only when that transaction COMMITS (noted in the session,
  counted by an after_commit hook, dropped on rollback), so a transition that was rolled back is never counted;
- `webhook_delivery(outcome, seconds)` — each delivery attempt; `job_run(job, status, seconds)` — each RQ job.
Collected at scrape time (`StateCollector`, cheap indexed queries): queue depths, workers and their oldest
heartbeat, due outbox events and the age of the oldest, refunds needing attention.

Multiprocess mode: with PROMETHEUS_MULTIPROC_DIR set (before the process starts) every process writes its
counts to files there and `/metrics` adds them all up (prometheus_client's MultiProcessCollector). Give
gunicorn AND `worker.py` the same directory, wiped before they start (gunicorn.conf.py does both wiping and the
`child_exit` clean-up); webhook deliveries and job runs are counted in the worker's processes. The work horses
of one RQ worker (one forked per job, one at a time) share one identity, PAYSMITH_METRICS_PROCESS, so the
directory holds a few files per process rather than one per job.
"""

import os
from contextlib import suppress

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import event
from sqlalchemy.orm import Session

#: Set in an RQ work horse (app.ops.jobs.Worker): the identity of its multiprocess files.
PROCESS_ENV = "PAYSMITH_METRICS_PROCESS"


def _process_identifier():
    return os.environ.get(PROCESS_ENV) or os.getpid()


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)  # a missing one would fail every request
    # Chosen before any series below exists (prometheus_client reads the value class when a series is made).
    values.ValueClass = values.MultiProcessValue(process_identifier=_process_identifier)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

HTTP_REQUESTS = Counter("paysmith_http_requests", "HTTP requests answered, by URL rule and status",
                        ["method", "route", "status"])
HTTP_DURATION = Histogram("paysmith_http_request_duration_seconds", "Time to answer an HTTP request",
                          ["method", "route", "status"], buckets=_LATENCY_BUCKETS)
CALLBACKS = Counter("paysmith_callbacks", "Gateway callbacks by gateway and verdict; refused ones by reason",
                    ["gateway", "verdict", "reason"])
PAYMENT_TRANSITIONS = Counter("paysmith_payment_transitions", "Committed payment status changes",
                              ["from", "to"])
ATTEMPT_TRANSITIONS = Counter("paysmith_attempt_transitions", "Committed payment attempt status changes",
                              ["gateway", "from", "to"])
WEBHOOK_DELIVERIES = Counter("paysmith_webhook_deliveries", "Webhook delivery attempts by outcome", ["outcome"])
WEBHOOK_DURATION = Histogram("paysmith_webhook_delivery_duration_seconds", "Time of one webhook delivery attempt",
                             ["outcome"], buckets=_LATENCY_BUCKETS)
JOBS = Counter("paysmith_jobs", "RQ jobs run, by job function and how they ended", ["job", "status"])
JOB_DURATION = Histogram("paysmith_job_duration_seconds", "Time of one RQ job", ["job"], buckets=_LATENCY_BUCKETS)

_REFUSED = {"not_found", "invalid_signature", "invalid_amount", "invalid_request"}


def http_request(method, route, status, seconds):
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route, str(status)).observe(seconds)


def callback_verdict(ack, applied):
    """(verdict, reason) of a callback answered with `ack` (an app.gateways.base.Ack)."""
    ack = str(ack)
    if ack == "ok":
        return ("applied" if applied else "accepted"), ""
    if ack in _REFUSED:
        return "refused", ack
    return ack, ""  # duplicate, error


def callback(gateway, ack, applied=False):
    CALLBACKS.labels(gateway, *callback_verdict(ack, applied)).inc()


def _pending(session):
    return session.info.setdefault("metrics_transitions", [])


def payment_transition(from_status, to_status, session=None):
    """Note a payment status change made in the current transaction; counted if it commits."""
    _pending(session or _session()).append((PAYMENT_TRANSITIONS, (str(from_status), str(to_status))))


def attempt_transition(gateway, from_status, to_status, session=None):
    """Note an attempt status change made in the current transaction; counted if it commits."""
    _pending(session or _session()).append((ATTEMPT_TRANSITIONS, (gateway, str(from_status), str(to_status))))


def _session():
    from app.extensions import db

    return db.session()


def webhook_delivery(outcome, seconds):
    WEBHOOK_DELIVERIES.labels(outcome).inc()
    WEBHOOK_DURATION.labels(outcome).observe(seconds)


def job_run(job, status, seconds):
    JOBS.labels(job or "", status).inc()
    JOB_DURATION.labels(job or "").observe(seconds)


@event.listens_for(Session, "after_commit")
def _count_committed(session):
    for counter, labels in session.info.pop("metrics_transitions", ()):
        counter.labels(*labels).inc()


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session):
    session.info.pop("metrics_transitions", None)


# --- exposition ---------------------------------------------------------------------------------------------


class StateCollector:
    """Gauges read at scrape time. A source that fails (database or Redis down) is reported by
    `paysmith_scrape_source_up{source}` = 0 instead of failing the scrape."""

    def collect(self):
        from app.extensions import db
        from app.ops import probes

        up = GaugeMetricFamily("paysmith_scrape_source_up", "Whether a source answered this scrape",
                               labels=["source"])
        try:
            depths = probes.queue_depths()
            count, oldest = probes.workers()
        except Exception:
            up.add_metric(["redis"], 0)
        else:
            up.add_metric(["redis"], 1)
            jobs = GaugeMetricFamily("paysmith_queue_jobs", "RQ jobs per queue and state", labels=["queue", "state"])
            for queue, states in depths.items():
                for state, n in states.items():
                    jobs.add_metric([queue, state], n)
            yield jobs
            yield GaugeMetricFamily("paysmith_workers", "Live RQ workers (RQ's worker registry)", value=count)
            yield GaugeMetricFamily("paysmith_worker_oldest_heartbeat_age_seconds",
                                    "Age of the oldest live worker's last heartbeat", value=oldest or 0.0)
        try:
            due, age = probes.outbox_backlog()
            attention = probes.refunds_needing_attention()
        except Exception:
            db.session.rollback()
            up.add_metric(["database"], 0)
        else:
            db.session.rollback()  # end the read transaction
            up.add_metric(["database"], 1)
            yield GaugeMetricFamily("paysmith_outbox_due_events", "Webhook deliveries (event × endpoint) due and not delivered", value=due)
            yield GaugeMetricFamily("paysmith_outbox_oldest_due_age_seconds",
                                    "Age of the oldest due, undelivered webhook event (0 when none)", value=age)
            yield GaugeMetricFamily("paysmith_refunds_needing_attention",
                                    "Pending refunds waiting for a person", value=attention)
        yield up


class _ThisProcess:
    """This process's own series (single-process mode), for a per-scrape registry."""

    def collect(self):
        return REGISTRY.collect()


def exposition():
    """The Prometheus text of every series: all processes' (multiprocess mode) or this one's, plus the state."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(StateCollector())
    return generate_latest(registry)


def mark_process_dead(pid):
    """gunicorn's child_exit: drop the live-gauge files of a worker that ended (counters stay summed)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        with suppress(FileNotFoundError):
            multiprocess.mark_process_dead(pid)
