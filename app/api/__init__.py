"""Merchants' JSON API under /api/v1, authenticated with a bearer API key. CSRF does not apply (no cookies)."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from app.api import events, openapi, payments, refunds, webhook_endpoints  # noqa: E402,F401  (routes register on bp)
