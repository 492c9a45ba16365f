"""Dashboard test helpers: sign a merchant in through the real form (CSRF on, as in production)."""

import pytest

from tests.helpers import csrf_token

PASSWORD = "correct-horse-battery"


def sign_in(client, merchant, password=PASSWORD):
    page = client.get("/dashboard/login")
    response = client.post("/dashboard/login", data={"csrf_token": csrf_token(page.text), "email": merchant.email,
                                                     "password": password})
    assert response.status_code == 302, response.text
    return client


@pytest.fixture
def merchant(factories):
    return factories.merchant(name="Warung Sari")[0]


@pytest.fixture
def other(factories):
    return factories.merchant(name="Toko Lain")[0]


@pytest.fixture
def signed_in(client, merchant):
    """The test client, signed in as `merchant`."""
    return sign_in(client, merchant)


def token_of(client, path="/dashboard/"):
    """A valid CSRF token for the signed-in session."""
    return csrf_token(client.get(path).text)

