"""A real loopback HTTP receiver for webhook tests, and the README's verification snippet, loaded as code."""

import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(__file__)), "README.md")


def readme_snippet(marker="webhook-verify-snippet"):
    """Execute one of the README's webhook verification snippets; return its namespace (verify_paysmith_webhook,
    or paysmith_event for the Standard Webhooks one)."""
    text = open(README, encoding="utf-8").read()
    match = re.search(rf"<!-- {marker} -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README has no webhook verification snippet"
    namespace = {}
    exec(compile(match.group(1), "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    return namespace


class Receiver:
    """Records every POST; answers with `responses` in order (then 200): a status, a negative number (answer
    200 after that many seconds), or (status, {headers}). `delay` (seconds) slows every answer to paths
    containing its key. `hold` makes the next request wait until `release()` (its arrival sets `holding`).
    `max_in_flight[path]` is the most requests to one path at the same moment."""

    def __init__(self, secret=None):
        self.requests = []
        self.responses = []
        self.delay = {}
        self.in_flight, self.max_in_flight = {}, {}
        self.secret = secret
        self.verify = readme_snippet()["verify_paysmith_webhook"]
        self.hold_next = False
        self.holding = threading.Event()
        self._release = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as merchants' servers do

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    path = self.path
                    receiver.in_flight[path] = receiver.in_flight.get(path, 0) + 1
                    receiver.max_in_flight[path] = max(receiver.max_in_flight.get(path, 0), receiver.in_flight[path])
                    hold, receiver.hold_next = receiver.hold_next, False
                    status = receiver.responses.pop(0) if receiver.responses else 200
                    extra = {}
                    if isinstance(status, tuple):
                        status, extra = status
                    record = {"at": time.time(), "path": self.path, "connection": self.client_address, "headers": dict(self.headers), "body": body,
                              "json": json.loads(body or b"null"), "status": status,
                              "verified": bool(receiver.secret) and receiver.verify(
                                  body, self.headers.get("Paysmith-Signature", ""), receiver.secret)}
                    receiver.requests.append(record)
                if hold:
                    receiver.holding.set()
                    receiver._release.wait(30)
                if isinstance(status, (int, float)) and status < 0:  # a slow endpoint
                    time.sleep(-status)
                    status = 200
                for key, seconds in receiver.delay.items():
                    if key in self.path:
                        time.sleep(seconds)
                record["answered_at"] = time.time()
                with receiver.lock:
                    receiver.in_flight[path] -= 1
                payload = b'{"ok": true}' if status < 300 else b"x" * 3000
                try:
                    self.send_response(status)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def release(self):
        self._release.set()

    def event_ids(self):
        return [r["headers"].get("Paysmith-Event-Id") for r in self.requests]

    def close(self):
        self.release()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def hooked(factories, receiver):
    """A merchant whose webhook URL is the receiver: (merchant, api_key)."""
    merchant, key = factories.merchant(webhook_url=receiver.url)
    receiver.secret = merchant.webhook_secret
    return merchant, key
