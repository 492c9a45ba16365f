"""Dashboard test helpers: sign a merchant's owner (or any member) in through the real form (CSRF on, as in
production)."""

import pytest
from sqlalchemy import select

from app import create_app
from app.extensions import db, limiter
from app.models import Membership, User
from tests.helpers import csrf_token

PASSWORD = "correct-horse-battery"


def owner_of(merchant):
    """The merchant's first owner (factories.merchant makes one with the merchant's email)."""
    return db.session.scalar(select(User).join(Membership, Membership.user_id == User.id)
                             .where(Membership.merchant_id == merchant.id, Membership.role == "owner")
                             .order_by(Membership.id).limit(1))


def sign_in(client, who, password=PASSWORD):
    """Sign `who` in: a User, or a Merchant (its owner, whose email is the merchant's)."""
    page = client.get("/dashboard/login")
    response = client.post("/dashboard/login", data={"csrf_token": csrf_token(page.text), "email": who.email,
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



@pytest.fixture
def limited_client(app):
    """A second app on the same database and Redis with rate limits on (tests turn them off)."""
    redis_url = app.config["REDIS_URL"]
    storage = redis_url.replace("unix://", "redis+unix://", 1) if redis_url.startswith("unix://") else redis_url
    limited = create_app({"ENV_NAME": "testing", "SECRET_KEY": app.config["SECRET_KEY"],
                          "DATABASE_URL": app.config["DATABASE_URL"], "REDIS_URL": redis_url,
                          "RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": storage}, instance_path=app.instance_path)
    limited.test_client_class = app.test_client_class
    try:
        yield limited.test_client()
    finally:
        limiter.enabled = False  # the limiter is one global object: back to the test app's setting
