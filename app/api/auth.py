"""Bearer API-key authentication for the JSON API."""

from functools import wraps

from flask import g, request

from app.api.errors import api_error
from app.services.audit import Actor
from app.services.merchants import api_key_for


def require_api_key(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return api_error(401, "unauthorized", "send your API key as 'Authorization: Bearer sk_…'")
        key = api_key_for(token.strip())
        if key is None:
            return api_error(401, "unauthorized", "the API key is not valid or was revoked")
        g.api_key, g.merchant = key, key.merchant
        return view(*args, **kwargs)

    return wrapper


def api_actor():
    """The audit log's Actor for this request's API key (the key is named, never its value)."""
    return Actor.for_api_key(g.api_key, request.remote_addr, request.user_agent.string)
