"""Paying a payment through the real checkout and the test acquirer's simulator, over HTTP."""

from urllib.parse import urljoin

from tests.helpers import csrf_token

PAYS = "4242 4242 4242 4242"
REFUND_DECLINED = "4000 0000 0000 0341"


def open_card_page(http, payment):
    """Choose the test acquirer on our checkout; return the simulator's card page URL."""
    url = f"/pay/{payment.checkout_token}"
    page = http.get(url)
    assert page.status_code == 200, page.text
    r = http.post(url, data={"csrf_token": csrf_token(page.text), "method": "testcard"}, allow_redirects=False)
    assert r.status_code == 303, r.text
    return r.headers["Location"]


def submit_card(http, card_url, number=PAYS):
    """Pay on the simulator's card page; return the URL the shopper's browser is sent back to (not followed)."""
    r = http.post(card_url, data={"card_number": number, "exp": "12/39", "cvc": "123", "name": "A Shopper"},
                  allow_redirects=False)
    assert r.status_code == 303, r.text
    return urljoin(card_url, r.headers["Location"])


def pay(http, payment, number=PAYS):
    """Pay and come back to our return URL (which asks the acquirer and applies the success)."""
    back = submit_card(http, open_card_page(http, payment), number)
    r = http.get(back)
    assert r.status_code == 200, r.text
    return r
