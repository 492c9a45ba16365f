"""Shopper pages: choose a method, hand over to the gateway, see the result, or cancel."""

from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import abort, redirect, render_template, request

from app.checkout import bp, outcomes
from app.checkout.forms import CancelForm, MethodForm
from app.gateways import get_gateway
from app.gateways.base import FormPost
from app.i18n import current_language
from app.models import utcnow
from app.ops import logs
from app.services import payments
from app.services.errors import ServiceError
from app.services.gateways import enabled_accounts
from app.state_machine import PAID, Status


def _load(token):
    payment = payments.by_checkout_token(token)
    if payment is None:
        abort(404, "We could not find this payment. Check the link you were given, or ask the shop for a new one.")
    logs.note(payment=payment)
    return payment


def merchant_return_url(payment, url=None):
    """The merchant's return URL with payment_id and status added to its query."""
    parts = urlsplit(url or payment.return_url)
    query = parts.query + ("&" if parts.query else "") + urlencode({"payment_id": payment.public_id,
                                                                     "status": payment.status})
    return urlunsplit(parts._replace(query=query))


def _closed(payment):
    """The page for a payment that cannot be paid any more, or None if it can."""
    if payment.status in PAID:
        return render_template("checkout/closed.html", payment=payment, reason="paid",
                               return_url=merchant_return_url(payment))
    if payment.status in (Status.PENDING, Status.PROCESSING) and payment.expires_at <= utcnow():
        return render_template("checkout/closed.html", payment=payment, reason="expired",
                               return_url=merchant_return_url(payment, payment.cancel_url)), 410
    if payment.status in (Status.EXPIRED, Status.CANCELLED, Status.FAILED):
        return render_template("checkout/closed.html", payment=payment, reason=payment.status,
                               return_url=merchant_return_url(payment, payment.cancel_url)), 410
    return None


def _method_form(payment):
    form = MethodForm()
    accounts = enabled_accounts(payment.merchant, payment.currency)
    form.method.choices = [(a.gateway, get_gateway(a.gateway).name) for a in accounts]
    return form


def _last_try_notice(payment):
    """What the shopper is told about their last try when it did not work (and they may try again)."""
    last = payment.attempts[-1] if payment.attempts else None
    if last is None or last.is_open or last.status == "succeeded":
        return None
    return outcomes.reason_text(last.failure_reason)


@bp.route("/<token>", methods=["GET", "POST"])
def pay(token):
    payment = _load(token)
    closed = _closed(payment)
    if closed is not None:
        return closed
    form = _method_form(payment)
    error = None
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                action = payments.start_checkout(payment, form.method.data, request.remote_addr,
                                                 locale=current_language())
            except ServiceError as exc:
                error = outcomes.error_text(exc)
            else:
                if isinstance(action, FormPost):
                    return render_template("checkout/redirect_form.html", action=action)
                return redirect(action.url, code=303)
        else:  # CSRF is checked before the view (CSRFProtect), so only the method can be wrong here
            error = outcomes.CHOOSE_METHOD
        closed = _closed(payment)  # settling an earlier try may have found the payment paid or used up
        if closed is not None:
            return closed
    seconds_left = max(0, int((payment.expires_at - utcnow()).total_seconds()))
    return render_template("checkout/pay.html", payment=payment, form=form, cancel_form=CancelForm(),
                           error=error, notice=None if error else _last_try_notice(payment),
                           seconds_left=seconds_left), (422 if error else 200)


@bp.get("/<token>/result")
def result(token):
    payment = _load(token)
    if payment.status == Status.PENDING and payment.expires_at > utcnow():
        # Nothing to wait for: the shopper has not chosen yet, or the last try did not work and the
        # checkout page says why and offers another.
        return redirect(f"/pay/{token}", code=303)
    return render_template("checkout/result.html", payment=payment, return_url=merchant_return_url(payment),
                           cancel_return_url=merchant_return_url(payment, payment.cancel_url))


@bp.post("/<token>/cancel")
def cancel(token):
    payment = _load(token)
    form = CancelForm()
    if form.validate_on_submit() and payment.status in (Status.PENDING, Status.PROCESSING):
        payments.cancel_payment(payment, source="checkout", reason="Shopper cancelled on the checkout page")
    if payment.cancel_url and payment.status == Status.CANCELLED:
        return redirect(merchant_return_url(payment, payment.cancel_url), code=303)
    return redirect(f"/pay/{token}/result", code=303)
