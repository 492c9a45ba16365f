"""The audit log: every change a person or an API key makes is one row (who, what, target, from where), in
the transaction of the change; no secret value reaches any row or log line; the page filters and exports it,
and the payment's timeline names who refunded or cancelled it."""

import csv
import io
import json
import logging
import re

import pyotp
from sqlalchemy import select, update

from app.extensions import db
from app.models import AuditEvent, Payment, Refund
from app.services.audit import ACTIONS
from app.state_machine import Status
from tests.helpers import csrf_token
from tests.web.dashboard.conftest import PASSWORD, owner_of, sign_in, token_of
from tests.web.dashboard.test_payments import _set
from tests.web.dashboard.test_team import _mailed_link


def _rows():
    db.session.rollback()
    return db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()


def _waiting_refund(payment):
    refund = Refund(payment_id=payment.id, merchant_id=payment.merchant_id, amount=100, currency=payment.currency,
                    status="pending", gateway="testcard", attempts=5, next_attempt_at=None)
    db.session.add(refund)
    db.session.flush()
    db.session.execute(update(Payment).where(Payment.id == payment.id)
                       .values(amount_refunded=Payment.amount_refunded + 100))
    # Waiting for a person: no gateway call planned (the column's default would plan one).
    db.session.execute(update(Refund).where(Refund.id == refund.id).values(next_attempt_at=None))
    db.session.commit()
    return refund


def test_every_action_is_one_row_and_no_secret_is_in_any_row_or_log_line(app, client, merchant, factories, caplog):
    caplog.set_level(logging.DEBUG)
    secrets = [PASSWORD, "brand-new-pass", "typed-secret-key-123", "joiner-password"]
    post = client.post

    def form(path, page="/dashboard/", **data):
        return post(path, data={"csrf_token": token_of(client, page), **data}, follow_redirects=True)

    # Sign-in: a wrong password, then the right one.
    page = client.get("/dashboard/login")
    post("/dashboard/login", data={"csrf_token": csrf_token(page.text), "email": merchant.email, "password": "nope"})
    secrets.append("nope")
    sign_in(client, merchant)
    # Payments: a link, a cancel, refunds (dashboard and API), a person settling refunds that wait.
    r = form("/dashboard/payments/new", "/dashboard/payments/new", amount="10.00", currency="USD", reference="A-1",
             return_url="https://shop.example/r", expires_in="3600", confirmed_amount="1000 USD")
    assert "Payment link created" in r.text
    open_payment = factories.payment(merchant)
    form(f"/dashboard/payments/{open_payment.public_id}/cancel")
    paid = _set(factories.payment(merchant, currency="USD", amount=5000), Status.SUCCEEDED)
    form(f"/dashboard/payments/{paid.public_id}/refund", amount="1.00", confirmed="yes")
    for action in ("retry", "fail", "succeed"):
        form(f"/dashboard/refunds/{_waiting_refund(paid).public_id}/{action}", confirmed="yes")
    # Settings, a gateway with a credential typed in, API keys, the webhook endpoint and secret.
    form("/dashboard/settings/double-payments", "/dashboard/settings", auto_refund="y")
    form("/dashboard/settings/members", "/dashboard/settings", limit_USD="5.00")
    form("/dashboard/settings/gateways/testcard", "/dashboard/settings", **{
        "testcard-enabled": "y", "testcard-mode": "sandbox", "testcard-cred_secret_key": "typed-secret-key-123"})
    r = form("/dashboard/settings/api-keys", "/dashboard/settings", name="Shop server")
    new_key = re.search(r"sk_[A-Za-z0-9_-]{20,}", r.text).group(0)
    secrets.append(new_key)
    key_id = re.search(r'data-key="(key_[0-9a-f]+)"', r.text).group(1)
    form(f"/dashboard/settings/api-keys/{key_id}/revoke", "/dashboard/settings")
    form("/dashboard/webhooks/url", "/dashboard/webhooks", url="http://127.0.0.1:9/hooks")
    secrets.append(merchant.webhook_secret)
    form("/dashboard/webhooks/secret", "/dashboard/webhooks")
    rotated = form("/dashboard/webhooks/secret/rotate", "/dashboard/webhooks")
    secrets.append(re.search(r"whsec_[A-Za-z0-9_-]+", rotated.text).group(0))
    with_event = factories.payment(merchant)
    from app.services.outbox import emit

    emit("payment.pending", merchant.id, {"id": with_event.public_id}, payment_id=with_event.id)
    db.session.commit()
    form(f"/dashboard/payments/{with_event.public_id}/resend-webhook")
    # The API: a payment and a refund, named by the key that made them.
    from app.services.merchants import add_api_key

    _, plaintext = add_api_key(merchant, "Checkout server")
    secrets.append(plaintext)
    auth = {"Authorization": f"Bearer {plaintext}"}
    api = post("/api/v1/payments", headers=auth, json={"amount": 2000, "currency": "USD", "reference": "API-1",
                                                        "return_url": "https://shop.example/r"})
    assert api.status_code == 201, api.text
    assert post(f"/api/v1/payments/{paid.public_id}/refunds", headers=auth, json={"amount": 100}).status_code == 201
    # The team: invite, withdraw, join, change a role, remove.
    form("/dashboard/team/invitations", "/dashboard/team", email="gone@example.test", role="viewer")
    invitation = re.search(r'/dashboard/team/invitations/(inv_[0-9a-f]+)/revoke',
                           client.get("/dashboard/team").text).group(1)
    form(f"/dashboard/team/invitations/{invitation}/revoke", "/dashboard/team")
    form("/dashboard/team/invitations", "/dashboard/team", email="joiner@example.test", role="viewer")
    joiner = app.test_client()
    link = _mailed_link(app, "joiner@example.test")
    joiner.post(link, data={"csrf_token": csrf_token(joiner.get(link).text), "display_name": "Joe",
                            "password": "joiner-password"})
    team_page = client.get("/dashboard/team").text
    row = team_page[team_page.index('data-member="joiner@example.test"'):]
    member = re.search(r'/dashboard/team/members/(mem_[0-9a-f]+)/role', row).group(1)
    form(f"/dashboard/team/members/{member}/role", "/dashboard/team", role="support")
    form(f"/dashboard/team/members/{member}/remove", "/dashboard/team")
    # The account: two-factor on (its secret and recovery codes are secrets), a wrong code, off; sessions;
    # the password.
    page = client.get("/dashboard/account/security?setup=1").text
    totp = re.search(r'id="totp-key">([A-Z2-7]+)<', page).group(1)
    r = post("/dashboard/account/security/two-factor/enable", data={"csrf_token": csrf_token(page),
                                                                   "code": pyotp.TOTP(totp).now()})
    secrets += [totp, *re.findall(r"<li>([0-9a-f]{5}-[0-9a-f]{5})</li>", r.text)]
    other = app.test_client()
    page = other.get("/dashboard/login")
    other.post("/dashboard/login", data={"csrf_token": csrf_token(page.text), "email": merchant.email,
                                         "password": PASSWORD})
    other.post("/dashboard/login/two-factor", data={
        "csrf_token": csrf_token(other.get("/dashboard/login/two-factor").text), "code": "000000"})
    form("/dashboard/account/security/two-factor/disable", "/dashboard/account/security", password=PASSWORD)
    sign_in(app.test_client(), merchant)
    form("/dashboard/account/security/sessions/end-others", "/dashboard/account/security")
    form("/dashboard/account/security/password", "/dashboard/account/security", current_password=PASSWORD,
         new_password="brand-new-pass", confirm="brand-new-pass")

    rows = _rows()
    # Every action the log knows, each seen at least once (fraud review needs a payment that Midtrans holds:
    # its rows are checked in tests/web/dashboard/test_fraud_review.py).
    assert {r.action for r in rows} == set(ACTIONS) - {"payment.review_approve", "payment.review_deny"}
    owner = owner_of(merchant)
    by_owner = [r for r in rows if r.actor_user_id == owner.id]
    assert all(r.merchant_id == merchant.id and r.ip == "127.0.0.1" and r.user_agent for r in by_owner)
    api_rows = [r for r in rows if r.actor_api_key_id]
    assert {r.action for r in api_rows} == {"payment.created", "refund.requested"}
    assert all(r.actor_label.startswith("API key Checkout server (sk_") for r in api_rows)
    gateway = next(r for r in rows if r.action == "gateway.updated")
    assert gateway.after["credential_fields_changed"] == ["secret_key"]
    failed = [r.after for r in rows if r.action == "signin.failed"]
    assert {"step": "password"} in failed and {"step": "two_factor"} in failed
    dumped = json.dumps([{c.name: str(getattr(r, c.name)) for c in AuditEvent.__table__.columns} for r in rows])
    logged = caplog.text
    for secret in secrets:
        assert secret and secret not in dumped, secret
        assert secret not in logged, secret


def test_the_page_filters_by_person_action_and_date_and_exports_csv(app, signed_in, merchant, factories):
    support = factories.member(merchant, "support", name="Sam Support")
    sam = sign_in(app.test_client(), support)
    paid = _set(factories.payment(merchant, currency="USD", amount=5000), Status.SUCCEEDED)
    signed_in.post("/dashboard/settings/members", data={"csrf_token": token_of(signed_in, "/dashboard/settings"),
                                                        "limit_USD": "50.00"})
    sam.post(f"/dashboard/payments/{paid.public_id}/refund",
             data={"csrf_token": token_of(sam), "amount": "2.00", "confirmed": "yes"})
    def table(**filters):
        page = signed_in.get("/dashboard/audit", query_string=filters).text
        return page[page.index("<tbody"):]

    assert "Requested a refund" in table(person=support.public_id) and "Sam Support" in table()
    assert "Changed merchant settings" not in table(person=support.public_id)
    assert "Changed merchant settings" in table(action="settings.changed")
    assert "Requested a refund" not in table(action="settings.changed")
    assert "Nothing recorded" in signed_in.get("/dashboard/audit", query_string={"to": "2020-01-01"}).text
    today = db.session.scalar(select(AuditEvent.created_at)).date().isoformat()
    assert "Requested a refund" in signed_in.get("/dashboard/audit", query_string={"from": today, "to": today}).text
    r = signed_in.get("/dashboard/audit.csv", query_string={"action": "refund.requested"})
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert r.headers["Content-Type"].startswith("text/csv")
    assert [(row["who"], row["action"], row["target_id"]) for row in rows] == [
        (f"Sam Support <{support.email}>", "refund.requested", paid.public_id)]
    # The payment's timeline names who refunded it.
    detail = signed_in.get(f"/dashboard/payments/{paid.public_id}").text
    assert f"Requested a refund — Sam Support &lt;{support.email}&gt;" in detail


def test_the_timeline_names_who_cancelled(signed_in, merchant, factories):
    payment = factories.payment(merchant)
    signed_in.post(f"/dashboard/payments/{payment.public_id}/cancel", data={"csrf_token": token_of(signed_in)})
    detail = signed_in.get(f"/dashboard/payments/{payment.public_id}").text
    assert f"Cancelled a payment — {owner_of(merchant).display_name} &lt;{merchant.email}&gt;" in detail


def test_rows_are_append_only(signed_in, merchant):
    row = _rows()[-1]
    row.action = "signin.failed"
    try:
        db.session.commit()
    except RuntimeError as exc:
        assert "append-only" in str(exc)
    else:
        raise AssertionError("an audit row was updated")
    finally:
        db.session.rollback()
