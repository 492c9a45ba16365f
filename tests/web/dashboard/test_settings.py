"""Settings: gateway accounts from the registry with write-only encrypted credentials; API keys."""

import re

from sqlalchemy import select

from app.extensions import db
from app.gateways import REGISTRY
from app.models import ApiKey, GatewayAccount
from tests.helpers import reload
from tests.web.dashboard.conftest import token_of


def test_every_registered_gateway_has_a_form(signed_in):
    html = signed_in.get("/dashboard/settings").text
    for code, gateway in REGISTRY.items():
        assert f'id="gw-{code}"' in html
        for name, label in gateway.credential_fields.items():
            assert f'name="{code}-cred_{name}"' in html and label in html


def test_credentials_are_write_only_and_encrypted(signed_in, merchant):
    account = merchant.gateway_account("testcard")
    old = account.credentials
    html = signed_in.get("/dashboard/settings").text
    assert old["secret_key"] not in html and old["webhook_secret"] not in html
    assert f"Saved: ••••{old['secret_key'][-4:]}" in html
    token = token_of(signed_in, "/dashboard/settings")
    r = signed_in.post("/dashboard/settings/gateways/testcard", data={
        "testcard-csrf_token": token, "testcard-enabled": "y", "testcard-mode": "live",
        "testcard-cred_secret_key": "sk_live_brand_new_9876", "testcard-cred_webhook_secret": ""},
        follow_redirects=True)
    assert "Card (test acquirer) saved (live, offered at checkout)." in r.text
    assert "sk_live_brand_new_9876" not in r.text and "••••9876" in r.text
    account = db.session.scalar(select(GatewayAccount).where(GatewayAccount.merchant_id == merchant.id,
                                                             GatewayAccount.gateway == "testcard"))
    assert account.mode == "live" and account.enabled
    assert account.credentials == {"secret_key": "sk_live_brand_new_9876", "webhook_secret": old["webhook_secret"]}
    assert "sk_live_brand_new_9876" not in account.credentials_enc  # encrypted at rest


def test_disable_and_refuse_enabling_without_credentials(signed_in, merchant, factories):
    token = token_of(signed_in, "/dashboard/settings")
    r = signed_in.post("/dashboard/settings/gateways/testcard",
                       data={"testcard-csrf_token": token, "testcard-mode": "sandbox"}, follow_redirects=True)
    assert "not offered at checkout" in r.text
    assert reload(merchant.gateway_account("testcard")).enabled is False
    db.session.delete(merchant.gateway_account("testcard"))
    db.session.commit()
    r = signed_in.post("/dashboard/settings/gateways/testcard",
                       data={"testcard-csrf_token": token, "testcard-enabled": "y", "testcard-mode": "sandbox"})
    assert r.status_code == 422 and "enter Secret key, Webhook signing secret before enabling" in r.text
    assert reload(merchant).gateway_account("testcard") is None
    assert signed_in.post("/dashboard/settings/gateways/nope", data={"csrf_token": token}).status_code == 404


def test_api_key_created_shown_once_and_revoked(signed_in, merchant, http):
    token = token_of(signed_in, "/dashboard/settings")
    r = signed_in.post("/dashboard/settings/api-keys", data={"csrf_token": token, "name": "Web shop"})
    assert r.status_code == 200 and "it will not be shown again" in r.text
    key = re.search(r'id="new-api-key" type="text" value="(sk_[^"]+)"', r.text).group(1)
    row = db.session.scalar(select(ApiKey).where(ApiKey.merchant_id == merchant.id, ApiKey.name == "Web shop"))
    assert key not in signed_in.get("/dashboard/settings").text
    auth = {"Authorization": f"Bearer {key}"}
    assert http.get("/api/v1/payments", headers=auth).status_code == 200
    html = signed_in.get("/dashboard/settings").text
    assert re.search(rf'data-key="{row.public_id}">.*?Last used</td>|data-key="{row.public_id}"', html, re.S)
    assert "never" not in html.split(f'data-key="{row.public_id}"')[1].split("</tr>")[0]
    r = signed_in.post(f"/dashboard/settings/api-keys/{row.public_id}/revoke", data={"csrf_token": token},
                       follow_redirects=True)
    assert "API key “Web shop”" in r.text and "revoked" in r.text
    assert http.get("/api/v1/payments", headers=auth).status_code == 401
    assert reload(row).revoked_at is not None


def test_double_payments_can_be_refunded_automatically(signed_in, merchant):
    from tests.helpers import reload
    from tests.web.dashboard.conftest import token_of

    page = signed_in.get("/dashboard/settings")
    assert "Double payments" in page.text and 'name="auto_refund"' in page.text
    r = signed_in.post("/dashboard/settings/double-payments", data={"csrf_token": token_of(signed_in, "/dashboard/settings"),
                                                                    "auto_refund": "y"}, follow_redirects=True)
    assert "refunded automatically" in r.text and reload(merchant).auto_refund_double_payments is True
    assert 'name="auto_refund" type="checkbox" value="y" checked' in r.text or "checked" in r.text
    r = signed_in.post("/dashboard/settings/double-payments", data={"csrf_token": token_of(signed_in, "/dashboard/settings")},
                       follow_redirects=True)
    assert "wait for you" in r.text and reload(merchant).auto_refund_double_payments is False
    # Without a CSRF token nothing changes.
    signed_in.post("/dashboard/settings/double-payments", data={"auto_refund": "y"})
    assert reload(merchant).auto_refund_double_payments is False


def test_the_api_keys_section_links_to_the_api_reference(signed_in):
    html = signed_in.get("/dashboard/settings").get_data(as_text=True)
    assert 'href="/docs/api"' in html and 'href="/api/v1/openapi.json"' in html


def _checkbox_checked(html, code):
    """Whether the "Offer at checkout" checkbox of gateway `code` is rendered checked."""
    tag = re.search(rf'<input[^>]*name="{code}-enabled"[^>]*>', html).group(0)
    return " checked" in tag


def test_gateway_checkboxes_show_the_stored_state_after_another_form_is_posted(signed_in, merchant):
    """Regression: creating an API key (or a form error) re-rendered every gateway's checkbox unchecked, so
    pressing that gateway's Save switched it off although its badge said "on"."""
    assert merchant.gateway_account("testcard").enabled
    token = token_of(signed_in, "/dashboard/settings")
    assert _checkbox_checked(signed_in.get("/dashboard/settings").text, "testcard")
    created = signed_in.post("/dashboard/settings/api-keys", data={"csrf_token": token, "name": "Shop"})
    assert created.status_code == 200 and _checkbox_checked(created.text, "testcard")
    refused = signed_in.post("/dashboard/settings/api-keys", data={"csrf_token": token, "name": ""})
    assert refused.status_code == 422 and _checkbox_checked(refused.text, "testcard")
    # A gateway form's own error keeps what was submitted for that gateway, and the stored state elsewhere.
    other = next(code for code in REGISTRY if code != "testcard" and merchant.gateway_account(code).enabled)
    field = next(iter(REGISTRY[other].credential_fields))
    failed = signed_in.post(f"/dashboard/settings/gateways/{other}", data={
        f"{other}-csrf_token": token, f"{other}-mode": "sandbox", f"{other}-cred_{field}": "x" * 5000})
    assert failed.status_code == 422 and _checkbox_checked(failed.text, "testcard")
    assert not _checkbox_checked(failed.text, other)  # what was sent, not yet saved
    assert reload(merchant.gateway_account(other)).enabled
