"""A refund whose outcome we do not know, in a real (headless) browser: the merchant finds it under "Needs
attention", opens the payment, and, having seen the refund at the gateway, marks it as made after a
confirmation step. Screenshots go to test-artifacts/screenshots/refund-attention-*.png."""

from app.services import refunds
from tests.browser.test_dashboard_day import sign_in
from tests.helpers import reload
from tests.payflow import pay


def test_a_refund_that_needs_attention_is_marked_as_made(app, desktop_page, factories, http, run_jobs, monkeypatch):
    merchant, _ = factories.merchant(name="Toko Rina")
    payment = factories.payment(merchant, currency="USD", amount=4000, reference="INV-77")
    pay(http, payment)
    # The acquirer cannot be reached and no more automatic attempts are allowed: the refund waits for a person.
    monkeypatch.setitem(app.config, "REFUND_MAX_ATTEMPTS", 1)
    monkeypatch.setitem(app.config, "GATEWAY_BASE_URLS", {"testcard": "http://127.0.0.1:9"})
    refund = refunds.request_refund(payment, 1500, reason="Damaged in transit", source="test")
    run_jobs()
    assert reload(refund).needs_attention

    m = desktop_page
    sign_in(m, merchant)
    m.click("nav >> text=Refunds")
    m.click("text=Needs attention (1)")
    m.wait_for_selector("text=$15.00")
    assert "needs attention" in m.locator("table").inner_text()
    m.shot("refund-attention-list")

    m.goto(f"/dashboard/payments/{payment.public_id}")
    m.wait_for_selector("text=A refund below waits for you")
    m.shot("refund-attention-payment")
    m.click("button:has-text('Mark as made…')")
    m.wait_for_selector("h1:has-text('Mark the refund of $15.00 as made?')")
    m.shot("refund-attention-confirm")
    m.click("button:has-text('Mark as made')")
    m.wait_for_selector(f"text=Refund {refund.public_id} marked as made by the gateway.")
    assert "partially refunded" in m.locator("h1").inner_text()
    assert "A refund below waits for you" not in m.content()
    assert (reload(refund).status, reload(payment).amount_refunded) == ("succeeded", 1500)
