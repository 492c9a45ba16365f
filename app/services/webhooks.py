"""Merchant webhooks: the after-commit relay from the outbox to RQ, signed delivery with retries, resend,
secret rotation and webhook URL safety.

Delivery of one event is one attempt per RQ job:

1. take a lease with a compare-and-set UPDATE (`locked_until`), so no two workers ever deliver one event at
   once; the attempt is recorded as started in the same commit;
2. POST the event, with no transaction open, with a hard timeout (WEBHOOK_TIMEOUT_SECONDS);
3. record the answer, then either mark the event delivered, schedule the next attempt (exponential backoff
   with jitter, RQ `enqueue_in`), or mark it failed after WEBHOOK_MAX_ATTEMPTS.

A slow or failing endpoint must not hold up other merchants: an endpoint whose last attempt failed or took
longer than WEBHOOK_SLOW_SECONDS is flagged in Redis for a while, and its events are moved to the
`webhooks_slow` queue, which workers serve after the others (or a dedicated worker serves); the flag is
cleared by its next quick success.

A worker that dies in the middle leaves a lease that simply runs out; the sweeper (every 30 s) re-enqueues
every event that is due, not delivered and not leased, which also covers events committed while Redis was
down. Jobs that find an event delivered, leased by someone else or not yet due do nothing, so a duplicate
job is harmless.
"""

import ipaddress
import json
import logging
import random
import socket
import time
from datetime import timedelta
from urllib.parse import urlsplit

import certifi
import urllib3
from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session

from app import webhooks as merchant_side
from app.extensions import db, get_redis
from app.models import Merchant, OutboxEvent, Payment, PaymentEvent, WebhookAttempt, utcnow
from app.ops import metrics
from app.services.errors import ValidationError

log = logging.getLogger(__name__)

USER_AGENT = "Paysmith-Webhooks/1.0"
RESPONSE_KEEP_BYTES = 1024
SWEEP_BATCH = 1000


def register_outbox_relay(app):
    """After every commit, enqueue the jobs for outbox events, payments and refunds created in it.

    Enqueueing only after the commit means a job never sees a row that is not there yet; a Redis outage
    only delays the jobs, because the periodic sweeps find everything that is due in the database.
    """
    if getattr(register_outbox_relay, "_done", False):
        return
    register_outbox_relay._done = True

    @event.listens_for(Session, "before_commit")
    def _note_expiry_times(session):
        # after_commit may not query, so take the payments' expiry times while the transaction is open.
        ids = session.info.pop("payments_created", None)
        if ids:
            times = session.info.setdefault("payment_expiry", [])
            for payment_id in ids:
                payment = session.get(Payment, payment_id)
                if payment is not None:
                    times.append((payment_id, payment.expires_at))

    @event.listens_for(Session, "after_flush")
    def _note_outbox_ids(session, flush_context):
        added = session.info.pop("outbox_added", None)
        if added:
            session.info.setdefault("outbox_new", []).extend(e.id for e in added)

    @event.listens_for(Session, "after_commit")
    def _relay(session):
        events = session.info.pop("outbox_new", None)
        payments = session.info.pop("payment_expiry", None)
        refunds = session.info.pop("refunds_created", None)
        if not (events or payments or refunds):
            return
        try:
            from app.jobs import after_commit

            after_commit(current_app._get_current_object(), events or [], payments or [], refunds or [])
        except Exception:  # Redis down: the sweeps will pick these up
            log.warning("could not enqueue jobs after commit; the sweeper will retry", exc_info=True)

    @event.listens_for(Session, "after_rollback")
    def _forget(session):
        for key in ("outbox_added", "outbox_new", "payments_created", "payment_expiry", "refunds_created"):
            session.info.pop(key, None)


# --- signing -----------------------------------------------------------------------------------------------


def sign_payload(secret, timestamp, body):
    """Hex HMAC-SHA256 of "<timestamp>.<raw body>" with `secret` (the v1 of Paysmith-Signature)."""
    return merchant_side.sign(secret, timestamp, body)


def signing_secrets(merchant, now=None):
    """The secrets to sign with: the current one, plus the previous one during its grace period."""
    now = now or utcnow()
    secrets = [merchant.webhook_secret]
    if merchant.webhook_secret_previous_enc and merchant.webhook_secret_previous_until \
            and merchant.webhook_secret_previous_until > now:
        from app import security

        secrets.append(security.decrypt(merchant.webhook_secret_previous_enc))
    return secrets


def rotate_webhook_secret(merchant, *, actor=None):
    """Give the merchant a new signing secret and return it; the old one keeps signing (as a second v1)
    for WEBHOOK_SECRET_GRACE_SECONDS. Commits."""
    from app.services.merchants import new_webhook_secret

    secret = new_webhook_secret()
    merchant.webhook_secret_previous_enc = merchant.webhook_secret_enc
    merchant.webhook_secret_previous_until = utcnow() + timedelta(
        seconds=current_app.config["WEBHOOK_SECRET_GRACE_SECONDS"])
    merchant.webhook_secret = secret
    from app.services import audit

    audit.record(merchant.id, "webhook.secret_rotated", actor, target_type="merchant", target_id=merchant.public_id)
    db.session.commit()
    return secret


def reveal_webhook_secret(merchant, *, actor=None):
    """The current signing secret, for showing once; the audit log keeps who looked. Commits."""
    from app.services import audit

    audit.record(merchant.id, "webhook.secret_revealed", actor, target_type="merchant", target_id=merchant.public_id)
    db.session.commit()
    return merchant.webhook_secret


# --- URL safety --------------------------------------------------------------------------------------------


def _forbidden_address(ip):
    ip = ipaddress.ip_address(ip)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or ip == ipaddress.ip_address("169.254.169.254"))


def validate_webhook_url(url, *, resolve=True):
    """Return the URL if it is an http(s) URL we may POST to, else raise ValidationError.

    Unless ALLOW_PRIVATE_WEBHOOK_URLS is on, a host that is, or resolves to, a loopback, private,
    link-local (cloud metadata) or otherwise reserved address is refused. `resolve=False` checks only
    literal IP hosts (no DNS lookup).
    """
    return _check_target(url, resolve=resolve)[0]


def _refuse(message):
    raise ValidationError(message, field="webhook_url", code="invalid_webhook_url")


def _resolve(host, port):
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        _refuse(f"the webhook host {host} does not resolve")
    return list(dict.fromkeys(info[4][0].split("%")[0] for info in infos))


def _check_target(url, *, resolve=True):
    """(url, the checked addresses to connect to) after the checks of validate_webhook_url; the addresses
    are empty when the host is a name that was not resolved (`resolve` False, or private addresses allowed)."""
    if not isinstance(url, str) or not url.strip():
        _refuse("the webhook URL is required")
    url = url.strip()
    if len(url) > 2000:
        _refuse("the webhook URL must be at most 2000 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        _refuse("the webhook URL is not a valid URL")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        _refuse("the webhook URL must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        _refuse("the webhook URL must not contain a user name or password")
    private_ok, host = current_app.config["ALLOW_PRIVATE_WEBHOOK_URLS"], parts.hostname
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        if private_ok:
            return url, []
        if host.lower() in ("localhost", "metadata.google.internal") or host.lower().endswith(".localhost"):
            _refuse("the webhook URL must not point at this machine or a private network")
        if not resolve:
            return url, []
        addresses = _resolve(host, port or (443 if parts.scheme == "https" else 80))
    if not private_ok and any(_forbidden_address(a) for a in addresses):
        _refuse("the webhook URL must not point at this machine or a private network")
    return url, addresses


def post_pinned(url, body, headers, timeout):
    """POST `body` to `url`, connecting only to the addresses checked just now: (status code, body bytes).

    `requests` would resolve the host name again when it connects, so a name that answered with a public
    address for the check could answer with 127.0.0.1 for the connection (DNS rebinding). Here urllib3 connects
    to the checked address itself, sending the URL's host in `Host` and, over HTTPS, in SNI, with the
    certificate verified against that host name. Raises ValidationError for a refused URL, and urllib3's
    TimeoutError / HTTPError when no address answers.
    """
    url, addresses = _check_target(url)
    parts = urlsplit(url)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    addresses = addresses or _resolve(parts.hostname, port)  # private addresses allowed: nothing to check
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in parts.hostname:  # an IPv6 literal
        host_header = f"[{parts.hostname}]" + ("" if parts.port is None else f":{parts.port}")
    tls = {"server_hostname": parts.hostname, "cert_reqs": "CERT_REQUIRED", "ca_certs": certifi.where()} if https else {}
    pool_class = urllib3.HTTPSConnectionPool if https else urllib3.HTTPConnectionPool
    for i, address in enumerate(addresses):
        pool = pool_class(address, port, timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=False,
                          maxsize=1, **tls)
        try:
            response = pool.urlopen("POST", path, body=body, headers={**headers, "Host": host_header},
                                    redirect=False, preload_content=False)
            try:
                return response.status, response.read(RESPONSE_KEEP_BYTES)
            finally:
                response.release_conn()
        except urllib3.exceptions.NewConnectionError:
            if i == len(addresses) - 1:  # every address refused: report the last failure
                raise
        finally:
            pool.close()


def set_webhook_url(merchant, url, *, actor=None):
    """Save the merchant's webhook URL (None or "" turns deliveries off). Commits."""
    from app.services import audit

    before = merchant.webhook_url
    merchant.webhook_url = validate_webhook_url(url) if url else None
    if before != merchant.webhook_url:
        audit.record(merchant.id, "webhook.endpoint_changed", actor, target_type="merchant",
                     target_id=merchant.public_id, before={"url": before}, after={"url": merchant.webhook_url})
    db.session.commit()
    return merchant.webhook_url


# --- delivery ----------------------------------------------------------------------------------------------


def retry_delay(failed_attempts, config=None):
    """Seconds to wait after the n-th failed attempt: exponential, with ± jitter."""
    config = config or current_app.config
    base = config["WEBHOOK_RETRY_BASE_SECONDS"] * config["WEBHOOK_RETRY_FACTOR"] ** (failed_attempts - 1)
    jitter = config["WEBHOOK_RETRY_JITTER"]
    return base * random.uniform(1 - jitter, 1 + jitter)


def _timeline(payment_id, message, data=None):
    if payment_id:
        db.session.add(PaymentEvent(payment_id=payment_id, kind="webhook", message=message, data=data))


def _take_lease(event_id, now):
    """Compare-and-set the lease; return the lease expiry, or None when the event is not ours to deliver."""
    lease_until = now + timedelta(seconds=current_app.config["WEBHOOK_LEASE_SECONDS"])
    result = db.session.execute(
        update(OutboxEvent)
        .where(
            OutboxEvent.id == event_id,
            OutboxEvent.delivery_status == "pending",
            OutboxEvent.next_attempt_at <= now,
            or_(OutboxEvent.locked_until.is_(None), OutboxEvent.locked_until < now),
        )
        .values(locked_until=lease_until, attempts=OutboxEvent.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.rollback()
        outbox = db.session.get(OutboxEvent, event_id)
        if outbox is not None and outbox.delivery_status == "pending" and outbox.next_attempt_at > now \
                and (outbox.locked_until is None or outbox.locked_until < now):
            # Run before its time (another host's clock, a test advancing time): come back when it is due.
            _schedule(event_id, (outbox.next_attempt_at - now).total_seconds())
        db.session.rollback()
        return None
    return lease_until


def _slow_key(merchant_id):
    return f"paysmith:webhooks:slow-endpoint:{merchant_id}"


def endpoint_is_slow(merchant_id):
    try:
        return bool(get_redis().exists(_slow_key(merchant_id)))
    except RedisError:
        return False


def _flag_endpoint(merchant_id, slow):
    try:
        if slow:
            get_redis().set(_slow_key(merchant_id), 1, ex=current_app.config["WEBHOOK_SLOW_FLAG_SECONDS"])
        else:
            get_redis().delete(_slow_key(merchant_id))
    except RedisError:
        log.warning("could not flag the webhook endpoint of merchant %s", merchant_id)


def deliver_event(event_id, *, lane="fast"):
    """Make one delivery attempt of an outbox event; return its delivery_status afterwards (or None when
    another worker holds it, it is already settled, not yet due, or moved to the slow lane). Commits."""
    config = current_app.config
    if lane == "fast":
        merchant_id = db.session.scalar(select(OutboxEvent.merchant_id).where(OutboxEvent.id == event_id))
        db.session.rollback()
        if merchant_id is not None and endpoint_is_slow(merchant_id):
            _schedule(event_id, 0, lane="slow")
            return None
    now = utcnow()
    lease_until = _take_lease(event_id, now)
    if lease_until is None:
        return None
    outbox = db.session.get(OutboxEvent, event_id)
    merchant = db.session.get(Merchant, outbox.merchant_id)
    url = merchant.webhook_url
    if not url:
        outbox.delivery_status, outbox.locked_until = "skipped", None
        outbox.last_error = "no webhook URL configured"
        db.session.commit()
        return "skipped"
    attempt = WebhookAttempt(event_id=outbox.id, url=url, created_at=now,
                             error="no answer recorded: the worker stopped during the attempt")
    db.session.add(attempt)
    body = json.dumps(outbox.payload, separators=(",", ":"), sort_keys=True).encode()
    secrets = signing_secrets(merchant, now)
    attempt_no, max_attempts = outbox.attempts, config["WEBHOOK_MAX_ATTEMPTS"]
    db.session.commit()  # the lease and the started attempt are visible; no transaction during the POST

    status_code, text, error, started = None, None, None, time.monotonic()
    try:
        timestamp = int(time.time())
        # Checked again at delivery (DNS may have changed since the URL was saved), and pinned to that answer.
        status_code, content = post_pinned(url, body, timeout=config["WEBHOOK_TIMEOUT_SECONDS"], headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            merchant_side.EVENT_ID_HEADER: outbox.public_id,
            merchant_side.SIGNATURE_HEADER: merchant_side.signature_header(secrets, timestamp, body),
        })
        text = content.decode("utf-8", "replace")
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except ValidationError as exc:
        error = exc.message
    except urllib3.exceptions.NewConnectionError:  # (a subclass of urllib3's TimeoutError)
        error = "connection failed: the endpoint refused the connection or is unreachable"
    except urllib3.exceptions.TimeoutError:
        error = f"timed out after {config['WEBHOOK_TIMEOUT_SECONDS']} s"
    except urllib3.exceptions.HTTPError as exc:
        error = f"connection failed: {type(exc).__name__}"
    latency_ms = int((time.monotonic() - started) * 1000)
    metrics.webhook_delivery("delivered" if error is None else "failed", time.monotonic() - started)
    slow = error is not None or latency_ms > config["WEBHOOK_SLOW_SECONDS"] * 1000
    if slow or lane != "fast":  # in the fast lane the endpoint was not flagged: nothing to clear
        _flag_endpoint(merchant.id, slow)

    attempt = db.session.get(WebhookAttempt, attempt.id)
    attempt.status_code, attempt.latency_ms, attempt.response_body, attempt.error = status_code, latency_ms, text, error
    values = {"locked_until": None, "last_error": error}
    retry_in = None
    if error is None:
        values.update(delivery_status="delivered", delivered_at=utcnow())
        _timeline(outbox.payment_id, f"Webhook {outbox.type} ({outbox.public_id}) delivered, HTTP {status_code}")
    elif attempt_no >= max_attempts:
        values["delivery_status"] = "failed"
        _timeline(outbox.payment_id, f"Webhook {outbox.type} ({outbox.public_id}) failed after "
                                     f"{attempt_no} attempts: {error}")
    else:
        retry_in = retry_delay(attempt_no, config)
        values["next_attempt_at"] = utcnow() + timedelta(seconds=retry_in)
    # Only the holder of the lease settles the event (a lease that ran out may have been taken over).
    result = db.session.execute(
        update(OutboxEvent).where(OutboxEvent.id == event_id, OutboxEvent.locked_until == lease_until)
        .values(**values).execution_options(synchronize_session=False)
    )
    db.session.commit()
    if result.rowcount != 1:
        return None
    if retry_in is not None:
        _schedule(event_id, retry_in, lane="slow")
        return "pending"
    return values["delivery_status"]


def _schedule(event_id, delay, lane=None):
    from app.jobs import enqueue_delivery

    if lane is None:
        merchant_id = db.session.scalar(select(OutboxEvent.merchant_id).where(OutboxEvent.id == event_id))
        lane = "slow" if merchant_id is not None and endpoint_is_slow(merchant_id) else "fast"
    try:
        enqueue_delivery(current_app._get_current_object(), event_id, delay=delay, lane=lane)
    except Exception:
        log.warning("could not schedule the next delivery of event %s; the sweeper will", event_id,
                    exc_info=True)


def resend_event(event, *, actor=None):
    """Deliver an event again, with the same event id and a fresh set of attempts. Commits.

    A delivery in progress keeps its lease: the new job waits for it to end instead of racing it.
    """
    event.delivery_status = "pending"
    event.attempts = 0
    event.next_attempt_at = utcnow()
    event.delivered_at = None
    event.last_error = None
    _timeline(event.payment_id, f"Webhook {event.type} ({event.public_id}) resent on request")
    db.session.info.setdefault("outbox_new", []).append(event.id)
    from app.services import audit

    audit.record(event.merchant_id, "webhook.resent", actor, target_type="event", target_id=event.public_id,
                 after={"type": event.type})
    db.session.commit()
    return event


def due_event_ids(limit=SWEEP_BATCH, now=None):
    now = now or utcnow()
    return db.session.scalars(
        select(OutboxEvent.id)
        .where(
            OutboxEvent.delivery_status == "pending",
            OutboxEvent.next_attempt_at <= now,
            or_(OutboxEvent.locked_until.is_(None), OutboxEvent.locked_until < now),
        )
        .order_by(OutboxEvent.next_attempt_at)
        .limit(limit)
    ).all()


def sweep_due_events(limit=SWEEP_BATCH):
    """Enqueue a delivery job for every event that is due, undelivered and not leased; return how many."""
    from app.jobs import enqueue_deliveries

    ids = due_event_ids(limit)
    db.session.rollback()
    if ids:
        enqueue_deliveries(current_app._get_current_object(), ids)
    return len(ids)
