"""What the simulators share: their Redis state, and notifications sent from RQ with the gateway's retries."""

import importlib
import json
import logging
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import urljoin

import requests
from flask import current_app

from app.extensions import get_queue, get_redis

log = logging.getLogger(__name__)
STATE_TTL = 7 * 24 * 3600
#: Seconds a simulated gateway waits for the receiver's answer.
SEND_TIMEOUT = 15


def save(code, kind, key, data, ttl=STATE_TTL):
    get_redis().set(f"sandbox:{code}:{kind}:{key}", json.dumps(data), ex=ttl)


def load(code, kind, key):
    raw = get_redis().get(f"sandbox:{code}:{kind}:{key}")
    return json.loads(raw) if raw else None


def _resolve(dotted):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


#: The keyword arguments of a queued notification job that are the simulator's own, not the request's.
JOB_OPTIONS = frozenset({"delays", "accept", "sign", "retries", "redirects", "attempt"})


def send_later(method, url, *, delays, accept=None, sign=None, retries=None, redirects=None, **request_kwargs):
    """Enqueue a notification from the simulated gateway to us.

    delays: the gateway's retry intervals (seconds) after each failed attempt.
    accept: dotted path of `f(response) -> bool`, whether the receiver took it (default: any 2xx).
    sign: dotted path of `f(body) -> headers`, called at every attempt (fresh timestamps, as gateways do).
    retries: dotted path of `f(response) -> int`, how many retries in all the gateway allows after this
        unaccepted answer (`response` is None after a timeout or connection error); default: one per delay.
    redirects: follow only 307/308 redirects, with the same method and body, at most this many times
        (default: requests' own redirect handling).
    request_kwargs: data/json/params/headers for requests.
    """
    get_queue("sandbox").enqueue(
        send_notification, method, url, delays=list(delays), accept=accept, sign=sign, retries=retries,
        redirects=redirects, attempt=0, **request_kwargs
    )


def _deliver(method, url, redirects, kwargs):
    if redirects is None:
        return requests.request(method, url, timeout=SEND_TIMEOUT, **kwargs)
    for _ in range(redirects + 1):
        response = requests.request(method, url, timeout=SEND_TIMEOUT, allow_redirects=False, **kwargs)
        location = response.headers.get("Location")
        if response.status_code not in (307, 308) or not location:
            break
        url = urljoin(url, location)
    return response


def send_notification(method, url, *, delays, accept=None, sign=None, retries=None, redirects=None, attempt=0,
                      **request_kwargs):
    """RQ job: send one notification; if it is not accepted, schedule the next attempt per `delays`
    (and `retries`, see send_later)."""
    kwargs = dict(request_kwargs)
    if sign:
        kwargs["headers"] = {**(kwargs.get("headers") or {}), **_resolve(sign)(kwargs.get("data"))}
    ok, response = False, None
    try:
        response = _deliver(method, url, redirects, kwargs)
        ok = _resolve(accept)(response) if accept else 200 <= response.status_code < 300
        log.info("sandbox notification %s %s -> %s", method, url.split("?")[0], response.status_code)
    except requests.RequestException as exc:
        log.info("sandbox notification to %s failed: %s", url.split("?")[0], type(exc).__name__)
    allowed = min(len(delays), _resolve(retries)(response)) if retries and not ok else len(delays)
    if not ok and attempt < allowed:
        get_queue("sandbox", current_app).enqueue_in(
            timedelta(seconds=delays[attempt]), send_notification, method, url, delays=delays, accept=accept,
            sign=sign, retries=retries, redirects=redirects, attempt=attempt + 1, **request_kwargs,
        )
    return ok


def decimal_amount(value, most=None, places=2):
    """A gateway's positive decimal-string amount with at most `places` decimals (and at most `most`), else None."""
    try:
        amount = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        return None
    if amount is None or not amount.is_finite() or amount <= 0 or amount.as_tuple().exponent < -places:
        return None
    return amount if most is None or amount <= most else None
