"""Bearer API-key authentication for the JSON API."""

from functools import wraps

from flask import g, request

from app.api.errors import api_error
from app.services.merchants import merchant_for_api_key


def require_api_key(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return api_error(401, "unauthorized", "send your API key as 'Authorization: Bearer sk_…'")
        merchant = merchant_for_api_key(token.strip())
        if merchant is None:
            return api_error(401, "unauthorized", "the API key is not valid or was revoked")
        g.merchant = merchant
        return view(*args, **kwargs)

    return wrapper
