"""The API's contract: the OpenAPI 3.1 document app/api/openapi.yaml, loaded once and served as JSON at
GET /api/v1/openapi.json (no API key, cacheable with an ETag). /docs/api renders the same document."""

import hashlib
import json
import os
from functools import cache

import yaml
from flask import current_app, request

from app.api import bp

PATH = os.path.join(os.path.dirname(__file__), "openapi.yaml")


@cache
def document():
    """The document as a dict (the YAML parsed once per process). Treat it as read-only."""
    with open(PATH, encoding="utf-8") as f:
        return yaml.safe_load(f)


@cache
def _as_json():
    body = json.dumps(document(), ensure_ascii=False, separators=(",", ":"))
    return body, hashlib.sha256(body.encode()).hexdigest()[:32]


@bp.get("/openapi.json")
def openapi_json():
    body, etag = _as_json()
    response = current_app.response_class(body, mimetype="application/json")
    response.set_etag(etag)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response.make_conditional(request)
