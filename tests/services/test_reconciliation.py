from app.extensions import get_queue
from app.services import reconciliation
from tests.helpers import reload
from tests.payflow import open_card_page, submit_card


def paid_without_notification(factories, http, number="4242 4242 4242 4242"):
    """Pay on the simulator; the shopper never comes back and the acquirer's notification is lost."""
    merchant, _ = factories.merchant()
    payment = factories.payment(merchant, currency="USD", amount=5000)
    submit_card(http, open_card_page(http, payment), number)
    dropped = get_queue("sandbox").count
    get_queue("sandbox").empty()
    assert dropped == 1
    assert reload(payment).status == "processing"
    return payment


def test_reconciliation_settles_a_payment_whose_notification_never_came(factories, http, run_jobs):
    payment = paid_without_notification(factories, http)
    assert reconciliation.reconcile_stuck() == 0  # processing for less than RECONCILE_AFTER_SECONDS
    assert reconciliation.reconcile_stuck(older_than_seconds=0) == 1
    payment = reload(payment)
    assert payment.status == "succeeded" and payment.card_summary == "Visa •••• 4242"
    change = payment.events.filter_by(kind="status_change", to_status="succeeded").one()
    assert "[reconciliation]" in change.message
    assert "Status query: testcard reports succeeded" in payment.events.filter_by(kind="gateway_call").all()[-1].message
    assert reconciliation.reconcile_stuck(older_than_seconds=0) == 0
    assert reconciliation.reconcile_payment(payment) is False  # asking again changes nothing


def test_reconciliation_applies_a_decline_and_leaves_open_sessions_alone(factories, http):
    declined = paid_without_notification(factories, http, "4000 0000 0000 0002")
    merchant, _ = factories.merchant()
    browsing = factories.payment(merchant, currency="USD", amount=700)
    open_card_page(http, browsing)  # still on the card page
    assert reconciliation.reconcile_stuck(older_than_seconds=0) == 1
    declined = reload(declined)
    assert declined.status == "pending"  # open for another try
    assert (declined.attempts[0].status, declined.attempts[0].failure_code) == ("failed", "card_declined")
    assert reload(browsing).status == "processing" and browsing.attempts[0].status == "started"


def test_the_periodic_job_reconciles(app, factories, http, monkeypatch):
    from app.jobs.schedule import run_periodic

    payment = paid_without_notification(factories, http)
    monkeypatch.setitem(app.config, "RECONCILE_AFTER_SECONDS", 0)
    assert run_periodic("reconciliation") == 1
    assert reload(payment).status == "succeeded"
