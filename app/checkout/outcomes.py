"""What a shopper is told, in their language: why a try did not work and what to do next.

Each text is a gettext message (translated in app/translations); the gateway's own words never reach the
shopper, they stay on the merchant's timeline.
"""

from flask_babel import lazy_gettext as _l

from app.gateways.base import Reason

REASONS = {
    Reason.DECLINED: _l("Your payment was declined. You can try again or choose another method."),
    Reason.INSUFFICIENT_FUNDS: _l("There was not enough money in the account. Try another card or method."),
    Reason.WRONG_CODE: _l("The one-time code was wrong. You can try again or choose another method."),
    Reason.CANCELLED: _l("The payment was cancelled. You can try again or choose another method."),
    Reason.TIMED_OUT: _l("The payment took too long and was stopped. Please try again."),
    Reason.LIMIT_EXCEEDED: _l("The amount is over your account's limit. Try another method."),
    Reason.BLOCKED: _l("The payment provider refused this payment. Try another method."),
    Reason.GATEWAY_UNAVAILABLE: _l("This payment method is not available right now. Try another method."),
    Reason.FAILED: _l("The payment did not go through. You can try again or choose another method."),
}

#: A new try is refused while the last one may still charge the shopper.
STILL_CONFIRMING = _l("Your last try with %(gateway)s is still being confirmed. Please wait a moment, "
                      "then check again. You will not be charged twice.")
NOT_PAYABLE = _l("This payment can no longer be paid.")
CHOOSE_METHOD = _l("Choose one of the payment methods offered.")
TRY_AGAIN_SOON = _l("Something went wrong on our side. Please try again in a moment.")


#: A checkout service error's code → what the shopper is told.
ERRORS = {
    "payment_not_payable": NOT_PAYABLE,
    "invalid_method": CHOOSE_METHOD,
    "gateway_unavailable": REASONS[Reason.GATEWAY_UNAVAILABLE],
    "attempt_in_progress": STILL_CONFIRMING,
}


def error_text(exc):
    """The shopper's text for a ServiceError from starting a payment (a generic one for any other)."""
    text = ERRORS.get(exc.code, TRY_AGAIN_SOON)
    return text % exc.details if exc.code == "attempt_in_progress" else text


def reason_text(reason):
    """The shopper's text for a failure reason (a Reason or its value); the generic one if unknown."""
    try:
        return REASONS[Reason(reason)]
    except ValueError:
        return REASONS[Reason.FAILED]
