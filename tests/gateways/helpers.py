"""What every gateway test needs: a payment made through the API, the checkout hand-over to the gateway
(or its simulator), racing requests, and the timeline/outbox rows to assert on. Gateway-agnostic on purpose."""

import re
import threading
from urllib.parse import parse_qsl, urljoin, urlsplit

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import OutboxEvent, Payment, PaymentEvent
from tests.helpers import csrf_token


def api_payment(http, key, **fields):
    """POST /api/v1/payments; return the created Payment row."""
    body = {"amount": 150_000, "currency": "VND", "reference": "ORD-1", "description": "Test order",
            "return_url": "https://shop.example/return", "cancel_url": "https://shop.example/cancel", **fields}
    response = http.post("/api/v1/payments", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 201, response.text
    db.session.rollback()
    return db.session.scalar(select(Payment).where(Payment.public_id == response.json()["id"]))


def choose_method(http, payment, method):
    """Open the checkout page and choose `method`; return the absolute URL the shopper is sent to."""
    url = f"/pay/{payment.checkout_token}"
    page = http.get(url)
    assert page.status_code == 200, page.text
    assert f'value="{method}"' in page.text, f"{method} is not offered on the checkout page"
    response = http.post(url, data={"csrf_token": csrf_token(page.text), "method": method}, allow_redirects=False)
    assert response.status_code == 303, response.text
    return urljoin(http.base_url + "/", response.headers["Location"])


def follow(http, response):
    """The absolute URL of a redirect response."""
    assert response.status_code in (301, 302, 303, 307), (response.status_code, response.text[:500])
    return urljoin(response.url, response.headers["Location"])


def query_of(url):
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def race(n, fn):
    """Call fn() from n threads (each in its own app context) released together by a barrier; return the
    results in thread order."""
    app = current_app._get_current_object()
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def run(i):
        with app.app_context():
            barrier.wait()
            try:
                results[i] = fn()
            except Exception as exc:  # surfaced below, not swallowed
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


def events(payment, kind=None):
    db.session.rollback()
    query = select(PaymentEvent).where(PaymentEvent.payment_id == payment.id).order_by(PaymentEvent.id)
    if kind:
        query = query.where(PaymentEvent.kind == kind)
    return list(db.session.scalars(query))


def transitions(payment):
    """[(from, to), …] of the payment's status changes."""
    return [(e.from_status, e.to_status) for e in events(payment, "status_change")]


def outbox_types(payment):
    db.session.rollback()
    return [e.type for e in db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.payment_id == payment.id).order_by(OutboxEvent.id))]


def unmatched_callbacks(code):
    """Callbacks kept on the timeline that matched no payment."""
    db.session.rollback()
    return list(db.session.scalars(select(PaymentEvent).where(
        PaymentEvent.payment_id.is_(None), PaymentEvent.gateway == code)))


def form_action_outcomes(html):
    """The values of the outcome buttons on a simulator page."""
    return set(re.findall(r'name="outcome" value="([a-z_]+)"', html))


def take_notifications():
    """Remove the simulators' queued notifications (as if lost) and return them as
    [(method, url, request_kwargs)], so a test can deliver them itself, twice, or at once."""
    from app.extensions import get_queue
    from app.sandbox._common import JOB_OPTIONS

    queue = get_queue("sandbox")
    jobs = queue.jobs
    queue.empty()
    return [(job.args[0], job.args[1], {k: v for k, v in job.kwargs.items() if k not in JOB_OPTIONS})
            for job in jobs]


def assert_offered_everywhere(app, http, code, currency):
    """A merchant made with the CLI has `code` enabled in sandbox, and the demo merchant's open order in
    `currency` (whose link `seed-demo` prints) offers it on the checkout page."""
    import json
    import re

    from app.models import Merchant

    runner = app.test_cli_runner()
    made = runner.invoke(args=["merchants", "create", "--name", "CLI Shop", "--email", f"cli-{code}@example.test",
                               "--password", "correct-horse-battery"])
    assert made.exit_code == 0, made.output
    db.session.rollback()
    merchant = db.session.scalar(select(Merchant).where(Merchant.public_id == json.loads(made.output)["id"]))
    account = merchant.gateway_account(code)
    assert account.enabled and account.mode == "sandbox" and account.credentials

    seeded = runner.invoke(args=["seed-demo"])
    assert seeded.exit_code == 0, seeded.output
    link = re.search(rf"Pay a demo order \({currency}\): \S+(/pay/\S+)", seeded.output).group(1)
    page = http.get(link)
    assert page.status_code == 200 and f'value="{code}"' in page.text


def adapter_for(payment, code):
    """(adapter, PaymentInfo, GatewayContext) for calling gateway `code` about `payment` directly."""
    from app.gateways import get_gateway
    from app.services.gateways import context_for, payment_info

    db.session.rollback()
    db.session.refresh(payment)
    return get_gateway(code), payment_info(payment), context_for(payment.merchant.gateway_account(code))


def settle_by_query(payment, code):
    """What the gateway's status query says (adapter.query), and whether reconciliation
    (app.services.reconciliation.reconcile_payment, on apply_result) settled the payment with it."""
    from app.services.reconciliation import reconcile_payment

    gateway, info, ctx = adapter_for(payment, code)
    result = gateway.query(info, ctx)
    return result, reconcile_payment(payment)


def refund_through_service(payment, amount, run_jobs):
    """Refund through app.services.refunds (reserve, job calls the adapter, settle); return the Refund."""
    from app.services.refunds import request_refund

    refund = request_refund(payment, amount, "customer request", source="test")
    run_jobs()
    db.session.rollback()
    db.session.refresh(refund)
    db.session.refresh(payment)
    return refund


class ScriptedReceiver:
    """A loopback HTTP server that answers GET and POST with `answers` in order, repeating the last one; each
    answer is (status, body bytes, headers). `hits` records (time, method, path, body) of every request."""

    def __init__(self, *answers):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.answers, self.hits = list(answers), []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                import time

                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.hits.append((time.time(), self.command, self.path, body))
                status, payload, headers = receiver.answers.pop(0) if len(receiver.answers) > 1 \
                    else receiver.answers[0]
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(payload))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def redirect_queued_notification(url):
    """Point the one queued simulator notification at `url` (its query string kept); return the job."""
    from urllib.parse import urlsplit

    from app.extensions import get_queue

    [job] = get_queue("sandbox").jobs
    query = urlsplit(job.args[1]).query
    job.args = (job.args[0], url + (f"?{query}" if query else ""), *job.args[2:])
    job.save()
    return job


def deliver_all(run_jobs):
    """Run the queued simulator notification and every retry it schedules; return the waits (s) before each
    retry."""
    run_jobs(rounds=1)
    waits = []
    while scheduled := scheduled_notifications():
        [(wait, attempt)] = scheduled
        assert attempt == len(waits) + 1
        waits.append(wait)
        run_jobs(advance=wait + 5, rounds=1)
    return waits


def scheduled_notifications():
    """[(seconds from now, attempt)] of the simulators' notifications waiting for a retry."""
    import time

    from app.extensions import get_queue

    queue = get_queue("sandbox")
    registry = queue.scheduled_job_registry
    found = []
    for job_id in registry.get_job_ids():
        job = queue.fetch_job(job_id)
        found.append((registry.get_scheduled_time(job_id).timestamp() - time.time(), job.kwargs["attempt"]))
    return found


def last_attempt(payment):
    """The payment's latest attempt, as committed."""
    db.session.rollback()
    db.session.refresh(payment)
    return payment.attempts[-1]


def order_id(payment):
    """Our order id at the gateway for the payment's latest attempt (VNPay vnp_TxnRef, Midtrans order_id, …)."""
    return last_attempt(payment).public_id


def assert_attempt_ended(payment, status, failure_code=None):
    """The latest attempt ended as `status` and the payment is open again for another try."""
    attempt = last_attempt(payment)
    assert (payment.status, attempt.status) == ("pending", status), (payment.status, attempt.status)
    if failure_code is not None:
        assert attempt.failure_code == failure_code, attempt.failure_code
    assert "payment.attempt_failed" in outbox_types(payment)
    assert f"payment.{status}" not in outbox_types(payment)
    return attempt
