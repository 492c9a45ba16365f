"""Dashboard forms (Flask-WTF: every one carries a CSRF token)."""

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    HiddenField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    URLField,
    widgets,
)
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp

from app import money
from app.permissions import ROLES

#: A light syntax check (WTForms' Email() needs the email_validator package, which also refuses the
#: reserved .test/.example domains we use in tests and demos).
email_format = Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message="Enter an email address like name@example.com.")

EXPIRY_CHOICES = [
    ("3600", "1 hour"),
    ("86400", "1 day"),
    ("259200", "3 days"),
    ("604800", "7 days"),
    ("900", "15 minutes"),
]


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), email_format, Length(max=254)],
                       render_kw={"autocomplete": "username"})
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)],
                             render_kw={"autocomplete": "current-password"})


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token."""


class TwoFactorForm(FlaskForm):
    code = StringField("Code from your authenticator app, or a recovery code",
                       validators=[DataRequired(), Length(max=20)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True})


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=200)],
                                     render_kw={"autocomplete": "current-password"})
    new_password = PasswordField("New password", validators=[DataRequired(), Length(min=8, max=200)],
                                 render_kw={"autocomplete": "new-password"})
    confirm = PasswordField("Repeat the new password",
                            validators=[DataRequired(), EqualTo("new_password", "The two new passwords differ.")],
                            render_kw={"autocomplete": "new-password"})


class EnableTwoFactorForm(FlaskForm):
    code = StringField("The 6-digit code your app shows", validators=[DataRequired(), Length(max=10)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})


class DisableTwoFactorForm(FlaskForm):
    password = PasswordField("Your password", validators=[DataRequired(), Length(max=200)],
                             render_kw={"autocomplete": "current-password"})


class InviteForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), email_format, Length(max=254)])
    role = SelectField("Role", choices=[(r, r.capitalize()) for r in ROLES], default="viewer")


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=[(r, r.capitalize()) for r in ROLES])


class AcceptInvitationForm(FlaskForm):
    display_name = StringField("Your name", validators=[Optional(), Length(max=200)],
                               render_kw={"autocomplete": "name"})
    password = PasswordField("Password", validators=[DataRequired(), Length(min=8, max=200)],
                             render_kw={"autocomplete": "new-password"})


def member_rules_form(merchant, formdata=None):
    """Merchant rules for its team: two-factor for everyone, and the support refund limit per currency (typed
    in major units, as amounts are everywhere in the dashboard)."""

    class MemberRulesForm(FlaskForm):
        require_two_factor = BooleanField("Require two-factor sign-in for every member")

    for currency in sorted(money.EXPONENTS):
        setattr(MemberRulesForm, f"limit_{currency}",
                StringField(f"Support may refund at most ({currency})", validators=[Optional(), Length(max=24)],
                            render_kw={"inputmode": "decimal", "autocomplete": "off", "placeholder": "none"}))
    data = {"require_two_factor": merchant.require_two_factor}
    for currency, limit in (merchant.support_refund_limits or {}).items():
        data[f"limit_{currency}"] = money.format_plain(limit, currency) if limit else ""
    return MemberRulesForm(formdata=formdata, data=data) if formdata is None else MemberRulesForm(data=data)


class PaymentLinkForm(FlaskForm):
    amount = StringField("Amount", validators=[DataRequired(), Length(max=40)],
                         description="In the currency's own units: 125,000 for ₫125,000; 25.50 for $25.50.",
                         render_kw={"inputmode": "decimal", "autocomplete": "off", "placeholder": "e.g. 25.00"})
    currency = SelectField("Currency", choices=[(c, c) for c in sorted(money.EXPONENTS)])
    reference = StringField("Your reference", validators=[DataRequired(), Length(max=100)],
                            render_kw={"placeholder": "Order number or invoice"})
    description = StringField("Description", validators=[Optional(), Length(max=500)])
    customer_email = EmailField("Customer email (optional)",
                                validators=[Optional(), email_format, Length(max=200)])
    return_url = URLField("Back-to-shop address", validators=[DataRequired(), Length(max=2000)],
                          render_kw={"placeholder": "https://your-shop.example/thanks"})
    expires_in = SelectField("Link expires after", choices=EXPIRY_CHOICES, default="86400")
    #: "<minor units> <currency>" the person saw in words and confirmed; any other amount is shown first.
    confirmed_amount = HiddenField()


class RefundForm(FlaskForm):
    amount = StringField("Amount to refund", validators=[DataRequired(), Length(max=40)],
                         render_kw={"inputmode": "decimal", "autocomplete": "off"})
    reason = StringField("Reason", validators=[Optional(), Length(max=500)])
    #: Set by the confirmation page; without it the refund is only shown for confirmation.
    confirmed = HiddenField()


class WebhookUrlForm(FlaskForm):
    url = URLField("Endpoint URL", validators=[Optional(), Length(max=2000)],
                   render_kw={"placeholder": "https://your-shop.example/paysmith/webhooks"})


class EndpointForm(FlaskForm):
    """One webhook endpoint: URL, description, the event types it gets (none ticked: all), on/off."""

    url = URLField("Endpoint URL", validators=[DataRequired(), Length(max=2000)],
                   render_kw={"placeholder": "https://your-shop.example/paysmith/webhooks"})
    description = StringField("Description", validators=[Optional(), Length(max=500)])
    event_types = SelectMultipleField("Event types (none ticked: every type)", validators=[Optional()],
                                      option_widget=widgets.CheckboxInput(),
                                      widget=widgets.ListWidget(prefix_label=False))
    enabled = BooleanField("Enabled", default=True)

    def __init__(self, *args, **kwargs):
        from app.services.webhook_endpoints import EVENT_TYPES

        super().__init__(*args, **kwargs)
        self.event_types.choices = [(t, t) for t in EVENT_TYPES]


class ReplayForm(FlaskForm):
    """Replay every failed delivery of an endpoint whose event was created in [since, until] (UTC dates)."""

    since = DateField("From (UTC date)", validators=[DataRequired()])
    until = DateField("To (UTC date, inclusive)", validators=[DataRequired()])


class DoublePaymentsForm(FlaskForm):
    auto_refund = BooleanField("Refund a second charge for one order automatically")


class ApiKeyForm(FlaskForm):
    name = StringField("Key name", validators=[DataRequired(), Length(max=100)],
                       render_kw={"placeholder": "e.g. Web shop"})


def gateway_form(gateway, account, submitted=False):
    """A settings form for one gateway, built from its `credential_fields` (so new gateways need no code here).

    Credential inputs are write-only: always rendered empty, with the stored value's last characters as hint.
    Only the form that was `submitted` reads the request: every other one shows the stored state (read from
    a POST of another form, an absent checkbox would mean "off" and its Save would switch the gateway off).
    """
    from app.security import mask

    stored = account.credentials if account else {}

    class GatewayForm(FlaskForm):
        enabled = BooleanField("Offer at checkout", default=bool(account and account.enabled))
        mode = SelectField("Mode", choices=[("sandbox", "Sandbox (test)"), ("live", "Live")],
                           default=account.mode if account else "sandbox")

    for name, label in gateway.credential_fields.items():
        hint = f"Saved: {mask(stored.get(name))} — leave empty to keep" if stored.get(name) else "Not set"
        setattr(GatewayForm, f"cred_{name}", PasswordField(
            label, validators=[Optional(), Length(max=4000)], description=hint,
            render_kw={"autocomplete": "off"}))

    form = GatewayForm(prefix=gateway.code) if submitted else GatewayForm(prefix=gateway.code, formdata=None)
    form.credential_names = list(gateway.credential_fields)
    return form
