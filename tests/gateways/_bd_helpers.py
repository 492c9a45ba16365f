"""Helpers for the bKash and Nagad tests: a BDT payment through the API and checkout, real HTTP throughout."""

import threading
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import requests
from sqlalchemy import select

from app.extensions import db
from app.gateways import get_gateway
from app.models import OutboxEvent, Payment, PaymentEvent
from app.services.gateways import context_for, payment_info
from tests.helpers import csrf_token


def create_payment(http, key, amount=125_050, reference="INV-1"):
    """A BDT payment created through the API; returns (Payment, checkout_url)."""
    r = http.post("/api/v1/payments", json={"amount": amount, "currency": "BDT", "reference": reference,
                                            "return_url": "https://shop.example/r",
                                            "cancel_url": "https://shop.example/c"},
                  headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 201, r.text
    body = r.json()
    payment = db.session.scalar(select(Payment).where(Payment.public_id == body["id"]))
    return payment, body["checkout_url"]


def choose_method(http, checkout_url, method):
    """POST the checkout form with `method`; return the gateway URL the shopper is sent to."""
    page = http.get(checkout_url)
    assert page.status_code == 200, page.text
    assert f'value="{method}"' in page.text, f"{method} is not offered on the checkout page"
    r = http.post(checkout_url, data={"csrf_token": csrf_token(page.text), "method": method},
                  allow_redirects=False)
    assert r.status_code == 303, r.text
    return r.headers["Location"]


def start(http, factories, method, amount=125_050):
    """(merchant, payment, gateway page URL) for a new BDT payment sent to `method`."""
    merchant, key = factories.merchant()
    payment, url = create_payment(http, key, amount)
    return merchant, payment, choose_method(http, url, method)


def choose_outcome(http, page_url, outcome, **fields):
    """Press the simulator's `outcome` button; return the redirect back to us (not followed)."""
    page = http.get(page_url)
    assert page.status_code == 200, page.text
    r = http.post(page_url, data={"outcome": outcome, **fields}, allow_redirects=False)
    assert r.status_code in (302, 303), r.text
    return r.headers["Location"]


def pay(http, factories, code, outcome="success", amount=125_050, **fields):
    """(merchant, payment, return URL) after the shopper pressed `outcome` on the gateway's page."""
    merchant, payment, page_url = start(http, factories, code, amount)
    return merchant, payment, choose_outcome(http, page_url, outcome, **fields)


def return_to_result(http, payment, back):
    """Follow the gateway's return: we answer with our result page; returns its HTML."""
    r = http.get(back, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == f"/pay/{payment.checkout_token}/result"
    page = http.get(r.headers["Location"])
    assert page.status_code == 200
    return page.text


def assert_applied_once(payment, status):
    """Exactly one transition to `status`, with exactly one merchant webhook event for it."""
    db.session.rollback()
    db.session.refresh(payment)
    assert payment.status == status
    assert len(transitions(payment, status)) == 1
    assert outbox_types(payment).count(f"payment.{status}") == 1


def duplicate_return(http, payment, back):
    """The same return twice in a row: one transition, the second one recorded as already applied."""
    http.get(back)
    http.get(back)
    assert_applied_once(payment, "succeeded")
    assert callbacks(payment)[-1].message.endswith("(already applied, no change)")


def concurrent_returns(payment, back, n=4):
    """The same return n times at once (threads + barrier) against the live server: one transition."""
    answers = at_once(n, lambda: requests.get(back, allow_redirects=False, timeout=60))
    assert all(a.status_code == 303 for a in answers)
    assert_applied_once(payment, "succeeded")


def query_of(url):
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def callbacks(payment):
    db.session.rollback()
    return db.session.scalars(select(PaymentEvent).where(PaymentEvent.payment_id == payment.id,
                                                         PaymentEvent.kind == "callback")
                              .order_by(PaymentEvent.id)).all()


def transitions(payment, to_status=None):
    db.session.rollback()
    query = select(PaymentEvent).where(PaymentEvent.payment_id == payment.id, PaymentEvent.kind == "status_change")
    if to_status:
        query = query.where(PaymentEvent.to_status == to_status)
    return db.session.scalars(query).all()


def outbox_types(payment):
    db.session.rollback()
    return [e.type for e in db.session.scalars(select(OutboxEvent).where(OutboxEvent.payment_id == payment.id)
                                               .order_by(OutboxEvent.id))]


def adapter_and_context(payment, code):
    """The adapter, a PaymentInfo and the merchant's GatewayContext, as the services build them."""
    db.session.rollback()
    db.session.refresh(payment)
    return get_gateway(code), payment_info(payment, code), context_for(payment.merchant.gateway_account(code))


def pay_another_amount_for(http, payment, code, amount, **fields):
    """Pay, at the gateway, an order for `amount` that is attached to `payment` (a tampered amount), and return."""
    gateway, info, ctx = adapter_and_context(payment, code)
    other = gateway.start(replace(info, amount=amount), ctx)
    payment.gateway_reference = other.gateway_reference
    db.session.commit()
    http.get(choose_outcome(http, other.action.url, "success", **fields))


def at_once(n, fn):
    """Run fn() in n threads released together by a barrier; return their results."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def run(i):
        barrier.wait()
        results[i] = fn()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results
