"""What the bKash and Nagad tests share on top of tests/gateways/helpers.py: a BDT payment sent to the wallet's
page, the shopper's choice there, and the checks every browser-return gateway must pass (real HTTP throughout)."""

from dataclasses import replace

import requests

from app.extensions import db
from app.gateways import get_gateway
from app.services.gateways import context_for, payment_info
from tests.gateways.helpers import api_payment, choose_method, events, outbox_types, race

BDT = {"currency": "BDT", "amount": 125_050, "reference": "INV-1"}


def bdt_payment(http, key, **fields):
    """A BDT payment created through the API."""
    return api_payment(http, key, **{**BDT, **fields})


def start(http, factories, code, amount=125_050):
    """(merchant, payment, gateway page URL) for a new BDT payment sent to `code` from our checkout page."""
    merchant, key = factories.merchant()
    payment = bdt_payment(http, key, amount=amount)
    return merchant, payment, choose_method(http, payment, code)


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


def callbacks(payment):
    return events(payment, "callback")


def transitions_to(payment, status):
    return [e for e in events(payment, "status_change") if e.to_status == status]


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
    assert len(transitions_to(payment, status)) == 1
    assert outbox_types(payment).count(f"payment.{status}") == 1


def duplicate_return(http, payment, back):
    """The same return twice in a row: one transition, the second one recorded as already applied."""
    http.get(back)
    http.get(back)
    assert_applied_once(payment, "succeeded")
    assert callbacks(payment)[-1].message.endswith("(already applied, no change)")


def concurrent_returns(payment, back, n=4):
    """The same return n times at once (threads + barrier) against the live server: one transition."""
    answers = race(n, lambda: requests.get(back, allow_redirects=False, timeout=60))
    assert all(a.status_code == 303 for a in answers)
    assert_applied_once(payment, "succeeded")


def adapter_and_context(payment, code):
    """The adapter, a PaymentInfo and the merchant's GatewayContext, as the services build them."""
    db.session.rollback()
    db.session.refresh(payment)
    return get_gateway(code), payment_info(payment), context_for(payment.merchant.gateway_account(code))


def pay_another_amount_for(http, payment, code, amount, **fields):
    """Pay, at the gateway, an order for `amount` that is attached to `payment` (a tampered amount), and return."""
    gateway, info, ctx = adapter_and_context(payment, code)
    other = gateway.start(replace(info, amount=amount), ctx)
    payment.current_attempt.reference = other.gateway_reference
    db.session.commit()
    http.get(choose_outcome(http, other.action.url, "success", **fields))


def refund_through_the_service(payment, run_jobs, partial):
    """A partial, then the rest, through app.services.refunds and its job: the payment ends refunded."""
    from app.services import refunds

    first = refunds.request_refund(payment, partial, "damaged", source="test")
    run_jobs()
    db.session.rollback()
    db.session.refresh(first)
    assert first.status == "succeeded" and first.gateway_reference
    assert payment.status == "partially_refunded"
    rest = refunds.request_refund(payment, source="test")
    run_jobs()
    db.session.rollback()
    db.session.refresh(rest)
    db.session.refresh(payment)
    assert rest.status == "succeeded" and rest.amount == payment.amount - partial
    assert payment.status == "refunded" and payment.amount_refunded == payment.amount
    assert outbox_types(payment).count("refund.succeeded") == 2
    return first, rest
