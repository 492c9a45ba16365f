"""The hosted checkout: the pay page, every closed state, the result page, cancel, CSRF and methods."""

import re
import threading
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from app.models import OutboxEvent, utcnow
from app.state_machine import Status, transition
from tests.helpers import csrf_token, reload

ITEMS = [
    {"name": "Kopi luwak 200 g", "quantity": 2, "unit_amount": 80_000},
    {"name": "Member discount", "quantity": 1, "unit_amount": -25_000, "type": "discount"},
    {"name": "Shipping", "quantity": 1, "unit_amount": 15_000, "type": "shipping"},
]


@pytest.fixture
def merchant(factories):
    return factories.merchant(name="Toko Kopi Nusantara")[0]


@pytest.fixture
def payment(factories, merchant):
    return factories.payment(merchant, amount=150_000, currency="IDR", items=ITEMS, expires_in=900)


def move(payment, *statuses, **changes):
    for status in statuses:
        assert transition(payment, status, reason="test", source="test", changes=changes)
    db.session.commit()


def expire_by_time(payment):
    payment.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()


def outbox_count():
    db.session.rollback()
    return len(db.session.scalars(select(OutboxEvent)).all())


def test_pay_page_shows_the_order(client, payment):
    r = client.get(f"/pay/{payment.checkout_token}")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert "Toko Kopi Nusantara" in html
    # English in Indonesia (CLDR en_ID): dots group the thousands, a no-break space follows "Rp".
    assert "Kopi luwak 200 g" in html and "× 2" in html and "Rp\xa0160.000" in html
    assert "Member discount" in html and "-Rp\xa025.000" in html
    assert "Shipping" in html and "Rp\xa015.000" in html
    assert re.search("data-total>Rp\xa0150.000<", html)
    left = int(re.search(r'data-countdown="(\d+)"', html).group(1))
    assert 890 <= left <= 900
    assert 'name="method" value="testcard"' in html
    assert csrf_token(html)
    # Nothing is loaded from anywhere but this app.
    assert not re.search(r'(src|href)="(https?:)?//', html.replace('href="https://shop.example', ""))
    assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")


@pytest.mark.parametrize("currency, amount, shown", [("VND", 125_000, "₫125,000"), ("USD", 4_999, "$49.99"),
                                                    ("BDT", 7_500_000, "৳75,000.00"),
                                                    ("NPR", 12_000_000, "Rs\xa01,20,000.00")])
def test_total_is_in_the_currency_format(client, factories, merchant, currency, amount, shown):
    """In English (the client's Accept-Language) with the currency's country: en_IN lakhs for BDT and NPR."""
    payment = factories.payment(merchant, amount=amount, currency=currency)
    html = client.get(f"/pay/{payment.checkout_token}").get_data(as_text=True)
    assert f"data-total>{shown}<" in html
    assert f"Pay {shown}" in html


def test_paid_page(client, payment):
    move(payment, Status.SUCCEEDED)
    r = client.get(f"/pay/{payment.checkout_token}")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert "Already paid" in html
    assert f"https://shop.example/return?payment_id={payment.public_id}&amp;status=succeeded" in html
    assert 'name="method"' not in html


@pytest.mark.parametrize("statuses", [[], [Status.PROCESSING]])
def test_expired_by_time_before_any_sweep(client, payment, statuses):
    token = csrf_token(client.get(f"/pay/{payment.checkout_token}").get_data(as_text=True))
    move(payment, *statuses)
    expire_by_time(payment)
    r = client.get(f"/pay/{payment.checkout_token}")
    assert r.status_code == 410
    assert "This payment link has expired" in r.get_data(as_text=True)
    # Posting a method from a page opened before the deadline starts nothing.
    r = client.post(f"/pay/{payment.checkout_token}", data={"method": "testcard", "csrf_token": token})
    assert r.status_code == 410
    reload(payment)
    assert payment.status == (statuses[-1] if statuses else Status.PENDING)  # the page never writes a status


@pytest.mark.parametrize("statuses, heading", [
    ([Status.CANCELLED], "This payment was cancelled"),
    ([Status.EXPIRED], "This payment link has expired"),
    ([Status.PROCESSING, Status.FAILED], "This payment failed"),
])
def test_closed_pages(client, payment, statuses, heading):
    move(payment, *statuses, failure_message="Your card was declined.")
    r = client.get(f"/pay/{payment.checkout_token}")
    assert r.status_code == 410
    html = r.get_data(as_text=True)
    assert heading in html
    assert "https://shop.example/cancel?payment_id=" in html
    assert 'name="method"' not in html
    if statuses[-1] == Status.FAILED:
        assert "Your card was declined." in html


@pytest.mark.parametrize("token", ["no-such-token", "x" * 65, "%00"])
def test_unknown_token_is_a_clear_404_page(client, token):
    for path in (f"/pay/{token}", f"/pay/{token}/result"):
        r = client.get(path)
        assert r.status_code in (400, 404)
        assert r.mimetype == "text/html"
        assert "Traceback" not in r.get_data(as_text=True)
    r = client.get("/pay/no-such-token")
    assert "We could not find this payment" in r.get_data(as_text=True)


def test_cancel_button_cancels_and_goes_to_cancel_url(client, payment):
    html = client.get(f"/pay/{payment.checkout_token}").get_data(as_text=True)
    r = client.post(f"/pay/{payment.checkout_token}/cancel", data={"csrf_token": csrf_token(html)})
    assert r.status_code == 303
    assert r.headers["Location"] == \
        f"https://shop.example/cancel?payment_id={payment.public_id}&status=cancelled"
    reload(payment)
    assert payment.status == "cancelled"
    assert [e.to_status for e in payment.events.filter_by(kind="status_change")] == ["cancelled"]
    assert outbox_count() == 1


def test_cancel_without_cancel_url_shows_the_result(client, factories, merchant):
    payment = factories.payment(merchant, cancel_url=None)
    html = client.get(f"/pay/{payment.checkout_token}").get_data(as_text=True)
    r = client.post(f"/pay/{payment.checkout_token}/cancel", data={"csrf_token": csrf_token(html)},
                    follow_redirects=True)
    assert "Payment cancelled" in r.get_data(as_text=True)
    reload(payment)
    assert payment.status == "cancelled"


def test_cancel_of_a_paid_payment_changes_nothing(client, payment):
    html = client.get(f"/pay/{payment.checkout_token}").get_data(as_text=True)
    move(payment, Status.SUCCEEDED)
    r = client.post(f"/pay/{payment.checkout_token}/cancel", data={"csrf_token": csrf_token(html)})
    assert r.headers["Location"].endswith("/result")
    reload(payment)
    assert payment.status == "succeeded"


def test_double_clicked_cancel_applies_once(http, payment):
    """Two cancel posts from one browser, at the same moment, on the live server."""
    html = http.get(f"/pay/{payment.checkout_token}").text
    token, cookies = csrf_token(html), http.cookies.get_dict()
    url = f"{http.base_url}/pay/{payment.checkout_token}/cancel"
    barrier = threading.Barrier(4)
    answers = []

    def click():
        barrier.wait(timeout=30)
        answers.append(requests.post(url, timeout=30,
                                     data={"csrf_token": token}, cookies=cookies, allow_redirects=False))

    threads = [threading.Thread(target=click) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in answers] == [303] * 4
    reload(payment)
    assert payment.status == "cancelled" and payment.version == 1
    assert payment.events.filter_by(kind="status_change").count() == 1
    assert outbox_count() == 1


def test_forms_without_csrf_are_refused_and_change_nothing(client, payment):
    client.get(f"/pay/{payment.checkout_token}")  # a session cookie, but no token in the post
    for path, data in ((f"/pay/{payment.checkout_token}", {"method": "testcard"}),
                       (f"/pay/{payment.checkout_token}/cancel", {}),
                       (f"/pay/{payment.checkout_token}/cancel", {"csrf_token": "forged"})):
        r = client.post(path, data=data)
        assert r.status_code == 400
        assert "The form expired or was not sent from this site" in r.get_data(as_text=True)
    reload(payment)
    assert payment.status == "pending"
    assert payment.gateway is None
    assert payment.events.count() == 1
    assert outbox_count() == 0


def test_a_method_not_enabled_for_the_merchant_is_refused(client, payment, merchant):
    html = client.get(f"/pay/{payment.checkout_token}").get_data(as_text=True)
    token = csrf_token(html)
    r = client.post(f"/pay/{payment.checkout_token}", data={"method": "nosuchgateway", "csrf_token": token})
    assert r.status_code == 422
    assert "Choose one of the payment methods offered." in r.get_data(as_text=True)
    merchant.gateway_account("testcard").enabled = False
    db.session.commit()
    r = client.post(f"/pay/{payment.checkout_token}", data={"method": "testcard", "csrf_token": token})
    assert r.status_code == 422
    assert "Choose one of the payment methods offered." in r.get_data(as_text=True)
    reload(payment)
    assert (payment.status, payment.gateway) == ("pending", None)
    assert outbox_count() == 0
    for account in merchant.gateway_accounts:  # Midtrans and Stripe take IDR too
        account.enabled = False
    db.session.commit()
    page = client.get(f"/pay/{payment.checkout_token}").get_data(as_text=True)
    assert "no payment method for IDR" in page and 'name="method"' not in page


def test_result_page_refreshes_while_processing_and_stops_when_done(client, payment):
    move(payment, Status.PROCESSING, gateway="testcard")
    html = client.get(f"/pay/{payment.checkout_token}/result").get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="3">' in html
    assert "Waiting for confirmation" in html
    move(payment, Status.SUCCEEDED, card_summary="Visa •••• 4242")
    html = client.get(f"/pay/{payment.checkout_token}/result").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in html
    assert "Payment successful" in html and "Visa •••• 4242" in html
    assert f"https://shop.example/return?payment_id={payment.public_id}&amp;status=succeeded" in html


def test_result_page_of_an_untouched_payment_sends_the_shopper_to_pay(client, payment):
    r = client.get(f"/pay/{payment.checkout_token}/result")
    assert r.status_code == 303
    assert r.headers["Location"] == f"/pay/{payment.checkout_token}"


@pytest.mark.parametrize("statuses, heading", [
    ([Status.PROCESSING, Status.FAILED], "Payment failed"),
    ([Status.CANCELLED], "Payment cancelled"),
    ([Status.EXPIRED], "Payment expired"),
    ([Status.SUCCEEDED, Status.REFUNDED], "Payment successful"),
])
def test_result_page_states(client, payment, statuses, heading):
    move(payment, *statuses)
    r = client.get(f"/pay/{payment.checkout_token}/result")
    assert r.status_code == 200
    assert heading in r.get_data(as_text=True)
