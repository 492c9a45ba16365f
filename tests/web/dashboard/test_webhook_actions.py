"""Webhooks page actions: endpoint URL (validated), secret rotation, resending one event."""

from sqlalchemy import select

from app.extensions import db
from app.models import OutboxEvent
from app.services.webhook_endpoints import set_webhook_url
from app.state_machine import Status
from tests.helpers import reload
from tests.web.dashboard.conftest import token_of
from tests.web.dashboard.test_payments import _set


def test_endpoint_url_is_validated(signed_in, merchant):
    token = token_of(signed_in, "/dashboard/webhooks")
    r = signed_in.post("/dashboard/webhooks/url", data={"csrf_token": token, "url": "ftp://files.example/x"})
    assert r.status_code == 422 and "The endpoint was not saved" in r.text
    assert reload(merchant).webhook_url is None
    r = signed_in.post("/dashboard/webhooks/url", data={"csrf_token": token, "url": "https://shop.example/hooks"},
                       follow_redirects=True)
    assert "Webhook endpoint saved." in r.text and 'value="https://shop.example/hooks"' in r.text
    assert reload(merchant).webhook_url == "https://shop.example/hooks"
    r = signed_in.post("/dashboard/webhooks/url", data={"csrf_token": token, "url": ""}, follow_redirects=True)
    assert "events are no longer sent" in r.text and reload(merchant).webhook_url is None


def test_rotate_secret_shows_the_new_one_once(signed_in, merchant):
    old = merchant.webhook_secret
    r = signed_in.post("/dashboard/webhooks/secret/rotate", data={"csrf_token": token_of(signed_in, "/dashboard/webhooks")})
    new = reload(merchant).webhook_secret
    assert new != old and new in r.text and "Signing secret rotated" in r.text
    assert new not in signed_in.get("/dashboard/webhooks").text


def test_resend_one_event(signed_in, merchant, factories):
    payment = _set(factories.payment(merchant), Status.CANCELLED)
    event = db.session.scalar(select(OutboxEvent).where(OutboxEvent.payment_id == payment.id)
                              .order_by(OutboxEvent.id.desc()))
    event.delivery_status = "failed"
    db.session.commit()
    set_webhook_url(merchant, "https://shop.example/hooks")  # sent nowhere then; the endpoint wants it now
    r = signed_in.post(f"/dashboard/webhooks/events/{event.public_id}/resend",
                       data={"csrf_token": token_of(signed_in, "/dashboard/webhooks")}, follow_redirects=True)
    assert f"Event payment.cancelled ({event.public_id}) queued for delivery again." in r.text
    assert reload(event).delivery_status == "pending"
    set_webhook_url(merchant, None)  # no endpoint left that wants it: resent, it goes nowhere, and says so
    signed_in.post(f"/dashboard/webhooks/events/{event.public_id}/resend",
                   data={"csrf_token": token_of(signed_in, "/dashboard/webhooks")})
    assert reload(event).delivery_status == "skipped"
