"""The OpenAPI document (app/api/openapi.yaml) as the contract of every API answer the test suite sees.

tests/conftest.py's Flask test client and live-server session call `check_werkzeug` / `check_requests` for
every request whose path starts with /api/v1/: an answer whose status code, content type, body or headers
the document does not describe — or a path or method it does not list — fails the test. The document and
its validator are built once per test session. A test that probes what is deliberately outside the
contract (an unknown route, a method no operation has) wraps those requests in `outside_contract()`.
"""

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import parse_qsl, urlsplit

from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIResponse
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIResponse
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from app.api.openapi import document

PREFIX = "/api/v1/"

_state = threading.local()
#: Mismatches seen on threads other than the test's own (raised there, they could be lost); the autouse
#: fixture in tests/conftest.py fails the test with them.
stray_mismatches = []


@cache
def _openapi():
    return OpenAPI.from_dict(document())


@contextmanager
def outside_contract():
    """Let the requests made inside skip the contract check (for tests of routes the API does not have)."""
    _state.skip = True
    try:
        yield
    finally:
        _state.skip = False


@dataclass
class _Request:
    """What openapi-core needs of the request to find its operation (the request itself is not validated:
    the suite sends wrong requests on purpose; what the API answers to them must still be documented)."""

    path: str
    method: str
    query: str
    headers: dict
    host_url: str = "http://127.0.0.1"
    body: bytes = b""
    content_type: str = "application/json"
    parameters: RequestParameters = field(init=False)

    def __post_init__(self):
        self.method = self.method.lower()
        self.parameters = RequestParameters(query=ImmutableMultiDict(parse_qsl(self.query)),
                                            header=Headers(self.headers), cookie=ImmutableMultiDict())


def _check(path, method, status, make_request, make_response):
    if not path.startswith(PREFIX) or getattr(_state, "skip", False):
        return
    try:
        _openapi().validate_response(make_request(), make_response())
    except Exception as exc:  # every kind of mismatch: unknown path or status, wrong schema, header, type
        message = f"{method} {path} → {status} does not match app/api/openapi.yaml: {_describe(exc)}"
        if threading.current_thread() is threading.main_thread():
            raise AssertionError(message) from exc
        stray_mismatches.append(message)


def _describe(exc):
    """The error and, for a body that does not match its schema, where and why."""
    reasons, cause = [str(exc)], exc.__cause__ or exc.__context__
    while cause is not None:
        reasons += [f"at {list(e.absolute_path)}: {e.message}" for e in getattr(cause, "schema_errors", ()) or ()]
        cause = cause.__cause__ or cause.__context__
    return " / ".join(reasons)


def check_werkzeug(response):
    """Check a Flask test client's answer (its `.request` is the request that was sent)."""
    environ = response.request.environ
    path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
    _check(path, method, response.status_code,
           lambda: _Request(path, method, environ.get("QUERY_STRING", ""), {}),
           lambda: WerkzeugOpenAPIResponse(response))


def check_requests(response):
    """Check a requests.Response from the live server."""
    url = urlsplit(response.request.url)
    method = response.request.method
    _check(url.path, method, response.status_code, lambda: _Request(url.path, method, url.query, {}),
           lambda: RequestsOpenAPIResponse(response))
