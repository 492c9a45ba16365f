"""JSON log lines: one per request (request id accepted or made, returned in X-Request-Id; route, status,
duration, merchant and payment), one per job under the request id that enqueued it; secrets, card numbers,
wallet numbers and query strings masked."""

import io
import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.extensions import get_queue, get_redis
from app.ops import logs
from app.ops.jobs import SimpleWorker
from tests import log_secrets


@pytest.fixture
def lines():
    """The JSON objects logged during the test, as the app's handler writes them."""
    stream = io.StringIO()
    handler = logs.json_handler(stream)
    root = logging.getLogger()
    root.addHandler(handler)

    def read():
        handler.flush()
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield read
    root.removeHandler(handler)


def request_lines(found, route=None):
    return [line for line in found if line["message"] == "request" and (route is None or line["route"] == route)]


def test_a_sane_request_id_is_kept_and_returned(client, lines):
    r = client.get("/healthz", headers={"X-Request-Id": "lb-7f3a.42:x_y"})
    assert r.headers["X-Request-Id"] == "lb-7f3a.42:x_y"
    [line] = request_lines(lines(), "/healthz")
    assert line["request_id"] == "lb-7f3a.42:x_y" and line["method"] == "GET" and line["status"] == 200
    assert line["level"] == "INFO" and line["logger"] == "app.requests" and line["duration_ms"] >= 0
    assert line["time"].endswith("Z")


@pytest.mark.parametrize("given_id", ["", "has space", "x" * 65, "tab\there", "quote\"", "é", "a;b"])
def test_an_insane_request_id_is_replaced(client, lines, given_id):
    r = client.get("/healthz", headers={"X-Request-Id": given_id} if given_id else {})
    made = r.headers["X-Request-Id"]
    assert made != given_id and len(made) == 32 and int(made, 16) >= 0
    assert request_lines(lines(), "/healthz")[0]["request_id"] == made


def test_an_api_request_line_names_the_route_merchant_and_payment(client, factories, lines):
    merchant, key = factories.merchant()
    payment = factories.payment(merchant)
    r = client.get(f"/api/v1/payments/{payment.public_id}?x=secret-query", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200
    [line] = request_lines(lines(), "/api/v1/payments/<public_id>")
    assert line["merchant_id"] == merchant.public_id and line["payment_id"] == payment.public_id
    text = json.dumps(line)
    assert "secret-query" not in text and key not in text


def test_a_dashboard_request_line_names_the_current_merchant_and_the_person(client, factories, lines):
    from tests.web.dashboard.conftest import owner_of, sign_in

    merchant, _ = factories.merchant()
    payment = factories.payment(merchant)
    sign_in(client, merchant)
    assert client.get(f"/dashboard/payments/{payment.public_id}").status_code == 200
    [line] = [line for line in request_lines(lines()) if line.get("payment_id") == payment.public_id]
    assert line["merchant_id"] == merchant.public_id and line["user_id"] == owner_of(merchant).public_id


def test_the_request_id_is_carried_into_the_jobs_it_enqueues(client, factories, lines):
    merchant, key = factories.merchant()
    r = client.post("/api/v1/payments", headers={"Authorization": f"Bearer {key}", "X-Request-Id": "req-carried-1"},
                    json={"amount": 150000, "currency": "VND", "reference": "R-1",
                          "return_url": "https://shop.example/r"})
    assert r.status_code == 201
    job = get_queue("default").fetch_job(f"expire-{_payment_id(r.json['id'])}")  # the expiry timer
    assert job.meta["request_id"] == "req-carried-1"
    get_queue("default").enqueue_job(job)  # run it now: the payment is not due, so the job changes nothing
    SimpleWorker([get_queue("default")], connection=get_redis()).work(burst=True)
    [ran] = [line for line in lines() if line["message"] == "job" and line["job"] == "app.jobs.expiry.expire"]
    assert ran["request_id"] == "req-carried-1" and ran["status"] == "finished" and ran["job_id"] == job.id
    assert ran["duration_ms"] >= 0 and ran["queue"] == "default"


def _payment_id(public_id):
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Payment

    return db.session.scalar(select(Payment.id).where(Payment.public_id == public_id))


def test_a_job_enqueued_outside_a_request_has_no_request_id(app):
    job = get_queue("default").enqueue("app.jobs.expiry.expire", 0)
    assert "request_id" not in job.meta


def test_a_failing_job_is_logged_as_failed(lines):
    get_queue("default").enqueue("app.jobs.expiry.expire", "not-an-id-and-not-a-function-argument", "extra")
    SimpleWorker([get_queue("default")], connection=get_redis()).work(burst=True)
    [ran] = [line for line in lines() if line["message"] == "job"]
    assert ran["status"] == "failed" and ran["level"] == "WARNING"


def test_secrets_in_messages_and_fields_are_masked(lines):
    log = logging.getLogger("tests.ops")
    log.warning("key sk_live_abcdefghijklmnop secret whsec_0123456789abcdef card 4444 4444 4444 4444 "
                "wallet 01711428036 url https://user:pw123@db.example/x?vnp_SecureHash=abc&b=2 "
                "auth Bearer tok_abcdefghijk pay /pay/PVR5-S64xQEeBgxdGW2fDa_UBl8qau-k",
                extra={"otp": "123456", "password": "hunter22", "api_key": "k", "amount": 12500000,
                       "nested": {"card_number": "4242424242424242", "note": "ok"}})
    [line] = lines()
    text = json.dumps(line)
    for secret in ("abcdefghijklmnop", "0123456789abcdef", "4444 4444 4444 4444", "01711428036", "pw123",
                   "vnp_SecureHash", "tok_abcdefghijk", "PVR5-S64xQEeBgxdGW2fDa_UBl8qau-k", "123456", "hunter22",
                   "4242424242424242"):
        assert secret not in text, secret
    assert "************4444" in line["message"] and "*******8036" in line["message"]
    assert line["amount"] == 12500000 and line["nested"]["note"] == "ok"


def test_a_traceback_is_masked_too(lines):
    try:
        raise RuntimeError("could not charge 4111 1111 1111 1111 with sk_test_abcdefghijklmnop")
    except RuntimeError:
        logging.getLogger("tests.ops").exception("failed")
    [line] = lines()
    assert "4111 1111 1111 1111" not in line["exc_info"] and "1111" in line["exc_info"]
    assert "abcdefghijklmnop" not in line["exc_info"] and "Traceback" in line["exc_info"]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30),
       st.lists(st.sampled_from("0123456789"), min_size=13, max_size=19).map("".join),
       st.sampled_from(["", " ", "-"]), st.text(max_size=30))
def test_no_card_number_survives_redaction(before, digits, separator, after):
    grouped = separator.join(digits[i:i + 4] for i in range(0, len(digits), 4))
    out = logs.redact(f"{before} | {grouped} | {after}")
    assert f"| {grouped} |" not in out and f"| {'*' * (len(digits) - 4)}{digits[-4:]} |" in out


def test_the_secrets_scanner_finds_a_planted_secret():
    """The end-of-session check (tests/log_secrets.py) is not vacuous: it sees a secret in a line, and
    not inside a longer word or number."""
    secrets = {"123456", "sk_planted_value_0001"}
    text = '{"message": "one"}\n{"message": "code 123456 sent"}\n{"id": "ab123456cd", "n": 91234567}\n'
    assert log_secrets.leaks(text, secrets) == [("123456", '{"message": "code 123456 sent"}')]
    assert log_secrets.leaks('{"k": "sk_planted_value_0001"}', secrets)[0][0] == "sk_planted_value_0001"
    assert "correct-horse-battery" in log_secrets.SECRETS and len(log_secrets.SECRETS) > len(log_secrets.TYPED)
