"""Helpers for the SSLCommerz, Rocket and Stripe tests: a payment through the real API and checkout."""

import re
from html import unescape

from app.extensions import db
from app.models import Payment, PaymentEvent
from tests.helpers import csrf_token


def api_payment(http, key, **fields):
    """Create a payment through POST /api/v1/payments; return its JSON."""
    body = {"amount": 125_050, "currency": "BDT", "reference": "ORDER-1", "description": "Two mangoes",
            "return_url": "https://shop.example/return", "cancel_url": "https://shop.example/cancel", **fields}
    r = http.post("/api/v1/payments", json=body, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 201, r.text
    return r.json()


def choose_method(http, created, method):
    """Open the checkout page, choose `method`; return the gateway page URL we are redirected to."""
    page = http.get(created["checkout_url"])
    assert page.status_code == 200, page.text
    assert f'value="{method}"' in page.text
    r = http.post(created["checkout_url"], data={"csrf_token": csrf_token(page.text), "method": method},
                  allow_redirects=False)
    assert r.status_code == 303, r.text
    return r.headers["Location"]


def form_fields(html):
    """(action, {name: value}) of the first form in `html` (hidden inputs)."""
    action = unescape(re.search(r'<form[^>]*action="([^"]*)"', html).group(1))
    fields = {unescape(n): unescape(v) for n, v in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)"',
                                                                html)}
    return action, fields


def payment_by_public_id(public_id):
    db.session.rollback()
    return db.session.query(Payment).filter_by(public_id=public_id).one()


def callback_events(payment=None):
    db.session.rollback()
    query = db.session.query(PaymentEvent).filter_by(kind="callback")
    if payment is not None:
        query = query.filter_by(payment_id=payment.id)
    return query.order_by(PaymentEvent.id).all()


def transitions(payment, to_status):
    db.session.rollback()
    return db.session.query(PaymentEvent).filter_by(payment_id=payment.id, to_status=to_status).count()


def queued_notifications(url_part=""):
    """The simulators' notifications waiting on the sandbox queue: [(url, request kwargs)]."""
    from app.extensions import get_queue

    jobs = get_queue("sandbox").jobs
    return [(job.args[1], job.kwargs) for job in jobs
            if job.func_name.endswith("send_notification") and url_part in job.args[1]]
