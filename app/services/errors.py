"""Errors a service raises for the caller to turn into an HTTP answer (API JSON, dashboard flash).

The API's status codes follow one rule: 400 when the request is not shaped right (not a JSON object, a
required field missing, a value of the wrong JSON type, a bad query parameter or header), 422 when it is
well formed but a value is refused (unsupported currency, amount out of range, items not summing to the
amount, a bad URL, expires_in out of range, an idempotency key reused with another body).
"""


class ServiceError(Exception):
    status = 422
    code = "invalid_request"

    def __init__(self, message, *, field=None, code=None, status=None, details=None):
        super().__init__(message)
        self.message = message
        self.field = field
        #: Values a caller may need to word the error its own way (e.g. in the shopper's language).
        self.details = details or {}
        if code:
            self.code = code
        if status:
            self.status = status


class ValidationError(ServiceError):
    status = 422
    code = "validation_error"


class MalformedRequest(ValidationError):
    """The request is not shaped right: a missing field or a value of the wrong JSON type (400)."""

    status = 400
    code = "invalid_type"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"
