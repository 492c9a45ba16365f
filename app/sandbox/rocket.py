"""Rocket's sandbox: the SSLCommerz simulator mounted at /sandbox/rocket (where `rocket` points in sandbox
mode), sharing its transactions — Rocket payments are SSLCommerz transactions on the DBBL channel."""

from app.sandbox.sslcommerz import SANDBOX_CREDENTIALS as SSLCOMMERZ_CREDENTIALS
from app.sandbox.sslcommerz import error_envelope, make_blueprint  # noqa: F401 (the same service's errors)

#: The merchant's SSLCommerz store, on its own `rocket` gateway account.
SANDBOX_CREDENTIALS = dict(SSLCOMMERZ_CREDENTIALS)

bp = make_blueprint("rocket")
