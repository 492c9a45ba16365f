"""The attempts migration (0002) keeps every existing payment: its gateway data becomes its one attempt.

Runs Alembic for real on a SQLite file of its own: schema 0001, rows as the app wrote them before attempts,
then upgrade to head and downgrade back.
"""

import json

import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from app import create_app

NOW = "2026-11-30 10:00:00"


def _app(tmp_path):
    return create_app({"ENV_NAME": "testing", "SECRET_KEY": "k" * 40, "SANDBOX": True,
                       "DATABASE_URL": f"sqlite:///{tmp_path}/m.db"}, instance_path=str(tmp_path))


def _insert_old_rows(conn):
    conn.execute(sa.text(
        "INSERT INTO merchants (id, public_id, name, email, password_hash, webhook_secret_enc, created_at) "
        "VALUES (1, 'mer_1', 'Shop', 'a@b.c', 'x', 'x', :now)"), {"now": NOW})
    rows = [  # (id, status, gateway, reference, transaction id, gateway_data, needs_review)
        (1, "succeeded", "vnpay", "pay_1", "14000001", {"vnpay": {"create_date": "20261130170000"}}, False),
        (2, "processing", "midtrans", "pay_2", None, {"midtrans": {"token": "t"}}, True),
        (3, "failed", "testcard", "cs_test_3", None, {}, False),
        (4, "pending", None, None, None, {}, False),
        (5, "partially_refunded", "stripe", "cs_test_5", "pi_5", {"stripe": {"expires_at": 1}}, False),
    ]
    for pid, status, gateway, ref, txn, data, review in rows:
        conn.execute(sa.text(
            "INSERT INTO payments (id, public_id, merchant_id, reference, amount, currency, status, version, gateway, "
            "gateway_reference, gateway_transaction_id, gateway_data, checkout_token, return_url, expires_at, "
            "items, customer, metadata, amount_refunded, late_success, needs_review, failure_code, "
            "failure_message, created_at, updated_at) VALUES (:id, :pub, 1, :ref_m, 125000, 'VND', :status, 2, "
            ":gw, :ref, :txn, :data, :tok, 'https://s/r', :now, '[]', '{}', '{}', :refunded, 0, :review, :fc, "
            ":fm, :now, :now)"),
            {"id": pid, "pub": f"pay_{pid}", "ref_m": f"ORD-{pid}", "status": status, "gw": gateway, "ref": ref,
             "txn": txn, "data": json.dumps(data), "tok": f"tok{pid}", "now": NOW, "review": review,
             "refunded": 1000 if pid == 5 else 0, "fc": "card_declined" if pid == 3 else None,
             "fm": "Declined" if pid == 3 else None})
    conn.execute(sa.text(
        "INSERT INTO refunds (id, public_id, payment_id, merchant_id, amount, currency, status, attempts, "
        "in_call, created_at, updated_at, gateway) VALUES (1, 're_1', 5, 1, 1000, 'VND', 'succeeded', 1, 0, "
        ":now, :now, 'stripe')"), {"now": NOW})


def test_every_payment_keeps_its_gateway_data_as_its_one_attempt(tmp_path):
    app = _app(tmp_path)
    with app.app_context():
        from app.extensions import db

        upgrade(revision="0001")
        with db.engine.begin() as conn:
            _insert_old_rows(conn)
        upgrade()
        with db.engine.connect() as conn:
            attempts = {r.payment_id: r for r in conn.execute(sa.text("SELECT * FROM payment_attempts"))}
            payments = {r.id: r for r in conn.execute(sa.text("SELECT * FROM payments"))}
            refund = conn.execute(sa.text("SELECT attempt_id FROM refunds")).scalar_one()
        assert set(attempts) == {1, 2, 3, 5}  # the one that never went to a gateway has none
        first = attempts[1]
        # The order id the gateway already knows (the payment's id) names the attempt, so a late IPN finds it.
        assert (first.public_id, first.gateway, first.status, first.reference, first.transaction_id) == (
            "pay_1", "vnpay", "succeeded", "pay_1", "14000001")
        assert json.loads(first.data) == {"create_date": "20261130170000"}
        assert payments[1].succeeded_attempt_id == first.id and payments[1].attempt_count == 1
        assert attempts[2].status == "processing"  # held for review at Midtrans
        assert (attempts[3].status, attempts[3].failure_code, attempts[3].failure_reason) == (
            "failed", "card_declined", "failed")
        assert payments[4].attempt_count == 0 and payments[4].succeeded_attempt_id is None
        assert refund == attempts[5].id and payments[5].succeeded_attempt_id == attempts[5].id

        downgrade(revision="0001")
        with db.engine.connect() as conn:
            back = {r.id: r for r in conn.execute(sa.text(
                "SELECT id, gateway, gateway_reference, gateway_transaction_id, gateway_data FROM payments"))}
        assert (back[1].gateway_reference, back[1].gateway_transaction_id) == ("pay_1", "14000001")
        assert json.loads(back[1].gateway_data) == {"vnpay": {"create_date": "20261130170000"}}
        assert back[4].gateway_reference is None
