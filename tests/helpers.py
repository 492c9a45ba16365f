"""Small helpers for tests."""

import re

from app.extensions import db


def reload(obj):
    """End the test thread's transaction and re-read `obj`, to see what the server committed since."""
    db.session.rollback()
    db.session.refresh(obj)
    return obj


def csrf_token(html):
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)
