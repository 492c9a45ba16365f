"""The team page: invitations by email (signed, single use, 72 hours; a new account or an existing one; never
for another user), changing roles and removing members (the last owner stays; an admin cannot touch an owner),
and the support refund limit."""

import email
import glob
import os
import re
from datetime import timedelta

from sqlalchemy import select, update

from app.extensions import db
from app.models import Invitation, Membership, Refund, utcnow
from app.state_machine import Status
from tests.helpers import csrf_token, reload
from tests.web.dashboard.conftest import PASSWORD, owner_of, sign_in, token_of
from tests.web.dashboard.test_payments import _set


def _invite(client, address, role="support"):
    token = token_of(client, "/dashboard/team")
    return client.post("/dashboard/team/invitations", data={"csrf_token": token, "email": address, "role": role},
                       follow_redirects=True)


def _mailed_link(app, address):
    """The invitation link in the newest email sent to `address` (the file mail backend of the tests)."""
    paths = sorted(glob.glob(os.path.join(app.instance_path, "mail", "*.eml")), key=os.path.getmtime, reverse=True)
    for path in paths:
        with open(path, "rb") as fh:
            message = email.message_from_binary_file(fh)
        if message["To"] == address:
            body = message.get_payload(decode=True).decode()
            return re.search(r"/dashboard/invitations/\S+", body).group(0)
    raise AssertionError(f"no email to {address}")


def _members(merchant):
    db.session.rollback()
    return {m.user.email: m.role for m in db.session.scalars(select(Membership).where(
        Membership.merchant_id == merchant.id))}


def test_invite_by_email_then_join_with_a_new_password(app, client, signed_in, merchant):
    r = _invite(signed_in, "Nadia@Example.test")
    assert "Invitation sent to nadia@example.test as support" in r.text
    assert "nadia@example.test as support, until" in r.text  # waiting for an answer
    link = _mailed_link(app, "nadia@example.test")
    new = app.test_client()
    page = new.get(link)
    assert page.status_code == 200 and f"Join {merchant.name}" in page.text and "support" in page.text
    r = new.post(link, data={"csrf_token": csrf_token(page.text), "display_name": "Nadia", "password": "nadia-pass-1"})
    assert r.status_code == 302
    assert _members(merchant)["nadia@example.test"] == "support"
    assert "Nadia · Warung Sari · support" in new.get("/dashboard/").text
    # Single use: the same link again is refused, and changes nothing.
    again = app.test_client().get(link)
    assert again.status_code == 410 and "already been used" in again.text


def test_an_existing_account_joins_with_its_password(app, signed_in, merchant, factories):
    other, _ = factories.merchant(name="Toko Lain")
    user = owner_of(other)
    _invite(signed_in, user.email, role="viewer")
    link = _mailed_link(app, user.email)
    visitor = app.test_client()
    page = visitor.get(link)
    assert "You already have a Paysmith account" in page.text
    r = visitor.post(link, data={"csrf_token": csrf_token(page.text), "password": "wrong-password"})
    assert r.status_code == 422 and "the password is wrong" in r.text
    r = visitor.post(link, data={"csrf_token": csrf_token(page.text), "password": PASSWORD})
    assert r.status_code == 302
    assert [m.role for m in reload(user).memberships] == ["owner", "viewer"]
    # Two merchants: the switcher shows both and moves between them.
    page = visitor.get("/dashboard/")
    assert "Switch" in page.text and "Toko Lain (owner)" in page.text
    r = visitor.post("/dashboard/switch", data={"csrf_token": csrf_token(page.text), "merchant": other.public_id},
                     follow_redirects=True)
    assert "You are now looking at Toko Lain." in r.text and "Toko Lain · owner" in r.text


def test_the_invitation_is_for_one_person_only(app, signed_in, merchant, factories):
    _invite(signed_in, "right@example.test")
    link = _mailed_link(app, "right@example.test")
    stranger = factories.member(factories.merchant()[0], "owner", email="wrong@example.test")
    wrong = sign_in(app.test_client(), stranger)
    page = wrong.get(link)
    r = wrong.post(link, data={"csrf_token": csrf_token(page.text)})
    assert r.status_code == 403 and "this invitation is for right@example.test" in r.text
    assert "wrong@example.test" not in _members(merchant)
    db.session.rollback()
    assert db.session.scalar(select(Invitation.accepted_at)) is None  # still usable by the right person


def test_an_expired_or_forged_or_withdrawn_link_is_refused(app, signed_in, merchant):
    _invite(signed_in, "late@example.test")
    link = _mailed_link(app, "late@example.test")
    db.session.execute(update(Invitation).values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    r = app.test_client().get(link)
    assert r.status_code == 410 and "expired" in r.text
    assert app.test_client().get(link[:-3] + "abc").status_code == 404  # a signature that does not match
    _invite(signed_in, "maybe@example.test")
    invitation = db.session.scalar(select(Invitation).where(Invitation.email == "maybe@example.test"))
    signed_in.post(f"/dashboard/team/invitations/{invitation.public_id}/revoke",
                   data={"csrf_token": token_of(signed_in, "/dashboard/team")})
    r = app.test_client().get(_mailed_link(app, "maybe@example.test"))
    assert r.status_code == 410 and "withdrawn" in r.text


def test_the_72_hour_signature_limit_holds_even_if_the_row_says_otherwise(app, signed_in, monkeypatch):
    import itsdangerous.timed

    _invite(signed_in, "slow@example.test")
    link = _mailed_link(app, "slow@example.test")
    real = itsdangerous.timed.TimestampSigner.get_timestamp
    monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: real(self) + 72 * 3600 + 1)
    r = app.test_client().get(link)
    assert r.status_code == 410 and "expired" in r.text


def _role(client, membership, role):
    return client.post(f"/dashboard/team/members/{membership.public_id}/role",
                       data={"csrf_token": token_of(client, "/dashboard/"), "role": role}, follow_redirects=True)


def _remove(client, membership):
    return client.post(f"/dashboard/team/members/{membership.public_id}/remove",
                       data={"csrf_token": token_of(client, "/dashboard/")}, follow_redirects=True)


def test_the_last_owner_can_be_neither_demoted_nor_removed(signed_in, merchant, factories):
    owner = owner_of(merchant).membership_of(merchant.id)
    assert "the last owner cannot be demoted" in _role(signed_in, owner, "admin").text
    assert "the last owner cannot be removed" in _remove(signed_in, owner).text
    assert _members(merchant)[merchant.email] == "owner"
    second = factories.member(merchant, "admin", email="second@example.test")
    assert "second@example.test is now owner." in _role(signed_in, second.membership_of(merchant.id), "owner").text
    assert "is now admin." in _role(signed_in, owner, "admin").text  # two owners: one may step down
    assert _members(merchant) == {merchant.email: "admin", "second@example.test": "owner"}


def test_an_admin_manages_the_team_but_never_an_owner(client, merchant, factories):
    admin = factories.member(merchant, "admin")
    viewer = factories.member(merchant, "viewer")
    sign_in(client, admin)
    owner = owner_of(merchant).membership_of(merchant.id)
    assert "only an owner can make or demote an owner" in _role(client, owner, "viewer").text
    assert "only an owner can remove an owner" in _remove(client, owner).text
    assert "only an owner can make or demote an owner" in _role(client, viewer.membership_of(merchant.id),
                                                                "owner").text
    r = _invite(client, "boss@example.test", role="owner")
    assert r.status_code == 422 and "your role cannot invite with this role" in r.text
    assert f"{viewer.email} is now developer." in _role(client, viewer.membership_of(merchant.id), "developer").text
    assert f"{viewer.email} was removed from the team." in _remove(client, viewer.membership_of(merchant.id)).text
    assert _members(merchant) == {merchant.email: "owner", admin.email: "admin"}


def test_a_removed_member_loses_access_at_once(app, merchant, factories):
    member = factories.member(merchant, "support")
    theirs = sign_in(app.test_client(), member)
    assert theirs.get("/dashboard/payments").status_code == 200
    owner = sign_in(app.test_client(), merchant)
    _remove(owner, member.membership_of(merchant.id))
    assert theirs.get("/dashboard/payments").status_code == 403


def test_support_refunds_up_to_the_merchants_limit(signed_in, merchant, factories):
    signed_in.post("/dashboard/settings/members", data={"csrf_token": token_of(signed_in, "/dashboard/settings"),
                                                        "limit_USD": "5.00"})
    assert reload(merchant).support_refund_limits == {"USD": 500}
    support = factories.member(merchant, "support")
    client = sign_in(signed_in.application.test_client(), support)
    payment = _set(factories.payment(merchant, currency="USD", amount=2500), Status.SUCCEEDED)
    url = f"/dashboard/payments/{payment.public_id}/refund"
    token = token_of(client, f"/dashboard/payments/{payment.public_id}")
    assert "your role may refund at most $5.00 at once" in client.get(f"/dashboard/payments/{payment.public_id}").text
    r = client.post(url, data={"csrf_token": token, "amount": "5.01", "confirmed": "yes"}, follow_redirects=True)
    assert "Refund refused: Your role may refund at most $5.00 at once" in r.text
    r = client.post(url, data={"csrf_token": token, "amount": "5.00", "confirmed": "yes"}, follow_redirects=True)
    assert "Refund of $5.00 requested" in r.text
    idr = _set(factories.payment(merchant, currency="IDR", amount=50_000), Status.SUCCEEDED)
    r = client.post(f"/dashboard/payments/{idr.public_id}/refund", data={"csrf_token": token, "amount": "1",
                                                                         "confirmed": "yes"}, follow_redirects=True)
    assert "Your role may not refund in IDR" in r.text
    db.session.rollback()
    assert [(r.amount, r.currency) for r in db.session.scalars(select(Refund))] == [(500, "USD")]
    # An owner is not limited.
    r = signed_in.post(url, data={"csrf_token": token_of(signed_in), "amount": "20.00", "confirmed": "yes"},
                       follow_redirects=True)
    assert "Refund of $20.00 requested" in r.text
