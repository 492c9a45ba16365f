"""Webhook deliveries per second: our worker (`python worker.py --burst`, batched delivery), one process and
two, next to a bare keep-alive loop against the same receiver and database in the same run, and the ratio;
then with 10 % of the endpoints slow (answering after the timeout) or failing (HTTP 500), the healthy ones'
rate; then the time two workers take to drain a backlog.

    .venv/bin/python bench/webhooks.py [--merchants 20] [--events 2000] [--backlog 20000]
    BENCH_DATABASE_URL=postgresql://… BENCH_REDIS_URL=redis://…/9 .venv/bin/python bench/webhooks.py

The receiver runs in its own process (HTTP/1.1 keep-alive, a thread per connection) and counts what it gets;
the bare loop runs in its own process too, so each side pays for its own CPU. The bare loop reads due
deliveries, signs each (Paysmith-Signature), POSTs with 32 in flight over kept-alive connections and marks
them delivered in one UPDATE per batch: no leases, no attempts log, no URL check, no outcomes.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from _common import ROOT, cleanup, database_name, scratch_app, worker_env

TIMEOUT = 2
HERE = os.path.abspath(__file__)


# --- the receiver (its own process) ---------------------------------------------------------------------------


def serve(port_file):
    hits = []  # (time, kind)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # /stats?since=<n>: the hits so far
            with lock:
                body = json.dumps(hits).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_DELETE(self):
            with lock:
                hits.clear()
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            kind = self.path.strip("/").split("/")[0]
            if kind == "slow":
                time.sleep(TIMEOUT + 1)
            status = 500 if kind == "failing" else 200
            with lock:
                hits.append((time.time(), kind))
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(port_file, "w") as f:
        f.write(str(server.server_port))
    server.serve_forever()


class Receiver:
    def __init__(self, tmp):
        port_file = os.path.join(tmp, "receiver.port")
        self.process = subprocess.Popen([sys.executable, HERE, "--serve", port_file])
        while not os.path.exists(port_file) or not open(port_file).read():
            time.sleep(0.05)
        self.base = f"http://127.0.0.1:{open(port_file).read()}"
        import urllib3

        self.http = urllib3.PoolManager()

    def hits(self):
        return json.loads(self.http.request("GET", self.base + "/stats").data)

    def reset(self):
        self.http.request("DELETE", self.base + "/stats")

    def close(self):
        self.process.terminate()


# --- the bare loop (its own process) ----------------------------------------------------------------------------


def bare():
    """Deliver every due delivery with a plain keep-alive loop; print how many."""
    import urllib3
    from sqlalchemy import select, update

    from app import create_app, security
    from app import webhooks as merchant_side
    from app.extensions import db
    from app.models import OutboxEvent, WebhookDelivery, WebhookEndpoint

    app = create_app()
    http = urllib3.PoolManager(maxsize=32, retries=False, timeout=urllib3.Timeout(connect=5, read=TIMEOUT))
    total = 0
    with app.app_context(), ThreadPoolExecutor(32) as pool:
        while True:
            rows = db.session.execute(
                select(WebhookDelivery.id, WebhookEndpoint.url, WebhookEndpoint.secret_enc, OutboxEvent.payload)
                .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(WebhookDelivery.status == "pending").order_by(WebhookDelivery.id).limit(500)).all()
            if not rows:
                break
            secrets = {row.secret_enc: security.decrypt(row.secret_enc) for row in rows}

            def send(row, secrets=secrets):
                body = json.dumps(row.payload, separators=(",", ":"), sort_keys=True).encode()
                t = int(time.time())
                header = merchant_side.signature_header([secrets[row.secret_enc]], t, body)
                try:
                    r = http.request("POST", row.url, body=body, headers={
                        "Content-Type": "application/json", "Paysmith-Signature": header})
                    return row.id if 200 <= r.status < 300 else None
                except urllib3.exceptions.HTTPError:
                    return None

            done = [i for i in pool.map(send, rows) if i]
            db.session.execute(update(WebhookDelivery).where(WebhookDelivery.id.in_([r.id for r in rows]))
                               .values(status="delivered").execution_options(synchronize_session=False))
            db.session.commit()
            total += len(done)
    print(total)


# --- the benchmark ----------------------------------------------------------------------------------------------


def seed(app, receiver, merchant_count, event_count, bad_fraction):
    """Merchants (one endpoint each, 10 % slow/failing when asked) and `event_count` pending deliveries."""
    from sqlalchemy import delete, insert

    from app import security
    from app.extensions import db
    from app.models import Merchant, OutboxEvent, WebhookDelivery, WebhookEndpoint
    from app.services.merchants import create_merchant
    from app.services.outbox import event_payload, fan_out

    bad = int(merchant_count * bad_fraction)
    kinds = ["slow" if i < bad / 2 else "failing" if i < bad else "ok" for i in range(merchant_count)]
    with app.app_context():
        db.session.execute(delete(WebhookDelivery))
        db.session.execute(delete(OutboxEvent))
        db.session.execute(delete(WebhookEndpoint))
        db.session.execute(delete(Merchant))
        db.session.commit()
        ids = [create_merchant(f"M{i}", f"m{i}-{time.time_ns()}@bench.test", "bench-password",
                               f"{receiver.base}/{kind}/{i}")[0].id for i, kind in enumerate(kinds)]
        rows = []
        for n in range(event_count):  # interleaved, as real traffic is
            public_id = security.public_id("evt")
            rows.append({"public_id": public_id, "merchant_id": ids[n % merchant_count], "type": "payment.succeeded",
                         "delivery_status": "pending", "attempts": 0,
                         "payload": event_payload(public_id, "payment.succeeded",
                                                  {"id": f"pay_bench_{n}", "object": "payment", "amount": 1000})})
        for start in range(0, len(rows), 5000):
            chunk = rows[start:start + 5000]
            event_ids = db.session.execute(insert(OutboxEvent).returning(OutboxEvent.id, sort_by_parameter_order=True),
                                           chunk).scalars().all()
            fan_out([(e, r["merchant_id"], r["type"]) for e, r in zip(event_ids, chunk, strict=True)])
            db.session.commit()
        from app.extensions import get_redis
        from app.services.webhooks import sweep_due_events

        get_redis().flushdb()
        sweep_due_events()  # what the periodic sweep does: ask for a batch job (a burst worker then drains)
    return kinds


def rate(hits, kind="ok"):
    times = sorted(t for t, k in hits if k == kind)
    if len(times) < 2:
        return len(times), 0.0, 0.0
    span = times[-1] - times[0]
    return len(times), span, len(times) / span if span else float("inf")


def run_workers(app, count, **settings):
    env = worker_env(app, WEBHOOK_TIMEOUT_SECONDS=TIMEOUT, **settings)
    started = time.time()
    workers = [subprocess.Popen([sys.executable, "worker.py", "--burst"], cwd=ROOT, env=env,
                                stderr=subprocess.PIPE) for _ in range(count)]
    for worker in workers:
        _, err = worker.communicate()
        if worker.returncode:
            sys.exit(err.decode()[-2000:])
    return time.time() - started


def run_bare(app):
    started = time.time()
    out = subprocess.run([sys.executable, HERE, "--bare"], cwd=ROOT, env=worker_env(app), capture_output=True)
    if out.returncode:
        sys.exit(out.stderr.decode()[-2000:])
    return time.time() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--merchants", type=int, default=20)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--backlog", type=int, default=20000)
    parser.add_argument("--serve")
    parser.add_argument("--bare", action="store_true")
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    if args.bare:
        return bare()

    app = scratch_app(WEBHOOK_TIMEOUT_SECONDS=TIMEOUT)
    receiver = Receiver(app.instance_path)
    try:
        print(f"database {database_name(app)}; {args.merchants} merchants; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        results = {}
        for label, runner in (("bare keep-alive loop", lambda: run_bare(app)),
                              ("our worker, 1 process", lambda: run_workers(app, 1)),
                              ("our worker, 2 processes", lambda: run_workers(app, 2))):
            seed(app, receiver, args.merchants, args.events, 0)
            receiver.reset()
            took = runner()
            count, span, per_second = rate(receiver.hits())
            results[label] = per_second
            print(f"  {label:26} {count:6} deliveries in {span:6.2f} s = {per_second:8.0f}/s "
                  f"(process run {took:.1f} s)")
        bare_rate = results["bare keep-alive loop"]
        for label in ("our worker, 1 process", "our worker, 2 processes"):
            print(f"  ratio {label} / bare: {results[label] / bare_rate:.2f}")

        kinds = seed(app, receiver, args.merchants, args.events, 0.1)
        receiver.reset()
        took = run_workers(app, 1)
        hits = receiver.hits()
        count, span, per_second = rate(hits)
        expected = sum(1 for n in range(args.events) if kinds[n % args.merchants] == "ok")
        print(f"  10 % slow or failing, 1 process: healthy {count}/{expected} in {span:.2f} s = {per_second:.0f}/s; "
              f"{sum(1 for _, k in hits if k == 'slow')} slow and {sum(1 for _, k in hits if k == 'failing')} "
              f"failing attempts; run {took:.1f} s")

        seed(app, receiver, args.merchants, args.backlog, 0)
        receiver.reset()
        took = run_workers(app, 2)
        count, span, _ = rate(receiver.hits())
        print(f"  backlog of {args.backlog}: {count} delivered by 2 processes in {took:.1f} s "
              f"(first to last delivery {span:.1f} s)")
    finally:
        receiver.close()
        cleanup(app)


if __name__ == "__main__":
    main()
