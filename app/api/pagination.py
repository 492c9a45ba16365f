"""Keyset pagination of the API's lists: `limit` (1–100, default 20) and `starting_after` (an id)."""

from flask import request

from app.api.errors import api_error

DEFAULT_LIMIT, MAX_LIMIT = 20, 100


def page_limit():
    """(limit, None), or (None, the 400 answer) for a `limit` that is not an integer from 1 to 100."""
    try:
        limit = int(request.args.get("limit", DEFAULT_LIMIT))
    except ValueError:
        return None, api_error(400, "invalid_request", "limit must be an integer", "limit")
    if not 1 <= limit <= MAX_LIMIT:
        return None, api_error(400, "invalid_request", f"limit must be between 1 and {MAX_LIMIT}", "limit")
    return limit, None


def page(rows, limit, as_dict):
    """The list answer for `rows` fetched with limit + 1 (the extra row only says there is more)."""
    return {"object": "list", "data": [as_dict(r) for r in rows[:limit]], "has_more": len(rows) > limit}
