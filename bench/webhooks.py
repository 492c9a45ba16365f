"""Webhook deliveries per second for one worker (`python worker.py --burst`, a forked work horse per job)
against a loopback receiver: first with every endpoint healthy, then with 10 % of the merchants' endpoints
slow (answering after the timeout) or failing (HTTP 500).

    .venv/bin/python bench/webhooks.py [--merchants 20] [--events 1000]
    BENCH_DATABASE_URL=postgresql://… BENCH_REDIS_URL=redis://…/9 .venv/bin/python bench/webhooks.py
"""

import argparse
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from _common import ROOT, cleanup, database_name, scratch_app, worker_env

from app.extensions import db
from app.services.merchants import create_merchant
from app.services.outbox import emit

TIMEOUT = 2


class Receiver:
    def __init__(self):
        self.hits = []  # (time, merchant index, status)
        lock = threading.Lock()
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                kind, index = self.path.strip("/").split("/")
                if kind == "slow":
                    time.sleep(TIMEOUT + 1)
                status = 500 if kind == "failing" else 200
                with lock:
                    hits.append((time.time(), int(index), kind, status))
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def run(merchant_count, event_count, bad_fraction):
    app = scratch_app(WEBHOOK_TIMEOUT_SECONDS=TIMEOUT)
    receiver = Receiver()
    bad = int(merchant_count * bad_fraction)
    kinds = ["slow" if i < bad / 2 else "failing" if i < bad else "ok" for i in range(merchant_count)]
    with app.app_context():
        merchants = [create_merchant(f"M{i}", f"m{i}@bench.test", "bench-password",
                                     f"{receiver.base}/{kind}/{i}")[0].id for i, kind in enumerate(kinds)]
        for n in range(event_count):  # interleaved, as real traffic is
            emit("payment.succeeded", merchants[n % merchant_count],
                 {"id": f"pay_bench_{n}", "object": "payment", "status": "succeeded", "amount": 1000})
            if n % 200 == 199:
                db.session.commit()  # the relay enqueues a job per event
        db.session.commit()
        dbname = database_name(app)
    started = time.time()
    worker = subprocess.run([sys.executable, "worker.py", "--burst"], cwd=ROOT,
                            env=worker_env(app, WEBHOOK_TIMEOUT_SECONDS=TIMEOUT), capture_output=True)
    if worker.returncode:
        sys.exit(worker.stderr.decode()[-2000:])
    total = time.time() - started
    hits = receiver.hits
    first = min(t for t, *_ in hits)
    healthy = [t for t, _, kind, _ in hits if kind == "ok"]
    healthy_span = max(healthy) - first
    healthy_expected = sum(1 for n in range(event_count) if kinds[n % merchant_count] == "ok")
    print(f"{merchant_count} merchants, {bad} slow or failing; {event_count} events; one worker; {dbname}")
    print(f"  healthy endpoints: {len(healthy)}/{healthy_expected} delivered in {healthy_span:.1f} s = "
          f"{len(healthy) / healthy_span:.0f} deliveries/s")
    if bad:
        slow = sum(1 for *_, kind, _ in hits if kind == "slow")
        failing = sum(1 for *_, kind, _ in hits if kind == "failing")
        print(f"  slow/failing endpoints: {slow} slow and {failing} failing attempts (retries are scheduled); "
              f"the worker was done after {total:.1f} s")
    else:
        print(f"  worker run including start-up: {total:.1f} s")
    receiver.server.shutdown()
    cleanup(app)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--merchants", type=int, default=20)
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()
    run(args.merchants, args.events, 0)
    run(args.merchants, args.events, 0.1)


if __name__ == "__main__":
    main()
