"""Who may do what: the one table of roles → permissions.

The dashboard checks it on the server for every route (`app.dashboard.access.requires`), and its templates
hide what the role may not do with the same table (`can("refunds.create")` in Jinja). A test walks the URL
map, so a new dashboard route without a permission fails it.
"""

#: Every permission, with what it lets a member do (shown on the team page).
PERMISSIONS = {
    "payments.read": "See the overview, payments, refunds and webhook events",
    "payments.create": "Create payment links",
    "payments.cancel": "Cancel open payments",
    "payments.reconcile": "Ask the gateway for a payment's state",
    "payments.review": "Approve or deny a payment held for fraud review",
    "refunds.create": "Refund payments (support: up to the merchant's support refund limit)",
    "refunds.unlimited": "Refund any refundable amount",
    "refunds.settle": "Retry a refund now, mark it failed or made",
    "webhooks.resend": "Resend webhook events",
    "webhooks.manage": "Set the webhook endpoint, reveal and rotate its signing secret",
    "settings.read": "Open the settings page",
    "settings.gateways": "Turn gateways on and off, sandbox or live",
    "settings.gateway_credentials": "Enter or change a gateway's credentials",
    "settings.api_keys": "Create and revoke API keys",
    "settings.merchant": "Change merchant settings (double payments, support refund limit, required two-factor)",
    "team.manage": "Invite members, change roles, remove members",
    "team.owners": "Make, demote or remove owners",
    "audit.read": "Read and export the audit log",
    "account": "Manage one's own password, two-factor sign-in and sessions",
}

_EVERYONE = {"payments.read", "account"}
_DEVELOPER = _EVERYONE | {"payments.reconcile", "webhooks.resend", "webhooks.manage", "settings.read",
                          "settings.gateways", "settings.api_keys"}
_ADMIN = set(PERMISSIONS) - {"team.owners"}
# Developers set gateways up (on/off, sandbox/live) but the credentials are the owners' and admins'.

#: Role → its permissions. Order: most to least.
ROLES = {
    "owner": frozenset(PERMISSIONS),
    "admin": frozenset(_ADMIN),
    "developer": frozenset(_DEVELOPER),
    "support": frozenset(_EVERYONE | {"payments.reconcile", "refunds.create", "webhooks.resend"}),
    "viewer": frozenset(_EVERYONE),
}

ROLE_DESCRIPTIONS = {
    "owner": "Everything, including the team, owners and gateway credentials",
    "admin": "Everything but making, demoting or removing owners",
    "developer": "API keys, webhooks, gateway settings (not credentials); reads payments",
    "support": "Reads payments, refunds up to the support limit, resends webhooks",
    "viewer": "Reads only",
}


def can(role, permission):
    """Whether `role` has `permission` (an unknown permission is a programming error)."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")
    return permission in ROLES.get(role, ())
