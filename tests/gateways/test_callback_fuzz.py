"""Every callback route fuzzed over real HTTP (hypothesis): arbitrary query strings, forms and JSON (lone
surrogates, NULs, invalid UTF-8, huge values, non-ASCII signatures), wrong methods and content types.

Whatever arrives: never a 500 (nor VNPay's 99 "Unknow error", nor a logged exception), the raw callback is
recorded on the timeline, and the payment and its open attempt do not move. The requests are built around
a real open attempt at the gateway, so the ids in them often find it and reach the signature checks.
"""

import json
import logging
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.extensions import db
from app.models import PaymentEvent
from tests.gateways.helpers import api_payment, choose_method
from tests.helpers import reload

ROUTES = [
    ("vnpay", "ipn"), ("vnpay", "return"),
    ("midtrans", "notification"), ("midtrans", "finish"),
    ("khalti", "return"), ("bkash", "return"), ("nagad", "return"),
    ("sslcommerz", "ipn"), ("sslcommerz", "success"), ("sslcommerz", "fail"), ("sslcommerz", "cancel"),
    ("rocket", "ipn"), ("rocket", "success"), ("rocket", "fail"), ("rocket", "cancel"),
    ("stripe", "webhook"), ("stripe", "return"), ("stripe", "cancel"),
    ("testcard", "webhook"), ("testcard", "return"),
]
CURRENCY = {"vnpay": "VND", "midtrans": "IDR", "khalti": "NPR", "bkash": "BDT", "nagad": "BDT",
            "sslcommerz": "BDT", "rocket": "BDT", "stripe": "USD", "testcard": "USD"}
#: The fields each gateway's callbacks are read by (ids, amounts, signatures), as fuzzed keys.
FIELDS = {
    "vnpay": ["vnp_TxnRef", "vnp_Amount", "vnp_SecureHash", "vnp_ResponseCode", "vnp_TransactionStatus",
              "vnp_TransactionNo"],
    "midtrans": ["order_id", "status_code", "gross_amount", "signature_key", "transaction_status",
                 "fraud_status", "transaction_id"],
    "khalti": ["pidx", "purchase_order_id", "status", "amount", "transaction_id"],
    "bkash": ["paymentID", "status"],
    "nagad": ["payment_ref_id", "status", "order_id"],
    "sslcommerz": ["tran_id", "val_id", "amount", "currency", "verify_sign", "verify_key", "status"],
    "rocket": ["tran_id", "val_id", "amount", "currency", "verify_sign", "verify_key", "status"],
    "stripe": ["session_id", "attempt_id", "payment_id", "sig", "client_reference_id", "id", "object"],
    "testcard": ["session_id", "reference", "id", "object", "amount", "currency", "status"],
}
SIGNATURE_HEADERS = ["Stripe-Signature", "Testcard-Signature", "X-Signature"]
CONTENT_TYPES = ["application/json", "application/x-www-form-urlencoded", "multipart/form-data",
                 "multipart/form-data; boundary=xyz", "text/plain", "application/octet-stream",
                 "application/json; charset=latin-1", "text/xml", ""]

#: Any text, lone surrogates and NUL included (sent as UTF-8 with "surrogatepass": invalid UTF-8 on the wire).
any_text = st.text(max_size=40) | st.sampled_from(["\ud800", "\x00", "é", "\udfff\x00", "%00", "\\u0000"])
huge_text = st.integers(1_000, 200_000).map(lambda n: "9" * n)
header_text = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=60)


def wire(text):
    return text.encode("utf-8", "surrogatepass")


def encode_pairs(pairs):
    return "&".join(f"{quote_from_bytes(wire(k))}={quote_from_bytes(wire(v))}" for k, v in pairs)


@st.composite
def callback_requests(draw, code, known):
    """(method, query string, headers, body bytes) around the values in `known` (the attempt's ids)."""
    key = st.sampled_from(FIELDS[code]) | any_text
    small = st.sampled_from(known) | any_text
    value = small | huge_text  # huge values in bodies (a huge URL is the HTTP server's 414, not ours)
    json_value = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | value,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(key, inner, max_size=4), max_leaves=12)
    pairs = draw(st.lists(st.tuples(key, small), max_size=6))
    headers = {"Content-Type": draw(st.sampled_from(CONTENT_TYPES))}
    for name in draw(st.lists(st.sampled_from(SIGNATURE_HEADERS), max_size=2, unique=True)):
        # Header values travel as bytes: a non-ASCII signature arrives as UTF-8 read as Latin-1.
        headers[name] = wire(draw(header_text | st.sampled_from(["t=1,v1=é", "é", "t=9999999999,v1=00"]))
                             ).decode("latin-1")
    kind = draw(st.sampled_from(["none", "form", "json", "shaped-json", "bytes"]))
    if kind == "form":
        body = encode_pairs(draw(st.lists(st.tuples(key, value), max_size=6))).encode()
    elif kind == "json":
        body = json.dumps(draw(json_value)).encode()  # ensure_ascii: surrogates and NUL as \\u escapes
    elif kind == "shaped-json":  # a webhook's shape with the real ids, so lookups find the attempt
        obj = draw(st.dictionaries(key, json_value, max_size=4))
        obj.update(id=draw(value), reference=draw(value), client_reference_id=draw(value), object="checkout.session")
        body = json.dumps({"id": draw(value), "type": "checkout.session.completed", "data": {"object": obj},
                           "order_id": draw(value), "signature_key": draw(value),
                           **draw(st.dictionaries(key, json_value, max_size=3))}).encode()
    elif kind == "bytes":
        body = draw(st.binary(max_size=300) | st.sampled_from([b"\x00", b"\xff\xfe", b"[" * 5000, b"{}"]))
    else:
        body = b""
    return draw(st.sampled_from(["GET", "POST"])), encode_pairs(pairs), headers, body


@pytest.fixture
def open_attempt(http, factories):
    def make(code):
        _, key = factories.merchant()
        payment = api_payment(http, key, currency=CURRENCY[code])
        choose_method(http, payment, code)
        reload(payment)
        (attempt,) = payment.attempts
        return payment, attempt

    return make


def callback_count():
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(PaymentEvent).where(PaymentEvent.kind == "callback"))


@pytest.mark.parametrize(("code", "kind"), ROUTES, ids=[f"{c}-{k}" for c, k in ROUTES])
def test_no_callback_input_is_a_500_or_moves_a_payment(http, open_attempt, caplog, code, kind):
    payment, attempt = open_attempt(code)
    before = (payment.status, payment.version, attempt.status, attempt.version)
    known = [v for v in (attempt.public_id, attempt.reference, attempt.transaction_id, payment.public_id,
                         str(attempt.amount), str(attempt.amount * 100), attempt.currency) if v]
    caplog.set_level(logging.WARNING)

    @settings(max_examples=30, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large, HealthCheck.large_base_example])
    @given(callback_requests(code, known))
    def check(request):
        method, query, headers, body = request
        caplog.clear()
        recorded = callback_count()
        r = http.request(method, f"/callbacks/{code}/{kind}" + (f"?{query}" if query else ""), data=body,
                         headers=headers, allow_redirects=False)
        assert r.status_code < 500, (r.status_code, r.text[:300])
        if (code, kind) == ("vnpay", "ipn"):
            assert r.json()["Message"] != "Unknow error", r.text  # VNPay's answer for our internal errors
        assert "Traceback" not in r.text
        failures = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
        assert not failures, [rec.getMessage() for rec in failures]
        if r.status_code != 413:
            assert callback_count() == recorded + 1, "the raw callback was not recorded"
        reload(payment), reload(attempt)
        assert (payment.status, payment.version, attempt.status, attempt.version) == before

    check()
