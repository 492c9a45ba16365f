import json
import socket
import time
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from app import webhooks as merchant_side
from app.extensions import db
from app.models import OutboxEvent, utcnow
from app.services import webhook_endpoints, webhooks
from app.services.errors import ValidationError
from app.services.payments import cancel_payment
from app.services.webhook_endpoints import signing_secrets
from tests.helpers import reload


def events_of(payment):
    db.session.rollback()
    return db.session.scalars(select(OutboxEvent).where(OutboxEvent.payment_id == payment.id)
                              .order_by(OutboxEvent.id)).all()


def test_delivery_is_signed_with_the_documented_headers(factories, hooked, receiver, run_jobs):
    merchant, _ = hooked
    payment = factories.payment(merchant)
    assert cancel_payment(payment, source="api")
    run_jobs()

    [event] = events_of(payment)
    [request] = receiver.requests
    headers, body = request["headers"], request["body"]
    assert headers["Paysmith-Event-Id"] == event.public_id
    assert headers["Content-Type"] == "application/json"
    t, v1 = headers["Paysmith-Signature"].split(",")
    assert t == f"t={t[2:]}" and t[2:].isdigit() and abs(int(t[2:]) - time.time()) < 60
    assert v1 == "v1=" + webhooks.sign_payload(merchant.webhook_secret, int(t[2:]), body)
    assert request["verified"]  # the README's snippet
    assert merchant_side.verify(body, headers["Paysmith-Signature"], merchant.webhook_secret)
    assert not merchant_side.verify(body, headers["Paysmith-Signature"], "whsec_wrong")
    assert not receiver.verify(body.replace(b"cancelled", b"succeeded"), headers["Paysmith-Signature"],
                               merchant.webhook_secret)
    sent = json.loads(body)
    assert sent == {"id": event.public_id, "object": "event", "type": "payment.cancelled",
                    "created": sent["created"], "data": {"object": sent["data"]["object"]}}
    assert sent["data"]["object"]["id"] == payment.public_id and sent["data"]["object"]["status"] == "cancelled"

    assert event.delivery_status == "delivered" and event.attempts == 1
    [delivery] = event.deliveries
    assert delivery.status == "delivered" and delivery.lease_owner is None and delivery.lease_until is None
    [attempt] = event.attempts_log.all()
    assert attempt.status_code == 200 and attempt.error is None and attempt.latency_ms >= 0
    assert attempt.response_body == '{"ok": true}' and attempt.url == receiver.url
    assert "delivered" in payment.events.filter_by(kind="webhook").one().message


def test_retries_with_growing_delays_until_success(app, factories, hooked, receiver, run_jobs, monkeypatch):
    # 1 s, 2 s, 4 s: long enough that a loaded machine cannot reach a retry before the test looks.
    monkeypatch.setitem(app.config, "WEBHOOK_RETRY_BASE_SECONDS", 1.0)
    monkeypatch.setitem(app.config, "WEBHOOK_RETRY_FACTOR", 2)
    monkeypatch.setitem(app.config, "WEBHOOK_RETRY_JITTER", 0.1)
    receiver.responses = [500, 503, 404]
    merchant, _ = hooked
    payment = factories.payment(merchant)
    cancel_payment(payment, source="api")
    run_jobs()
    [event] = events_of(payment)
    delays = []
    for i in range(3):
        assert event.delivery_status == "pending" and len(receiver.requests) == i + 1
        last = event.attempts_log.all()[-1]
        answered = last.created_at + timedelta(milliseconds=last.latency_ms)
        delays.append((event.next_attempt_at - answered).total_seconds())
        time.sleep(max((event.next_attempt_at - utcnow()).total_seconds(), 0) + 0.05)
        deadline = time.monotonic() + 10  # a loaded machine may need another round to claim the due retry
        while len(receiver.requests) < i + 2 and time.monotonic() < deadline:
            run_jobs(advance=1, rounds=1)
            time.sleep(0.05)
        event = reload(event)
    assert event.delivery_status == "delivered" and event.attempts == 4
    assert [r["status"] for r in receiver.requests] == [500, 503, 404, 200]
    assert set(receiver.event_ids()) == {event.public_id}
    assert delays[0] < delays[1] < delays[2], delays
    assert 0.8 < delays[0] < 1.3 and 3.5 < delays[2] < 4.6, delays
    errors = [a.error for a in event.attempts_log]
    assert errors == ["HTTP 500", "HTTP 503", "HTTP 404", None]
    assert len(event.attempts_log.all()[0].response_body) == 1024  # first 1 KB of the answer


def test_failed_after_the_last_attempt_then_resent_with_the_same_id(app, factories, hooked, receiver, run_jobs,
                                                                    monkeypatch, http):
    monkeypatch.setitem(app.config, "WEBHOOK_MAX_ATTEMPTS", 2)
    monkeypatch.setitem(app.config, "WEBHOOK_RETRY_BASE_SECONDS", 0.2)
    receiver.responses = [500, 500]
    merchant, key = hooked
    payment = factories.payment(merchant)
    cancel_payment(payment, source="api")
    run_jobs()
    time.sleep(0.5)
    run_jobs(advance=1)
    [event] = events_of(payment)
    assert event.delivery_status == "failed" and event.attempts == 2
    assert "failed after 2 attempts" in payment.events.filter_by(kind="webhook").one().message
    time.sleep(0.3)
    run_jobs(advance=5)
    assert len(receiver.requests) == 2  # nothing more after the last attempt

    r = http.post(f"/api/v1/events/{event.public_id}/resend", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == event.public_id
    run_jobs()
    event = reload(event)
    assert event.delivery_status == "delivered"
    assert receiver.event_ids() == [event.public_id] * 3
    assert receiver.requests[2]["json"] == receiver.requests[0]["json"]
    r = http.get(f"/api/v1/events/{event.public_id}", headers={"Authorization": f"Bearer {key}"})
    assert [a["status_code"] for a in r.json()["attempt_log"]] == [500, 500, 200]
    [delivery] = r.json()["deliveries"]
    assert (delivery["url"], delivery["status"], delivery["attempts"]) == (receiver.url, "delivered", 1)

    other, other_key = factories.merchant()
    r = http.post(f"/api/v1/events/{event.public_id}/resend", headers={"Authorization": f"Bearer {other_key}"})
    assert r.status_code == 404


def test_a_timeout_is_an_attempt_that_is_retried(app, factories, hooked, receiver, run_jobs, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_TIMEOUT_SECONDS", 0.5)
    receiver.responses = [-1.5]  # answers after 1.5 s
    merchant, _ = hooked
    payment = factories.payment(merchant)
    cancel_payment(payment, source="api")
    run_jobs()
    [event] = events_of(payment)
    assert event.delivery_status == "pending" and event.attempts == 1
    attempt = event.attempts_log.one()
    assert attempt.error == "timed out after 0.5 s" and attempt.status_code is None
    assert 450 <= attempt.latency_ms < 1400  # the endpoint's 1.5 s were not waited for
    assert event.next_attempt_at > utcnow()


def test_connection_refused_is_retried_and_no_url_is_skipped(factories, run_jobs):
    merchant, _ = factories.merchant(webhook_url="http://127.0.0.1:9/hooks")
    payment = factories.payment(merchant)
    cancel_payment(payment, source="api")
    run_jobs()
    [event] = events_of(payment)
    assert event.delivery_status == "pending" and "connection failed" in event.last_error

    quiet, _ = factories.merchant()
    payment = factories.payment(quiet)
    cancel_payment(payment, source="api")
    run_jobs()
    [event] = events_of(payment)
    assert event.delivery_status == "skipped" and event.attempts_log.count() == 0


def test_delivery_connects_to_the_address_it_checked_not_a_second_dns_answer(app, factories, receiver, run_jobs,
                                                                             monkeypatch):
    """DNS rebinding: the name first answers an address that passes the check (here 127.0.0.1 plays the
    public server), then an internal one (127.0.0.2 plays the private network). The POST must go to the
    address that was checked, with the URL's host in the Host header; nothing may resolve the name again."""
    port = receiver.server.server_port
    monkeypatch.setitem(app.config, "ALLOW_PRIVATE_WEBHOOK_URLS", False)
    monkeypatch.setattr(webhooks, "_forbidden_address", lambda ip: ip != "127.0.0.1")
    merchant, _ = factories.merchant()
    merchant.first_webhook_endpoint.url = f"http://rebind.test:{port}/hooks?shop=1"
    db.session.commit()
    answers = ["127.0.0.1", "127.0.0.2"]
    real_getaddrinfo = socket.getaddrinfo

    def rebinding_getaddrinfo(host, *args, **kwargs):
        if host == "rebind.test":
            address = answers.pop(0) if len(answers) > 1 else answers[0]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)
    payment = factories.payment(merchant)
    cancel_payment(payment, source="api")
    run_jobs()

    [event] = events_of(payment)
    assert event.delivery_status == "delivered", event.last_error
    [request] = receiver.requests
    assert request["headers"]["Host"] == f"rebind.test:{port}" and request["path"] == "/hooks?shop=1"
    assert answers == ["127.0.0.2"]  # the name was resolved once, for the check


def test_a_name_that_resolves_to_a_private_address_at_delivery_is_not_contacted(app, factories, receiver,
                                                                                run_jobs, monkeypatch):
    monkeypatch.setitem(app.config, "ALLOW_PRIVATE_WEBHOOK_URLS", False)
    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: (
        [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", receiver.server.server_port))]
        if host == "shop.example" else real_getaddrinfo(host, *a, **k)))
    merchant, _ = factories.merchant()
    merchant.first_webhook_endpoint.url = f"https://shop.example:{receiver.server.server_port}/hooks"  # saved when public
    db.session.commit()
    payment = factories.payment(merchant)
    cancel_payment(payment, source="api")
    run_jobs()
    [event] = events_of(payment)
    assert event.delivery_status == "pending" and "private network" in event.last_error
    assert receiver.requests == []


def test_a_second_batch_job_finds_nothing_to_deliver(factories, hooked, receiver, run_jobs):
    from app.services.webhook_delivery import deliver_batch

    merchant, _ = hooked
    payment = factories.payment(merchant)
    cancel_payment(payment, source="api")
    [event] = events_of(payment)
    assert webhooks.sweep_due_events() == 1  # asks for a job; one is already queued, so no second
    run_jobs()
    assert receiver.event_ids() == [event.public_id]
    assert deliver_batch() == 0  # delivered: nothing to claim


def test_rotation_signs_with_both_secrets_during_the_grace_period(factories, hooked, receiver, run_jobs):
    merchant, _ = hooked
    old = merchant.webhook_secret
    new = webhook_endpoints.rotate_webhook_secret(merchant)
    assert new != old and new.startswith("whsec_")
    payment = factories.payment(merchant)
    cancel_payment(payment, source="api")
    run_jobs()
    header = receiver.requests[-1]["headers"]["Paysmith-Signature"]
    body = receiver.requests[-1]["body"]
    assert header.count("v1=") == 2
    assert receiver.verify(body, header, old) and receiver.verify(body, header, new)

    endpoint = reload(merchant).first_webhook_endpoint
    endpoint.previous_secret_until = utcnow()
    db.session.commit()
    assert signing_secrets(endpoint) == [new]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/h", "http://10.1.2.3/h", "http://192.168.0.1/h", "http://169.254.169.254/latest/meta-data",
    "http://[::1]/h", "http://[::ffff:127.0.0.1]/h", "http://0.0.0.0/h", "http://localhost:8000/h",
    "ftp://example.com/h", "javascript:alert(1)", "http:///nohost", "https://user:pw@example.com/h", "",
])
def test_unsafe_webhook_urls_are_refused_in_production(app, monkeypatch, url):
    monkeypatch.setitem(app.config, "ALLOW_PRIVATE_WEBHOOK_URLS", False)
    with pytest.raises(ValidationError) as exc:
        webhooks.validate_webhook_url(url)
    assert exc.value.code == "invalid_webhook_url"


def test_public_urls_are_accepted_and_private_ones_allowed_in_development(app, monkeypatch):
    monkeypatch.setitem(app.config, "ALLOW_PRIVATE_WEBHOOK_URLS", False)
    assert webhooks.validate_webhook_url("https://93.184.216.34/hooks") == "https://93.184.216.34/hooks"
    assert webhooks.validate_webhook_url("https://shop.example/hooks", resolve=False)
    monkeypatch.setitem(app.config, "ALLOW_PRIVATE_WEBHOOK_URLS", True)
    assert webhooks.validate_webhook_url("http://127.0.0.1:8000/h")
    with pytest.raises(ValidationError):
        webhooks.validate_webhook_url("file:///etc/passwd")


def test_a_private_url_is_refused_again_at_delivery(app, factories, hooked, receiver, run_jobs, monkeypatch):
    merchant, _ = hooked  # saved while private URLs were allowed
    monkeypatch.setitem(app.config, "ALLOW_PRIVATE_WEBHOOK_URLS", False)
    payment = factories.payment(merchant)
    cancel_payment(payment, source="api")
    run_jobs()
    [event] = events_of(payment)
    assert receiver.requests == []
    assert "private network" in event.attempts_log.one().error


def test_webhook_endpoint_api(app, factories, http, monkeypatch):
    merchant, key = factories.merchant()
    auth = {"Authorization": f"Bearer {key}"}
    monkeypatch.setitem(app.config, "ALLOW_PRIVATE_WEBHOOK_URLS", False)
    r = http.put("/api/v1/webhook_endpoint", json={"url": "http://169.254.169.254/"}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_webhook_url"
    assert reload(merchant).webhook_url is None
    r = http.put("/api/v1/webhook_endpoint", json={"url": "https://93.184.216.34/hooks"}, headers=auth)
    assert r.status_code == 200 and r.json()["url"] == "https://93.184.216.34/hooks"
    r = http.post("/api/v1/webhook_endpoint/rotate_secret", headers=auth)
    assert r.status_code == 200 and r.json()["secret"] == reload(merchant).webhook_secret


@given(secret=st.text(min_size=1, max_size=40), body=st.binary(max_size=200),
       t=st.integers(min_value=1_600_000_000, max_value=2_000_000_000), flip=st.integers(min_value=0))
def test_signatures_verify_and_tampering_fails(secret, body, t, flip):
    header = merchant_side.signature_header([secret], t, body)
    assert merchant_side.verify(body, header, secret, now=t + 299)
    assert not merchant_side.verify(body, header, secret, now=t + 301)
    assert not merchant_side.verify(body, header, secret + "x", now=t)
    tampered = bytearray(body + b"!")
    tampered[flip % len(tampered)] ^= 1
    assert not merchant_side.verify(bytes(tampered), header, secret, now=t)
    assert not merchant_side.verify(body, header.replace(f"t={t}", f"t={t + 1}"), secret, now=t)
    with pytest.raises(merchant_side.SignatureVerificationError):
        merchant_side.construct_event(body, "t=1,v1=00", secret)


@given(header=st.text(max_size=100))
def test_malformed_signature_headers_never_raise(header):
    assert merchant_side.verify(b"{}", header, "whsec_x") is False



def test_a_slow_endpoint_is_moved_to_the_slow_lane_and_does_not_hold_up_others(app, factories, receiver,
                                                                              run_jobs, monkeypatch):
    from rq import SimpleWorker

    from app.extensions import get_queue, get_redis

    monkeypatch.setitem(app.config, "WEBHOOK_TIMEOUT_SECONDS", 0.3)
    slow, _ = factories.merchant(webhook_url=receiver.url + "?slow")
    healthy, _ = factories.merchant(webhook_url=receiver.url + "?healthy")
    receiver.responses = [-0.6]  # the slow merchant's first delivery times out
    cancel_payment(factories.payment(slow), source="api")
    run_jobs(rounds=1)
    assert reload(slow.first_webhook_endpoint).slow_until > utcnow()
    assert reload(healthy.first_webhook_endpoint).slow_until is None

    cancel_payment(factories.payment(slow), source="api")
    cancel_payment(factories.payment(healthy), source="api")
    SimpleWorker([get_queue("webhooks")], connection=get_redis()).work(burst=True)  # the fast lane only
    paths = [r["path"] for r in receiver.requests]
    assert paths == ["/hooks?slow", "/hooks?healthy"]  # the slow endpoint's new event waits in its lane
    assert get_queue("webhooks_slow").count == 1
    run_jobs()  # the slow lane when nothing else waits
    assert [r["path"] for r in receiver.requests][2:] == ["/hooks?slow"]
    assert reload(slow.first_webhook_endpoint).slow_until is None  # a quick success clears the flag


@pytest.fixture
def tls_receiver(tmp_path):
    """An HTTPS loopback receiver whose self-signed certificate names shop.test: (port, CA bundle path)."""
    import datetime
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("shop.test")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(f"host={self.headers['Host']}".encode())

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port, str(cert_path)
    server.shutdown()
    server.server_close()


def test_https_delivery_to_the_pinned_address_verifies_the_certificate_for_the_url_host(app, tls_receiver,
                                                                                        monkeypatch):
    import certifi
    import urllib3

    port, bundle = tls_receiver
    monkeypatch.setattr(certifi, "where", lambda: bundle)  # trust the receiver's own certificate
    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: real_getaddrinfo(
        "127.0.0.1" if host in ("shop.test", "other.test") else host, *a, **k))
    status, body = webhooks.post_pinned(f"https://shop.test:{port}/hooks", b"{}", {}, 5)
    assert (status, body) == (200, f"host=shop.test:{port}".encode())  # SNI and Host name the URL's host
    with pytest.raises(urllib3.exceptions.SSLError, match="not valid for 'other.test'"):
        webhooks.post_pinned(f"https://other.test:{port}/hooks", b"{}", {}, 5)
