"""The webhooks page: the secret is masked until revealed (by POST); events show every attempt."""

from app.extensions import db
from app.models import WebhookAttempt
from app.services.outbox import emit
from tests.web.dashboard.conftest import token_of


def test_secret_is_revealed_only_on_demand(signed_in, merchant):
    html = signed_in.get("/dashboard/webhooks").text
    assert merchant.webhook_secret not in html and f"••••{merchant.webhook_secret[-4:]}" in html
    r = signed_in.post("/dashboard/webhooks/secret", data={"csrf_token": token_of(signed_in, "/dashboard/webhooks")})
    assert merchant.webhook_secret in r.text
    assert r.headers["Cache-Control"] == "no-store"


def test_events_list_every_attempt(signed_in, merchant, factories):
    payment = factories.payment(merchant)
    event = emit("payment.succeeded", merchant.id, {"id": payment.public_id}, payment_id=payment.id)
    db.session.flush()  # emit() leaves the row to the next flush; the attempts need its id
    db.session.add_all([
        WebhookAttempt(event_id=event.id, url="https://shop.example/h", status_code=500, latency_ms=12,
                       response_body="boom"),
        WebhookAttempt(event_id=event.id, url="https://shop.example/h", error="connection refused"),
        WebhookAttempt(event_id=event.id, url="https://shop.example/h", status_code=200, latency_ms=8),
    ])
    db.session.commit()
    html = signed_in.get("/dashboard/webhooks").text
    assert event.public_id in html and "payment.succeeded" in html
    assert "HTTP 500" in html and "connection refused" in html and "HTTP 200" in html and "boom" in html
    assert f'/dashboard/payments/{payment.public_id}"' in html
    detail = signed_in.get(f"/dashboard/payments/{payment.public_id}").text
    assert detail.count(">webhook attempt</span>") == 3 and "Resend latest webhook (payment.succeeded)" in detail
