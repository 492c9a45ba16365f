"""Payment actions that use the refunds, reconciliation and webhook services: refund with confirmation
(never more than captured, even when two are submitted at once), ask the gateway, resend the webhook."""

import re
import threading

from sqlalchemy import func, select

from app.extensions import db
from app.models import OutboxEvent, Refund
from app.services.webhook_endpoints import set_webhook_url
from app.state_machine import Status
from tests.helpers import csrf_token, reload
from tests.web.dashboard.conftest import PASSWORD, token_of
from tests.web.dashboard.test_payments import _set


def _refunds(payment):
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Refund).where(Refund.payment_id == payment.id))


def test_refund_needs_confirmation(signed_in, merchant, factories):
    payment = _set(factories.payment(merchant, currency="USD", amount=2500), Status.SUCCEEDED)
    url = f"/dashboard/payments/{payment.public_id}/refund"
    token = token_of(signed_in, f"/dashboard/payments/{payment.public_id}")
    r = signed_in.post(url, data={"csrf_token": token, "amount": "10", "reason": "Wrong size"})
    assert r.status_code == 200 and "Refund $10.00?" in r.text and "cannot be undone" in r.text
    assert "through Card (test acquirer)" in r.text
    assert '<a href="/dashboard/payments" aria-current="page">Payments</a>' in r.text
    assert _refunds(payment) == 0  # only asked, nothing done yet
    form = r.text[r.text.index("<form", r.text.index("Refund $10.00?")):]
    confirm = {name: value for tag in re.findall(r"<input[^>]*>", form[:form.index("</form>")])
               if 'type="hidden"' in tag and (name := re.search(r'name="([^"]+)"', tag).group(1)) != "csrf_token"
               for value in [re.search(r'value="([^"]*)"', tag).group(1)]}
    assert confirm == {"amount": "10", "reason": "Wrong size", "confirmed": "yes"}
    r = signed_in.post(url, data={"csrf_token": token, **confirm}, follow_redirects=True)
    assert "Refund of $10.00 requested" in r.text
    assert reload(payment).amount_refunded == 1000 and _refunds(payment) == 1
    r = signed_in.post(url, data={"csrf_token": token, "amount": "15.01", "confirmed": "yes"}, follow_redirects=True)
    assert "Refund refused: $15.01 is more than the $15.00 still refundable." in r.text
    r = signed_in.post(url, data={"csrf_token": token, "amount": "0.001", "confirmed": "yes"}, follow_redirects=True)
    assert "more decimals than USD allows" in r.text
    assert reload(payment).amount_refunded == 1000 and _refunds(payment) == 1


def test_pending_payment_cannot_be_refunded(signed_in, merchant, factories):
    payment = factories.payment(merchant, currency="USD", amount=2500)
    token = token_of(signed_in, f"/dashboard/payments/{payment.public_id}")
    r = signed_in.post(f"/dashboard/payments/{payment.public_id}/refund",
                       data={"csrf_token": token, "amount": "1", "confirmed": "yes"}, follow_redirects=True)
    assert "Refund refused: a pending payment cannot be refunded" in r.text
    assert _refunds(payment) == 0


def test_two_refunds_at_once_never_exceed_the_amount(merchant, factories, http, live_url):
    import requests

    payment = _set(factories.payment(merchant, currency="USD", amount=2500), Status.SUCCEEDED)
    sessions = []
    for _ in range(2):
        s = requests.Session()
        page = s.get(f"{live_url}/dashboard/login")
        s.post(f"{live_url}/dashboard/login", data={"csrf_token": csrf_token(page.text), "email": merchant.email,
                                                    "password": PASSWORD})
        sessions.append((s, csrf_token(s.get(f"{live_url}/dashboard/payments/{payment.public_id}").text)))
    barrier, results = threading.Barrier(2), []

    def refund(session, token):
        barrier.wait()
        r = session.post(f"{live_url}/dashboard/payments/{payment.public_id}/refund",
                         data={"csrf_token": token, "amount": "15.00", "confirmed": "yes"}, timeout=30)
        results.append(r.text)

    threads = [threading.Thread(target=refund, args=s) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted("Refund of $15.00 requested" in t for t in results) == [False, True]
    assert sum("Refund refused" in t for t in results) == 1
    assert reload(payment).amount_refunded == 1500 and _refunds(payment) == 1


def test_ask_the_gateway_now(signed_in, merchant, factories, http):
    payment = factories.payment(merchant, currency="USD", amount=2500)
    page = http.get(f"/pay/{payment.checkout_token}")
    http.post(f"/pay/{payment.checkout_token}", data={"csrf_token": csrf_token(page.text), "method": "testcard"},
              allow_redirects=False)
    assert reload(payment).status == "processing"
    token = token_of(signed_in, f"/dashboard/payments/{payment.public_id}")
    r = signed_in.post(f"/dashboard/payments/{payment.public_id}/reconcile", data={"csrf_token": token},
                       follow_redirects=True)
    assert "The gateway was asked: nothing changed (processing)." in r.text
    assert "Status query: testcard reports none" in r.text


def test_resend_the_latest_webhook(signed_in, merchant, factories):
    payment = _set(factories.payment(merchant, currency="USD", amount=2500), Status.SUCCEEDED)
    latest = db.session.scalar(select(OutboxEvent).where(OutboxEvent.payment_id == payment.id)
                               .order_by(OutboxEvent.id.desc()))
    latest.delivery_status, latest.attempts = "failed", 8
    db.session.commit()
    set_webhook_url(merchant, "https://shop.example/hooks")  # sent nowhere then; the endpoint wants it now
    token = token_of(signed_in, f"/dashboard/payments/{payment.public_id}")
    r = signed_in.post(f"/dashboard/payments/{payment.public_id}/resend-webhook", data={"csrf_token": token},
                       follow_redirects=True)
    assert f"Webhook payment.succeeded ({latest.public_id}) queued for delivery again." in r.text
    assert (reload(latest).delivery_status, latest.attempts) == ("pending", 0)
    fresh = factories.payment(merchant)
    db.session.execute(OutboxEvent.__table__.delete().where(OutboxEvent.payment_id == fresh.id))
    db.session.commit()
    r = signed_in.post(f"/dashboard/payments/{fresh.public_id}/resend-webhook", data={"csrf_token": token},
                       follow_redirects=True)
    assert "This payment has no webhook event to resend." in r.text


def test_refund_above_what_is_refundable_is_refused_on_the_form(signed_in, merchant, factories):
    """Regression: it reached the confirmation page and was refused only after confirming."""
    payment = _set(factories.payment(merchant, currency="USD", amount=2500), Status.SUCCEEDED)
    url = f"/dashboard/payments/{payment.public_id}/refund"
    token = token_of(signed_in, f"/dashboard/payments/{payment.public_id}")
    r = signed_in.post(url, data={"csrf_token": token, "amount": "25.01", "reason": "Too much"})
    assert r.status_code == 422 and "Refund $25.01?" not in r.text
    assert "$25.01 is more than the $25.00 still refundable." in r.text
    assert re.search(r'<input aria-invalid="true"[^>]*name="amount"[^>]*value="25.01"', r.text)  # kept
    # Typed amounts are read by the currency like the payment link's: "1.250" USD reads two ways.
    r = signed_in.post(url, data={"csrf_token": token, "amount": "1.250"})
    assert r.status_code == 422 and "ambiguous" in r.text
    assert _refunds(payment) == 0
    r = signed_in.post(url, data={"csrf_token": token, "amount": "25"})
    assert r.status_code == 200 and "Refund $25.00?" in r.text
