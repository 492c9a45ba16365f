"""The API's error shape: {"error": {"code", "message", "field"?}}."""

from flask import jsonify


def api_error(status, code, message, field=None):
    body = {"code": code, "message": message}
    if field:
        body["field"] = field
    response = jsonify({"error": body})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="paysmith"'
    return response


def from_service_error(exc):
    return api_error(exc.status, exc.code, exc.message, exc.field)
