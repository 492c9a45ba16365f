"""Every dashboard page renders for its merchant, with the merchant's data."""

from tests.web.dashboard.conftest import token_of


def test_pages_render(signed_in, merchant, factories):
    p = factories.payment(merchant, customer={"email": "Ana@Example.test"}, amount=250_000)
    for path in ["/dashboard/", "/dashboard/payments", f"/dashboard/payments/{p.public_id}", "/dashboard/refunds",
                 "/dashboard/webhooks", "/dashboard/settings", "/dashboard/account/security", "/dashboard/payments/new",
                 "/dashboard/team", "/dashboard/audit", "/dashboard/audit.csv",
                 "/dashboard/payments.csv"]:
        r = signed_in.get(path)
        assert r.status_code == 200, (path, r.text[:2000])
    assert token_of(signed_in)
