"""The money cases of payment attempts, over real HTTP through the checkout and the simulators: a second
charge is recorded and flagged (never dropped), a late confirmation is kept, and two confirmations racing for
one payment make exactly one success (on PostgreSQL for real; SQLite serialises them)."""

import threading
from datetime import timedelta

import requests
from sqlalchemy import select, update

from app.extensions import db
from app.gateways.testcard import SIGNATURE_HEADER, sign
from app.models import OutboxEvent, Payment, Refund, utcnow
from app.sandbox.testcard import SANDBOX_CREDENTIALS
from tests.gateways.helpers import choose_method, follow, race, take_notifications
from tests.helpers import csrf_token, reload
from tests.payflow import PAYS, open_card_page, submit_card
from tests.web.dashboard.conftest import sign_in


def _types(payment):
    db.session.rollback()
    return [e.type for e in db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.payment_id == payment.id).order_by(OutboxEvent.id))]


def vnpay_paid_in_another_tab(http, payment):
    """An attempt at VNPay: the shopper reaches VNPay's page (and keeps that tab open); its URL."""
    return follow(http, http.get(choose_method(http, payment, "vnpay"), allow_redirects=False))


def pay_on_vnpay_page(http, vnpay_page):
    """Pay on that page; VNPay's IPN is held back and returned (method, url, kwargs) for the test to send."""
    back = http.post(vnpay_page, data={"outcome": "success"}, allow_redirects=False)
    assert back.status_code in (302, 303)
    [ipn] = take_notifications()
    return ipn


def deliver(http, notification):
    method, url, kwargs = notification
    return http.request(method, url, **kwargs)


def test_an_earlier_attempt_confirmed_after_a_later_one_paid_is_a_double_payment(http, factories, run_jobs):
    merchant, _ = factories.merchant()
    payment = factories.payment(merchant, amount=150_000, currency="VND")
    vnpay_page = vnpay_paid_in_another_tab(http, payment)
    # Back on our checkout, the shopper chooses the card instead: VNPay cannot end the first try, and
    # knows no payment for it yet, so it is left behind and a second attempt starts.
    submit_card(http, open_card_page(http, payment), PAYS)
    run_jobs()
    payment = reload(payment)
    assert payment.status == "succeeded" and [a.status for a in payment.attempts] == ["cancelled", "succeeded"]
    # Meanwhile, in the other tab, the shopper also paid at VNPay: its IPN arrives.
    answer = deliver(http, pay_on_vnpay_page(http, vnpay_page))
    assert answer.json()["RspCode"] == "00"
    payment = reload(payment)
    first, second = payment.attempts
    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert payment.succeeded_attempt_id == second.id and payment.double_payment is True
    assert payment.status == "succeeded" and payment.extra_attempts == [first]
    assert _types(payment).count("payment.succeeded") == 1 and "payment.double_payment" in _types(payment)
    flagged = db.session.scalars(select(OutboxEvent).where(OutboxEvent.type == "payment.double_payment")).one()
    assert flagged.payload["data"]["object"]["double_payment_attempt"] == first.public_id
    # The same IPN again changes nothing.
    assert http.get(answer.url).json()["RspCode"] == "02"
    assert _types(payment).count("payment.double_payment") == 1


def test_the_double_charge_is_refunded_at_its_own_gateway(http, factories, run_jobs, client):
    merchant, _ = factories.merchant()
    payment = factories.payment(merchant, amount=150_000, currency="VND")
    vnpay_page = vnpay_paid_in_another_tab(http, payment)
    submit_card(http, open_card_page(http, payment), PAYS)
    run_jobs()
    deliver(http, pay_on_vnpay_page(http, vnpay_page))
    payment = reload(payment)
    extra = payment.extra_attempts[0]
    client = sign_in(client, merchant)
    page = client.get(f"/dashboard/payments/{payment.public_id}")
    assert "charged more than once" in page.text and f"Refund attempt {extra.number}" in page.text
    r = client.post(f"/dashboard/payments/{payment.public_id}/attempts/{extra.public_id}/refund",
                    data={"csrf_token": csrf_token(page.text)}, follow_redirects=True)
    assert "Refund of" in r.text and f"of attempt {extra.number} requested" in r.text
    run_jobs()
    db.session.rollback()
    refund = db.session.scalars(select(Refund).where(Refund.payment_id == payment.id)).one()
    assert (refund.status, refund.gateway, refund.attempt_id, refund.amount) == ("succeeded", "vnpay", extra.id,
                                                                              150_000)
    payment = reload(payment)
    assert payment.status == "succeeded" and payment.amount_refunded == 0  # the payment itself stays paid
    assert payment.attempts[0].amount_refunded == 150_000
    assert "It has been refunded." in client.get(f"/dashboard/payments/{payment.public_id}").text
    # A second refund of that attempt is refused: nothing is left of it.
    page = client.get(f"/dashboard/payments/{payment.public_id}")
    assert f"Refund attempt {extra.number}" not in page.text


def test_a_merchant_may_have_double_charges_refunded_automatically(http, factories, run_jobs):
    merchant, _ = factories.merchant()
    merchant.auto_refund_double_payments = True
    db.session.commit()
    payment = factories.payment(merchant, amount=150_000, currency="VND")
    vnpay_page = vnpay_paid_in_another_tab(http, payment)
    submit_card(http, open_card_page(http, payment), PAYS)
    run_jobs()
    deliver(http, pay_on_vnpay_page(http, vnpay_page))
    run_jobs()
    db.session.rollback()
    refund = db.session.scalars(select(Refund).where(Refund.payment_id == payment.id)).one()
    assert refund.status == "succeeded" and refund.attempt_id == reload(payment).attempts[0].id
    assert refund.reason == "Automatic refund of a double payment"


def test_a_confirmation_after_the_payment_expired_is_a_late_success(http, factories, run_jobs):
    from app.services.expiry import expire_overdue

    merchant, _ = factories.merchant()
    payment = factories.payment(merchant, amount=150_000, currency="VND")
    vnpay_page = vnpay_paid_in_another_tab(http, payment)
    db.session.execute(update(Payment).where(Payment.id == payment.id).values(expires_at=utcnow() - timedelta(1)))
    db.session.commit()
    expire_overdue()
    assert reload(payment).status == "expired"
    deliver(http, pay_on_vnpay_page(http, vnpay_page))
    payment = reload(payment)
    assert payment.status == "succeeded" and payment.late_success is True and not payment.double_payment
    assert payment.attempts[0].status == "succeeded"


def test_two_confirmations_at_once_make_one_success_and_one_flag(http, factories):
    merchant, _ = factories.merchant()
    payment = factories.payment(merchant, amount=150_000, currency="VND")
    vnpay_page = vnpay_paid_in_another_tab(http, payment)
    submit_card(http, open_card_page(http, payment), PAYS)  # the shopper never comes back from the card page
    [card_webhook] = take_notifications()
    method, url, kwargs = card_webhook
    secret = SANDBOX_CREDENTIALS["webhook_secret"]
    card_webhook = (method, url, {**kwargs, "headers": {"Content-Type": "application/json",
                                                        SIGNATURE_HEADER: sign(secret, kwargs["data"])}})
    vnpay_ipn = pay_on_vnpay_page(http, vnpay_page)
    waiting, lock = [card_webhook, vnpay_ipn], threading.Lock()

    def confirm():  # each thread delivers one of the two, released together by the barrier
        with lock:
            method, url, kwargs = waiting.pop()
        return requests.request(method, url, timeout=60, **kwargs).status_code

    assert race(2, confirm) == [200, 200]
    payment = reload(payment)
    assert [a.status for a in payment.attempts] == ["succeeded", "succeeded"]
    assert payment.status == "succeeded" and payment.double_payment is True
    assert payment.succeeded_attempt_id in {a.id for a in payment.attempts}
    assert _types(payment).count("payment.succeeded") == 1
    assert _types(payment).count("payment.double_payment") == 1
