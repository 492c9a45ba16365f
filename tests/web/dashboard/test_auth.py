"""Sign-in, sign-out, change password, rate limits, cookies and headers."""

import logging
import re

import pytest

from app import create_app
from app.extensions import limiter
from tests.helpers import csrf_token, reload
from tests.web.dashboard.conftest import PASSWORD, owner_of, token_of


def _login(client, email, password, next_=None):
    token = csrf_token(client.get("/dashboard/login").text)
    return client.post("/dashboard/login" + (f"?next={next_}" if next_ else ""),
                       data={"csrf_token": token, "email": email, "password": password})


def test_sign_in_and_out(client, merchant):
    assert client.get("/dashboard/").status_code == 302
    r = _login(client, merchant.email.upper(), PASSWORD, next_="/dashboard/refunds")
    assert r.status_code == 302 and r.headers["Location"] == "/dashboard/refunds"
    page = client.get("/dashboard/")
    assert "Signed in as" in page.text and "Warung Sari" in page.text
    r = client.post("/dashboard/logout", data={"csrf_token": csrf_token(page.text)}, follow_redirects=True)
    assert "Signed out." in r.text
    assert client.get("/dashboard/").status_code == 302


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example"])
def test_next_never_leaves_the_site(client, merchant, target):
    r = _login(client, merchant.email, PASSWORD, next_=target)
    assert r.headers["Location"] == "/dashboard/"


def test_wrong_password_is_refused(client, merchant):
    r = _login(client, merchant.email, "not-the-password")
    assert r.status_code == 401
    assert "Wrong email or password." in r.text
    assert _login(client, "nobody@example.test", PASSWORD).status_code == 401
    assert client.get("/dashboard/").status_code == 302


def test_change_password(signed_in, merchant, client):
    url = "/dashboard/account/security/password"
    token = token_of(signed_in, "/dashboard/account/security")
    r = signed_in.post(url, data={"csrf_token": token, "current_password": "wrong-one",
                                  "new_password": "brand-new-pass", "confirm": "brand-new-pass"})
    assert r.status_code == 422 and "the current password is wrong" in r.text
    r = signed_in.post(url, data={"csrf_token": token, "current_password": PASSWORD,
                                  "new_password": "brand-new-pass", "confirm": "other-new-pass"})
    assert r.status_code == 422 and "The two new passwords differ." in r.text
    assert reload(owner_of(merchant)).check_password(PASSWORD)
    r = signed_in.post(url, data={"csrf_token": token, "current_password": PASSWORD,
                                  "new_password": "brand-new-pass", "confirm": "brand-new-pass"},
                       follow_redirects=True)
    assert "Your password was changed." in r.text
    assert reload(owner_of(merchant)).check_password("brand-new-pass")
    signed_in.post("/dashboard/logout", data={"csrf_token": token})
    assert _login(client, merchant.email, PASSWORD).status_code == 401
    assert _login(client, merchant.email, "brand-new-pass").status_code == 302


def test_cookies_and_security_headers(client, merchant):
    r = _login(client, merchant.email, PASSWORD)
    cookie = r.headers["Set-Cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    page = client.get("/dashboard/payments")
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "<script>" not in page.text and " style=" not in page.text  # the CSP allows neither inline


def test_production_cookies_are_secure():
    from app.config import Production

    assert Production.SESSION_COOKIE_SECURE and Production.REMEMBER_COOKIE_SECURE


def test_failed_sign_ins_are_limited_per_account(limited_client, merchant, factories):
    for _ in range(5):
        assert _login(limited_client, merchant.email, "guess").status_code == 401
    # Sixth failure in the window: refused before the password is even checked, even a correct one.
    locked = _login(limited_client, merchant.email, PASSWORD)
    assert locked.status_code == 429
    # In plain words, with when to try again (regression: the page said "5 per 15 minute").
    assert "per 15 minute" not in locked.text
    assert re.search(r"Too many attempts\. Try again in 1[45] minutes\.", locked.text), locked.text[-1500:]
    assert 840 <= int(locked.headers["Retry-After"]) <= 900
    assert 'name="email"' in locked.text  # still the sign-in page, with the form
    # Another account from the same address is still allowed.
    second, _ = factories.merchant()
    assert _login(limited_client, second.email, PASSWORD).status_code == 302


def test_failed_sign_ins_are_limited_per_address(limited_client, factories):
    merchants = [factories.merchant()[0] for _ in range(5)]
    for m in merchants:
        for _ in range(4):
            assert _login(limited_client, m.email, "guess").status_code == 401
    assert _login(limited_client, merchants[0].email.replace("shop", "x"), "guess").status_code == 429


@pytest.fixture
def client_with_redis_down(app, monkeypatch):
    """A second app whose rate-limit storage is a Redis nobody answers on (port 1)."""
    limited = create_app({"ENV_NAME": "testing", "SECRET_KEY": app.config["SECRET_KEY"],
                          "DATABASE_URL": app.config["DATABASE_URL"], "REDIS_URL": app.config["REDIS_URL"],
                          "RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:1/0"},
                         instance_path=app.instance_path)
    limited.test_client_class = app.test_client_class
    # Alembic's logging setup in the test session (fileConfig) disabled the loggers that existed then.
    monkeypatch.setattr(logging.getLogger("flask-limiter"), "disabled", False)
    try:
        yield limited.test_client()
    finally:
        limiter.enabled = False  # the limiter is one global object: back to the test app's setting
        limiter._storage_dead = False


def test_sign_in_works_while_redis_is_down_and_failures_are_still_limited(client_with_redis_down, merchant,
                                                                          caplog):
    client = client_with_redis_down
    assert _login(client, merchant.email, PASSWORD).status_code == 302
    assert any(r.levelname == "WARNING" and "falling back to in-memory storage" in r.getMessage()
               for r in caplog.records), [(r.name, r.levelname, r.getMessage()[:200]) for r in caplog.records]
    client.post("/dashboard/logout", data={"csrf_token": token_of(client)})
    # Counted in this process meanwhile: the sixth failure for the account is still refused.
    for _ in range(5):
        assert _login(client, merchant.email, "guess").status_code == 401
    assert _login(client, merchant.email, PASSWORD).status_code == 429
