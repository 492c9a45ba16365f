"""API string fields with a lone surrogate or a NUL (issue 11, part 0): a clear 400 naming the field, nothing
stored, never a DataError 500 on PostgreSQL. And API and checkout answers are never cached."""

import json

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Payment
from tests.gateways.helpers import api_payment


@pytest.fixture
def shop(factories):
    merchant, key = factories.merchant()
    return merchant, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def payment_body(**fields):
    return {"amount": 150_000, "currency": "VND", "reference": "ORD-1", "return_url": "https://shop.example/r",
            "cancel_url": "https://shop.example/c", **fields}


def payments_count():
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Payment))


@pytest.mark.parametrize(("fields", "field"), [
    ({"reference": "ORD-\ud800"}, "reference"),
    ({"reference": "ORD-\x00"}, None),  # NUL: refused before any parsing, as before
    ({"metadata": {"note": "\udfff"}}, "metadata.note"),
    ({"metadata": {"\ud800": "x"}}, "metadata.\\ud800"),
    ({"description": "a \ud83d lone high surrogate"}, "description"),
])
def test_a_payment_with_unstorable_text_is_a_400_and_not_stored(http, shop, fields, field):
    _, headers = shop
    r = http.post("/api/v1/payments", data=json.dumps(payment_body(**fields)), headers=headers)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request" and error.get("field") == field
    assert payments_count() == 0


def test_a_real_emoji_as_an_escaped_surrogate_pair_is_fine(http, shop):
    _, headers = shop
    r = http.post("/api/v1/payments", data=json.dumps(payment_body(description="gift \U0001f381")), headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["description"] == "gift \U0001f381"


def test_a_refund_reason_with_a_lone_surrogate_is_a_400(http, shop):
    _, headers = shop
    key = headers["Authorization"].split()[1]
    payment = api_payment(http, key)
    r = http.post(f"/api/v1/payments/{payment.public_id}/refunds", data=json.dumps({"reason": "oops \ud800"}),
                  headers=headers)
    assert r.status_code == 400 and r.json()["error"]["field"] == "reason", r.text


def test_a_webhook_url_with_a_lone_surrogate_is_a_400_and_not_stored(http, shop):
    merchant, headers = shop
    r = http.put("/api/v1/webhook_endpoint", data=json.dumps({"url": "https://shop.example/\ud800"}),
                 headers=headers)
    assert r.status_code == 400 and r.json()["error"]["field"] == "url", r.text
    db.session.rollback()
    db.session.refresh(merchant)
    assert merchant.webhook_url is None


def test_api_and_checkout_answers_are_never_cached(http, shop):
    _, headers = shop
    key = headers["Authorization"].split()[1]
    payment = api_payment(http, key)
    for response in (http.get(f"/api/v1/payments/{payment.public_id}", headers=headers),
                     http.get("/api/v1/payments/pay_nope", headers=headers),
                     http.get("/api/v1/payments"),  # 401
                     http.get(f"/pay/{payment.checkout_token}"),
                     http.get("/pay/no-such-token")):
        assert response.headers.get("Cache-Control") == "no-store", (response.url, response.status_code)
