"""The command line: `merchants create` and `seed-demo`."""

import json
import re
from datetime import timedelta

from sqlalchemy import func, select

from app.cli import DEMO_EMAIL, DEMO_PASSWORD, DEMO_SUPPORT_EMAIL, DEMO_SUPPORT_PASSWORD
from app.extensions import db
from app.gateways.base import CallbackResult, Outcome
from app.models import ApiKey, Merchant, Payment, User
from app.models.base import utcnow
from app.services import accounts
from app.services.callbacks import apply_result
from app.services.demo import DEMO_ORDERS
from app.state_machine import open_attempt


def test_merchants_create_prints_one_json_line_and_the_key_works(app, http):
    result = app.test_cli_runner().invoke(args=[
        "merchants", "create", "--name", "Kedai Roti", "--email", "Owner@Roti.example", "--password",
        "long-enough-password", "--webhook-url", "https://roti.example/hooks"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert set(data) == {"id", "api_key", "webhook_secret"}
    assert data["id"].startswith("mer_") and data["api_key"].startswith("sk_")
    assert data["webhook_secret"].startswith("whsec_")

    db.session.rollback()
    merchant = db.session.scalar(select(Merchant).where(Merchant.public_id == data["id"]))
    assert (merchant.name, merchant.email, merchant.webhook_url) == ("Kedai Roti", "owner@roti.example",
                                                                     "https://roti.example/hooks")
    # The login is the merchant's owner: a user with the same email.
    owner = accounts.user_by_email("owner@roti.example")
    assert owner.check_password("long-enough-password")
    assert [(m.merchant_id, m.role) for m in owner.memberships] == [(merchant.id, "owner")]
    # Secrets at rest: the key only as a hash, the webhook secret only encrypted.
    key_row = db.session.scalar(select(ApiKey).where(ApiKey.merchant_id == merchant.id))
    assert data["api_key"] not in (key_row.key_hash, key_row.prefix)
    assert data["webhook_secret"] not in merchant.first_webhook_endpoint.secret_enc  # encrypted at rest
    assert merchant.webhook_secret == data["webhook_secret"]

    r = http.post("/api/v1/payments", headers={"Authorization": f"Bearer {data['api_key']}"},
                  json={"amount": 50_000, "currency": "BDT", "reference": "R-1", "return_url": "https://roti.example/r"})
    assert r.status_code == 201, r.text
    assert http.get(r.json()["checkout_url"]).status_code == 200


def test_merchants_create_refuses_bad_input(app):
    runner = app.test_cli_runner()
    ok = ["merchants", "create", "--name", "A", "--email", "a@shop.example", "--password", "long-enough-password"]
    assert runner.invoke(args=ok).exit_code == 0
    again = runner.invoke(args=ok)
    assert again.exit_code != 0 and "exists" in again.output
    short = runner.invoke(args=["merchants", "create", "--name", "B", "--email", "b@shop.example", "--password", "x"])
    assert short.exit_code != 0 and "8 characters" in short.output
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Merchant)) == 1
    listed = runner.invoke(args=["merchants", "list"])
    assert "a@shop.example" in listed.output


def test_seed_demo_is_idempotent_and_its_checkout_link_works(app, http):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    assert DEMO_EMAIL in first.output and "API key:    sk_" in first.output
    # An owner and one support member, both printed with their passwords.
    assert f"{DEMO_EMAIL} / {DEMO_PASSWORD}" in first.output
    assert f"{DEMO_SUPPORT_EMAIL} / {DEMO_SUPPORT_PASSWORD}" in first.output
    link = next(line.split(": ", 1)[1] for line in first.output.splitlines() if "Pay a demo order" in line)

    db.session.rollback()
    statuses = sorted(p.status for p in db.session.scalars(select(Payment)))
    assert statuses == sorted((final or "pending") for *_, final in DEMO_ORDERS)
    assert {"succeeded", "failed", "expired", "cancelled", "pending"} <= set(statuses)

    second = runner.invoke(args=["seed-demo"])
    assert second.exit_code == 0, second.output
    assert "API key" not in second.output  # shown once only
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Merchant)) == 1
    assert db.session.scalar(select(func.count()).select_from(Payment)) == len(DEMO_ORDERS)
    roles = {u.email: [m.role for m in u.memberships] for u in db.session.scalars(select(User))}
    assert roles == {DEMO_EMAIL: ["owner"], DEMO_SUPPORT_EMAIL: ["support"]}
    assert accounts.user_by_email(DEMO_SUPPORT_EMAIL).check_password(DEMO_SUPPORT_PASSWORD)

    page = http.get(link)
    assert page.status_code == 200
    assert "Demo Shop" in page.text and "Welcome discount" in page.text
    assert http.get("/dashboard/login").status_code == 200


def _demo_links(runner):
    seeded = runner.invoke(args=["seed-demo"])
    assert seeded.exit_code == 0, seeded.output
    return dict(re.findall(r"Pay a demo order \((\w{3})\): (\S+)", seeded.output))


def test_demo_links_stay_valid_across_seeds_and_are_replaced_once_used(app, http):
    runner = app.test_cli_runner()
    first = _demo_links(runner)
    assert sorted(first) == ["BDT", "IDR", "NPR", "USD", "VND"]  # one open order per currency
    assert _demo_links(runner) == first  # a restart prints the same links

    db.session.rollback()
    by_currency = {p.currency: p for p in db.session.scalars(select(Payment).where(Payment.status == "pending"))}
    paid, tried, expiring = by_currency["VND"], by_currency["USD"], by_currency["IDR"]
    attempt = open_attempt(paid, "testcard")
    apply_result(paid, attempt, CallbackResult(Outcome.SUCCEEDED, amount=paid.amount, currency="VND"), source="test")
    open_attempt(tried, "testcard")  # a shopper chose a method and left: not a fresh link any more
    expiring.expires_at = utcnow() + timedelta(hours=1)
    db.session.commit()

    second = _demo_links(runner)
    assert {c for c in first if first[c] != second[c]} == {"VND", "USD", "IDR"}
    for currency, link in second.items():
        page = http.get(link)
        assert page.status_code == 200 and "Welcome discount" in page.text, currency
    db.session.rollback()
    references = set(db.session.scalars(select(Payment.reference).where(Payment.currency.in_(["VND", "USD"]))))
    assert {"DEMO-1001", "DEMO-1001-2", "DEMO-1006", "DEMO-1006-2"} <= references
    assert _demo_links(runner) == second
