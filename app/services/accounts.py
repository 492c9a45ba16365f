"""People who sign in: users, passwords, signed-in sessions and two-factor sign-in (RFC 6238 TOTP via pyotp,
the QR code drawn as inline SVG by segno, ten single-use recovery codes stored as SHA-256).

Every session ends when the password or two-factor sign-in changes; the browser that made the change gets a
fresh session. A TOTP code is accepted once: the time step of the last accepted code is kept, and a code of that
step or an earlier one is refused (compare-and-set, so two requests with one code cannot both pass).
"""

import hashlib
import io
import secrets

import pyotp
import segno
from sqlalchemy import func, select, update

from app.extensions import db
from app.models import RecoveryCode, User, UserSession, utcnow
from app.services import audit
from app.services.errors import ValidationError

RECOVERY_CODES = 10
#: Codes of the step before and after now are accepted too (clocks drift; RFC 6238 section 5.2).
TOTP_WINDOW = 1
ISSUER = "Paysmith"


def _hash(value):
    return hashlib.sha256(value.encode()).hexdigest()


def normalize_email(email):
    return (email or "").strip().lower()


def validate_password(password, field="password"):
    if not password or len(password) < 8:
        raise ValidationError("the password needs at least 8 characters", field=field)
    if len(password) > 200:
        raise ValidationError("the password is longer than 200 characters", field=field)


def new_user(email, display_name, password):
    """A new user (added to the session, no commit)."""
    email = normalize_email(email)
    if not email or "@" not in email or len(email) > 254:
        raise ValidationError("a valid email is required", field="email")
    validate_password(password)
    if db.session.scalar(select(func.count()).select_from(User).where(User.email == email)):
        raise ValidationError("someone with this email already has an account", field="email", code="email_taken")
    user = User(email=email, display_name=(display_name or "").strip()[:200] or email.split("@")[0])
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    return user


def user_by_email(email):
    return db.session.scalar(select(User).where(User.email == normalize_email(email)))


def check_sign_in(email, password):
    """The user with this email and password, else None (the same time is spent either way)."""
    user = user_by_email(email)
    if user is None:
        User(password_hash=_DUMMY_HASH).check_password(password or "")
        return None
    return user if user.check_password(password or "") else None


_DUMMY_HASH = "scrypt:32768:8:1$0000000000000000$" + "0" * 128


def _first_merchant_id(user):
    return user.memberships[0].merchant_id if user and user.memberships else None


def record_sign_in(user, actor_ip, user_agent, *, email=None, step="password", merchant_id=None):
    """Audit a sign-in: `user` None = failed (at `step`), with the email that was tried. Commits."""
    if user is not None and email is None:
        actor = audit.Actor.for_user(user, actor_ip, user_agent)
        audit.record(merchant_id or _first_merchant_id(user), "signin.succeeded", actor, target_type="user",
                     target_id=user.public_id)
    else:
        known = user_by_email(email) if user is None else user
        actor = (audit.Actor.for_user(known, actor_ip, user_agent) if known else
                 audit.Actor(label=f"unknown <{normalize_email(email)[:250]}>", ip=actor_ip,
                             user_agent=(user_agent or "")[:300] or None))
        audit.record(_first_merchant_id(known), "signin.failed", actor, target_type="user",
                     target_id=known.public_id if known else None, after={"step": step})
    db.session.commit()


# --- sessions ----------------------------------------------------------------------------------------------

def start_session(user, ip, user_agent):
    """Record a signed-in browser; return the token for its session cookie. No commit."""
    token = secrets.token_urlsafe(32)
    db.session.add(UserSession(user_id=user.id, token_hash=_hash(token), ip=ip, user_agent=(user_agent or "")[:300]))
    db.session.flush()
    return token


def live_session(user, token):
    """The user's open session for this cookie token, else None; its last use is kept to the minute. Commits
    only when it updates that."""
    if not token:
        return None
    record = db.session.scalar(select(UserSession).where(UserSession.token_hash == _hash(token),
                                                          UserSession.user_id == user.id))
    if record is None or record.ended_at is not None:
        return None
    now = utcnow()
    if (now - record.last_seen_at).total_seconds() > 60:
        record.last_seen_at = now
        db.session.commit()
    return record


def open_sessions(user):
    return db.session.scalars(select(UserSession).where(UserSession.user_id == user.id,
                                                        UserSession.ended_at.is_(None))
                              .order_by(UserSession.last_seen_at.desc())).all()


def end_sessions(user, *, keep=None):
    """End every open session of the user but `keep` (a UserSession). No commit."""
    query = update(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
    if keep is not None:
        query = query.where(UserSession.id != keep.id)
    return db.session.execute(query.values(ended_at=utcnow())).rowcount


def end_session_by_token(token):
    if token:
        db.session.execute(update(UserSession).where(UserSession.token_hash == _hash(token),
                                                     UserSession.ended_at.is_(None)).values(ended_at=utcnow()))
        db.session.commit()


def sign_out_others(user, current, *, merchant_id, actor):
    """End every other session of the user. Commits."""
    ended = end_sessions(user, keep=current)
    audit.record(merchant_id, "account.sessions_ended", actor, target_type="user", target_id=user.public_id,
                 after={"sessions_ended": ended})
    db.session.commit()
    return ended


def change_password(user, current, new, *, merchant_id, actor, ip=None, user_agent=None):
    """Check the current password, set the new one, end every session; return the token of a fresh session
    for the browser that asked. Commits."""
    if not user.check_password(current or ""):
        raise ValidationError("the current password is wrong", field="current_password", code="wrong_password")
    validate_password(new, field="new_password")
    user.set_password(new)
    end_sessions(user)
    token = start_session(user, ip, user_agent)
    audit.record(merchant_id, "account.password_changed", actor, target_type="user", target_id=user.public_id)
    db.session.commit()
    return token


# --- two-factor sign-in ------------------------------------------------------------------------------------

def new_totp_secret():
    return pyotp.random_base32()


def provisioning_uri(user, secret):
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def qr_svg(uri):
    """The otpauth:// URI as an inline SVG QR code (no image request, no JavaScript)."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=4, xmldecl=False, svgns=True, title="QR code",
                                   dark="#111", light="#fff")
    return out.getvalue().decode()


def _matching_step(secret, code, now=None):
    """The time step (counter) whose code equals `code`, within the window; None if none does."""
    code = (code or "").strip().replace(" ", "")
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    step = totp.timecode(now or utcnow_aware())
    for counter in range(step - TOTP_WINDOW, step + TOTP_WINDOW + 1):
        if secrets.compare_digest(totp.generate_otp(counter), code):
            return counter
    return None


def utcnow_aware():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _use_totp(user, secret, code):
    """Accept `code` once: move the user's last step forward by compare-and-set. No commit."""
    counter = _matching_step(secret, code)
    if counter is None:
        return False
    moved = db.session.execute(
        update(User).where(User.id == user.id,
                           (User.totp_last_counter.is_(None)) | (User.totp_last_counter < counter))
        .values(totp_last_counter=counter)
    ).rowcount
    return moved == 1


def _use_recovery_code(user, code):
    code = (code or "").strip().lower().replace(" ", "")
    if not code:
        return False
    used = db.session.execute(
        update(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.code_hash == _hash(code),
                                   RecoveryCode.used_at.is_(None)).values(used_at=utcnow())
    ).rowcount
    return used == 1


def verify_second_factor(user, code):
    """A TOTP code (once) or an unused recovery code (then used up). Commits what it used."""
    ok = _use_totp(user, user.totp_secret, code) if user.two_factor_enabled else False
    ok = ok or (user.two_factor_enabled and _use_recovery_code(user, code))
    db.session.commit()
    return bool(ok)


def remaining_recovery_codes(user):
    return db.session.scalar(select(func.count()).select_from(RecoveryCode)
                             .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)))


def _new_recovery_codes(user):
    db.session.query(RecoveryCode).filter(RecoveryCode.user_id == user.id).delete()
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = secrets.token_hex(5)  # 40 bits, shown as xxxxx-xxxxx
        codes.append(f"{raw[:5]}-{raw[5:]}")
        db.session.add(RecoveryCode(user_id=user.id, code_hash=_hash(f"{raw[:5]}-{raw[5:]}")))
    return codes


def enable_two_factor(user, secret, code, *, merchant_id, actor, ip=None, user_agent=None):
    """Turn on TOTP after a code from the new secret proves the app has it; return (recovery codes, fresh
    session token). Every other session ends. Commits."""
    if user.two_factor_enabled:
        raise ValidationError("two-factor sign-in is already on", field="code")
    counter = _matching_step(secret, code)
    if counter is None:
        raise ValidationError("that code does not match: check the time on your phone and try again",
                              field="code", code="wrong_code")
    user.totp_secret = secret
    user.totp_last_counter = counter
    codes = _new_recovery_codes(user)
    end_sessions(user)
    token = start_session(user, ip, user_agent)
    audit.record(merchant_id, "account.two_factor_enabled", actor, target_type="user", target_id=user.public_id)
    db.session.commit()
    return codes, token


def disable_two_factor(user, password, *, merchant_id, actor, ip=None, user_agent=None):
    """Turn TOTP off after checking the password; every other session ends. Returns a fresh session token.
    Commits."""
    if not user.check_password(password or ""):
        raise ValidationError("the password is wrong", field="password", code="wrong_password")
    user.totp_secret = None
    user.totp_last_counter = None
    db.session.query(RecoveryCode).filter(RecoveryCode.user_id == user.id).delete()
    end_sessions(user)
    token = start_session(user, ip, user_agent)
    audit.record(merchant_id, "account.two_factor_disabled", actor, target_type="user", target_id=user.public_id)
    db.session.commit()
    return token
