"""Settings: gateway accounts (on/off, sandbox/live, write-only encrypted credentials) and API keys.

The gateway section is built from `app.gateways.REGISTRY` and each adapter's `credential_fields`, so a new
gateway appears here without any change to this module.
"""

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from app.dashboard import bp, flash_form_errors
from app.dashboard.forms import ActionForm, ApiKeyForm, DoublePaymentsForm, gateway_form
from app.extensions import db
from app.gateways import REGISTRY, get_gateway
from app.models import ApiKey
from app.services.errors import ServiceError
from app.services.gateways import update_gateway_account
from app.services.merchants import add_api_key, revoke_api_key, set_auto_refund_double_payments


def _settings_page(forms=None, new_key=None, key_form=None, status=200):
    forms = forms or {}
    gateways = [(g, current_user.gateway_account(code), forms.get(code) or gateway_form(g, current_user.gateway_account(code)))
                for code, g in REGISTRY.items()]
    keys = db.session.scalars(select(ApiKey).where(ApiKey.merchant_id == current_user.id)
                              .order_by(ApiKey.revoked_at.is_not(None), ApiKey.id.desc())).all()
    return render_template("dashboard/settings/index.html", gateways=gateways, keys=keys, new_key=new_key,
                           key_form=key_form or ApiKeyForm(formdata=None), action_form=ActionForm(),
                           double_form=DoublePaymentsForm(formdata=None,
                                                          auto_refund=current_user.auto_refund_double_payments)), status


@bp.get("/settings")
@login_required
def settings():
    return _settings_page()


@bp.post("/settings/gateways/<code>")
@login_required
def save_gateway(code):
    gateway = get_gateway(code)
    if gateway is None:
        abort(404)
    form = gateway_form(gateway, current_user.gateway_account(code), submitted=True)
    if not form.validate_on_submit():
        flash_form_errors(form)
        return _settings_page({code: form}, status=422)
    credentials = {name: getattr(form, f"cred_{name}").data or "" for name in form.credential_names}
    try:
        update_gateway_account(current_user, code, enabled=form.enabled.data, mode=form.mode.data,
                               credentials=credentials)
    except ServiceError as exc:
        db.session.rollback()
        flash(f"{gateway.name} was not saved: {exc.message}", "error")
        return _settings_page({code: form}, status=422)
    state = "offered at checkout" if form.enabled.data else "not offered at checkout"
    flash(f"{gateway.name} saved ({form.mode.data}, {state}).", "success")
    return redirect(url_for("dashboard.settings") + f"#gw-{code}", 303)


@bp.post("/settings/double-payments")
@login_required
def save_double_payments():
    """Whether an extra charge of a double payment is refunded at once, or waits for a person."""
    form = DoublePaymentsForm()
    if form.validate_on_submit():
        set_auto_refund_double_payments(current_user, form.auto_refund.data)
        flash("Double payments are now refunded automatically." if form.auto_refund.data else
              "Double payments now wait for you to refund them.", "success")
    else:
        flash_form_errors(form)
    return redirect(url_for("dashboard.settings"), 303)


@bp.post("/settings/api-keys")
@login_required
def create_api_key():
    form = ApiKeyForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return _settings_page(key_form=form, status=422)
    key, plaintext = add_api_key(current_user, form.name.data)
    # Rendered, not redirected: the key must not travel in a URL or the (signed, not encrypted) flash cookie.
    flash(f"API key “{key.name}” created. Copy it now: it will not be shown again.", "success")
    return _settings_page(new_key=plaintext)


@bp.post("/settings/api-keys/<public_id>/revoke")
@login_required
def revoke_key(public_id):
    ActionForm().validate_on_submit()
    try:
        key = revoke_api_key(current_user, public_id)
    except ServiceError:
        abort(404)
    flash(f"API key “{key.name}” ({key.prefix}…) revoked: requests with it are now refused.", "success")
    return redirect(url_for("dashboard.settings") + "#api-keys", 303)
