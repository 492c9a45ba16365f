"""Delivering webhook deliveries in batches: claim, POST concurrently over kept-alive pinned connections,
record every outcome in a few statements.

One run of `deliver_batch(lane)` (an RQ job, app.jobs.webhooks):

1. **claim** up to WEBHOOK_BATCH_SIZE due deliveries of the lane, at most WEBHOOK_ENDPOINT_BATCH_SHARE of one
   endpoint, with a compare-and-set lease (`lease_owner`, `lease_until`; the candidates are read with
   `FOR UPDATE SKIP LOCKED` on PostgreSQL, so two workers never wait for or take the same rows), counting the
   attempt and writing it as started — one commit. A worker that dies holding the lease leaves the rows to
   whoever claims after `lease_until`: every delivery is made at least once, and never by two workers at once
   while a lease holds;
2. **POST** them concurrently from a thread pool of WEBHOOK_CONCURRENCY, at most WEBHOOK_ENDPOINT_CONCURRENCY
   at a time to one endpoint, each connection kept alive in a pool per endpoint that connects only to the
   address the URL check just accepted (the certificate is checked against the URL's host name), with connect
   and read timeouts per request and a deadline for the batch (what is not started by then is handed back;
   so is the rest of an endpoint's share once it fails or answers slowly);
3. **record** the answers: attempts, deliveries, endpoints (410 Gone disables one; slow or failing ones move to
   the slow lane), the payments' timelines and the events' summaries, in one transaction of bulk statements.

The lanes: an endpoint that failed or answered slower than WEBHOOK_SLOW_SECONDS gets `slow_until`; until then
(or its next quick success) its deliveries are claimed only by `slow` jobs, on the `webhooks_slow` queue,
which workers serve after the others. Within a batch a slow endpoint holds at most its own connections.
"""

import email.utils
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import certifi
import urllib3
from flask import current_app
from sqlalchemy import and_, bindparam, case, delete, exists, func, insert, or_, select, update

from app import webhooks as merchant_side
from app.extensions import db
from app.models import OutboxEvent, PaymentEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint, utcnow
from app.ops import metrics
from app.services.errors import ValidationError

log = logging.getLogger(__name__)

USER_AGENT = "Paysmith-Webhooks/2.0"
RESPONSE_KEEP_BYTES = 1024
#: More of an answer than this is not read: the connection is closed instead of drained.
RESPONSE_DRAIN_BYTES = 64 * 1024
STARTED_ERROR = "no answer recorded: the worker stopped during the attempt"


# --- transport: kept-alive connections to the checked address ------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where one endpoint's POSTs go: the checked addresses, the URL's host for Host, SNI and the certificate."""

    #: The endpoint's id: each endpoint has its own connections.
    endpoint_id: int | None
    scheme: str
    host: str
    port: int
    path: str
    host_header: str
    addresses: tuple


def resolve_target(url, endpoint_id=None):
    """Check the URL (app.services.webhooks.validate_webhook_url, DNS included) and return its Target.
    Raises ValidationError when it is refused or does not resolve."""
    from app.services.webhooks import _check_target, _resolve

    url, addresses = _check_target(url)
    parts = urlsplit(url)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    addresses = addresses or _resolve(parts.hostname, port)  # private addresses allowed: nothing to check
    host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in parts.hostname:  # an IPv6 literal
        host_header = f"[{parts.hostname}]" + ("" if parts.port is None else f":{parts.port}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(endpoint_id, parts.scheme, parts.hostname, port, path, host_header, tuple(addresses))


class PinnedPools:
    """urllib3 connection pools kept between batches, one per (endpoint, scheme, host, port, checked address).

    urllib3 connects to the pool's host, which here is the address just checked, never the name again; over
    HTTPS the name goes in SNI and the certificate must be valid for it (`server_hostname`). A new DNS answer
    makes a new pool, so a name that changes its address (DNS rebinding) is checked again and cannot reuse a
    connection to the old one without passing the check.
    """

    MAX_POOLS = 512

    def __init__(self):
        self._pools = {}
        self._lock = threading.Lock()

    def get(self, target, address, maxsize):
        key = (target.endpoint_id, target.scheme, target.host, target.port, address)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                if len(self._pools) >= self.MAX_POOLS:  # the oldest goes
                    self._pools.pop(next(iter(self._pools))).close()
                if target.scheme == "https":
                    pool = urllib3.HTTPSConnectionPool(
                        address, target.port, maxsize=maxsize, block=False, retries=False,
                        server_hostname=target.host, cert_reqs="CERT_REQUIRED", ca_certs=certifi.where())
                else:
                    pool = urllib3.HTTPConnectionPool(address, target.port, maxsize=maxsize, block=False,
                                                      retries=False)
                self._pools[key] = pool
            return pool

    def close(self):
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()


POOLS = PinnedPools()


def post(target, body, headers, *, connect_timeout, read_timeout, maxsize=1):
    """POST to the target's first checked address that accepts a connection: (status, headers, first KB).

    Raises urllib3's TimeoutError / HTTPError when no address answers in time."""
    timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
    started = time.monotonic()
    for i, address in enumerate(target.addresses):
        pool = POOLS.get(target, address, maxsize)
        try:
            response = pool.urlopen("POST", target.path, body=body, headers={**headers, "Host": target.host_header},
                                    redirect=False, retries=False, timeout=timeout, preload_content=False)
        except urllib3.exceptions.NewConnectionError:
            if i == len(target.addresses) - 1:
                raise
            continue
        try:
            kept = response.read(RESPONSE_KEEP_BYTES)
            drained = len(kept)
            # Read the rest for keep-alive, but only a little and only within the request's time.
            while drained < RESPONSE_DRAIN_BYTES and time.monotonic() - started < read_timeout:
                chunk = response.read(8192)
                if not chunk:
                    break
                drained += len(chunk)
            else:
                if response.read(1):
                    response.close()  # a huge or endless answer: give the connection up
            return response.status, response.headers, kept
        finally:
            response.release_conn()
    raise urllib3.exceptions.NewConnectionError(None, "no address to connect to")


# --- outcomes: computed in one place ----------------------------------------------------------------------------


@dataclass
class Result:
    """What one POST gave (status or error), before it is judged."""

    delivery_id: int
    attempt_id: int
    status_code: int | None = None
    error: str | None = None
    latency_ms: int = 0
    body: str | None = None
    retry_after: str | None = None
    #: Not sent: the batch's deadline came first (handed back untouched).
    unsent: bool = False


@dataclass
class Settlement:
    #: `delivered`, `retry`, `failed` (attempts used up) or `gone` (410: the endpoint is disabled).
    outcome: str
    status: str
    next_attempt_at: datetime | None
    error: str | None


def retry_delay(failed_attempts, config=None):
    """Seconds to wait after the n-th failed attempt: exponential, with ± jitter."""
    import random

    config = config or current_app.config
    base = config["WEBHOOK_RETRY_BASE_SECONDS"] * config["WEBHOOK_RETRY_FACTOR"] ** (failed_attempts - 1)
    jitter = config["WEBHOOK_RETRY_JITTER"]
    return base * random.uniform(1 - jitter, 1 + jitter)


def retry_after_seconds(value, now):
    """A Retry-After header (seconds or an HTTP date) → seconds from `now` (naive UTC), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now.replace(tzinfo=UTC)).total_seconds(), 0.0)


def judge(result, attempt_no, now, config):
    """The one place that turns an answer into an outcome: 2xx delivered; 410 Gone disables the endpoint;
    429/503 with Retry-After come back then; anything else (3xx never followed, 4xx, 5xx, a timeout, a refused
    connection) is retried with backoff until WEBHOOK_MAX_ATTEMPTS, then failed."""
    code = result.status_code
    if result.error is None and code is not None and 200 <= code < 300:
        return Settlement("delivered", "delivered", None, None)
    error = result.error or (f"HTTP {code} (redirects are not followed)" if 300 <= code < 400 else f"HTTP {code}")
    if code == 410:
        return Settlement("gone", "failed", None, "HTTP 410 Gone: the endpoint was disabled")
    if attempt_no >= config["WEBHOOK_MAX_ATTEMPTS"]:
        return Settlement("failed", "failed", None, error)
    delay = None
    if code in (429, 503):
        delay = retry_after_seconds(result.retry_after, now)
        if delay is not None:
            delay = min(delay, config["WEBHOOK_RETRY_AFTER_MAX_SECONDS"])
            error += f", Retry-After {result.retry_after.strip()}"
    if delay is None:
        delay = retry_delay(attempt_no, config)
    return Settlement("retry", "pending", now + timedelta(seconds=delay), error)


# --- claim ------------------------------------------------------------------------------------------------------


def _lane_filter(lane, now):
    slow = and_(WebhookEndpoint.slow_until.is_not(None), WebhookEndpoint.slow_until > now)
    return slow if lane == "slow" else ~slow


def lease_seconds(config):
    """A batch's lease outlasts its deadline plus one request's timeouts, so it ends only if the worker died."""
    return max(config["WEBHOOK_LEASE_SECONDS"], config["WEBHOOK_BATCH_SECONDS"]
               + config["WEBHOOK_CONNECT_TIMEOUT_SECONDS"] + config["WEBHOOK_TIMEOUT_SECONDS"] + 1)


def claim(lane, owner, now, config, limit=None):
    """Lease up to `limit` due deliveries of the lane for `owner`; return their ids. Commits."""
    limit = limit or config["WEBHOOK_BATCH_SIZE"]
    share = config["WEBHOOK_ENDPOINT_BATCH_SHARE"]
    D, E = WebhookDelivery, WebhookEndpoint  # noqa: N806
    free = or_(D.lease_until.is_(None), D.lease_until < now)
    query = (select(D.id, D.endpoint_id).join(E, E.id == D.endpoint_id)
             .where(D.status == "pending", D.next_attempt_at <= now, free, E.enabled.is_(True), E.url.is_not(None),
                    _lane_filter(lane, now))
             .order_by(D.next_attempt_at, D.id).limit(limit * 2))
    if db.engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=D)
    picked, per_endpoint = [], defaultdict(int)
    for delivery_id, endpoint_id in db.session.execute(query):
        if per_endpoint[endpoint_id] < share:
            per_endpoint[endpoint_id] += 1
            picked.append(delivery_id)
            if len(picked) == limit:
                break
    if not picked:
        db.session.rollback()
        return []
    lease_until = now + timedelta(seconds=lease_seconds(config))
    claimed = db.session.execute(
        update(D).where(D.id.in_(picked), D.status == "pending", free)
        .values(lease_owner=owner, lease_until=lease_until, attempts=D.attempts + 1)
        .returning(D.id).execution_options(synchronize_session=False)
    ).scalars().all()
    db.session.commit()
    return claimed


@dataclass
class Item:
    delivery_id: int
    attempt_id: int
    attempts: int
    event_id: int
    event_public_id: str
    event_type: str
    payment_id: int | None
    body: bytes
    endpoint_id: int


def _load(owner, ids, now):
    """The claimed deliveries with their events and endpoints; writes each attempt as started. Commits."""
    D, E, Ev = WebhookDelivery, WebhookEndpoint, OutboxEvent  # noqa: N806
    rows = db.session.execute(
        select(D.id, D.attempts, Ev.id, Ev.public_id, Ev.type, Ev.payment_id, Ev.payload, E)
        .join(Ev, Ev.id == D.event_id).join(E, E.id == D.endpoint_id)
        .where(D.id.in_(ids), D.lease_owner == owner).order_by(D.id)
    ).all()
    endpoints = {row[-1].id: row[-1] for row in rows}
    attempt_ids = db.session.execute(
        insert(WebhookAttempt).returning(WebhookAttempt.id, sort_by_parameter_order=True),
        [{"event_id": r[2], "delivery_id": r[0], "url": endpoints[r[-1].id].url or "", "created_at": now,
          "error": STARTED_ERROR} for r in rows],
    ).scalars().all() if rows else []
    items = [Item(r[0], attempt_id, r[1], r[2], r[3], r[4], r[5],
                  json.dumps(r[6], separators=(",", ":"), sort_keys=True).encode(), r[-1].id)
             for r, attempt_id in zip(rows, attempt_ids, strict=True)]
    secrets = {e.id: _secrets(e, now) for e in endpoints.values()}
    urls = {e.id: e.url for e in endpoints.values()}
    db.session.commit()  # the leases and the started attempts are visible; no transaction during the POSTs
    return items, urls, secrets


def _secrets(endpoint, now):
    from app.services.webhook_endpoints import signing_secrets

    return signing_secrets(endpoint, now)


# --- POST ---------------------------------------------------------------------------------------------------


_EXECUTORS = {}
_EXECUTOR_LOCK = threading.Lock()


def _executor(size):
    with _EXECUTOR_LOCK:
        if size not in _EXECUTORS:
            _EXECUTORS[size] = ThreadPoolExecutor(max_workers=size, thread_name_prefix="webhooks")
        return _EXECUTORS[size]


def headers_for(item, secrets, timestamp):
    """Both signatures: Paysmith-Signature (hex, over "t.body") and the Standard Webhooks headers."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        merchant_side.EVENT_ID_HEADER: item.event_public_id,
        merchant_side.SIGNATURE_HEADER: merchant_side.signature_header(secrets, timestamp, item.body),
        merchant_side.STANDARD_ID_HEADER: item.event_public_id,
        merchant_side.STANDARD_TIMESTAMP_HEADER: str(timestamp),
        merchant_side.STANDARD_SIGNATURE_HEADER: merchant_side.standard_signature_header(
            secrets, item.event_public_id, timestamp, item.body),
    }


def _send(item, target, secrets, config, maxsize):
    result = Result(item.delivery_id, item.attempt_id)
    started = time.monotonic()
    try:
        status, headers, content = post(target, item.body, headers_for(item, secrets, int(time.time())),
                                        connect_timeout=config["WEBHOOK_CONNECT_TIMEOUT_SECONDS"],
                                        read_timeout=config["WEBHOOK_TIMEOUT_SECONDS"], maxsize=maxsize)
        result.status_code, result.body = status, content.decode("utf-8", "replace")
        result.retry_after = headers.get("Retry-After")
    except urllib3.exceptions.NewConnectionError:  # (a subclass of urllib3's TimeoutError)
        result.error = "connection failed: the endpoint refused the connection or is unreachable"
    except urllib3.exceptions.TimeoutError:
        result.error = f"timed out after {config['WEBHOOK_TIMEOUT_SECONDS']} s"
    except urllib3.exceptions.HTTPError as exc:
        result.error = f"connection failed: {type(exc).__name__}"
    except (OSError, ValueError) as exc:
        result.error = f"connection failed: {type(exc).__name__}"
    result.latency_ms = int((time.monotonic() - started) * 1000)
    return result


def _chain(items, target, secrets, config, deadline, maxsize, stop):
    """One connection's share of an endpoint's batch, one POST after another (kept alive).

    Stops at the deadline, and for the whole endpoint (`stop`, shared by its chains) once it answers 410 Gone,
    fails or answers slowly: the rest are handed back untouched and, the endpoint now being flagged slow, go
    to the slow lane, so no batch waits for one timeout after another and a worker serving both lanes is
    held by a slow endpoint for about one timeout per batch (the next batch takes up the rest)."""
    results = []
    slow_ms = config["WEBHOOK_SLOW_SECONDS"] * 1000
    for item in items:
        if time.monotonic() >= deadline or stop.is_set():
            results.append(Result(item.delivery_id, item.attempt_id, unsent=True))
            continue
        result = _send(item, target, secrets, config, maxsize)
        ok = result.error is None and 200 <= (result.status_code or 0) < 300
        if not ok or result.latency_ms > slow_ms:
            stop.set()
        results.append(result)
    return results


def send_all(items, urls, secrets, config):
    """POST every item: per endpoint at most WEBHOOK_ENDPOINT_CONCURRENCY chains, all in one thread pool."""
    by_endpoint = defaultdict(list)
    for item in items:
        by_endpoint[item.endpoint_id].append(item)
    deadline = time.monotonic() + config["WEBHOOK_BATCH_SECONDS"]
    per_endpoint = config["WEBHOOK_ENDPOINT_CONCURRENCY"]
    executor = _executor(config["WEBHOOK_CONCURRENCY"])
    results, futures = [], []
    for endpoint_id, its in by_endpoint.items():
        try:
            target = resolve_target(urls[endpoint_id], endpoint_id)  # checked again: DNS may have changed
        except ValidationError as exc:
            results.extend(Result(i.delivery_id, i.attempt_id, error=exc.message) for i in its)
            continue
        lanes = min(per_endpoint, len(its))
        chains = [[] for _ in range(lanes)]
        for item in its:  # one payment's events stay on one connection, in order
            chains[(item.payment_id or item.delivery_id) % lanes].append(item)
        stop = threading.Event()
        for chain in chains:
            if chain:
                futures.append(executor.submit(_chain, chain, target, secrets[endpoint_id], config, deadline,
                                               lanes, stop))
    for future in futures:
        results.extend(future.result())
    return results


# --- record -------------------------------------------------------------------------------------------------


def _record(owner, items, results, now, config):
    """Write every outcome in bulk statements, only for deliveries this owner still holds. Commits.

    Returns {lane: earliest retry time} for the retries just scheduled."""
    D, E = WebhookDelivery, WebhookEndpoint  # noqa: N806
    by_id = {i.delivery_id: i for i in items}
    query = select(D.id).where(D.id.in_(list(by_id)), D.lease_owner == owner)
    if db.engine.dialect.name == "postgresql":
        query = query.with_for_update(of=D)
    owned = set(db.session.scalars(query))
    deliveries, attempts, unsent, unsent_attempts, timeline = [], [], [], [], []
    gone, failing, quick = set(), set(), set()
    retries = {}
    touched_events = set()
    for result in results:
        item = by_id[result.delivery_id]
        if result.delivery_id not in owned:
            continue  # the lease ran out and another worker took the delivery over: its record counts
        if result.unsent:
            unsent_attempts.append(result.attempt_id)
            unsent.append({"b_id": item.delivery_id, "attempts": item.attempts - 1})
            continue
        settled = judge(result, item.attempts, now, config)
        metrics.webhook_delivery(settled.outcome, result.latency_ms / 1000)  # every judged attempt, once
        touched_events.add(item.event_id)
        attempts.append({"id": result.attempt_id, "status_code": result.status_code, "latency_ms": result.latency_ms,
                         "response_body": result.body, "error": settled.error})
        deliveries.append({"b_id": item.delivery_id, "status": settled.status, "attempts": item.attempts,
                           "next_attempt_at": settled.next_attempt_at or now,
                           "delivered_at": now if settled.outcome == "delivered" else None,
                           "last_error": settled.error, "last_status_code": result.status_code})
        slow = settled.outcome != "delivered" or result.latency_ms > config["WEBHOOK_SLOW_SECONDS"] * 1000
        (failing if slow else quick).add(item.endpoint_id)
        if settled.outcome == "gone":
            gone.add(item.endpoint_id)
        if settled.outcome == "retry":
            retries[item.endpoint_id] = min(retries.get(item.endpoint_id, settled.next_attempt_at),
                                            settled.next_attempt_at)
        if item.payment_id and settled.outcome != "retry":
            word = "delivered" if settled.outcome == "delivered" else f"failed after {item.attempts} attempts"
            detail = f"HTTP {result.status_code}" if settled.outcome == "delivered" else settled.error
            timeline.append({"payment_id": item.payment_id, "kind": "webhook", "created_at": now,
                             "message": f"Webhook {item.event_type} ({item.event_public_id}) {word}: {detail}"})
    if attempts:
        db.session.execute(update(WebhookAttempt), attempts)
    if unsent_attempts:
        db.session.execute(delete(WebhookAttempt).where(WebhookAttempt.id.in_(unsent_attempts))
                           .execution_options(synchronize_session=False))
    table = D.__table__
    free = {"lease_owner": None, "lease_until": None}
    if deliveries:
        db.session.connection().execute(update(table).where(table.c.id == bindparam("b_id")).values(
            **free, **{name: bindparam(name) for name in (
                "status", "attempts", "next_attempt_at", "delivered_at", "last_error", "last_status_code")}),
            deliveries)
    if unsent:  # handed back as they were, minus the attempt counted at the claim
        db.session.connection().execute(update(table).where(table.c.id == bindparam("b_id")).values(
            **free, attempts=bindparam("attempts")), unsent)
    if gone:
        _disable_gone(gone, now, touched_events)
    slow_until = now + timedelta(seconds=config["WEBHOOK_SLOW_FLAG_SECONDS"])
    if failing:
        db.session.execute(update(E).where(E.id.in_(failing)).values(slow_until=slow_until)
                           .execution_options(synchronize_session=False))
    quick -= failing
    if quick:
        db.session.execute(update(E).where(E.id.in_(quick), E.slow_until.is_not(None)).values(slow_until=None)
                           .execution_options(synchronize_session=False))
    if timeline:
        db.session.execute(insert(PaymentEvent), timeline)
    summarise_events(touched_events)
    db.session.commit()
    lanes = {}
    for endpoint_id, at in retries.items():
        lane = "slow" if endpoint_id in failing else "fast"
        lanes[lane] = min(lanes.get(lane, at), at)
    return lanes


def _disable_gone(endpoint_ids, now, touched_events):
    """410 Gone: the endpoint asked for no more events. Disable it and fail its other pending deliveries."""
    D, E = WebhookDelivery, WebhookEndpoint  # noqa: N806
    reason = f"The endpoint answered 410 Gone on {now:%Y-%m-%d %H:%M} UTC, so no more events are sent to it."
    db.session.execute(update(E).where(E.id.in_(endpoint_ids)).values(enabled=False, disabled_reason=reason)
                       .execution_options(synchronize_session=False))
    touched_events.update(db.session.execute(
        update(D).where(D.endpoint_id.in_(endpoint_ids), D.status == "pending")
        .values(status="failed", last_error="the endpoint was disabled (410 Gone)", lease_owner=None,
                lease_until=None)
        .returning(D.event_id).execution_options(synchronize_session=False)).scalars().all())


def summarise_events(event_ids):
    """One UPDATE: each event's status, attempts, next attempt and error from its deliveries. No commit."""
    if not event_ids:
        return
    D, Ev = WebhookDelivery, OutboxEvent  # noqa: N806
    mine = D.event_id == Ev.id

    def has(status):
        return exists().where(mine, D.status == status)

    pending, failed = has("pending"), has("failed")

    db.session.execute(
        update(Ev).where(Ev.id.in_(list(event_ids))).values(
            delivery_status=case((pending, "pending"), (failed, "failed"), else_="delivered"),
            attempts=select(func.coalesce(func.max(D.attempts), 0)).where(mine).scalar_subquery(),
            next_attempt_at=func.coalesce(
                select(func.min(D.next_attempt_at)).where(mine, D.status == "pending").scalar_subquery(),
                Ev.next_attempt_at),
            delivered_at=case((or_(pending, failed), None),
                              else_=select(func.max(D.delivered_at)).where(mine).scalar_subquery()),
            last_error=select(D.last_error).where(mine, D.last_error.is_not(None)).order_by(D.id.desc())
            .limit(1).scalar_subquery(),
        ).execution_options(synchronize_session=False)
    )


# --- the batch --------------------------------------------------------------------------------------------------


def new_owner():
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def deliver_batch(lane="fast", *, limit=None, owner=None):
    """Claim, POST and record one batch of the lane; return how many deliveries were claimed.

    A full batch asks for another job at once (so idle workers join in on a backlog); retries ask for a job
    at their time. Both are best effort: the periodic sweep also asks whenever anything is due."""
    from app.jobs import kick_deliveries, schedule_deliveries

    app, config = current_app._get_current_object(), current_app.config
    owner, now = owner or new_owner(), utcnow()
    limit = limit or config["WEBHOOK_BATCH_SIZE"]
    ids = claim(lane, owner, now, config, limit)
    if not ids:
        return 0
    if len(ids) == limit:
        _best_effort(kick_deliveries, app, [lane])
    items, urls, secrets = _load(owner, ids, now)
    results = send_all(items, urls, secrets, config)
    retries = _record(owner, items, results, utcnow(), config)
    if len(ids) == limit or any(r.unsent for r in results):
        # More may be due (a job that found the rows locked by this claim ended early), or some were handed
        # back (in this lane, or the slow one if their endpoint moved there): ask for the next job.
        _best_effort(kick_deliveries, app)
    for retry_lane, at in retries.items():
        _best_effort(schedule_deliveries, app, retry_lane, at)
    return len(ids)


def _best_effort(func, *args):
    try:
        func(*args)
    except Exception:  # Redis away: the periodic sweep asks again
        log.warning("could not queue a webhook delivery job; the sweep will", exc_info=True)


def due_lanes(now=None):
    """The lanes that have deliveries due now (one small query each)."""
    now = now or utcnow()
    D, E = WebhookDelivery, WebhookEndpoint  # noqa: N806
    lanes = []
    for lane in ("fast", "slow"):
        if db.session.scalar(select(D.id).join(E, E.id == D.endpoint_id).where(
                D.status == "pending", D.next_attempt_at <= now,
                or_(D.lease_until.is_(None), D.lease_until < now), E.enabled.is_(True), E.url.is_not(None),
                _lane_filter(lane, now)).limit(1)) is not None:
            lanes.append(lane)
    db.session.rollback()
    return lanes


def pending_count(now=None):
    """Deliveries due and free (for the sweep's answer and the benchmarks)."""
    now = now or utcnow()
    D = WebhookDelivery  # noqa: N806
    return db.session.scalar(select(func.count()).select_from(D).where(
        D.status == "pending", D.next_attempt_at <= now, or_(D.lease_until.is_(None), D.lease_until < now)))

