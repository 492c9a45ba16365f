"""The merchant dashboard: /dashboard (Flask-Login sessions, CSRF on every form).

Routes live in one module per area (auth, account, team, audit, overview, payments, refunds, webhooks and
webhook_endpoints, settings). Every route says what it needs with `access.requires(permission)` (or is `access.public`); every
query starts from `access.current_merchant`, the merchant of the signed-in user's current membership; anything
of another merchant's is answered exactly like something missing (404).
"""

from flask import Blueprint, abort, flash

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")


@bp.after_request
def _no_store(response):
    # Merchant data must not linger in shared caches or the browser's back/forward cache.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.context_processor
def _nav_section():
    """The module of the current view (overview, payments, refunds, …) marks the current nav item."""
    from flask import current_app, request

    view = current_app.view_functions.get(request.endpoint or "")
    return {"nav_section": view.__module__.rsplit(".", 1)[-1] if view else None}


def owned_or_404(model, public_id):
    """`model` row with this public id belonging to the signed-in merchant, else 404."""
    from sqlalchemy import select

    from app.dashboard.access import current_merchant
    from app.extensions import db

    row = db.session.scalar(
        select(model).where(model.public_id == public_id, model.merchant_id == current_merchant.id)
    )
    if row is None:
        abort(404)
    return row


def flash_form_errors(form):
    for name, errors in form.errors.items():
        label = getattr(form, name).label.text if name in form._fields else name
        for error in errors:
            flash(f"{label}: {error}" if name != "csrf_token" else
                  "The form expired or was not sent from this page. Please try again.", "error")


from app.dashboard import (  # noqa: E402,F401
    account,
    audit,
    auth,
    overview,
    payments,
    refunds,
    settings,
    team,
    webhook_endpoints,
    webhooks,
)
