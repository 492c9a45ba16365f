"""The endpoints migration (0006) keeps every merchant's webhook URL and secret as its first endpoint, and
every event's delivery state (pending ones are still delivered after the upgrade); downgrade moves them back.

Runs Alembic for real on a SQLite file of its own: schema 0003, rows as the app wrote them before endpoints,
then upgrade to head and downgrade back.
"""

import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from app import create_app, security
from app.models import utcnow

NOW = "2026-12-01 10:00:00"
LATER = "2026-12-02 10:00:00"


def _app(tmp_path):
    return create_app({"ENV_NAME": "testing", "SECRET_KEY": "k" * 40, "SANDBOX": True,
                       "DATABASE_URL": f"sqlite:///{tmp_path}/m.db"}, instance_path=str(tmp_path))


def _insert_old_rows(conn, secret, previous):
    conn.execute(sa.text(
        "INSERT INTO merchants (id, public_id, name, email, password_hash, webhook_url, webhook_secret_enc, "
        "webhook_secret_previous_enc, webhook_secret_previous_until, auto_refund_double_payments, created_at) "
        "VALUES (1, 'mer_1', 'Shop', 'a@b.c', 'x', 'https://shop.example/hooks', :secret, :previous, :later, 0, "
        ":now), (2, 'mer_2', 'Quiet', 'q@b.c', 'x', NULL, :secret, NULL, NULL, 0, :now)"),
        {"secret": secret, "previous": previous, "now": NOW, "later": LATER})
    for eid, status, attempts in ((1, "delivered", 1), (2, "pending", 3), (3, "failed", 8)):
        conn.execute(sa.text(
            "INSERT INTO outbox_events (id, public_id, merchant_id, type, payload, delivery_status, attempts, "
            "next_attempt_at, locked_until, last_error, created_at) VALUES (:id, :pub, 1, 'payment.succeeded', "
            "'{}', :status, :attempts, :now, NULL, :error, :now)"),
            {"id": eid, "pub": f"evt_{eid}", "status": status, "attempts": attempts, "now": NOW,
             "error": None if status == "delivered" else "HTTP 500"})
    conn.execute(sa.text(
        "INSERT INTO outbox_events (id, public_id, merchant_id, type, payload, delivery_status, attempts, "
        "created_at) VALUES (4, 'evt_4', 2, 'payment.failed', '{}', 'skipped', 0, :now)"), {"now": NOW})
    conn.execute(sa.text(
        "INSERT INTO webhook_attempts (id, event_id, url, status_code, created_at) VALUES "
        "(1, 1, 'https://shop.example/hooks', 200, :now), (2, 2, 'https://shop.example/hooks', 500, :now)"),
        {"now": NOW})


def test_the_webhook_url_and_secret_become_the_first_endpoint_and_come_back(tmp_path):
    app = _app(tmp_path)
    with app.app_context():
        from app.extensions import db

        secret, previous = security.encrypt("whsec_current"), security.encrypt("whsec_previous")
        upgrade(revision="0003")
        with db.engine.begin() as conn:
            _insert_old_rows(conn, secret, previous)
        upgrade()
        with db.engine.connect() as conn:
            endpoints = {r.merchant_id: r for r in conn.execute(sa.text("SELECT * FROM webhook_endpoints"))}
            deliveries = {r.event_id: r for r in conn.execute(sa.text("SELECT * FROM webhook_deliveries"))}
            attempts = dict(conn.execute(sa.text("SELECT id, delivery_id FROM webhook_attempts")).all())
        first = endpoints[1]
        assert first.url == "https://shop.example/hooks" and first.public_id.startswith("we_")
        assert security.decrypt(first.secret_enc) == "whsec_current"  # the same secret: signatures unchanged
        assert security.decrypt(first.previous_secret_enc) == "whsec_previous"
        assert str(first.previous_secret_until).startswith("2026-12-02 10:00:00")
        assert first.enabled and first.event_types is None  # every event type, as before
        assert endpoints[2].url is None and security.decrypt(endpoints[2].secret_enc) == "whsec_current"
        assert {e: (d.status, d.attempts, d.endpoint_id) for e, d in deliveries.items()} == {
            1: ("delivered", 1, first.id), 2: ("pending", 3, first.id), 3: ("failed", 8, first.id)}
        assert attempts == {1: deliveries[1].id, 2: deliveries[2].id}

        downgrade(revision="0003")
        with db.engine.connect() as conn:
            back = {r.id: r for r in conn.execute(sa.text(
                "SELECT id, webhook_url, webhook_secret_enc, webhook_secret_previous_enc, "
                "webhook_secret_previous_until FROM merchants"))}
            events = dict(conn.execute(sa.text("SELECT id, delivery_status FROM outbox_events")).all())
        assert back[1].webhook_url == "https://shop.example/hooks"
        assert security.decrypt(back[1].webhook_secret_enc) == "whsec_current"
        assert security.decrypt(back[1].webhook_secret_previous_enc) == "whsec_previous"
        assert back[2].webhook_url is None
        assert events == {1: "delivered", 2: "pending", 3: "failed", 4: "skipped"}


def test_a_pending_event_from_before_the_upgrade_is_delivered_after_it(tmp_path):
    """Through the real services: the migrated delivery is claimed like a new one."""
    from app.services.webhook_delivery import claim

    app = _app(tmp_path)
    with app.app_context():
        from app.extensions import db

        upgrade(revision="0003")
        with db.engine.begin() as conn:
            _insert_old_rows(conn, security.encrypt("whsec_current"), None)
        upgrade()
        claimed = claim("fast", "test-owner", utcnow(), app.config)
        assert len(claimed) == 1
        db.session.remove()
        db.engine.dispose()
