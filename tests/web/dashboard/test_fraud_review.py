"""Fraud review: a Midtrans card payment challenged by its fraud detection gets Approve and Deny on the
payment page; the decision goes to the simulator's approve/deny API over the live server, the result comes
back through the status query and the state machine, and the timeline says who decided."""

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent
from tests.gateways.helpers import events, last_attempt, outbox_types
from tests.gateways.test_midtrans import pay
from tests.helpers import reload
from tests.web.dashboard.conftest import owner_of, sign_in, token_of


@pytest.fixture
def challenged(http, factories, run_jobs, client):
    """A Midtrans payment held for review, and the test client signed in as its merchant."""
    payment, _ = pay(http, factories, "challenge")
    run_jobs()
    payment = reload(payment)
    assert (payment.status, payment.needs_review) == ("processing", True)
    return payment, sign_in(client, payment.merchant)


def _decide(client, payment, decision):
    page = f"/dashboard/payments/{payment.public_id}"
    return client.post(f"{page}/review/{decision}", data={"csrf_token": token_of(client, page)},
                       follow_redirects=True)


def test_approve_pays_through_the_status_path_and_is_on_the_timeline(challenged, run_jobs):
    payment, client = challenged
    page = client.get(f"/dashboard/payments/{payment.public_id}").text
    assert "holds this payment for a fraud review" in page
    assert "Approve payment</button>" in page and "Deny payment</button>" in page
    r = _decide(client, payment, "approve")
    assert "Approved: the payment is now succeeded." in r.text
    payment = reload(payment)
    assert (payment.status, payment.needs_review, last_attempt(payment).status) == ("succeeded", False, "succeeded")
    review = events(payment, "review")[-1]
    assert review.message.startswith("Fraud review: Approved at Midtrans: Success, transaction is approved")
    owner = owner_of(payment.merchant)
    assert review.message.endswith(f"[by {owner.label}]")
    [row] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "payment.review_approve")).all()
    assert (row.actor_user_id, row.target_id, row.after) == (owner.id, payment.public_id,
                                                             {"gateway": "midtrans", "accepted": True})
    assert review.data["fraud_status"] == "accept"
    run_jobs()  # then Midtrans' notification of the approval: already applied, nothing more happens
    assert reload(payment).status == "succeeded" and outbox_types(payment).count("payment.succeeded") == 1
    page = client.get(f"/dashboard/payments/{payment.public_id}").text
    assert "holds this payment for a fraud review" not in page and "Fraud review: Approved at Midtrans" in page
    # Decided once: a second decision changes nothing and says why.
    r = _decide(client, payment, "deny")
    assert "Review not decided: this payment is not held for review." in r.text
    assert reload(payment).status == "succeeded"


@pytest.mark.parametrize(("max_attempts", "status"), [(5, "pending"), (1, "failed")])
def test_deny_ends_the_attempt_and_the_payment_follows_the_attempts_rules(app, challenged, run_jobs, monkeypatch,
                                                                         max_attempts, status):
    monkeypatch.setitem(app.config, "CHECKOUT_MAX_ATTEMPTS", max_attempts)
    payment, client = challenged
    r = _decide(client, payment, "deny")
    assert f"Denied: the payment is now {status}." in r.text
    payment = reload(payment)
    attempt = last_attempt(payment)
    assert (payment.status, payment.needs_review) == (status, False)
    assert (attempt.status, attempt.failure_reason) == ("failed", "blocked")
    assert "payment.attempt_failed" in outbox_types(payment)
    assert ("payment.failed" in outbox_types(payment)) is (status == "failed")
    assert events(payment, "review")[-1].message.startswith("Fraud review: Denied at Midtrans")
    assert db.session.scalar(select(AuditEvent.actor_user_id).where(AuditEvent.action == "payment.review_deny")) \
        == owner_of(payment.merchant).id
    run_jobs()
    assert reload(payment).status == status


def test_only_a_payment_held_for_review_can_be_decided(signed_in, merchant, other, factories):
    payment = factories.payment(merchant, currency="IDR", amount=50_000)
    page = signed_in.get(f"/dashboard/payments/{payment.public_id}").text
    assert "Approve payment" not in page
    r = _decide(signed_in, payment, "approve")
    assert "Review not decided: this payment is not held for review." in r.text
    assert reload(payment).status == "pending" and not events(payment, "review")
    token = token_of(signed_in)
    assert signed_in.post(f"/dashboard/payments/{payment.public_id}/review/maybe",
                          data={"csrf_token": token}).status_code == 404
    theirs = factories.payment(other, currency="IDR", amount=50_000)
    assert signed_in.post(f"/dashboard/payments/{theirs.public_id}/review/approve",
                          data={"csrf_token": token}).status_code == 404
    # Without a CSRF token nothing is sent to the gateway.
    assert signed_in.post(f"/dashboard/payments/{payment.public_id}/review/approve").status_code == 400


def test_a_decision_the_gateway_refuses_changes_nothing_and_is_on_the_timeline(challenged):
    from tests.gateways.helpers import adapter_for, take_notifications

    payment, client = challenged
    gateway, info, ctx = adapter_for(payment, "midtrans")
    gateway.review(info, "deny", ctx)  # decided meanwhile in Midtrans' own portal; its notification is late
    take_notifications()
    r = _decide(client, payment, "approve")
    assert ("Review not decided: Midtrans did not take the decision: Merchant cannot modify the status of the "
            "transaction.") in r.text
    payment = reload(payment)
    assert (payment.status, payment.needs_review) == ("processing", True)
    assert events(payment, "review")[-1].message.startswith("Fraud review: Approve refused by Midtrans")
