"""Errors a service raises for the caller to turn into an HTTP answer (API JSON, dashboard flash)."""


class ServiceError(Exception):
    status = 422
    code = "invalid_request"

    def __init__(self, message, *, field=None, code=None, status=None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code
        if status:
            self.status = status


class ValidationError(ServiceError):
    status = 422
    code = "validation_error"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"
