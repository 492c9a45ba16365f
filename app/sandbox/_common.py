"""What the simulators share: their Redis state, notifications sent from RQ with the gateway's retries, and
errors answered in each gateway's own envelope (`install_error_envelope`, `unrouted_errors`)."""

import importlib
import json
import logging
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import urljoin

import requests
from flask import current_app, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

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


# --- errors in the gateway's own envelope ----------------------------------------------------------------------
#
# A simulator module may define `error_envelope(status, kind, message)`, returning the response its gateway gives
# for `kind`: "not_found" (no such path), "method_not_allowed" (the path exists, not with this method),
# "http_error" (an HTTP error raised inside a view, `status` is its code) or "server_error" (an unexpected
# exception, already logged). It may return None to leave the error to the app's own pages (a shopper-facing
# page of the simulator). `register_sandbox` installs it on the module's blueprint and routes unmatched paths
# under /sandbox/<code>/ to it, so SDKs pointed at a simulator raise their typed errors instead of reading HTML.

#: The kinds an error_envelope is asked about.
NOT_FOUND, METHOD_NOT_ALLOWED, HTTP_ERROR, SERVER_ERROR = "not_found", "method_not_allowed", "http_error", "server_error"


def gateway_path():
    """The request's path as the gateway sees it: without our /sandbox/<code> mount."""
    parts = request.path.split("/", 3)  # "", "sandbox", code, rest
    return "/" + (parts[3] if len(parts) > 3 else "")


def install_error_envelope(bp, envelope):
    """Answer HTTP errors and unexpected exceptions raised in `bp`'s views with `envelope`."""

    def http_error(exc):
        kind = METHOD_NOT_ALLOWED if isinstance(exc, MethodNotAllowed) else (
            NOT_FOUND if isinstance(exc, NotFound) else HTTP_ERROR)
        answer = envelope(exc.code, kind, exc.description or exc.name)
        return exc if answer is None else answer

    def unexpected(exc):
        if isinstance(exc, HTTPException):
            return http_error(exc)
        log.exception("sandbox %s: unhandled error on %s %s", bp.name, request.method, request.path)
        answer = envelope(500, SERVER_ERROR, "internal error")
        if answer is None:
            raise exc
        return answer

    bp.register_error_handler(HTTPException, http_error)
    bp.register_error_handler(Exception, unexpected)


def unrouted_errors(envelopes):
    """An app `before_request` hook: a path under /sandbox/<code>/ that matched no route (or not with this
    method) is answered by that simulator's envelope. `envelopes` maps code → error_envelope."""

    def answer_unrouted():
        exc = request.routing_exception
        if not isinstance(exc, NotFound | MethodNotAllowed) or not request.path.startswith("/sandbox/"):
            return None
        envelope = envelopes.get(request.path.split("/")[2])
        if envelope is None:
            return None
        kind = METHOD_NOT_ALLOWED if isinstance(exc, MethodNotAllowed) else NOT_FOUND
        return envelope(exc.code, kind, exc.description or exc.name)

    return answer_unrouted
