"""Notifications per second through each gateway's server-to-server route, next to a bare Flask JSON endpoint.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/paysmith_bench \
    BENCH_REDIS_URL=redis://127.0.0.1:6379/9 .venv/bin/python bench/ipn.py [--n 200] [--concurrency 4]

The database named by BENCH_DATABASE_URL is WIPED (schema dropped and migrated again).

What runs (all on this machine, same gunicorn settings for every server):
- "paysmith": `gunicorn wsgi:app` — the app under test, PostgreSQL + Redis.
- "gateway": a second `gunicorn wsgi:app` serving only as the gateways' simulators (/sandbox/<code>), so that
  the calls a route makes to its gateway (Midtrans' status confirmation, Khalti's lookup) cross the network
  as they would in production and do not take threads from the server being measured.
- "bare": bench/bare_app.py, a Flask app answering every request with a small JSON body.

For each gateway entry, N payments are made through the real path (API → checkout → simulator page →
`outcome=success`); the notification the simulator would send (its queued RQ job, or for gateways without
one the browser return) is captured instead of delivered. Then the N notifications are fired at the app with
`--concurrency` client threads and timed: signature check, amount check, state change and outbox write per
request. The very same requests go to the bare endpoint, and the ratio is printed. Adding a gateway is one
`Entry` line in ENTRIES.
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from redis import Redis
from rq import Queue

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from app.sandbox._common import JOB_OPTIONS, _resolve  # noqa: E402  (the simulators' notification jobs)


@dataclass(frozen=True)
class Entry:
    """One gateway in the benchmark."""

    code: str
    currency: str
    amount: int
    #: Extra fields the simulator's page wants with `outcome=success` (e.g. a test card).
    form: dict = field(default_factory=dict)
    #: Whether the route answered as accepted.
    accepted: str = "status_ok"  # name of a function below


def status_ok(response):
    return 200 <= response.status_code < 400


def vnpay_ok(response):
    return response.status_code == 200 and response.json().get("RspCode") == "00"


WALLET = {"wallet": "01770618575"}
ENTRIES = [
    Entry("testcard", "USD", 5_000, form={"card_number": "4242 4242 4242 4242", "exp": "12/39", "cvc": "123",
                                          "name": "Bench Shopper"}),
    Entry("vnpay", "VND", 150_000, accepted="vnpay_ok"),
    Entry("midtrans", "IDR", 125_000),
    # Gateways without a server-to-server notification: their return route (which asks the gateway).
    Entry("khalti", "NPR", 150_000),
    Entry("bkash", "BDT", 150_000, form=WALLET),
    Entry("nagad", "BDT", 150_000, form=WALLET),
    Entry("sslcommerz", "BDT", 125_050),  # IPN: verify_sign, then the validation API by val_id
    Entry("rocket", "BDT", 125_050),  # SSLCommerz's IPN under /callbacks/rocket/
    Entry("stripe", "USD", 12_500),  # webhook: Stripe-Signature, signed when sent (300 s tolerance)
]


def _proc_table():
    """{pid: (parent pid, command name, CPU ticks used)} for every process we may read."""
    table = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                data = f.read()
        except OSError:
            continue
        comm, fields = data[data.index("(") + 1:data.rindex(")")], data[data.rindex(")") + 2:].split()
        table[int(pid)] = (int(fields[1]), comm, int(fields[11]) + int(fields[12]))
    return table


def cpu_seconds(servers):
    """CPU seconds used so far, by part: each named gunicorn server (master and workers), PostgreSQL,
    Redis, kernel threads (the WAL's disk flushes show up here) and this client. Linux only ({} elsewhere)."""
    if not os.path.isdir("/proc/self"):
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    table, used = _proc_table(), {}
    for name, master in servers.items():
        used[name] = sum(t for pid, (ppid, _, t) in table.items() if master in (pid, ppid)) / tick
    for name, prefix in (("postgres", "postgres"), ("redis", "redis-server"), ("kernel", "kworker")):
        used[name] = sum(t for _, comm, t in table.values() if comm.startswith(prefix)) / tick
    times = os.times()
    used["client"] = times.user + times.system
    return used


def cpu_per_request(before, after, n):
    """'part 1.23' (milliseconds of CPU per request) for every part that used any."""
    parts = [(k, (after[k] - before[k]) * 1000 / n) for k in after]
    return " ".join(f"{k} {ms:.2f}" for k, ms in parts if ms >= 0.005)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(target, port, env, args):
    cmd = [os.path.join(os.path.dirname(sys.executable), "gunicorn"), target, "--bind", f"127.0.0.1:{port}",
           "--workers", str(args.workers), "--worker-class", "gthread", "--threads", str(args.threads),
           "--log-level", "warning", "--chdir", ROOT]
    log = open(os.path.join(tempfile.gettempdir(), f"paysmith-bench-{port}.log"), "wb")
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(url + "/", timeout=1)
            return proc, url
        except requests.RequestException:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"{target} did not start on port {port}")


def reset_database(database_url, redis_url):
    os.environ.update(DATABASE_URL=database_url, REDIS_URL=redis_url, PAYSMITH_ENV="development")
    from flask_migrate import upgrade
    from sqlalchemy import text

    from app import create_app
    from app.extensions import db

    app = create_app({"LOG_LEVEL": "WARNING"})
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        upgrade(directory=os.path.join(ROOT, "migrations"))
        db.engine.dispose()
    return app


def csrf(html):
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def prepare(entry, n, app_url, api_key, queue):
    """Make n payments up to the gateway's success; return the n captured notifications as request kwargs."""
    out = []
    session = requests.Session()
    for i in range(n):
        r = session.post(f"{app_url}/api/v1/payments", headers={"Authorization": f"Bearer {api_key}"}, json={
            "amount": entry.amount, "currency": entry.currency, "reference": f"BENCH-{entry.code}-{i}",
            "return_url": "https://shop.example/return"})
        r.raise_for_status()
        checkout = r.json()["checkout_url"]
        page = session.get(checkout)
        r = session.post(checkout, data={"csrf_token": csrf(page.text), "method": entry.code}, allow_redirects=False)
        assert r.status_code == 303, (entry.code, r.status_code, r.text[:300])
        url = urljoin(checkout, r.headers["Location"])
        r = session.get(url, allow_redirects=False)
        if r.status_code in (301, 302, 303):  # a simulator that hops to its page first
            url = urljoin(url, r.headers["Location"])
        r = session.post(url, data={"outcome": "success", **entry.form}, allow_redirects=False)
        # 200: a gateway that posts the browser back with an auto-submitted form (SSLCommerz)
        assert r.status_code in (200, 302, 303), (entry.code, r.status_code, r.text[:300])
        jobs = queue.jobs
        queue.empty()
        if jobs:
            job = jobs[-1]
            kwargs = {k: v for k, v in job.kwargs.items() if k not in JOB_OPTIONS}
            out.append({"method": job.args[0], "url": rehost(job.args[1], app_url), "sign": job.kwargs.get("sign"),
                        **kwargs})
        else:
            assert r.status_code in (301, 302, 303), f"{entry.code}: no notification and no redirect to the return"
            out.append({"method": "GET", "url": rehost(urljoin(url, r.headers["Location"]), app_url),
                        "allow_redirects": False})
    return out


def rehost(url, base):
    parts, target = urlsplit(url), urlsplit(base)
    return urlunsplit(parts._replace(scheme=target.scheme, netloc=target.netloc))




def fire(requests_list, base, concurrency, accepted):
    """Send every request once from `concurrency` threads; return (seconds, accepted count)."""
    local = threading.local()
    ok = []

    def send(kwargs):
        if not hasattr(local, "session"):
            local.session = requests.Session()
        kwargs = {**kwargs, "url": rehost(kwargs["url"], base), "timeout": 60}
        sign = kwargs.pop("sign", None)
        if sign:  # signed when sent, as the gateway does at every attempt (fresh timestamps)
            kwargs["headers"] = {**(kwargs.get("headers") or {}), **_resolve(sign)(kwargs.get("data"))}
        response = local.session.request(**kwargs)
        ok.append(accepted(response))

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, requests_list))
    return time.perf_counter() - started, sum(ok)


def succeeded(app, code):
    """How many of the gateway's payments the app now has as succeeded (each notification applied once)."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Payment

    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(Payment).where(
            Payment.gateway == code, Payment.status == "succeeded"))
        db.session.remove()
        return count


def median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="notifications per gateway and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each server's turn rotating")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (every server)")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (every server)")
    parser.add_argument("--only", nargs="*", help="gateway codes to run (default: all)")
    args = parser.parse_args()
    database_url, redis_url = os.environ.get("BENCH_DATABASE_URL"), os.environ.get("BENCH_REDIS_URL")
    if not database_url or not database_url.startswith("postgres") or not redis_url:
        raise SystemExit("set BENCH_DATABASE_URL (PostgreSQL; it is wiped) and BENCH_REDIS_URL")
    entries = [e for e in ENTRIES if not args.only or e.code in args.only]

    app = reset_database(database_url, redis_url)
    redis = Redis.from_url(redis_url)
    queue = Queue("sandbox", connection=redis)
    queue.empty()
    app_port, gateway_port, bare_port, limit_port = free_port(), free_port(), free_port(), free_port()
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    common = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "PAYSMITH_ENV": "development", "SANDBOX": "1"}
    overrides = {f"PAYSMITH_{e.code.upper()}_BASE_URL": f"{gateway_url}/sandbox/{e.code}" for e in entries}
    from app.services.gateways import sandbox_credentials

    vnpay = sandbox_credentials("vnpay")
    procs = {}
    try:
        procs["simulator"], gateway_url = start_gunicorn(
            "wsgi:app", gateway_port, {**common, "PUBLIC_BASE_URL": gateway_url}, args)
        procs["paysmith"], app_url = start_gunicorn("wsgi:app", app_port, {
            **common, **overrides, "PUBLIC_BASE_URL": f"http://127.0.0.1:{app_port}"}, args)
        procs["bare"], bare_url = start_gunicorn("bench.bare_app:app", bare_port, {}, args)
        procs["limit"], limit_url = start_gunicorn("bench.limit_app:app", limit_port, {
            "LIMIT_DATABASE_URL": database_url, "LIMIT_REDIS_URL": redis_url,
            "LIMIT_VNPAY_SECRET": vnpay["hash_secret"], "LIMIT_VNPAY_TMN": vnpay["tmn_code"],
            "LIMIT_PUBLIC_BASE_URL": f"http://127.0.0.1:{app_port}"}, args)
        servers = {name: proc.pid for name, proc in procs.items()}
        # A limit app exists for these routes (bench/limit_app.py); the others are compared with bare only.
        limits = {"vnpay": limit_url}

        with app.app_context():
            from app.services.merchants import create_merchant

            _, api_key = create_merchant("Bench Shop", f"bench-{int(time.time())}@example.test", "bench-password")
        print(f"gunicorn: {args.workers} workers x {args.threads} threads (gthread) each; "
              f"{args.concurrency} client threads; {args.n} notifications per gateway and round, {args.rounds} "
              f"rounds in rotating order; PostgreSQL; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        warm = args.workers * args.threads  # one untimed request per server thread (DB connections, imports)
        for entry in entries:
            targets = {"bare": (bare_url, status_ok), "paysmith": (app_url, globals()[entry.accepted])}
            if entry.code in limits:
                targets["limit"] = (limits[entry.code], globals()[entry.accepted])
            # Fresh notifications for every server that applies them (each may be applied once only).
            need = {name: args.n * args.rounds + warm for name in targets if name != "bare"}
            batches = {name: prepare(entry, count, app_url, api_key, queue) for name, count in need.items()}
            batches["bare"] = batches["paysmith"]
            for name, (url, _) in targets.items():
                fire(batches[name][:warm], url, args.concurrency, status_ok)
            rates, cpu, accepted = defaultdict(list), defaultdict(list), defaultdict(int)
            order = list(targets)
            for r in range(args.rounds):
                for name in order[r % len(order):] + order[:r % len(order)]:
                    url, ok = targets[name]
                    batch = batches[name][warm + r * args.n: warm + (r + 1) * args.n]
                    before = cpu_seconds(servers)
                    seconds, good = fire(batch, url, args.concurrency, ok)
                    cpu[name].append((before, cpu_seconds(servers)))
                    rates[name].append(args.n / seconds)
                    accepted[name] += good
            path = urlsplit(batches["paysmith"][0]["url"]).path
            total = args.n * args.rounds
            line = f"{entry.code:<10} {path:<34}"
            for name in targets:
                line += f" {name} {median(rates[name]):7.1f}/s"
            line += f"  ours/bare {median(rates['paysmith']) / median(rates['bare']):.2f}"
            if "limit" in targets:
                line += (f"  ours/limit {median(rates['paysmith']) / median(rates['limit']):.2f}"
                         f"  limit/bare {median(rates['limit']) / median(rates['bare']):.2f}")
            print(line, flush=True)
            print(f"{'':<10} rounds/s: " + "; ".join(
                f"{name} " + " ".join(f"{x:.0f}" for x in rates[name]) for name in targets), flush=True)
            print(f"{'':<10} accepted: " + ", ".join(f"{name} {accepted[name]}/{total}" for name in targets
                                                     if name != "bare")
                  + f"; payments paid by ours and the limit: {succeeded(app, entry.code) - len(need) * warm}"
                  f" of {total * len(need)}", flush=True)
            for name in targets:
                if cpu[name] and cpu[name][0][0]:
                    print(f"{'':<10} CPU ms per request, {name} runs: "
                          + cpu_per_request_all(cpu[name], args.n), flush=True)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def cpu_per_request_all(spans, n):
    """cpu_per_request over all of a server's rounds."""
    before = {k: sum(b[k] for b, _ in spans) for k in spans[0][0]}
    after = {k: sum(a[k] for _, a in spans) for k in spans[0][1]}
    return cpu_per_request(before, after, n * len(spans))


if __name__ == "__main__":
    main()
