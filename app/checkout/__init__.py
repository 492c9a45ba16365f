"""The hosted checkout for shoppers: /pay/<token>."""

from flask import Blueprint

bp = Blueprint("checkout", __name__, url_prefix="/pay")

from app.checkout import confirm, routes  # noqa: E402,F401
