"""A merchant's team: members and their roles, invitations by email (a signed, single-use link valid for
72 hours, sent with the app's mail settings), changing roles and removing members.

Rules: only a member whose role has `team.manage` changes the team; making, demoting or removing an owner
also needs `team.owners` (admins cannot); the last owner can be neither removed nor demoted. Team changes
of one merchant are serialized by locking its row, so two owners demoting each other cannot leave none.
"""

import logging
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid

from flask import current_app, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select, update

from app import mail
from app.extensions import db
from app.models import Invitation, Membership, Merchant, utcnow
from app.permissions import ROLES, can
from app.services import accounts, audit
from app.services.errors import NotFound, ServiceError, ValidationError

log = logging.getLogger(__name__)

INVITATION_HOURS = 72
_SALT = "paysmith-invitation"


class Refused(ServiceError):
    """The member may not make this team change."""

    def __init__(self, message, code="forbidden", field=None):
        super().__init__(message, code=code, field=field)


def _serializer():
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def invitation_token(invitation):
    return _serializer().dumps({"i": invitation.public_id, "e": invitation.email})


def _lock(merchant_id):
    db.session.scalar(select(Merchant.id).where(Merchant.id == merchant_id).with_for_update())


def _owners(merchant_id):
    return db.session.scalar(select(func.count()).select_from(Membership)
                             .where(Membership.merchant_id == merchant_id, Membership.role == "owner"))


def _check_role(role):
    if role not in ROLES:
        raise ValidationError(f"unknown role {role!r}", field="role")


def add_member(merchant, user, role):
    """Make `user` a member of `merchant` with `role` (no commit; no permission check: the CLI and migrations)."""
    _check_role(role)
    membership = Membership(user_id=user.id, merchant_id=merchant.id, role=role)
    db.session.add(membership)
    db.session.flush()
    return membership


def members(merchant):
    return db.session.scalars(select(Membership).where(Membership.merchant_id == merchant.id)
                              .order_by(Membership.id)).all()


def open_invitations(merchant):
    return db.session.scalars(select(Invitation).where(
        Invitation.merchant_id == merchant.id, Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None),
        Invitation.expires_at > utcnow()).order_by(Invitation.id.desc())).all()


def invite(merchant, email, role, *, by, actor):
    """Invite `email` to `merchant` as `role` (by the Membership `by`); email the link. Returns (invitation,
    link, sent): `sent` False when the mail server refused (the link still works). Commits."""
    _check_role(role)
    if not can(by.role, "team.manage") or (role == "owner" and not can(by.role, "team.owners")):
        raise Refused("your role cannot invite with this role")
    email = accounts.normalize_email(email)
    if not email or "@" not in email or len(email) > 254:
        raise ValidationError("a valid email is required", field="email")
    existing = accounts.user_by_email(email)
    if existing is not None and existing.membership_of(merchant.id):
        raise ValidationError(f"{email} is already a member", field="email", code="already_member")
    invitation = Invitation(merchant_id=merchant.id, email=email, role=role, invited_by_id=by.user_id,
                            expires_at=utcnow() + timedelta(hours=INVITATION_HOURS))
    db.session.add(invitation)
    db.session.flush()
    audit.record(merchant.id, "team.invited", actor, target_type="invitation", target_id=invitation.public_id,
                 after={"email": email, "role": role})
    db.session.commit()
    link = url_for("dashboard.accept_invitation", token=invitation_token(invitation), _external=True)
    return invitation, link, _send_invitation(invitation, link, by.user)


def _send_invitation(invitation, link, inviter):
    message = EmailMessage()
    message["Subject"] = f"Join {invitation.merchant.name} on Paysmith"
    message["From"] = current_app.config.get("MAIL_FROM") or "Paysmith <receipts@paysmith.test>"
    message["To"] = invitation.email
    message["Message-ID"] = make_msgid(domain="paysmith.invalid")
    message.set_content(
        f"{inviter.display_name} invites you to {invitation.merchant.name} on Paysmith as {invitation.role}.\n\n"
        f"Open this link within {INVITATION_HOURS} hours to join (it works once):\n{link}\n")
    if current_app.config.get("ENV_NAME") == "development":
        print(f"Invitation for {invitation.email}: {link}", flush=True)  # noqa: T201  (development only)
    try:
        mail.send(message)
    except mail.MailError as exc:
        log.warning("invitation %s not sent: %s", invitation.public_id, exc)
        return False
    return True


def invitation_from_token(token):
    """The invitation a link names, if it is still open; raises ServiceError saying why not."""
    try:
        data = _serializer().loads(token or "", max_age=INVITATION_HOURS * 3600)
    except SignatureExpired as exc:
        raise ServiceError("this invitation has expired: ask for a new one", code="invitation_expired") from exc
    except BadSignature as exc:
        raise NotFound("this invitation link is not valid") from exc
    invitation = db.session.scalar(select(Invitation).where(Invitation.public_id == data.get("i")))
    if invitation is None or invitation.email != data.get("e"):
        raise NotFound("this invitation link is not valid")
    if invitation.revoked_at is not None:
        raise ServiceError("this invitation was withdrawn", code="invitation_revoked")
    if invitation.accepted_at is not None:
        raise ServiceError("this invitation has already been used", code="invitation_used")
    if invitation.expires_at <= utcnow():
        raise ServiceError("this invitation has expired: ask for a new one", code="invitation_expired")
    return invitation


def accept_invitation(token, *, user=None, display_name=None, password=None, ip=None, user_agent=None):
    """Join with the link: as `user` (signed in, or who just gave their password) or as a new user with
    `display_name` and `password`. The link works once (compare-and-set). Returns the user. Commits."""
    invitation = invitation_from_token(token)
    if user is not None and user.email != invitation.email:
        raise Refused(f"this invitation is for {invitation.email}; you are signed in as {user.email}",
                      code="wrong_user")
    if user is None:
        user = accounts.new_user(invitation.email, display_name, password)
    if user.membership_of(invitation.merchant_id):
        raise ValidationError("you are already a member of this merchant", code="already_member")
    used = db.session.execute(
        update(Invitation).where(Invitation.id == invitation.id, Invitation.accepted_at.is_(None),
                                 Invitation.revoked_at.is_(None))
        .values(accepted_at=utcnow(), accepted_by_id=user.id)
    ).rowcount
    if used != 1:
        db.session.rollback()
        raise ServiceError("this invitation has already been used", code="invitation_used")
    add_member(invitation.merchant, user, invitation.role)
    audit.record(invitation.merchant_id, "team.joined", audit.Actor.for_user(user, ip, user_agent),
                 target_type="invitation", target_id=invitation.public_id, after={"role": invitation.role})
    db.session.commit()
    db.session.refresh(user)
    return user, invitation


def revoke_invitation(merchant, public_id, *, by, actor):
    invitation = db.session.scalar(select(Invitation).where(Invitation.public_id == public_id,
                                                            Invitation.merchant_id == merchant.id))
    if invitation is None:
        raise NotFound("no such invitation")
    if invitation.role == "owner" and not can(by.role, "team.owners"):
        raise Refused("only an owner can withdraw an owner's invitation")
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = utcnow()
        audit.record(merchant.id, "team.invitation_revoked", actor, target_type="invitation",
                     target_id=invitation.public_id, before={"email": invitation.email, "role": invitation.role})
        db.session.commit()
    return invitation


def _member(merchant, public_id):
    _lock(merchant.id)
    membership = db.session.scalar(select(Membership).where(Membership.public_id == public_id,
                                                            Membership.merchant_id == merchant.id))
    if membership is None:
        raise NotFound("no such member")
    return membership


def change_role(merchant, public_id, role, *, by, actor):
    """Give a member another role. Commits."""
    _check_role(role)
    membership = _member(merchant, public_id)
    if "owner" in (membership.role, role) and not can(by.role, "team.owners"):
        raise Refused("only an owner can make or demote an owner")
    if membership.role == "owner" and role != "owner" and _owners(merchant.id) <= 1:
        raise Refused("the last owner cannot be demoted: make someone else owner first", code="last_owner")
    before = membership.role
    if before != role:
        membership.role = role
        audit.record(merchant.id, "team.role_changed", actor, target_type="member", target_id=membership.public_id,
                     before={"email": membership.user.email, "role": before},
                     after={"email": membership.user.email, "role": role})
    db.session.commit()
    return membership


def remove_member(merchant, public_id, *, by, actor):
    """Remove a member from the merchant (their account stays; their sessions here end with it). Commits."""
    membership = _member(merchant, public_id)
    if membership.role == "owner" and not can(by.role, "team.owners"):
        raise Refused("only an owner can remove an owner")
    if membership.role == "owner" and _owners(merchant.id) <= 1:
        raise Refused("the last owner cannot be removed", code="last_owner")
    email, role = membership.user.email, membership.role
    db.session.delete(membership)
    audit.record(merchant.id, "team.member_removed", actor, target_type="member", target_id=public_id,
                 before={"email": email, "role": role})
    db.session.commit()
    return email
