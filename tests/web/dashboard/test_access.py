"""Every dashboard route: anonymous → sign-in; another merchant's id → 404; POST without or with a wrong CSRF
token → refused with nothing changed."""

import pytest

from app.extensions import db
from app.services.outbox import emit
from tests.helpers import reload
from tests.web.dashboard.conftest import sign_in, token_of
from tests.web.dashboard.routes import ROUTES
from tests.web.dashboard.routes import route_ids as _ids
from tests.web.dashboard.routes import snapshot as _snapshot

OWNED = [r for r in ROUTES if any(k in r[1] for k in ("{payment}", "{event}", "{key}", "{refund}", "{attempt}",
                                                      "{member}", "{invitation}", "{endpoint}"))]
POSTS = [r for r in ROUTES if r[0] == "POST"]


@pytest.mark.parametrize("method,path", ROUTES)
def test_anonymous_is_sent_to_sign_in(client, merchant, factories, method, path):
    ids = _ids(merchant, factories)
    # Anonymous POSTs are refused earlier, by the CSRF check; with a token they meet the login wall.
    client.get("/dashboard/login")
    with client.session_transaction() as session:
        assert "csrf_token" in session
    token = token_of(client, "/dashboard/login")
    r = client.open(path.format(**ids), method=method, data={"csrf_token": token} if method == "POST" else None)
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/dashboard/login?next=")


@pytest.mark.parametrize("method,path", OWNED)
def test_other_merchants_ids_are_404(client, merchant, other, factories, method, path):
    ids = _ids(other, factories)
    before = _snapshot(other.id)
    sign_in(client, merchant)
    data = {"csrf_token": token_of(client), "amount": "1", "confirmed": "yes", "name": "x", "role": "admin"}
    r = client.open(path.format(**ids), method=method, data=data if method == "POST" else None)
    assert r.status_code == 404
    assert _snapshot(other.id) == before


@pytest.mark.parametrize("method,path", POSTS)
@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_posts_without_a_valid_csrf_token_change_nothing(client, merchant, factories, method, path, token):
    ids = _ids(merchant, factories)
    sign_in(client, merchant)
    before = _snapshot(merchant.id)
    data = {"amount": "1.00", "reason": "x", "confirmed": "yes", "name": "Evil key", "url": "https://evil.example/h",
            "current_password": "correct-horse-battery", "new_password": "new-password-123",
            "confirm": "new-password-123", "currency": "USD", "reference": "CSRF", "return_url": "https://a.example/",
            "expires_in": "3600", "testcard-enabled": "", "testcard-mode": "live"}
    if token:
        data["csrf_token"] = token
    r = client.open(path.format(**ids), method=method, data=data)
    assert r.status_code == 400
    assert "form expired" in r.text
    assert _snapshot(merchant.id) == before
    # Still signed in: a forged sign-out did nothing either.
    assert client.get("/dashboard/").status_code == 200


def test_lists_show_only_the_merchants_own_rows(signed_in, merchant, other, factories):
    mine = factories.payment(merchant, reference="MINE-1")
    theirs = factories.payment(other, reference="THEIRS-1", customer={"email": "x@shop.example"})
    emit("payment.pending", other.id, {"id": theirs.public_id}, payment_id=theirs.id)
    db.session.commit()
    for path in ["/dashboard/payments", "/dashboard/payments.csv", "/dashboard/webhooks", "/dashboard/refunds"]:
        text = signed_in.get(path).text
        assert "THEIRS-1" not in text and theirs.public_id not in text, path
    for q in ["THEIRS-1", theirs.public_id, "x@shop.example"]:
        assert "No payments match these filters." in signed_in.get("/dashboard/payments", query_string={"q": q}).text
        assert signed_in.get("/dashboard/payments.csv", query_string={"q": q}).text.count("\n") == 1  # header only
    assert "MINE-1" in signed_in.get("/dashboard/payments").text
    reload(mine)
