"""Who is signed in, at which merchant, with which role — and the one check every dashboard route makes.

`requires("refunds.create")` on a view: signed in (else the sign-in page), a member of the current merchant,
two-factor set up when the merchant requires it (else only the account pages open), and the role has the
permission in `app.permissions.ROLES` (else 403). `public` marks the few routes open without signing in. A
test walks the URL map: every dashboard route must carry one or the other.
"""

from functools import wraps

from flask import abort, flash, g, redirect, request, session, url_for
from flask_login import current_user
from werkzeug.local import LocalProxy

from app.extensions import login_manager
from app.permissions import PERMISSIONS, can


def _membership():
    if "membership" not in g:
        g.membership = None
        if current_user.is_authenticated and current_user.memberships:
            chosen = session.get("merchant")
            g.membership = next((m for m in current_user.memberships if m.merchant.public_id == chosen),
                                current_user.memberships[0])
    return g.membership


#: The signed-in user's membership at the merchant being viewed (None when signed out or a member of none).
current_membership = LocalProxy(_membership)
#: The merchant being viewed; every dashboard query starts from it.
current_merchant = LocalProxy(lambda: _membership().merchant)


def current_can(permission):
    """Whether the signed-in member may do `permission` at the current merchant (templates: `can(...)`)."""
    membership = _membership()
    return membership is not None and can(membership.role, permission)


def needs_two_factor_setup():
    membership = _membership()
    return bool(membership and membership.merchant.require_two_factor and not current_user.two_factor_enabled)


def requires(permission):
    """Decorate a dashboard view: it runs only for a member whose role has `permission`."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")

    def decorate(view):
        @wraps(view)
        def checked(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if _membership() is None:
                abort(403, description="You are not a member of any merchant any more.")
            if permission != "account" and needs_two_factor_setup():
                flash("This merchant requires two-factor sign-in: set it up to continue.", "error")
                return redirect(url_for("dashboard.security"))
            if not current_can(permission):
                abort(403, description="Your role does not allow this.")
            return view(*args, **kwargs)

        checked.permission = permission
        return checked

    return decorate


def public(view):
    """Mark a dashboard view as open without signing in (the sign-in steps, accepting an invitation)."""
    view.permission = None
    return view


def dashboard_actor():
    """The audit log's Actor for the signed-in user of this request."""
    from app.services.audit import Actor

    return Actor.for_user(current_user, request.remote_addr, request.user_agent.string)
