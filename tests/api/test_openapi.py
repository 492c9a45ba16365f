"""The OpenAPI document (app/api/openapi.yaml) is a valid OpenAPI 3.1 document, describes exactly the routes
the API has, is served at /api/v1/openapi.json without a key, and the suite's contract check
(tests/openapi_contract.py) really refuses answers the document does not describe."""

import json
import re

import pytest
from openapi_spec_validator import validate
from werkzeug.wrappers import Response

from app.api.openapi import document
from tests import openapi_contract


def test_the_document_is_valid_openapi_3_1():
    spec = document()
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_every_api_route_is_documented_and_every_documented_operation_exists(app):
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            path = re.sub(r"<(?:\w+:)?(\w+)>", "{}", rule.rule)
            routes |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(re.sub(r"\{\w+\}", "{}", path), method)
                  for path, item in document()["paths"].items() for method in item if method != "parameters"}
    assert routes == documented


def test_every_error_code_the_responses_allow_is_in_the_table_of_codes():
    spec = json.dumps(document()["components"]["responses"])
    table = {(e["status"], e["code"]) for e in document()["x-error-codes"]}
    assert {code for _, code in table} >= set(re.findall(r'"(?:const|enum)": \[?"([a-z_]+)"', spec))


def test_the_document_is_served_as_json_without_a_key_and_cacheable(client):
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.get_json() == document()
    assert r.headers["Cache-Control"] == "public, max-age=300"
    again = client.get("/api/v1/openapi.json", headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    # every other API answer stays uncacheable
    assert client.get("/api/v1/payments").headers["Cache-Control"] == "no-store"


def _answer(path, status, body, method="GET", headers=None):
    response = Response(json.dumps(body), status=status, mimetype="application/json", headers=headers or {})
    response.request = type("Sent", (), {"environ": {"PATH_INFO": path, "REQUEST_METHOD": method,
                                                      "QUERY_STRING": ""}})()
    return response


NOT_FOUND = {"error": {"code": "not_found", "message": "no payment pay_x"}}


def test_the_contract_check_accepts_a_documented_answer():
    openapi_contract.check_werkzeug(_answer("/api/v1/payments/pay_x", 404, NOT_FOUND))


@pytest.mark.parametrize("answer, why", [
    (_answer("/api/v1/payments/pay_x", 418, NOT_FOUND), "an undocumented status"),
    (_answer("/api/v1/nowhere", 404, NOT_FOUND), "an undocumented path"),
    (_answer("/api/v1/payments", 404, NOT_FOUND, method="DELETE"), "an undocumented method"),
    (_answer("/api/v1/payments/pay_x", 404, {"error": {"code": "gone", "message": "x"}}), "an unlisted code"),
    (_answer("/api/v1/payments/pay_x", 200, {"id": "pay_x", "object": "payment"}), "a body missing fields"),
    (_answer("/api/v1/payments", 401, {"error": {"code": "unauthorized", "message": "x"}}),
     "a 401 without WWW-Authenticate"),
])
def test_the_contract_check_refuses_what_the_document_does_not_describe(answer, why):
    with pytest.raises(AssertionError, match="does not match app/api/openapi.yaml"):
        openapi_contract.check_werkzeug(answer)


def test_outside_contract_skips_the_check_only_inside():
    with openapi_contract.outside_contract():
        openapi_contract.check_werkzeug(_answer("/api/v1/nowhere", 404, NOT_FOUND))
    with pytest.raises(AssertionError):
        openapi_contract.check_werkzeug(_answer("/api/v1/nowhere", 404, NOT_FOUND))
