"""The audit log's one writer: `record(...)` adds an append-only AuditEvent to the session of the change, so it
commits (or rolls back) with it. Services call it; views and API routes only pass the `Actor`.

Only non-secret fields go in `before`/`after`: for gateway credentials the names of the fields that changed,
never a value. `record` refuses a field whose name says it is a secret.
"""

from dataclasses import dataclass

from app.extensions import db
from app.models import AuditEvent

#: Every action the log knows, with the words the audit page shows.
ACTIONS = {
    "signin.succeeded": "Signed in",
    "signin.failed": "Sign-in failed",
    "account.password_changed": "Changed their password",
    "account.two_factor_enabled": "Turned on two-factor sign-in",
    "account.two_factor_disabled": "Turned off two-factor sign-in",
    "account.sessions_ended": "Signed out their other sessions",
    "payment.link_created": "Created a payment link",
    "payment.created": "Created a payment",
    "payment.cancelled": "Cancelled a payment",
    "payment.review_approve": "Approved a payment held for fraud review",
    "payment.review_deny": "Denied a payment held for fraud review",
    "refund.requested": "Requested a refund",
    "refund.retried": "Asked the gateway again for a refund",
    "refund.marked_failed": "Marked a refund as failed",
    "refund.marked_succeeded": "Marked a refund as made",
    "settings.changed": "Changed merchant settings",
    "gateway.updated": "Changed a gateway",
    "api_key.created": "Created an API key",
    "api_key.revoked": "Revoked an API key",
    "webhook.endpoint_changed": "Changed the webhook endpoint",
    "webhook.secret_revealed": "Revealed the webhook signing secret",
    "webhook.secret_rotated": "Rotated the webhook signing secret",
    "webhook.resent": "Resent a webhook event",
    "team.invited": "Invited a member",
    "team.invitation_revoked": "Withdrew an invitation",
    "team.joined": "Joined the team",
    "team.role_changed": "Changed a member's role",
    "team.member_removed": "Removed a member",
}

_SECRET_WORDS = ("secret", "password", "token", "hash", "otp")


@dataclass(frozen=True)
class Actor:
    """Who acts: a signed-in user or an API key, and from where."""

    label: str
    user_id: int | None = None
    api_key_id: int | None = None
    ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def for_user(cls, user, ip=None, user_agent=None):
        return cls(label=user.label[:300], user_id=user.id, ip=ip, user_agent=(user_agent or "")[:300] or None)

    @classmethod
    def for_api_key(cls, key, ip=None, user_agent=None):
        return cls(label=f"API key {key.name} ({key.prefix}…)"[:300], api_key_id=key.id, ip=ip,
                   user_agent=(user_agent or "")[:300] or None)


def _check(fields):
    for name in fields or {}:
        if any(word in name.lower() for word in _SECRET_WORDS):
            raise ValueError(f"audit field {name!r} looks secret; record which field changed, not its value")
    return fields or None


def record(merchant_id, action, actor, *, target_type=None, target_id=None, before=None, after=None):
    """Add one audit row to the current transaction (no commit). `actor` None = the system: nothing recorded."""
    if actor is None:
        return None
    if action not in ACTIONS:
        raise KeyError(f"unknown audit action {action!r}")
    event = AuditEvent(merchant_id=merchant_id, action=action, actor_label=actor.label, actor_user_id=actor.user_id,
                       actor_api_key_id=actor.api_key_id, ip=actor.ip, user_agent=actor.user_agent,
                       target_type=target_type, target_id=None if target_id is None else str(target_id)[:64],
                       before=_check(before), after=_check(after))
    db.session.add(event)
    return event


def changed(before, after):
    """(before, after) restricted to the keys whose value differs."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}
