"""Settings: gateway accounts (on/off, sandbox/live, write-only encrypted credentials) and API keys.

The gateway section is built from `app.gateways.REGISTRY` and each adapter's `credential_fields`, so a new
gateway appears here without any change to this module.
"""

from flask import abort, flash, redirect, render_template, url_for
from sqlalchemy import select

from app import money
from app.dashboard import bp, flash_form_errors
from app.dashboard.access import current_can, current_merchant, dashboard_actor, requires
from app.dashboard.forms import ActionForm, ApiKeyForm, DoublePaymentsForm, gateway_form, member_rules_form
from app.extensions import db
from app.gateways import REGISTRY, get_gateway
from app.models import ApiKey
from app.services.errors import ServiceError
from app.services.gateways import update_gateway_account
from app.services.merchants import (
    add_api_key,
    revoke_api_key,
    set_auto_refund_double_payments,
    update_settings,
)


def _settings_page(forms=None, new_key=None, key_form=None, rules_form=None, status=200):
    forms = forms or {}
    gateways = [(g, current_merchant.gateway_account(code), forms.get(code) or gateway_form(g, current_merchant.gateway_account(code)))
                for code, g in REGISTRY.items()]
    keys = db.session.scalars(select(ApiKey).where(ApiKey.merchant_id == current_merchant.id)
                              .order_by(ApiKey.revoked_at.is_not(None), ApiKey.id.desc())).all()
    return render_template("dashboard/settings/index.html", gateways=gateways, keys=keys, new_key=new_key,
                           key_form=key_form or ApiKeyForm(formdata=None), action_form=ActionForm(),
                           rules_form=rules_form or member_rules_form(current_merchant),
                           currencies=sorted(money.EXPONENTS),
                           double_form=DoublePaymentsForm(formdata=None,
                                                          auto_refund=current_merchant.auto_refund_double_payments)), status


@bp.get("/settings")
@requires("settings.read")
def settings():
    return _settings_page()


@bp.post("/settings/gateways/<code>")
@requires("settings.gateways")
def save_gateway(code):
    gateway = get_gateway(code)
    if gateway is None:
        abort(404)
    form = gateway_form(gateway, current_merchant.gateway_account(code), submitted=True)
    if not form.validate_on_submit():
        flash_form_errors(form)
        return _settings_page({code: form}, status=422)
    credentials = {name: getattr(form, f"cred_{name}").data or "" for name in form.credential_names}
    if any(v.strip() for v in credentials.values()) and not current_can("settings.gateway_credentials"):
        abort(403, description="Your role does not allow changing gateway credentials.")
    try:
        update_gateway_account(current_merchant, code, enabled=form.enabled.data, mode=form.mode.data,
                               credentials=credentials, actor=dashboard_actor())
    except ServiceError as exc:
        db.session.rollback()
        flash(f"{gateway.name} was not saved: {exc.message}", "error")
        return _settings_page({code: form}, status=422)
    state = "offered at checkout" if form.enabled.data else "not offered at checkout"
    flash(f"{gateway.name} saved ({form.mode.data}, {state}).", "success")
    return redirect(url_for("dashboard.settings") + f"#gw-{code}", 303)


@bp.post("/settings/double-payments")
@requires("settings.merchant")
def save_double_payments():
    """Whether an extra charge of a double payment is refunded at once, or waits for a person."""
    form = DoublePaymentsForm()
    if form.validate_on_submit():
        set_auto_refund_double_payments(current_merchant, form.auto_refund.data, actor=dashboard_actor())
        flash("Double payments are now refunded automatically." if form.auto_refund.data else
              "Double payments now wait for you to refund them.", "success")
    else:
        flash_form_errors(form)
    return redirect(url_for("dashboard.settings"), 303)


@bp.post("/settings/members")
@requires("settings.merchant")
def save_member_rules():
    """Two-factor for every member, and what a support member may refund at once per currency."""
    form = member_rules_form(current_merchant, formdata=True)
    limits = {}
    if form.validate_on_submit():
        for currency in sorted(money.EXPONENTS):
            field = form[f"limit_{currency}"]
            if (field.data or "").strip():
                try:
                    limits[currency] = money.to_minor(field.data, currency)
                except money.MoneyError as exc:
                    field.errors.append(str(exc))
                else:
                    if limits[currency] < 0:
                        field.errors.append("a limit cannot be negative")
    if form.errors:
        flash_form_errors(form)
        return _settings_page(rules_form=form, status=422)
    update_settings(current_merchant, require_two_factor=form.require_two_factor.data, support_refund_limits=limits,
                    actor=dashboard_actor())
    flash("Team rules saved.", "success")
    return redirect(url_for("dashboard.settings") + "#members", 303)


@bp.post("/settings/api-keys")
@requires("settings.api_keys")
def create_api_key():
    form = ApiKeyForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return _settings_page(key_form=form, status=422)
    key, plaintext = add_api_key(current_merchant, form.name.data, actor=dashboard_actor())
    # Rendered, not redirected: the key must not travel in a URL or the (signed, not encrypted) flash cookie.
    flash(f"API key “{key.name}” created. Copy it now: it will not be shown again.", "success")
    return _settings_page(new_key=plaintext)


@bp.post("/settings/api-keys/<public_id>/revoke")
@requires("settings.api_keys")
def revoke_key(public_id):
    ActionForm().validate_on_submit()
    try:
        key = revoke_api_key(current_merchant, public_id, actor=dashboard_actor())
    except ServiceError:
        abort(404)
    flash(f"API key “{key.name}” ({key.prefix}…) revoked: requests with it are now refused.", "success")
    return redirect(url_for("dashboard.settings") + "#api-keys", 303)
