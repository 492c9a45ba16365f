"""The dashboard on a phone, by keyboard: skip link, sign-in, every page fits a 390 px screen.
Screenshots go to test-artifacts/screenshots/dashboard-phone-*.png."""

import re

from app.extensions import db
from tests.web.dashboard.conftest import PASSWORD


def test_dashboard_on_a_phone_by_keyboard(page, factories):
    merchant, _ = factories.merchant(name="Toko Budi")
    for i in range(3):
        factories.payment(merchant, reference=f"ORD-{i}", amount=120_000 + i, customer={"email": f"b{i}@x.example"})
    db.session.rollback()
    page.goto("/dashboard/login")
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.focus("input[name=email]")
    page.keyboard.type(merchant.email)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Signed in as")
    page.shot("dashboard-phone-overview")
    page.goto("/dashboard/payments")
    # Phone layout: table rows become labelled cards, nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator("td[data-label=Status]").first.is_visible()
    page.shot("dashboard-phone-payments")
    page.locator("table.payments a").first.click()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.shot("dashboard-phone-detail")
    for path, name in [("/dashboard/settings", "settings"), ("/dashboard/webhooks", "webhooks"),
                       ("/dashboard/payments/new", "new-link"), ("/dashboard/payments/pay_nope", "404")]:
        page.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        page.shot(f"dashboard-phone-{name}")
    assert "Not found" in page.locator("h1").inner_text()
    assert re.search(r"Back to the dashboard", page.content())


def test_overview_with_figures_fits_a_phone(page, factories):
    """Regression: the overview (per-currency figures, the gateways' table and chart) scrolled sideways on a
    390 px phone. The document is never wider than the viewport."""
    from app.state_machine import Status
    from tests.web.dashboard.test_payments import _set

    merchant, _ = factories.merchant(name="Toko Budi")
    for i, (currency, amount, gateway) in enumerate([("VND", 125_000_000, "vnpay"), ("IDR", 98_750_000, "midtrans"),
                                                    ("BDT", 15_000_000, "sslcommerz"), ("USD", 123_456, "stripe")]):
        _set(factories.payment(merchant, reference=f"ORD-{i}", currency=currency, amount=amount),
             Status.SUCCEEDED, gateway=gateway)
        factories.payment(merchant, reference=f"OPEN-{i}", currency=currency, amount=amount)
    db.session.rollback()
    page.goto("/dashboard/login")
    page.fill("input[name=email]", merchant.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Signed in as")
    assert page.locator("#gw-rate").is_visible()
    assert "SSLCommerz (cards, mobile banking)" in page.content()
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    page.shot("dashboard-phone-overview-figures")
    assert widths[0] <= widths[1] == 390, widths
