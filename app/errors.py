"""Error pages and JSON errors. API and callback requests get JSON by blueprint, everyone else HTML.

No stack trace ever reaches a client: unexpected exceptions are logged and answered with a plain 500.
Requests carrying a NUL character (in the path, the query, a form or a JSON string) or a lone surrogate (in a
JSON string) are refused with a 400 naming the field before any view runs: PostgreSQL cannot store either in
text or JSONB, so they would otherwise fail deep inside a query as a 500, and no payment field ever needs one.
Gateway callbacks are the exception: they are always recorded, with such characters escaped (app.safe_text).
"""

import json
import logging
import re

from flask import render_template, request
from flask.json.provider import DefaultJSONProvider
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.api.errors import api_error
from app.safe_text import unstorable_path

log = logging.getLogger(__name__)

JSON_BLUEPRINTS = {"api", "callbacks"}
TITLES = {400: "Bad request", 401: "Sign in required", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 413: "Request too large", 429: "Too many requests", 500: "Something went wrong"}


def _wants_json():
    return request.blueprint in JSON_BLUEPRINTS or request.path.startswith(("/api/", "/callbacks/"))


def _page(status, message):
    title = TITLES.get(status, "Error")
    template = "errors/404.html" if status == 404 else "errors/error.html"
    return render_template(template, status=status, title=title, message=message), status


_NUL_MARKERS = (b"\x00", b"%00", b"\\u0000")


def _has_nul():
    if "\x00" in request.path:
        return True
    if request.blueprint == "callbacks":
        # A gateway's callback is always recorded: its CallbackRequest escapes NUL (app.safe_text) instead.
        return False
    if b"%00" in request.query_string:
        return True
    if request.content_length == 0 or request.method in ("GET", "HEAD", "OPTIONS"):
        return False
    body = request.get_data(cache=True)  # cached: forms and JSON are still parsed from it later
    return any(marker in body for marker in _NUL_MARKERS)


#: `\u0000` or a `\ud800`–`\udfff` escape in a JSON body (only then is the body parsed here).
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def _unstorable_json_field():
    """For a JSON body with a string PostgreSQL cannot store (NUL, lone surrogate): (True, its field path)."""
    if request.content_length == 0 or request.method in ("GET", "HEAD", "OPTIONS"):
        return False, None
    body = request.get_data(cache=True)
    if not _UNSTORABLE_ESCAPE.search(body):
        return False, None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return False, None  # not JSON: the view answers that
    path = unstorable_path(data)
    return path is not None, path or None


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, except that absurdly nested input is invalid JSON (a ValueError, so `silent=True`
    parsing returns None) instead of a RecursionError that would end as a 500."""

    def loads(self, s, **kwargs):
        try:
            return super().loads(s, **kwargs)
        except RecursionError as exc:
            raise ValueError("JSON nested too deeply") from exc


def register_error_handlers(app):
    app.json = JSONProvider(app)

    @app.before_request
    def refuse_unstorable_text():
        if _has_nul():
            if _wants_json():
                return api_error(400, "invalid_request", "the request contains a NUL character")
            return _page(400, "The request contains characters we cannot accept.")
        if request.blueprint == "callbacks":
            return None  # recorded with the characters escaped (CallbackRequest)
        found, field = _unstorable_json_field()
        if found:
            if _wants_json():
                return api_error(400, "invalid_request", "the request contains text that is not valid Unicode "
                                 "(a lone surrogate) or a NUL character" + (f" in {field}" if field else ""), field)
            return _page(400, "The request contains characters we cannot accept.")
        return None

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        if _wants_json():
            return api_error(400, "csrf_failed", "missing or invalid CSRF token")
        return _page(400, "The form expired or was not sent from this site. Go back, reload and try again.")

    @app.errorhandler(HTTPException)
    def http_error(exc):
        if exc.response is not None:
            return exc.response  # a page made for this refusal (the sign-in lockout: when to try again)
        if _wants_json():
            code = {404: "not_found", 405: "method_not_allowed", 429: "rate_limited"}.get(exc.code, "http_error")
            return api_error(exc.code, code, exc.description or TITLES.get(exc.code, "error"))
        return _page(exc.code, exc.description)

    @app.errorhandler(Exception)
    def unexpected(exc):
        log.exception("unhandled error on %s %s", request.method, request.path)
        from app.extensions import db

        db.session.rollback()
        if _wants_json():
            return api_error(500, "internal_error", "something went wrong on our side; it was logged")
        return _page(500, "Something went wrong on our side. It was logged; please try again.")
