"""The merchant API for payments: create, retrieve, list, and every way a request can be wrong.

Status codes (documented in app/services/errors.py and the README): 401 for a missing, unknown or revoked key;
400 for a body that is not a JSON object, a missing field, a wrong JSON type or a bad query parameter; 422 for
a well-formed value that is refused; 404 for a payment that is not yours. Errors are always
{"error": {"code", "message", "field"?}} and never a 500.
"""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import ApiKey, Payment, PaymentEvent, utcnow
from tests.openapi_contract import outside_contract

VALID = {"amount": 150_000, "currency": "VND", "reference": "ORDER-1", "return_url": "https://shop.example/r"}


@pytest.fixture
def merchant(factories):
    return factories.merchant(name="Toko Kopi")


@pytest.fixture
def api(client, merchant):
    _, key = merchant

    class Api:
        headers = {"Authorization": f"Bearer {key}"}

        def post(self, body=None, *, data=None, headers=None, content_type="application/json"):
            return client.post("/api/v1/payments", json=body, data=data, content_type=content_type,
                               headers={**self.headers, **(headers or {})})

        def get(self, path, **kwargs):
            return client.get(f"/api/v1{path}", headers=self.headers, **kwargs)

    return Api()


def payment_count():
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Payment))


def assert_error(response, status, code, field=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    error = response.get_json()["error"]
    assert set(error) <= {"code", "message", "field"}
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert error.get("field") == field
    return error


# --- create ----------------------------------------------------------------------------------------------


def test_create_returns_the_payment_with_its_checkout_url(api, app):
    items = [
        {"name": "Kopi luwak", "quantity": 2, "unit_amount": 80_000},
        {"name": "Member discount", "quantity": 1, "unit_amount": -20_000, "type": "discount"},
        {"name": "Shipping", "quantity": 1, "unit_amount": 10_000, "type": "shipping"},
    ]
    r = api.post({**VALID, "items": items, "metadata": {"cart": "c-1", "n": 3, "gift": True},
                  "customer": {"name": "Ana", "email": "ana@example.test"}, "expires_in": 3600})
    assert r.status_code == 201, r.get_data(as_text=True)
    body = r.get_json()
    assert body["id"].startswith("pay_")
    assert body["status"] == "pending"
    assert (body["amount"], body["currency"], body["reference"]) == (150_000, "VND", "ORDER-1")
    assert body["checkout_url"].startswith(app.config["PUBLIC_BASE_URL"] + "/pay/")
    assert [i["type"] for i in body["items"]] == ["item", "discount", "shipping"]
    assert body["metadata"] == {"cart": "c-1", "n": 3, "gift": True}
    payment = db.session.scalar(select(Payment).where(Payment.public_id == body["id"]))
    assert payment.expires_at - payment.created_at == timedelta(seconds=3600)
    events = payment.events.all()
    assert [(e.kind, e.to_status) for e in events] == [("note", "pending")]
    assert "Idempotent-Replayed" not in r.headers


def test_currency_is_normalised_and_json_content_type_is_not_required(api):
    r = api.post(data='{"amount": 1000, "currency": "usd", "reference": "X", "return_url": "https://s.example"}',
                 content_type="text/plain")
    assert r.status_code == 201
    assert r.get_json()["currency"] == "USD"


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer"},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer sk_not_a_real_key"},
    {"Authorization": "Bearer pk_wrong_prefix"},
])
def test_missing_or_invalid_key_is_401(client, headers):
    r = client.post("/api/v1/payments", json=VALID, headers=headers)
    assert_error(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert_error(client.get("/api/v1/payments", headers=headers), 401, "unauthorized")
    assert payment_count() == 0


def test_revoked_key_is_401(api, client, merchant):
    m, key = merchant
    assert api.get("/payments").status_code == 200
    api_key = db.session.scalar(select(ApiKey).where(ApiKey.merchant_id == m.id))
    api_key.revoked_at = utcnow()
    db.session.commit()
    assert_error(api.post(VALID), 401, "unauthorized")
    assert_error(api.get("/payments"), 401, "unauthorized")
    assert payment_count() == 0


@pytest.mark.parametrize("raw", ['{"amount": 1', "not json", "", "[]", "null", "42", '"text"', "[" * 5000,
                                 b'{"amount": "\xff"}'])
def test_a_body_that_is_not_a_json_object_is_400(api, raw):
    assert_error(api.post(data=raw), 400, "invalid_json")
    assert payment_count() == 0


def test_a_body_larger_than_a_megabyte_is_413(api):
    r = api.post(data='{"reference": "' + "x" * (1024 * 1024) + '"}')
    assert_error(r, 413, "http_error")


@pytest.mark.parametrize("change, code, field", [
    ({"amount": None}, "missing_field", "amount"),
    ({"currency": None}, "missing_field", "currency"),
    ({"reference": None}, "missing_field", "reference"),
    ({"reference": "   "}, "missing_field", "reference"),
    ({"return_url": None}, "missing_field", "return_url"),
    ({"amount": "150000"}, "invalid_type", "amount"),
    ({"amount": 1500.0}, "invalid_type", "amount"),
    ({"amount": 1500.5}, "invalid_type", "amount"),
    ({"amount": True}, "invalid_type", "amount"),
    ({"amount": [1]}, "invalid_type", "amount"),
    ({"currency": 704}, "invalid_type", "currency"),
    ({"reference": 1001}, "invalid_type", "reference"),
    ({"description": ["a"]}, "invalid_type", "description"),
    ({"return_url": {"url": "https://x"}}, "invalid_type", "return_url"),
    ({"expires_in": "3600"}, "invalid_type", "expires_in"),
    ({"expires_in": 3600.0}, "invalid_type", "expires_in"),
    ({"items": {"name": "x"}}, "invalid_type", "items"),
    ({"items": ["shirt"]}, "invalid_type", "items[0]"),
    ({"items": [{"name": "Shirt", "unit_amount": "150000"}]}, "invalid_type", "items[0].unit_amount"),
    ({"items": [{"name": "Shirt", "unit_amount": 75_000, "quantity": 2.0}]}, "invalid_type", "items[0].quantity"),
    ({"items": [{"name": "Shirt"}]}, "missing_field", "items[0].unit_amount"),
    ({"items": [{"unit_amount": 150_000}]}, "missing_field", "items[0].name"),
    ({"customer": "Ana"}, "invalid_type", "customer"),
    ({"customer": {"email": 5}}, "invalid_type", "customer.email"),
    ({"metadata": ["a"]}, "invalid_type", "metadata"),
    ({"metadata": {"price": 1.5}}, "invalid_type", "metadata.price"),
    ({"metadata": {"nested": {"a": 1}}}, "invalid_type", "metadata.nested"),
])
def test_missing_fields_and_wrong_types_are_400(api, change, code, field):
    body = {k: v for k, v in {**VALID, **change}.items() if v is not None}
    assert_error(api.post(body), 400, code, field)
    assert payment_count() == 0


ITEMS_OK = [{"name": "Shirt", "quantity": 1, "unit_amount": 150_000}]


@pytest.mark.parametrize("change, code, field", [
    ({"currency": "EURO"}, "invalid_currency", "currency"),
    ({"currency": "JPY"}, "invalid_currency", "currency"),
    ({"currency": ""}, "invalid_currency", "currency"),
    ({"amount": 0}, "invalid_amount", "amount"),
    ({"amount": -100}, "invalid_amount", "amount"),
    ({"amount": 10**16}, "invalid_amount", "amount"),
    ({"amount": 10**40}, "invalid_amount", "amount"),
    ({"return_url": "javascript:alert(1)"}, "invalid_url", "return_url"),
    ({"return_url": "shop.example/return"}, "invalid_url", "return_url"),
    ({"return_url": "ftp://shop.example/return"}, "invalid_url", "return_url"),
    ({"cancel_url": "https://exa mple.com"}, "invalid_url", "cancel_url"),
    ({"return_url": "https://shop.example/" + "a" * 2000}, "validation_error", "return_url"),
    ({"reference": "R" * 101}, "validation_error", "reference"),
    ({"expires_in": 0}, "invalid_expires_in", "expires_in"),
    ({"expires_in": -60}, "invalid_expires_in", "expires_in"),
    ({"expires_in": 7 * 24 * 3600 + 1}, "invalid_expires_in", "expires_in"),
    ({"items": [{"name": "Shirt", "quantity": 1, "unit_amount": 100_000}]}, "items_mismatch", "items"),
    ({"items": [{"name": "Shirt", "quantity": 1, "unit_amount": 160_000},
                {"name": "Sale", "quantity": 1, "unit_amount": -20_000, "type": "discount"}]},
     "items_mismatch", "items"),
    ({"items": [{"name": "Shirt", "quantity": 1, "unit_amount": 150_000},
                {"name": "Shipping", "quantity": 1, "unit_amount": 15_000, "type": "shipping"}]},
     "items_mismatch", "items"),
    ({"items": [{"name": "Shirt", "quantity": 1, "unit_amount": 170_000},
                {"name": "Sale", "quantity": 1, "unit_amount": 20_000, "type": "discount"}]},
     "validation_error", "items[1].unit_amount"),
    ({"items": [{"name": "Shirt", "quantity": 1, "unit_amount": 160_000},
                {"name": "Shipping", "quantity": 1, "unit_amount": -10_000, "type": "shipping"}]},
     "validation_error", "items[1].unit_amount"),
    ({"items": [{"name": "Shirt", "quantity": 0, "unit_amount": 150_000}]}, "validation_error", "items[0].quantity"),
    ({"items": [{**ITEMS_OK[0], "type": "gift"}]}, "validation_error", "items[0].type"),
    ({"metadata": {f"k{i}": "v" for i in range(51)}}, "validation_error", "metadata"),
    ({"metadata": {"k": "v" * 501}}, "validation_error", "metadata.k"),
])
def test_refused_values_are_422(api, change, code, field):
    assert_error(api.post({**VALID, **change}), 422, code, field)
    assert payment_count() == 0


def test_items_with_discount_and_shipping_that_sum_to_the_amount_are_accepted(api):
    items = [
        {"name": "Shirt", "quantity": 2, "unit_amount": 70_000},
        {"name": "Sale", "quantity": 1, "unit_amount": -5_000, "type": "discount"},
        {"name": "Shipping", "quantity": 1, "unit_amount": 15_000, "type": "shipping"},
    ]
    r = api.post({**VALID, "items": items, "expires_in": None, "customer": None, "metadata": None})
    assert r.status_code == 201, r.get_data(as_text=True)
    assert r.get_json()["customer"] == {}


def test_nul_characters_are_refused_before_they_reach_the_database(api):
    assert_error(api.post({**VALID, "reference": "A\u0000B"}), 400, "invalid_request")
    assert_error(api.post({**VALID, "metadata": {"k": "\u0000"}}), 400, "invalid_request")
    assert_error(api.get("/payments?reference=a%00b"), 400, "invalid_request")
    assert_error(api.get("/payments/pay_%00"), 400, "invalid_request")
    assert payment_count() == 0


# --- retrieve ----------------------------------------------------------------------------------------------


def test_get_returns_own_payment(api):
    created = api.post(VALID).get_json()
    r = api.get(f"/payments/{created['id']}")
    assert r.status_code == 200
    assert r.get_json() == created


def test_unknown_and_other_merchants_payments_are_404_never_403(api, factories):
    other, _ = factories.merchant(name="Other shop")
    theirs = factories.payment(other)
    for public_id in (theirs.public_id, "pay_doesnotexist", "x" * 300):
        r = api.get(f"/payments/{public_id}")
        assert_error(r, 404, "not_found")
    assert api.get("/payments").get_json()["data"] == []
    r = api.get(f"/payments?starting_after={theirs.public_id}")
    assert_error(r, 400, "invalid_request", "starting_after")


def test_unknown_api_route_and_method_are_json(api, client):
    with outside_contract():  # neither is in the OpenAPI document: there is no such operation
        assert_error(api.get("/nothing-here"), 404, "not_found")
        r = client.delete("/api/v1/payments", headers=api.headers)
    assert_error(r, 405, "method_not_allowed")


# --- list --------------------------------------------------------------------------------------------------


def test_list_is_newest_first_with_keyset_pagination_and_filters(api, factories, merchant):
    m, _ = merchant
    ids = [api.post({**VALID, "reference": f"R{i % 2}"}).get_json()["id"] for i in range(5)]
    # Give two of them the same created_at: the id breaks the tie, so no page skips or repeats a row.
    same = utcnow()
    for payment in db.session.scalars(select(Payment).where(Payment.public_id.in_(ids[1:3]))):
        payment.created_at = same - timedelta(seconds=10)
    db.session.commit()
    truth = [p.public_id for p in db.session.scalars(
        select(Payment).where(Payment.merchant_id == m.id).order_by(Payment.created_at.desc(), Payment.id.desc()))]
    seen, after = [], None
    while True:
        r = api.get("/payments", query_string={"limit": 2, **({"starting_after": after} if after else {})})
        assert r.status_code == 200
        page = r.get_json()
        assert page["object"] == "list"
        seen += [p["id"] for p in page["data"]]
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    assert seen == truth
    assert sorted(seen) == sorted(ids)

    r0 = api.get("/payments", query_string={"reference": "R0"}).get_json()
    assert sorted(p["id"] for p in r0["data"]) == sorted(ids[0::2])
    assert api.get("/payments", query_string={"status": "succeeded"}).get_json()["data"] == []
    assert len(api.get("/payments", query_string={"status": "pending"}).get_json()["data"]) == 5


@pytest.mark.parametrize("query, field", [
    ({"status": "paid"}, "status"),
    ({"status": "PENDING"}, "status"),
    ({"limit": "abc"}, "limit"),
    ({"limit": "0"}, "limit"),
    ({"limit": "101"}, "limit"),
    ({"limit": "-1"}, "limit"),
    ({"limit": "2.5"}, "limit"),
    ({"starting_after": "pay_nope"}, "starting_after"),
])
def test_bad_list_parameters_are_400(api, query, field):
    assert_error(api.get("/payments", query_string=query), 400, "invalid_request", field)


def test_every_event_of_a_created_payment_is_for_that_payment(api):
    created = api.post(VALID).get_json()
    payment = db.session.scalar(select(Payment).where(Payment.public_id == created["id"]))
    assert db.session.scalar(select(func.count()).select_from(PaymentEvent)) == 1
    assert payment.events.one().payment_id == payment.id
