"""Refunds that wait for a person: the "Needs attention" marker and filter, "Retry now", "Mark as made"
and "Mark as failed" (both with confirmation), through the dashboard with CSRF on."""

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import OutboxEvent
from app.services import refunds
from tests.helpers import csrf_token, reload
from tests.payflow import pay


@pytest.fixture
def waiting(app, merchant, factories, http, run_jobs, monkeypatch):
    """A paid payment and a refund of it that waits for a person (its one attempt could not reach the
    acquirer); the acquirer is reachable again afterwards."""
    monkeypatch.setitem(app.config, "REFUND_MAX_ATTEMPTS", 1)
    payment = factories.payment(merchant, currency="USD", amount=5000, reference="ATTN")
    pay(http, payment)
    monkeypatch.setitem(app.config, "GATEWAY_BASE_URLS", {"testcard": "http://127.0.0.1:9"})
    refund = refunds.request_refund(payment, 1500, source="test")
    run_jobs()
    monkeypatch.setitem(app.config, "GATEWAY_BASE_URLS", {})
    assert reload(refund).needs_attention
    return payment, refund


def test_refunds_that_wait_are_marked_and_filtered(signed_in, merchant, waiting, run_jobs):
    payment, refund = waiting
    settled = refunds.request_refund(payment, 500, source="test")
    run_jobs()
    assert reload(settled).status == "succeeded"
    page = signed_in.get("/dashboard/refunds").text
    assert "Needs attention (1)" in page and page.count("needs attention</span>") == 1
    assert f'action="/dashboard/refunds/{refund.public_id}/retry"' in page
    assert f'action="/dashboard/refunds/{refund.public_id}/fail"' in page
    assert f"/dashboard/refunds/{settled.public_id}/" not in page
    only = signed_in.get("/dashboard/refunds?attention=1").text
    assert refund.public_id in only and f"/dashboard/refunds/{settled.public_id}/" not in only
    assert "$5.00" not in only and "$15.00" in only
    detail = signed_in.get(f"/dashboard/payments/{payment.public_id}").text
    assert "A refund below waits for you" in detail and "needs attention</span>" in detail
    assert f'action="/dashboard/refunds/{refund.public_id}/retry"' in detail
    assert "no more automatic attempts after 1" in detail  # the timeline says why


def test_retry_now_asks_the_gateway_again(signed_in, waiting, run_jobs):
    payment, refund = waiting
    token = csrf_token(signed_in.get("/dashboard/refunds").text)
    r = signed_in.post(f"/dashboard/refunds/{refund.public_id}/retry", data={"csrf_token": token})
    assert r.status_code == 303 and r.headers["Location"] == f"/dashboard/payments/{payment.public_id}"
    refund = reload(refund)
    assert refund.status == "pending" and refund.next_attempt_at is not None and not refund.needs_attention
    r = signed_in.post(f"/dashboard/refunds/{refund.public_id}/retry", data={"csrf_token": token},
                       follow_redirects=True)
    assert "is not waiting for a person (it is pending, with a gateway call planned)" in r.text
    run_jobs()
    refund = reload(refund)
    assert (refund.status, refund.attempts) == ("succeeded", 2)  # attempts keep counting
    assert reload(payment).status == "partially_refunded"
    page = signed_in.get(f"/dashboard/payments/{payment.public_id}").text
    assert f"Refund {refund.public_id}: retry requested [dashboard, {refund.payment.merchant.email}]" in page
    assert "A refund below waits for you" not in page


def test_mark_as_failed_asks_for_confirmation_then_releases_the_amount(signed_in, waiting):
    payment, refund = waiting
    url = f"/dashboard/refunds/{refund.public_id}/fail"
    token = csrf_token(signed_in.get(f"/dashboard/payments/{payment.public_id}").text)
    r = signed_in.post(url, data={"csrf_token": token})
    assert r.status_code == 200 and "Mark the refund of $15.00 as failed?" in r.text
    assert "Do this only when Card (test acquirer) shows no refund for this payment." in r.text
    assert '<input type="hidden" name="confirmed" value="yes">' in r.text
    assert reload(refund).status == "pending" and reload(payment).amount_refunded == 1500  # only asked
    r = signed_in.post(url, data={"csrf_token": token, "confirmed": "yes"}, follow_redirects=True)
    assert f"Refund {refund.public_id} marked as failed: $15.00 is refundable again." in r.text
    refund, payment = reload(refund), reload(payment)
    assert refund.status == "failed" and payment.amount_refunded == 0 and payment.status == "succeeded"
    types = [e.type for e in db.session.scalars(select(OutboxEvent).where(OutboxEvent.payment_id == payment.id))]
    assert types[-1] == "refund.failed"
    r = signed_in.post(url, data={"csrf_token": token, "confirmed": "yes"}, follow_redirects=True)
    assert "is not waiting for a person (it is failed)" in r.text
    r = signed_in.post(f"/dashboard/refunds/{refund.public_id}/retry", data={"csrf_token": token},
                       follow_redirects=True)
    assert "is not waiting for a person (it is failed)" in r.text and reload(refund).status == "failed"


def test_mark_as_made_asks_for_confirmation_then_refunds_the_payment(signed_in, waiting):
    payment, refund = waiting
    url = f"/dashboard/refunds/{refund.public_id}/succeed"
    token = csrf_token(signed_in.get(f"/dashboard/payments/{payment.public_id}").text)
    assert f'action="{url}"' in signed_in.get(f"/dashboard/payments/{payment.public_id}").text
    r = signed_in.post(url, data={"csrf_token": token})
    assert r.status_code == 200 and "Mark the refund of $15.00 as made?" in r.text
    assert "Do this only when Card (test acquirer) shows this refund of $15.00 as made." in r.text
    assert reload(refund).status == "pending"  # only asked
    r = signed_in.post(url, data={"csrf_token": token, "confirmed": "yes"}, follow_redirects=True)
    assert f"Refund {refund.public_id} marked as made by the gateway." in r.text
    assert "the gateway shows the refund made [dashboard," in r.text  # on the timeline, with who did it
    refund, payment = reload(refund), reload(payment)
    assert refund.status == "succeeded" and refund.next_attempt_at is None
    assert payment.status == "partially_refunded" and payment.amount_refunded == 1500
    types = [e.type for e in db.session.scalars(select(OutboxEvent).where(OutboxEvent.payment_id == payment.id))]
    assert types[-2:] == ["payment.partially_refunded", "refund.succeeded"]
    r = signed_in.post(url, data={"csrf_token": token, "confirmed": "yes"}, follow_redirects=True)
    assert "is not waiting for a person (it is succeeded)" in r.text


def test_a_refund_with_a_gateway_call_planned_cannot_be_marked_failed(signed_in, merchant, factories, http):
    payment = factories.payment(merchant, currency="USD", amount=5000)
    pay(http, payment)
    refund = refunds.request_refund(payment, 1000, source="test")  # its job is queued, not run
    token = csrf_token(signed_in.get(f"/dashboard/payments/{payment.public_id}").text)
    for action in ("fail", "succeed", "retry"):
        r = signed_in.post(f"/dashboard/refunds/{refund.public_id}/{action}",
                           data={"csrf_token": token, "confirmed": "yes"}, follow_redirects=True)
        assert "is not waiting for a person (it is pending, with a gateway call planned)" in r.text
    refund = reload(refund)
    assert refund.status == "pending" and refund.attempts == 0 and reload(payment).amount_refunded == 1000
