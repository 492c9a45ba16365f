"""The cancel confirmation step: GET /pay/<token>/cancel asks "Cancel this payment?" (no JavaScript needed);
its form POSTs to the same URL, handled by routes.cancel."""

from flask import redirect, render_template

from app.checkout import bp
from app.checkout.routes import _load
from app.state_machine import Status


@bp.get("/<token>/cancel")
def cancel_confirm(token):
    payment = _load(token)
    if payment.status not in (Status.PENDING, Status.PROCESSING):
        return redirect(f"/pay/{token}", code=303)  # nothing left to cancel: the pay page says why
    return render_template("checkout/cancel.html", payment=payment)
