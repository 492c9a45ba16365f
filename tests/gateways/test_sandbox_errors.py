"""Every simulator answers what it does not serve in its gateway's own error envelope (issue 14, item 7): the
SDKs raise their typed errors instead of choking on our HTML error page."""

import json

import pytest

# (path, method, expected status, a predicate on the JSON body)
CASES = [
    ("/sandbox/stripe/v1/nope", "GET", 404,
     lambda b: b["error"]["type"] == "invalid_request_error"
     and b["error"]["message"].startswith("Unrecognized request URL (GET: /v1/nope)")),
    ("/sandbox/stripe/v1/refunds", "DELETE", 404,
     lambda b: "Unrecognized request URL (DELETE: /v1/refunds)" in b["error"]["message"]),
    ("/sandbox/midtrans/v2/ORDER-1/nope", "POST", 404,
     lambda b: b == {"status_code": "404", "status_message": "The requested resource is not found"}),
    ("/sandbox/midtrans/v2/ORDER-1/status", "DELETE", 404, lambda b: b["status_code"] == "404"),
    ("/sandbox/midtrans/snap/v1/nope", "POST", 404, lambda b: b["error_messages"]),
    ("/sandbox/bkash/v1.2.0-beta/tokenized/checkout/nope", "POST", 403,
     lambda b: b == {"message": "Missing Authentication Token"}),
    ("/sandbox/bkash/v1.2.0-beta/tokenized/checkout/create", "GET", 403,
     lambda b: b == {"message": "Missing Authentication Token"}),
    ("/sandbox/nagad/api/dfs/nope", "POST", 404, lambda b: set(b) == {"reason", "message"}),
    ("/sandbox/nagad/api/dfs/verify/payment/X", "POST", 405, lambda b: b["reason"] == "MethodNotAllowed"),
    ("/sandbox/khalti/api/v2/nope/", "POST", 404, lambda b: b == {"detail": "Not found.", "status_code": 404}),
    ("/sandbox/khalti/api/v2/epayment/lookup/", "GET", 405,
     lambda b: b == {"detail": 'Method "GET" not allowed.', "status_code": 405}),
    ("/sandbox/sslcommerz/gwprocess/v4/nope.php", "POST", 404,
     lambda b: b["status"] == "FAILED" and b["APIConnect"] == "INVALID_REQUEST"),
    ("/sandbox/sslcommerz/validator/api/validationserverAPI.php", "DELETE", 405,
     lambda b: b["status"] == "FAILED"),
    ("/sandbox/rocket/validator/api/nope.php", "GET", 404, lambda b: b["status"] == "FAILED"),
    ("/sandbox/vnpay/merchant_webapi/api/nope", "POST", 404, lambda b: b["vnp_ResponseCode"] == "99"),
    ("/sandbox/vnpay/merchant_webapi/api/transaction", "GET", 405, lambda b: b["vnp_ResponseCode"] == "99"),
    ("/sandbox/testcard/v1/nope", "GET", 404, lambda b: b["error"]["type"] == "invalid_request_error"),
]


@pytest.mark.parametrize(("path", "method", "status", "check"), CASES, ids=[f"{m} {p}" for p, m, *_ in CASES])
def test_unknown_paths_and_wrong_methods_get_the_gateways_envelope(client, path, method, status, check):
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert check(json.loads(response.data))


def test_an_unknown_path_outside_the_simulators_keeps_our_page(client):
    response = client.get("/sandbox-nope/x")
    assert response.status_code == 404 and response.mimetype == "text/html"


def test_an_unexpected_error_in_a_simulator_view_is_the_gateways_server_error(app, client, monkeypatch):
    from app.sandbox import stripe as sim

    monkeypatch.setattr(sim, "_load_session", lambda session_id: 1 / 0)
    response = client.get("/sandbox/stripe/v1/checkout/sessions/cs_x",
                          headers={"Authorization": f"Bearer {sim.SANDBOX_CREDENTIALS['secret_key']}"})
    assert response.status_code == 500
    assert response.get_json()["error"]["type"] == "api_error"


def test_the_stripe_sdk_raises_its_typed_error_on_an_unknown_route(live_url):
    import stripe

    from app.sandbox import stripe as sim

    client = stripe.StripeClient(sim.SANDBOX_CREDENTIALS["secret_key"],
                                 base_addresses={"api": f"{live_url}/sandbox/stripe"})
    with pytest.raises(stripe.InvalidRequestError, match="Unrecognized request URL"):
        client.raw_request("get", "/v1/nope")
