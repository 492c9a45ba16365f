"""/dashboard/account/security: one's own password, two-factor sign-in (set up with a QR code drawn on the
server, ten recovery codes shown once) and signed-in sessions (sign out the others). Changing the password or
two-factor sign-in ends every session; this browser continues on a fresh one."""

from flask import flash, redirect, render_template, request, session, url_for
from flask_login import current_user

from app import security
from app.dashboard import bp, flash_form_errors
from app.dashboard.access import current_membership, dashboard_actor, requires
from app.dashboard.auth import sign_in_session
from app.dashboard.forms import ActionForm, ChangePasswordForm, DisableTwoFactorForm, EnableTwoFactorForm
from app.extensions import db
from app.services import accounts
from app.services.errors import ServiceError


def _this_session():
    return accounts.live_session(current_user, session.get("sid"))


def _who():
    return {"merchant_id": current_membership.merchant_id, "actor": dashboard_actor(),
            "ip": request.remote_addr, "user_agent": request.user_agent.string}


def _setup_secret(create=False):
    """The secret being set up, kept encrypted in the session until a code proves the app has it."""
    if create or not session.get("totp_setup"):
        session["totp_setup"] = security.encrypt(accounts.new_totp_secret())
    return security.decrypt(session["totp_setup"])


def _page(password_form=None, enable_form=None, disable_form=None, recovery_codes=None, setup=False, status=200):
    setup_data = None
    if setup and not current_user.two_factor_enabled:
        secret = _setup_secret()
        uri = accounts.provisioning_uri(current_user, secret)
        setup_data = {"secret": secret, "qr": accounts.qr_svg(uri)}
    here = _this_session()
    return render_template(
        "dashboard/account/security.html", password_form=password_form or ChangePasswordForm(formdata=None),
        enable_form=enable_form or EnableTwoFactorForm(formdata=None),
        disable_form=disable_form or DisableTwoFactorForm(formdata=None), action_form=ActionForm(),
        setup=setup_data, recovery_codes=recovery_codes, sessions=accounts.open_sessions(current_user),
        this_session_id=here.id if here else None,
        remaining_codes=accounts.remaining_recovery_codes(current_user) if current_user.two_factor_enabled else 0,
    ), status


@bp.get("/account")
@requires("account")
def account():
    return redirect(url_for("dashboard.security"))


@bp.get("/account/security", endpoint="security")
@requires("account")
def security_page():
    return _page(setup=request.args.get("setup") == "1")


def _session_ending_change(form, change, error_field, done, failed, page_form):
    """A change that ends every session (password, two-factor off): on success this browser continues on the
    fresh session `change()` returns; on a refusal the error shows beside `error_field`."""
    if form.validate_on_submit():
        try:
            token = change()
        except ServiceError as exc:
            db.session.rollback()
            getattr(form, exc.field or error_field, getattr(form, error_field)).errors.append(exc.message)
        else:
            sign_in_session(current_user, token)
            flash(done, "success")
            return redirect(url_for("dashboard.security"), 303)
    flash(failed, "error")
    return _page(**{page_form: form}, status=422)


@bp.post("/account/security/password")
@requires("account")
def change_password():
    form = ChangePasswordForm()
    return _session_ending_change(
        form, lambda: accounts.change_password(current_user, form.current_password.data, form.new_password.data,
                                               **_who()),
        "current_password", "Your password was changed. Every other session was signed out.",
        "The password was not changed.", "password_form")


@bp.post("/account/security/two-factor/enable")
@requires("account")
def enable_two_factor():
    form = EnableTwoFactorForm()
    if form.validate_on_submit() and session.get("totp_setup"):
        try:
            codes, token = accounts.enable_two_factor(current_user, _setup_secret(), form.code.data, **_who())
        except ServiceError as exc:
            db.session.rollback()
            form.code.errors.append(exc.message)
        else:
            session.pop("totp_setup", None)
            sign_in_session(current_user, token)
            flash("Two-factor sign-in is on. Every other session was signed out. Keep the recovery codes below "
                  "somewhere safe: each works once, and they are shown only now.", "success")
            return _page(recovery_codes=codes)
    else:
        flash_form_errors(form)
    flash("Two-factor sign-in was not turned on.", "error")
    return _page(enable_form=form, setup=True, status=422)


@bp.post("/account/security/two-factor/disable")
@requires("account")
def disable_two_factor():
    form = DisableTwoFactorForm()
    return _session_ending_change(
        form, lambda: accounts.disable_two_factor(current_user, form.password.data, **_who()), "password",
        "Two-factor sign-in is off. Every other session was signed out.", "Two-factor sign-in was not turned off.",
        "disable_form")


@bp.post("/account/security/sessions/end-others")
@requires("account")
def end_other_sessions():
    ActionForm().validate_on_submit()
    ended = accounts.sign_out_others(current_user, _this_session(), merchant_id=current_membership.merchant_id,
                                     actor=dashboard_actor())
    flash(f"Signed out {ended} other session{'s' if ended != 1 else ''}.", "success")
    return redirect(url_for("dashboard.security"), 303)
