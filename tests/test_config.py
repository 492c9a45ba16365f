"""Configuration: production refuses unsafe settings; the simulators exist only when SANDBOX is on."""

import pytest

from app import create_app
from app.config import DEFAULT_SECRET_KEY

GOOD_SECRET = "a-production-secret-that-is-long-and-random-0123456789"


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("PAYSMITH_ENV", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "SANDBOX", "ENCRYPTION_KEY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def production(app, **overrides):
    return {"ENV_NAME": "production", "SECRET_KEY": GOOD_SECRET,
            "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "REDIS_URL": app.config["REDIS_URL"],
            **overrides}


@pytest.mark.parametrize("secret", [None, DEFAULT_SECRET_KEY, "short-secret"])
def test_production_refuses_a_default_or_weak_secret_key(app, clean_env, tmp_path, secret):
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app(production(app, SECRET_KEY=secret), instance_path=str(tmp_path))


def test_production_from_the_environment_refuses_the_default_key(clean_env, tmp_path):
    clean_env.setenv("PAYSMITH_ENV", "production")
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app(instance_path=str(tmp_path))


@pytest.mark.parametrize("missing", ["DATABASE_URL", "REDIS_URL"])
def test_production_needs_a_database_and_redis(app, clean_env, tmp_path, missing):
    with pytest.raises(RuntimeError, match=missing):
        create_app(production(app, **{missing: None}), instance_path=str(tmp_path))


def test_unknown_environment_name_is_refused(clean_env, tmp_path):
    clean_env.setenv("PAYSMITH_ENV", "staging")
    with pytest.raises(RuntimeError, match="PAYSMITH_ENV"):
        create_app(instance_path=str(tmp_path))


def test_production_starts_with_safe_settings_and_without_the_simulators(app, clean_env, tmp_path):
    prod = create_app(production(app), instance_path=str(tmp_path))
    assert prod.config["SANDBOX"] is False
    assert prod.config["SESSION_COOKIE_SECURE"] is True
    rules = [rule.rule for rule in prod.url_map.iter_rules()]
    assert not [r for r in rules if r.startswith("/sandbox")]
    assert "/callbacks/<code>/<kind>" in rules and "/api/v1/payments" in rules
    assert prod.test_client().get("/sandbox/testcard/pay/cs_test_x").status_code == 404


def test_sandbox_switch_off_unmounts_the_simulators(app, clean_env, tmp_path):
    clean_env.setenv("SANDBOX", "off")
    off = create_app({"ENV_NAME": "testing", "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
                      "REDIS_URL": app.config["REDIS_URL"]}, instance_path=str(tmp_path))
    assert off.config["SANDBOX"] is False
    assert not [r.rule for r in off.url_map.iter_rules() if r.rule.startswith("/sandbox")]
    # ... while the session app (SANDBOX on) has one per simulator module.
    assert any(r.rule.startswith("/sandbox/testcard/") for r in app.url_map.iter_rules())


def test_database_urls_are_normalised_to_psycopg(app, clean_env, tmp_path):
    from app.config import load_config

    class Fake:
        instance_path = str(tmp_path)
        config = {}

    fake = Fake()
    fake.config = type(app.config)(str(tmp_path))
    load_config(fake, {"ENV_NAME": "testing", "DATABASE_URL": "postgres://u@h/db"})
    assert fake.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"
    load_config(fake, {"ENV_NAME": "testing"})
    assert fake.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/paysmith.db"
