"""The endpoint pages: add one, edit it, its secret, "Send test event", replay, delete — through real forms
with CSRF — and a disabled endpoint's reason shown on the webhooks page and its own page."""

from sqlalchemy import select

from app.extensions import db
from app.models import OutboxEvent, WebhookDelivery, WebhookEndpoint, utcnow
from app.services import webhook_endpoints as endpoints
from tests.helpers import reload
from tests.receiver import receiver  # noqa: F401  (fixture)
from tests.web.dashboard.conftest import token_of


def test_add_edit_ping_replay_and_delete_an_endpoint(signed_in, merchant, receiver, run_jobs):  # noqa: F811
    token = token_of(signed_in, "/dashboard/webhooks")
    r = signed_in.post("/dashboard/webhooks/endpoints", data={
        "csrf_token": token, "url": receiver.url, "description": "Warehouse", "event_types": ["refund.failed"],
        "enabled": "y"})
    assert r.status_code == 200 and "Endpoint added" in r.text
    db.session.rollback()
    endpoint = db.session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.url == receiver.url)).one()
    assert endpoint.secret in r.text and endpoint.event_types == ["refund.failed"]
    page = f"/dashboard/webhooks/endpoints/{endpoint.public_id}"
    html = signed_in.get(page).text
    assert endpoint.secret not in html and "Warehouse" in html and "Send test event" in html

    r = signed_in.post(page, data={"csrf_token": token_of(signed_in, page), "url": receiver.url,
                                   "description": "Warehouse (all)", "enabled": "y"}, follow_redirects=True)
    assert "Endpoint saved." in r.text and reload(endpoint).event_types is None

    r = signed_in.post(page + "/ping", data={"csrf_token": token_of(signed_in, page)}, follow_redirects=True)
    assert "Test event ping" in r.text
    run_jobs()
    assert [q["json"]["type"] for q in receiver.requests] == ["ping"]
    html = signed_in.get(page).text
    assert "ping" in html and "HTTP 200" in html  # the deliveries log, with the attempt

    db.session.rollback()
    delivery = db.session.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)).one()
    delivery.status = "failed"
    db.session.commit()
    today = utcnow().date().isoformat()
    r = signed_in.post(page + "/replay", data={"csrf_token": token_of(signed_in, page), "since": today,
                                               "until": today}, follow_redirects=True)
    assert "1 failed deliveries queued again." in r.text
    run_jobs()
    assert len(receiver.requests) == 2
    event = db.session.scalars(select(OutboxEvent)).one()
    r = signed_in.post(f"{page}/events/{event.public_id}/replay", data={"csrf_token": token_of(signed_in, page)},
                       follow_redirects=True)
    assert "queued again for this endpoint" in r.text

    r = signed_in.post(page + "/delete", data={"csrf_token": token_of(signed_in, page)}, follow_redirects=True)
    assert "Endpoint deleted" in r.text and signed_in.get(page).status_code == 404


def test_a_disabled_endpoint_says_why_and_another_merchants_is_404(signed_in, merchant, other):
    endpoint = endpoints.create_endpoint(merchant, "https://shop.example/hooks")
    endpoint.enabled, endpoint.disabled_reason = False, "The endpoint answered 410 Gone on 2026-12-02 03:00 UTC."
    db.session.commit()
    assert "answered 410 Gone" in signed_in.get("/dashboard/webhooks").text
    assert "answered 410 Gone" in signed_in.get(f"/dashboard/webhooks/endpoints/{endpoint.public_id}").text
    theirs = endpoints.create_endpoint(other, "https://other.example/hooks")
    assert signed_in.get(f"/dashboard/webhooks/endpoints/{theirs.public_id}").status_code == 404
    r = signed_in.post(f"/dashboard/webhooks/endpoints/{theirs.public_id}/delete",
                       data={"csrf_token": token_of(signed_in, "/dashboard/webhooks")})
    assert r.status_code == 404 and reload(theirs).url == "https://other.example/hooks"


def test_bad_input_is_shown_and_changes_nothing(signed_in, merchant):
    endpoint = endpoints.create_endpoint(merchant, "https://shop.example/hooks")
    page = f"/dashboard/webhooks/endpoints/{endpoint.public_id}"
    r = signed_in.post(page, data={"csrf_token": token_of(signed_in, page), "url": "ftp://x.example/h"})
    assert r.status_code == 422 and "The endpoint was not saved" in r.text
    assert reload(endpoint).url == "https://shop.example/hooks"
