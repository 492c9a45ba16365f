"""The operations endpoints: /healthz, /readyz, /metrics (see the package docstring)."""

from flask import current_app, jsonify, request

from app.ops import bp, metrics, probes
from app.security import constant_time_equals

#: /readyz's checks, in order; any failure makes it 503 and is named in `failed`.
CHECKS = {"database": probes.check_database, "redis": probes.check_redis, "migrations": probes.check_migrations}


@bp.after_request
def _never_cached(response):
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/healthz")
def healthz():
    """The process is alive and answering; depends on nothing."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Ready for traffic: the database and Redis answer and the schema is at the migrations' head."""
    from app.extensions import db

    checks, failed = {}, []
    for name, check in CHECKS.items():
        if name == "migrations" and "database" in failed:
            checks[name] = {"ok": False, "error": "database unreachable"}
            failed.append(name)
            continue
        try:
            check()
            checks[name] = {"ok": True}
        except Exception as exc:
            checks[name] = {"ok": False, "error": probes.describe_error(exc)}
            failed.append(name)
        finally:
            db.session.rollback()
    body = {"status": "fail" if failed else "ok", "failed": failed, "checks": checks}
    if "redis" not in failed:
        try:
            body["workers"], body["oldest_heartbeat_age_seconds"] = probes.workers()
            body["queues"] = probes.queue_depths()
        except Exception as exc:  # Redis went away between the check and here
            checks["redis"] = {"ok": False, "error": probes.describe_error(exc)}
            failed.append("redis")
            body["status"] = "fail"
    return jsonify(body), 503 if failed else 200


@bp.get("/metrics")
def prometheus():
    """Prometheus text, for a scraper that sends `Authorization: Bearer <METRICS_TOKEN>`."""
    token = current_app.config.get("METRICS_TOKEN")
    if not token:
        return jsonify(error={"code": "metrics_disabled",
                              "message": "set METRICS_TOKEN to enable /metrics"}), 403
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not constant_time_equals(given.strip(), token):
        response = jsonify(error={"code": "unauthorized", "message": "send 'Authorization: Bearer <METRICS_TOKEN>'"})
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response, 401
    from prometheus_client import CONTENT_TYPE_LATEST

    return metrics.exposition(), 200, {"Content-Type": CONTENT_TYPE_LATEST}
