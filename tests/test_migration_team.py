"""The team migration (0004) turns every merchant login into a user who owns that merchant, and its downgrade
gives each merchant back its first owner's password.

Runs Alembic for real on a SQLite file of its own: schema 0003, merchants as the app wrote them before
users, then upgrade to head and downgrade back.
"""

import sqlalchemy as sa
from flask_migrate import downgrade, upgrade
from werkzeug.security import check_password_hash, generate_password_hash

from tests.test_migration_attempts import NOW, _app


def test_each_merchant_login_becomes_its_owner_and_comes_back_on_downgrade(tmp_path):
    app = _app(tmp_path)
    hashes = {1: generate_password_hash("first-password"), 2: generate_password_hash("second-password")}
    with app.app_context():
        from app.extensions import db

        upgrade(revision="0003")
        with db.engine.begin() as conn:
            for mid, email in ((1, "Owner@Shop.example"), (2, "two@shop.example")):
                conn.execute(sa.text(
                    "INSERT INTO merchants (id, public_id, name, email, password_hash, webhook_secret_enc, created_at, "
                    "auto_refund_double_payments) VALUES (:id, :pub, :name, :email, :hash, 'x', :now, false)"),
                    {"id": mid, "pub": f"mer_{mid}", "name": f"Shop {mid}", "email": email, "hash": hashes[mid],
                     "now": NOW})
        upgrade()
        with db.engine.connect() as conn:
            users = conn.execute(sa.text(
                "SELECT u.email, u.display_name, u.password_hash, m.merchant_id, m.role FROM users u "
                "JOIN memberships m ON m.user_id = u.id ORDER BY m.merchant_id")).all()
            columns = {c["name"] for c in sa.inspect(conn).get_columns("merchants")}
        assert [(u.email, u.display_name, u.merchant_id, u.role) for u in users] == [
            ("owner@shop.example", "Shop 1", 1, "owner"), ("two@shop.example", "Shop 2", 2, "owner")]
        assert check_password_hash(users[0].password_hash, "first-password")  # the same login still works
        assert "password_hash" not in columns and {"require_two_factor", "support_refund_limits"} <= columns

        downgrade(revision="0003")
        with db.engine.connect() as conn:
            back = dict(conn.execute(sa.text("SELECT id, password_hash FROM merchants")).all())
            tables = set(sa.inspect(conn).get_table_names())
        assert back == hashes
        assert not tables & {"users", "memberships", "invitations", "user_sessions", "recovery_codes",
                             "audit_events"}
