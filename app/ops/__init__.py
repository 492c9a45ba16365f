"""Operations: health checks, Prometheus metrics and structured JSON logs.

- `routes.py`: `/healthz` (the process answers), `/readyz` (database, Redis, migrations at head; workers and
  queue depths), `/metrics` (Prometheus text behind `METRICS_TOKEN`). No sign-in, no rate limit, never cached.
- `probes.py`: the checks and the cheap queries behind /readyz and the scrape-time gauges.
- `metrics.py`: the series and the one-line recording functions the rest of the app calls.
- `logs.py`: the JSON log format, redaction, the request/job context; `jobs.py`: RQ classes that carry the
  request id into jobs and log each run.

`register_ops(app)` wires the blueprint and the per-request hooks: a request id (the caller's sane
`X-Request-Id`, else a new one, returned in `X-Request-Id`), one JSON line and the HTTP metrics per request.
"""

import logging
import time

from flask import Blueprint, g, request

bp = Blueprint("ops", __name__)
log = logging.getLogger("app.requests")


def register_ops(app):
    from app.extensions import limiter
    from app.ops import logs, metrics, routes  # noqa: F401  (routes: the views of bp)

    limiter.exempt(bp)
    app.register_blueprint(bp)

    @app.before_request
    def _begin():
        g.request_started = time.perf_counter()
        g.request_id = logs.accept_request_id(request.headers.get("X-Request-Id"))
        g.log_context = logs.bind(request_id=g.request_id)

    @app.after_request
    def _finish(response):
        if "request_id" not in g:  # a hook that ran before ours answered (nothing was bound)
            g.request_id = logs.new_request_id()
        response.headers["X-Request-Id"] = g.request_id
        seconds = time.perf_counter() - g.get("request_started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        _note_who(logs)
        log.info("request", extra={"method": request.method, "route": route, "status": response.status_code,
                                   "duration_ms": round(seconds * 1000, 1), "request_id": g.request_id})
        metrics.http_request(request.method, route, response.status_code, seconds)
        return response

    @app.teardown_request
    def _end(_exc):
        token = g.pop("log_context", None)
        if token is not None:
            logs.unbind(token)


def _note_who(logs):
    """The merchant (API key or dashboard session) and payment (a `pay_…` in the URL) of this request."""
    merchant = g.get("merchant")  # the API key's merchant
    membership = g.get("membership")  # the dashboard's current merchant, if this request looked it up
    if merchant is None and membership is not None:
        merchant = membership.merchant
    user = g.get("_login_user")  # Flask-Login's loaded user, if this request loaded one
    if user is not None and getattr(user, "is_authenticated", False) and logs.current("user_id") is None:
        logs.note(user_id=user.public_id)
    if merchant is not None and logs.current("merchant_id") is None:
        logs.note(merchant=merchant)
    for value in (request.view_args or {}).values():
        if isinstance(value, str) and value.startswith("pay_") and logs.current("payment_id") is None:
            logs.note(payment=value)
