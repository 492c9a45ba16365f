"""A shopper pays through each of VNPay, Midtrans and Khalti's sandbox pages in a real (headless) browser."""

import pytest

from app.extensions import db
from tests.helpers import reload

CASES = [("vnpay", "VND", 150_000, "processing"),  # VNPay's return is display only: the IPN decides
         ("midtrans", "IDR", 125_000, "processing"),  # so is Midtrans' finish redirect
         ("khalti", "NPR", 150_000, "succeeded")]  # Khalti's return is looked up at once


@pytest.mark.parametrize(("code", "currency", "amount", "after_return"), CASES)
def test_shopper_pays_on_the_gateway_page(page, factories, run_jobs, code, currency, amount, after_return):
    merchant, _ = factories.merchant(name="Toko Sari")
    payment = factories.payment(merchant, amount=amount, currency=currency)
    db.session.rollback()
    page.goto(f"/pay/{payment.checkout_token}")
    page.check(f"input[name=method][value={code}]")
    page.click("button.primary")
    page.wait_for_selector("button[name=outcome][value=success]")
    page.shot(f"{code}-sandbox-page")
    page.click("button[name=outcome][value=success]")
    page.wait_for_url(f"**/pay/{payment.checkout_token}/result")
    page.shot(f"{code}-result-after-return")
    assert reload(payment).status == after_return
    run_jobs()
    assert reload(payment).status == "succeeded"
    page.reload()
    page.wait_for_selector("text=Payment successful")
