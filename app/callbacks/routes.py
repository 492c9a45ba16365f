"""One route for every gateway callback. Parses the HTTP request, hands it to the callbacks service, and
answers in the gateway's own contract (or, for a browser return, shows the shopper the result page).

Never a 500: anything unexpected is logged, rolled back and answered as the gateway's "error, retry later".
"""

import logging

from flask import abort, jsonify, make_response, redirect, render_template, request

from app.callbacks import bp
from app.extensions import db
from app.gateways import get_gateway
from app.gateways.base import Ack, CallbackRequest
from app.ops import logs, metrics
from app.services.callbacks import handle_callback, record_unhandled

log = logging.getLogger(__name__)


def callback_request():
    """The request as a CallbackRequest, which makes every part of it storable (see there)."""
    body = request.get_data(cache=True)  # first: the form below is then parsed from the cached bytes
    return CallbackRequest(
        method=request.method,
        args=request.args.to_dict(),
        form=request.form.to_dict() if request.mimetype in ("application/x-www-form-urlencoded",
                                                            "multipart/form-data") else {},
        headers={k: v for k, v in request.headers.items()},
        body=body,
        remote_addr=request.remote_addr,
    )


def _answer(gateway, kind, ack):
    body, status, headers = gateway.acknowledge(kind, ack)
    response = make_response(jsonify(body) if isinstance(body, (dict, list)) else (body or ""), status)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


@bp.route("/<code>/<kind>", methods=["GET", "POST"])
def receive(code, kind):
    gateway = get_gateway(code)
    if gateway is None:
        abort(404, "unknown gateway")
    req = None
    try:
        req = callback_request()
        handled = handle_callback(code, kind, req)
    except Exception:
        log.exception("callback %s/%s failed", code, kind)
        metrics.callback(code, Ack.ERROR)
        db.session.rollback()
        if req is not None:
            try:  # the raw callback is kept even now, for whoever looks into it
                record_unhandled(code, kind, req)
            except Exception:
                log.exception("could not record the failed %s/%s callback", code, kind)
                db.session.rollback()
        if kind in gateway.browser_kinds:
            return render_template("errors/error.html", status=500, title="Something went wrong",
                                   message="We could not process the gateway's answer. Your payment status will "
                                           "update shortly."), 500
        return _answer(gateway, kind, Ack.ERROR)
    metrics.callback(code, handled.ack, handled.applied)
    logs.note(gateway=code, ack=str(handled.ack))  # the payment was noted when it was found
    if kind in gateway.browser_kinds:
        if handled.payment is None:
            abort(404, "We could not find this payment.")
        return redirect(f"/pay/{handled.payment.checkout_token}/result", code=303)
    return _answer(gateway, kind, handled.ack)
