"""Gateways' callbacks: /callbacks/<gateway>/<kind> (IPN, webhooks, browser returns). No login, no CSRF."""

from flask import Blueprint

bp = Blueprint("callbacks", __name__, url_prefix="/callbacks")

from app.callbacks import routes  # noqa: E402,F401
