import re


def test_testcard_flow(http, factories):
    merchant, key = factories.merchant()
    r = http.post("/api/v1/payments", json={"amount": 5000, "currency": "USD", "reference": "A1",
                                            "return_url": "https://shop.example/r"},
                  headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 201, r.text
    url = r.json()["checkout_url"]
    page = http.get(url)
    assert page.status_code == 200
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
    r = http.post(url, data={"csrf_token": token, "method": "testcard"}, allow_redirects=False)
    assert r.status_code == 303, r.text
    card_url = r.headers["Location"]
    r = http.post(card_url, data={"card_number": "4444 4444 4444 4444", "exp": "12/39", "cvc": "123",
                                  "name": "A B"}, allow_redirects=False)
    assert r.status_code == 303, r.text
    otp_url = http.base_url + r.headers["Location"] if r.headers["Location"].startswith("/") else r.headers["Location"]
    r = http.post(otp_url, data={"otp": "123456"}, allow_redirects=True)
    assert r.status_code == 200, r.text
    assert "Payment successful" in r.text
