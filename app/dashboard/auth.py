"""Signing in: the password step, then the two-factor step for users who have it (each rate-limited per
address and per account), signing out, and switching between the merchants a user belongs to.

A session is a server-side record (app.models.UserSession) whose token sits in the signed session cookie;
the user loader refuses a cookie whose session has ended.
"""

import time

from flask import flash, make_response, redirect, render_template, request, session, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user, logout_user

from app.dashboard import bp, flash_form_errors
from app.dashboard.access import public, requires
from app.dashboard.forms import ActionForm, LoginForm, TwoFactorForm
from app.extensions import limiter
from app.services import accounts

#: Failed sign-ins allowed per account (whatever the address) and per address (whatever the account); the
#: two-factor step has the same limits, counted separately.
ACCOUNT_LIMIT = "5 per 15 minutes"
ADDRESS_LIMIT = "20 per 15 minutes"
#: How long the password step stays good for the two-factor step.
PENDING_SECONDS = 300


def _safe_next(target):
    return target if target and target.startswith("/") and not target.startswith(("//", "/\\")) else None


def _account_key():
    return "login-account:" + (request.form.get("email") or "").strip().lower()[:254]


def _pending_key():
    return "login-2fa:" + str((session.get("pending_2fa") or {}).get("user", ""))


def _failed(response):
    return response.status_code == 401


def _locked_out(limit):
    """The sign-in page again, saying in words when to try again (not the limit's "5 per 15 minute")."""
    from app.i18n import duration_words

    # reset_at is a whole second rounded up: never say more than the limit's own window.
    wait = max(1, min(limit.reset_at - int(time.time()), limit.limit.get_expiry()))
    flash(f"Too many attempts. Try again in {duration_words(wait)}.", "error")
    response = make_response(render_template("dashboard/login.html", form=LoginForm(formdata=None)), 429)
    response.headers["Retry-After"] = str(wait)
    return response


def _limited(scope, account_key):
    """Rate-limit a sign-in step: failed POSTs (401) per address and per account (`account_key`)."""

    def decorate(view):
        view = limiter.limit(ACCOUNT_LIMIT, key_func=account_key, methods=["POST"], deduct_when=_failed,
                             scope=f"{scope}-account", on_breach=_locked_out)(view)
        return limiter.limit(ADDRESS_LIMIT, key_func=get_remote_address, methods=["POST"], deduct_when=_failed,
                             scope=f"{scope}-address", on_breach=_locked_out)(view)

    return decorate


def _ua():
    return request.user_agent.string


def sign_in_session(user, token):
    """Bind this browser to a fresh server-side session of `user` (token from accounts.start_session)."""
    session.pop("pending_2fa", None)
    session["sid"] = token
    login_user(getattr(user, "_get_current_object", lambda: user)())  # the user, never the current_user proxy


def _complete(user):
    token = accounts.start_session(user, request.remote_addr, _ua())
    sign_in_session(user, token)
    if user.memberships and session.get("merchant") not in {m.merchant.public_id for m in user.memberships}:
        session["merchant"] = user.memberships[0].merchant.public_id
    accounts.record_sign_in(user, request.remote_addr, _ua())  # commits the session record with it
    flash(f"Signed in as {user.email}.", "success")
    return redirect(_safe_next(request.args.get("next")) or url_for("dashboard.overview"))


@bp.route("/login", methods=["GET", "POST"])
@_limited("login", _account_key)
@public
def login():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.overview"))
    form = LoginForm()
    if form.validate_on_submit():
        user = accounts.check_sign_in(form.email.data, form.password.data)
        if user is not None and user.two_factor_enabled:
            session["pending_2fa"] = {"user": user.public_id, "at": int(time.time())}
            return redirect(url_for("dashboard.login_two_factor", next=_safe_next(request.args.get("next"))))
        if user is not None:
            return _complete(user)
        accounts.record_sign_in(None, request.remote_addr, _ua(), email=form.email.data)
        flash("Wrong email or password.", "error")
    elif request.method == "POST":
        flash_form_errors(form)
    return render_template("dashboard/login.html", form=form), (401 if request.method == "POST" else 200)


def _pending_user():
    pending = session.get("pending_2fa") or {}
    if not pending or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        return None
    from sqlalchemy import select

    from app.extensions import db
    from app.models import User

    return db.session.scalar(select(User).where(User.public_id == pending.get("user")))


@bp.route("/login/two-factor", methods=["GET", "POST"])
@_limited("login-2fa", _pending_key)
@public
def login_two_factor():
    """The second step: a code from the authenticator app, or one of the recovery codes."""
    user = _pending_user()
    if user is None:
        session.pop("pending_2fa", None)
        flash("Sign in with your password first (the two-factor step lasts five minutes).", "error")
        return redirect(url_for("dashboard.login"))
    form = TwoFactorForm()
    if form.validate_on_submit():
        if accounts.verify_second_factor(user, form.code.data):
            return _complete(user)
        accounts.record_sign_in(None, request.remote_addr, _ua(), email=user.email, step="two_factor")
        flash("That code is not right, or was used already. Try the next code from your app.", "error")
    elif request.method == "POST":
        flash_form_errors(form)
    return (render_template("dashboard/login_two_factor.html", form=form),
            401 if request.method == "POST" else 200)


@bp.post("/logout")
@requires("account")
def logout():
    if ActionForm().validate_on_submit():
        accounts.end_session_by_token(session.get("sid"))
        logout_user()
        session.pop("sid", None)
        flash("Signed out.", "success")
        return redirect(url_for("dashboard.login"))
    flash("The form expired; you are still signed in.", "error")
    return redirect(url_for("dashboard.overview"))


@bp.post("/switch")
@requires("account")
def switch_merchant():
    """Look at another merchant the user is a member of."""
    chosen = request.form.get("merchant")
    if ActionForm().validate_on_submit() and any(m.merchant.public_id == chosen for m in current_user.memberships):
        session["merchant"] = chosen
        name = next(m.merchant.name for m in current_user.memberships if m.merchant.public_id == chosen)
        flash(f"You are now looking at {name}.", "success")
    else:
        flash("You are not a member of that merchant.", "error")
    return redirect(url_for("dashboard.overview"), 303)
