"""Texts that reach shopper pages as plain strings from code that does not mark them (error pages, the
views' fixed messages, the simulators' pages), listed here so `pybabel extract` puts them in the catalogues;
templates show them through `tr()`. Only extraction reads this list."""

from flask_babel import lazy_gettext as _l

MESSAGES = (
    # app/errors.py titles and messages
    _l("Bad request"), _l("Sign in required"), _l("Forbidden"), _l("Not found"), _l("Method not allowed"),
    _l("Request too large"), _l("Too many requests"), _l("Something went wrong"), _l("Error"),
    _l("The request contains characters we cannot accept."),
    _l("The form expired or was not sent from this site. Go back, reload and try again."),
    _l("Something went wrong on our side. It was logged; please try again."),
    _l("There is nothing at this address."),
    # app/checkout/routes.py and the checkout's service errors
    _l("We could not find this payment. Check the link you were given, or ask the shop for a new one."),
    _l("Choose one of the payment methods offered."),
    _l("this payment can no longer be paid"),
    _l("choose one of the payment methods offered"),
    # gateway names shown as payment methods (app/gateways/*.py `name`)
    _l("SSLCommerz (cards, mobile banking)"), _l("Card (Stripe)"), _l("Card (test acquirer)"),
    # the simulators' messages (app/sandbox/*.py)
    _l("Payment link not found."), _l("Transaction not found"),
    _l("This transaction has been completed or has expired"), _l("This session does not exist."),
    _l("Something went wrong"), _l("Your payment is complete"), _l("This session has expired"),
    _l("Enter your 11-digit bKash account number (01XXXXXXXXX)."),
    _l("Enter your 11-digit Nagad account number (01XXXXXXXXX)."), _l("Choose an outcome."),
    _l("This card number is not valid."), _l("Enter a future expiry date as MM/YY."),
    _l("Enter the 3 or 4 digit security code."), _l("Enter the name on the card."),
)
