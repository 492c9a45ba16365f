"""Two-factor sign-in and sessions: set up with the QR page, a valid code signs in, a code is never accepted
twice, wrong codes are rate-limited like passwords, each recovery code works once, a merchant can require
two-factor of every member, and every session ends when the password or two-factor changes."""

import re

import pyotp
from sqlalchemy import select, update

from app.extensions import db
from app.models import User, UserSession
from tests.helpers import csrf_token, reload
from tests.web.dashboard.conftest import PASSWORD, owner_of, sign_in, token_of


def _password_step(client, email, password=PASSWORD):
    token = csrf_token(client.get("/dashboard/login").text)
    return client.post("/dashboard/login", data={"csrf_token": token, "email": email, "password": password})


def _code_step(client, code):
    token = csrf_token(client.get("/dashboard/login/two-factor").text)
    return client.post("/dashboard/login/two-factor", data={"csrf_token": token, "code": code})


def _enable(client):
    """Turn two-factor on through the page; return (secret, recovery codes)."""
    page = client.get("/dashboard/account/security?setup=1")
    assert "<svg" in page.text and "QR code" in page.text  # drawn on the server, inline
    secret = re.search(r'id="totp-key">([A-Z2-7]+)<', page.text).group(1)
    r = client.post("/dashboard/account/security/two-factor/enable",
                    data={"csrf_token": csrf_token(page.text), "code": pyotp.TOTP(secret).now()})
    assert r.status_code == 200 and "Two-factor sign-in is on." in r.text
    codes = re.findall(r"<li>([0-9a-f]{5}-[0-9a-f]{5})</li>", r.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    return secret, codes


def _step_back(user):
    """Let the next code be a fresh one: as if the last accepted code was from an earlier time step."""
    db.session.execute(update(User).where(User.id == user.id).values(totp_last_counter=User.totp_last_counter - 5))
    db.session.commit()


def test_setup_then_sign_in_with_a_code_which_works_once(app, signed_in, merchant):
    secret, _ = _enable(signed_in)
    owner = reload(owner_of(merchant))
    assert owner.two_factor_enabled and secret not in (owner.totp_secret_enc or "")  # encrypted at rest
    _step_back(owner)
    browser = app.test_client()
    r = _password_step(browser, merchant.email)
    assert r.status_code == 302 and r.headers["Location"].startswith("/dashboard/login/two-factor")
    assert browser.get("/dashboard/").status_code == 302  # the password alone does not sign in
    code = pyotp.TOTP(secret).now()
    assert _code_step(browser, code).status_code == 302
    assert browser.get("/dashboard/").status_code == 200
    # The same code again, within its window, from another browser: refused.
    thief = app.test_client()
    _password_step(thief, merchant.email)
    r = _code_step(thief, code)
    assert r.status_code == 401 and "used already" in r.text
    assert thief.get("/dashboard/").status_code == 302


def test_a_wrong_code_is_refused_and_limited_like_the_password(limited_client, merchant, factories):
    user = factories.member(merchant, "admin")
    with_2fa = sign_in(limited_client, user)
    secret, _ = _enable(with_2fa)
    with_2fa.post("/dashboard/logout", data={"csrf_token": token_of(with_2fa)})
    _step_back(reload(user))
    _password_step(limited_client, user.email)
    for _ in range(5):
        assert _code_step(limited_client, "000000").status_code == 401
    # Sixth try in the window: refused before the code is checked, even a right one.
    assert _code_step(limited_client, pyotp.TOTP(secret).now()).status_code == 429


def test_each_recovery_code_works_once(app, signed_in, merchant):
    _, codes = _enable(signed_in)
    browser = app.test_client()
    _password_step(browser, merchant.email)
    assert _code_step(browser, codes[3].upper()).status_code == 302
    browser.post("/dashboard/logout", data={"csrf_token": token_of(browser)})
    _password_step(browser, merchant.email)
    assert _code_step(browser, codes[3]).status_code == 401
    assert _code_step(browser, codes[4]).status_code == 302
    assert "8 unused recovery codes left" in browser.get("/dashboard/account/security").text


def test_a_merchant_can_require_two_factor_of_every_member(app, signed_in, merchant, factories):
    signed_in.post("/dashboard/settings/members", data={"csrf_token": token_of(signed_in, "/dashboard/settings"),
                                                        "require_two_factor": "y"})
    assert reload(merchant).require_two_factor
    member = sign_in(app.test_client(), factories.member(merchant, "support"))
    r = member.get("/dashboard/payments")
    assert r.status_code == 302 and r.headers["Location"] == "/dashboard/account/security"
    assert "requires two-factor sign-in" in member.get("/dashboard/account/security").text
    _enable(member)
    assert member.get("/dashboard/payments").status_code == 200


def _sessions(user):
    db.session.rollback()
    return db.session.scalars(select(UserSession).where(UserSession.user_id == user.id,
                                                        UserSession.ended_at.is_(None))).all()


def test_sessions_list_and_sign_out_of_the_others(app, signed_in, merchant):
    phone = sign_in(app.test_client(), merchant)
    page = signed_in.get("/dashboard/account/security").text
    assert page.count("Signed in on ") == 2 and "this browser" in page
    r = signed_in.post("/dashboard/account/security/sessions/end-others", data={"csrf_token": csrf_token(page)},
                       follow_redirects=True)
    assert "Signed out 1 other session." in r.text
    assert phone.get("/dashboard/").status_code == 302
    assert signed_in.get("/dashboard/").status_code == 200


def test_every_session_ends_when_the_password_changes(app, signed_in, merchant):
    laptop = sign_in(app.test_client(), merchant)
    r = signed_in.post("/dashboard/account/security/password", data={
        "csrf_token": token_of(signed_in, "/dashboard/account/security"), "current_password": PASSWORD,
        "new_password": "brand-new-pass", "confirm": "brand-new-pass"}, follow_redirects=True)
    assert "Every other session was signed out." in r.text
    assert laptop.get("/dashboard/").status_code == 302
    assert signed_in.get("/dashboard/").status_code == 200  # this browser continues, on a fresh session
    assert len(_sessions(owner_of(merchant))) == 1


def test_every_session_ends_when_two_factor_changes(app, signed_in, merchant):
    laptop = sign_in(app.test_client(), merchant)
    _enable(signed_in)
    assert laptop.get("/dashboard/").status_code == 302
    assert signed_in.get("/dashboard/").status_code == 200
    r = signed_in.post("/dashboard/account/security/two-factor/disable", data={
        "csrf_token": token_of(signed_in, "/dashboard/account/security"), "password": "wrong"})
    assert r.status_code == 422 and "the password is wrong" in r.text
    r = signed_in.post("/dashboard/account/security/two-factor/disable", data={
        "csrf_token": token_of(signed_in, "/dashboard/account/security"), "password": PASSWORD},
        follow_redirects=True)
    assert "Two-factor sign-in is off." in r.text and not reload(owner_of(merchant)).two_factor_enabled
    assert len(_sessions(owner_of(merchant))) == 1
