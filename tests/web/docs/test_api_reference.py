"""/docs/api: the API reference rendered on the server from the OpenAPI document — every operation with its
parameters, fields, error codes and a curl example; no script, nothing from another host; linked from the
dashboard's API keys section (tests/web/dashboard/test_settings.py)."""

import re
from html import unescape

from app.api.openapi import document
from app.docs.reference import fields


def test_every_operation_of_the_document_is_on_the_page(client, app):
    r = client.get("/docs/api")
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = unescape(r.get_data(as_text=True))
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            article = re.search(rf'<article class="card operation" id="{operation["operationId"]}".*?</article>',
                                html, re.S)
            assert article, operation["operationId"]
            text = article.group(0)
            assert operation["summary"] in text and f"<code>{path}</code>" in text
            assert "curl -s" in text and app.config["PUBLIC_BASE_URL"] + path.split("{")[0] in text
    for entry in document()["x-error-codes"]:
        assert f'id="error-{entry["code"]}"' in html


def test_fields_and_error_codes_of_an_operation_are_shown(client):
    html = unescape(client.get("/docs/api").get_data(as_text=True))
    create = re.search(r'id="createPayment".*?</article>', html, re.S).group(0)
    for name in ("amount", "currency", "reference", "return_url", "items[].unit_amount", "customer.email",
                 "Idempotency-Key", "checkout_url", "attempts[].status"):
        assert f">{name}" in create, name
    assert "Idempotent-Replayed" in create and "422 items_mismatch" in create and "401 unauthorized" in create


def test_nested_fields_come_from_refs_and_all_of():
    rows = {row["name"]: row for row in fields(document()["components"]["schemas"]["Payment"])}
    assert rows["id"]["required"] and rows["attempts"]["type"] == "array of Attempt"
    assert rows["attempts[].status"]["type"].startswith("started | processing")
    assert rows["paid_at"]["type"] == "string (date-time) or null"


def test_the_page_works_offline_and_without_script(client):
    html = client.get("/docs/api").get_data(as_text=True)
    assert "<script" not in html
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)  # nothing from another host

