"""A try that did not work is not the end: a shopper on a phone (390 x 844, headless Chromium) goes back to
the checkout, reads why in plain words, and pays another way, all on one payment."""

from app.extensions import db
from tests.helpers import reload


def choose(page, payment, method):
    page.goto(f"/pay/{payment.checkout_token}")
    page.check(f"input[name=method][value={method}]")
    page.click("button.primary")


def press_at_gateway(page, payment, outcome):
    """On the gateway's sandbox page, press `outcome`; wait until the shopper is back on our result page."""
    page.wait_for_selector(f"button[name=outcome][value={outcome}]")
    page.click(f"button[name=outcome][value={outcome}]")
    page.wait_for_url(f"**/pay/{payment.checkout_token}/result")


def choose_again_from_result(page, method):
    page.click("text=Choose another way to pay")
    page.check(f"input[name=method][value={method}]")
    page.click("button.primary")


def fill_card(page, number):
    page.wait_for_selector("input[name=card_number]")
    page.fill("input[name=card_number]", number)
    page.fill("input[name=exp]", "12/39")
    page.fill("input[name=cvc]", "123")
    page.fill("input[name=name]", "Sari Dewi")
    page.click("button[type=submit]")


def back_on_checkout(page, payment, told, shot):
    page.wait_for_url(f"**/pay/{payment.checkout_token}")
    assert told in page.inner_text("[role=status]")
    assert page.locator("input[name=method]").count() >= 2  # every method is offered again
    page.shot(shot)


def test_a_declined_card_then_a_good_one(page, factories):
    merchant, _ = factories.merchant(name="Toko Sari")
    payment = factories.payment(merchant, amount=2_500, currency="USD")
    db.session.rollback()
    choose(page, payment, "testcard")
    fill_card(page, "4000 0000 0000 0002")
    back_on_checkout(page, payment, "Your payment was declined.", "attempts-declined-then-retry")
    choose(page, payment, "testcard")
    fill_card(page, "4242 4242 4242 4242")
    page.wait_for_selector("text=Payment successful")
    payment = reload(payment)
    assert payment.status == "succeeded" and [a.status for a in payment.attempts] == ["failed", "succeeded"]


def test_three_wrong_codes_then_another_method(page, factories, run_jobs):
    merchant, _ = factories.merchant(name="Cà phê Sài Gòn")
    payment = factories.payment(merchant, amount=150_000, currency="VND")
    db.session.rollback()
    page.goto(f"/pay/{payment.checkout_token}?lang=en")
    choose(page, payment, "testcard")
    fill_card(page, "4444 4444 4444 4444")
    for _ in range(3):
        page.wait_for_selector("input[name=otp]")
        page.fill("input[name=otp]", "000000")
        page.click("button[type=submit]")
    back_on_checkout(page, payment, "The one-time code was wrong.", "attempts-wrong-codes")
    choose(page, payment, "vnpay")
    press_at_gateway(page, payment, "success")
    run_jobs()  # VNPay's IPN
    page.reload()
    page.wait_for_selector("text=Payment successful")
    assert [(a.gateway, a.status) for a in reload(payment).attempts] == [("testcard", "failed"),
                                                                          ("vnpay", "succeeded")]


def test_a_midtrans_challenge_then_the_card_after_midtrans_cancels_it(page, factories, run_jobs):
    merchant, _ = factories.merchant(name="Kain Nusantara")
    payment = factories.payment(merchant, amount=125_000, currency="IDR")
    db.session.rollback()
    page.goto(f"/pay/{payment.checkout_token}?lang=en")
    choose(page, payment, "midtrans")
    press_at_gateway(page, payment, "challenge")
    run_jobs()  # Midtrans' notification: the card payment is held for fraud review
    payment = reload(payment)
    assert payment.needs_review and payment.attempts[0].status == "processing"
    page.reload()
    page.shot("attempts-midtrans-challenge-waiting")
    choose_again_from_result(page, "testcard")
    # Midtrans can cancel the held payment, so it is cancelled there first and the card may be used.
    fill_card(page, "4242 4242 4242 4242")
    page.wait_for_selector("text=Payment successful")
    payment = reload(payment)
    assert [(a.gateway, a.status) for a in payment.attempts] == [("midtrans", "cancelled"), ("testcard", "succeeded")]
    assert not payment.double_payment


def test_a_try_still_being_confirmed_blocks_another_with_an_explanation(page, factories, run_jobs):
    """Stripe's delayed methods: the session is complete and the bank has not answered; Stripe cannot end it,
    so another method is refused until the bank answers."""
    merchant, _ = factories.merchant(name="Shop BD")
    payment = factories.payment(merchant, amount=125_050, currency="BDT")
    db.session.rollback()
    page.goto(f"/pay/{payment.checkout_token}?lang=en")
    choose(page, payment, "stripe")
    press_at_gateway(page, payment, "delayed")
    run_jobs()  # checkout.session.completed, unpaid: waiting for the bank
    choose_again_from_result(page, "testcard")
    page.wait_for_selector("[role=alert]")
    assert "still being confirmed" in page.inner_text("[role=alert]")
    page.shot("attempts-still-confirming")
    assert [a.status for a in reload(payment).attempts] == ["processing"]


def test_a_vnpay_cancel_then_a_vnpay_success(page, factories, run_jobs):
    merchant, _ = factories.merchant(name="Phở Hà Nội")
    payment = factories.payment(merchant, amount=150_000, currency="VND")
    db.session.rollback()
    page.goto(f"/pay/{payment.checkout_token}?lang=vi")
    choose(page, payment, "vnpay")
    press_at_gateway(page, payment, "cancel")
    run_jobs()  # VNPay's IPN says 24: cancelled by the shopper
    page.reload()  # the result page sends the shopper back to choose again, in Vietnamese
    back_on_checkout(page, payment, "Thanh toán đã bị hủy", "attempts-vnpay-cancel-vi")
    choose(page, payment, "vnpay")
    press_at_gateway(page, payment, "success")
    run_jobs()
    page.reload()
    page.shot("attempts-vnpay-success-vi")
    assert [(a.gateway, a.status) for a in reload(payment).attempts] == [("vnpay", "cancelled"),
                                                                          ("vnpay", "succeeded")]
