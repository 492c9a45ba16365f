"""Every role against every dashboard route, on the server: an allowed route answers (not 403, not the sign-in
page); a refused one is 403 and changes nothing. The expected table below is written from the issue's roles, not
read from app.permissions, so a wrong entry in either shows. A route that is not in this table or in
tests/web/dashboard/routes.py (or that declares no permission) fails the URL-map tests."""

import re

import pytest

from app.permissions import ROLES
from tests.web.dashboard.conftest import sign_in, token_of
from tests.web.dashboard.routes import PUBLIC, ROUTES, route_ids, snapshot

EVERYONE = {"owner", "admin", "developer", "support", "viewer"}
ADMINS = {"owner", "admin"}
DEVELOPERS = ADMINS | {"developer"}
STAFF = DEVELOPERS | {"support"}

#: endpoint → the roles allowed to call it.
EXPECTED = {
    "dashboard.overview": EVERYONE, "dashboard.payments": EVERYONE, "dashboard.payments_csv": EVERYONE,
    "dashboard.payment_detail": EVERYONE, "dashboard.refunds": EVERYONE, "dashboard.webhooks": EVERYONE,
    "dashboard.logout": EVERYONE, "dashboard.switch_merchant": EVERYONE, "dashboard.account": EVERYONE,
    "dashboard.security": EVERYONE, "dashboard.change_password": EVERYONE, "dashboard.enable_two_factor": EVERYONE,
    "dashboard.disable_two_factor": EVERYONE, "dashboard.end_other_sessions": EVERYONE,
    "dashboard.refund": ADMINS | {"support"}, "dashboard.refund_attempt": ADMINS | {"support"},
    "dashboard.cancel": ADMINS, "dashboard.review": ADMINS, "dashboard.new_payment_link": ADMINS,
    "dashboard.reconcile": STAFF, "dashboard.resend_latest_webhook": STAFF, "dashboard.resend_webhook": STAFF,
    "dashboard.retry_refund": ADMINS, "dashboard.fail_refund": ADMINS, "dashboard.succeed_refund": ADMINS,
    "dashboard.settings": DEVELOPERS, "dashboard.save_gateway": DEVELOPERS, "dashboard.create_api_key": DEVELOPERS,
    "dashboard.revoke_key": DEVELOPERS, "dashboard.save_double_payments": ADMINS,
    "dashboard.save_member_rules": ADMINS,
    "dashboard.webhook_url": DEVELOPERS, "dashboard.reveal_webhook_secret": DEVELOPERS,
    "dashboard.rotate_secret": DEVELOPERS,
    "dashboard.add_webhook_endpoint": DEVELOPERS, "dashboard.webhook_endpoint": EVERYONE,
    "dashboard.update_webhook_endpoint": DEVELOPERS, "dashboard.reveal_webhook_endpoint_secret": DEVELOPERS,
    "dashboard.rotate_webhook_endpoint_secret": DEVELOPERS, "dashboard.ping_webhook_endpoint": DEVELOPERS,
    "dashboard.delete_webhook_endpoint": DEVELOPERS,
    "dashboard.replay_webhook_endpoint": STAFF, "dashboard.replay_webhook_endpoint_event": STAFF,
    "dashboard.team": ADMINS, "dashboard.invite": ADMINS, "dashboard.revoke_invitation": ADMINS,
    "dashboard.change_role": ADMINS, "dashboard.remove_member": ADMINS,
    "dashboard.audit": ADMINS, "dashboard.audit_csv": ADMINS,
}

#: What every POST sends (each route reads the fields it knows); a webhook URL of "" needs no DNS.
FORM = {"amount": "1", "reason": "x", "confirmed": "yes", "name": "Key", "url": "", "current_password": "wrong",
        "new_password": "new-password-123", "confirm": "new-password-123", "currency": "USD", "reference": "R",
        "return_url": "https://a.example/", "expires_in": "3600", "role": "support", "email": "new@example.test",
        "password": "wrong-password", "code": "000000", "merchant": "", "testcard-mode": "sandbox"}


def _shape(method, path):
    """(method, path with every placeholder as {}): the lists name placeholders by what fills them."""
    return method, re.sub(r"<(?:\w+:)?\w+>|\{\w+\}", "{}", path)


def _url_map_routes(app):
    """{(method, path shape): endpoint} of every dashboard route in the URL map."""
    routes = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("dashboard."):
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                routes[_shape(method, rule.rule)] = rule.endpoint
    return routes


PUBLIC_SHAPES = {_shape(*r) for r in PUBLIC}


def test_the_route_lists_are_every_dashboard_route(app):
    routes = _url_map_routes(app)
    assert set(routes) == {_shape(*r) for r in ROUTES} | PUBLIC_SHAPES
    assert {e for shape, e in routes.items() if shape not in PUBLIC_SHAPES} == set(EXPECTED)


def test_every_dashboard_view_declares_its_permission(app):
    for shape, endpoint in _url_map_routes(app).items():
        permission = getattr(app.view_functions[endpoint], "permission", "missing")
        assert permission != "missing", f"{endpoint} has neither @requires(...) nor @public"
        assert (permission is None) == (shape in PUBLIC_SHAPES), endpoint


def _order(routes):
    # Reading first, then changes; signing out last (it ends the session the rest needs).
    return sorted(routes, key=lambda r: (r[1] == "/dashboard/logout", r[0] != "GET"))


@pytest.mark.parametrize("role", list(ROLES))
def test_each_role_is_allowed_and_refused_on_the_server(app, client, merchant, factories, role):
    ids = route_ids(merchant, factories)
    member = factories.member(merchant, role, name=f"The {role}")
    sign_in(client, member)
    token = token_of(client, "/dashboard/account/security")
    endpoints = _url_map_routes(app)
    wrong = []
    for method, path in _order(ROUTES):
        endpoint = endpoints[_shape(method, path)]
        allowed = role in EXPECTED[endpoint]
        before = None if allowed else snapshot(merchant.id)
        r = client.open(path.format(**ids), method=method, data={"csrf_token": token, **FORM} if method == "POST"
                        else None)
        signed_out = r.status_code == 302 and r.headers["Location"].startswith("/dashboard/login")
        if allowed and (r.status_code in (403, 500) or (signed_out and endpoint != "dashboard.logout")):
            wrong.append(f"{method} {path}: {r.status_code}, expected allowed")
        if not allowed and r.status_code != 403:
            wrong.append(f"{method} {path}: {r.status_code}, expected 403")
        if not allowed and snapshot(merchant.id) != before:
            wrong.append(f"{method} {path}: refused but something changed")
    assert not wrong, "\n".join(wrong)


def test_refused_is_a_page_saying_so_and_the_nav_hides_it(client, merchant, factories):
    sign_in(client, factories.member(merchant, "viewer"))
    r = client.get("/dashboard/settings")
    assert r.status_code == 403 and "Your role does not allow this." in r.text
    page = client.get("/dashboard/").text
    assert ">Payments</a>" in page
    for hidden in (">Settings</a>", ">Team</a>", ">Audit log</a>", "New payment link"):
        assert hidden not in page, hidden


def test_a_developer_sets_gateways_up_but_never_their_credentials(client, merchant, factories):
    from tests.helpers import reload

    sign_in(client, factories.member(merchant, "developer"))
    token = token_of(client, "/dashboard/settings")
    assert 'name="testcard-cred_secret_key"' not in client.get("/dashboard/settings").text
    account = next(a for a in merchant.gateway_accounts if a.gateway == "testcard")
    stored = account.credentials_enc
    r = client.post("/dashboard/settings/gateways/testcard", data={
        "csrf_token": token, "testcard-enabled": "y", "testcard-mode": "live", "testcard-cred_secret_key": "sk_x"})
    assert r.status_code == 403
    assert (reload(account).mode, account.credentials_enc) == ("sandbox", stored)
    r = client.post("/dashboard/settings/gateways/testcard", data={"csrf_token": token, "testcard-mode": "live"})
    assert r.status_code == 303
    assert (reload(account).mode, account.enabled) == ("live", False)
