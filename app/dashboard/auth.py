"""Sign-in (rate-limited per address and per account), sign-out and changing the password."""

import time

from flask import flash, make_response, redirect, render_template, request, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select

from app.dashboard import bp, flash_form_errors
from app.dashboard.forms import ActionForm, ChangePasswordForm, LoginForm
from app.extensions import db, limiter
from app.models import Merchant
from app.services.errors import ServiceError
from app.services.merchants import change_password

#: Failed sign-ins allowed per account (whatever the address) and per address (whatever the account).
ACCOUNT_LIMIT = "5 per 15 minutes"
ADDRESS_LIMIT = "20 per 15 minutes"


def _safe_next(target):
    return target if target and target.startswith("/") and not target.startswith(("//", "/\\")) else None


def _account_key():
    return "login-account:" + (request.form.get("email") or "").strip().lower()[:254]


def _failed(response):
    return response.status_code == 401


def _locked_out(limit):
    """The sign-in page again, saying in words when to try again (not the limit's "5 per 15 minute")."""
    from app.i18n import duration_words

    wait = max(1, limit.reset_at - int(time.time()))
    flash(f"Too many attempts. Try again in {duration_words(wait)}.", "error")
    response = make_response(render_template("dashboard/login.html", form=LoginForm(formdata=None)), 429)
    response.headers["Retry-After"] = str(wait)
    return response


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(ADDRESS_LIMIT, key_func=get_remote_address, methods=["POST"], deduct_when=_failed,
               scope="login-address", on_breach=_locked_out)
@limiter.limit(ACCOUNT_LIMIT, key_func=_account_key, methods=["POST"], deduct_when=_failed,
               scope="login-account", on_breach=_locked_out)
def login():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.overview"))
    form = LoginForm()
    if form.validate_on_submit():
        merchant = db.session.scalar(select(Merchant).where(Merchant.email == form.email.data.strip().lower()))
        if merchant is not None and merchant.check_password(form.password.data):
            login_user(merchant)
            flash(f"Signed in as {merchant.email}.", "success")
            return redirect(_safe_next(request.args.get("next")) or url_for("dashboard.overview"))
        flash("Wrong email or password.", "error")
    elif request.method == "POST":
        flash_form_errors(form)
    return render_template("dashboard/login.html", form=form), (401 if request.method == "POST" else 200)


@bp.post("/logout")
@login_required
def logout():
    if ActionForm().validate_on_submit():
        logout_user()
        flash("Signed out.", "success")
        return redirect(url_for("dashboard.login"))
    flash("The form expired; you are still signed in.", "error")
    return redirect(url_for("dashboard.overview"))


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            change_password(current_user, form.current_password.data, form.new_password.data)
        except ServiceError as exc:
            db.session.rollback()
            getattr(form, exc.field, form.current_password).errors.append(exc.message)
            flash("The password was not changed.", "error")
        else:
            flash("Your password was changed.", "success")
            return redirect(url_for("dashboard.account"))
    elif request.method == "POST":
        flash("The password was not changed.", "error")
    return render_template("dashboard/account/password.html", form=form), (422 if form.errors else 200)
