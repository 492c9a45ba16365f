"""dashboard search by the start of a reference, email or customer name: customer_name column, prefix indexes

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-02 04:00:00

On PostgreSQL the reference and email indexes are rebuilt with text_pattern_ops (so `LIKE 'abc%'` uses
them under any collation; they still serve `=`), and the new name index has it too. On SQLite the indexes
are plain: the search there is a range `>= 'abc' AND < 'abd'`, which a plain index serves.
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

PATTERN = {"reference": "text_pattern_ops", "customer_email": "text_pattern_ops"}


def upgrade():
    op.add_column('payments', sa.Column('customer_name', sa.String(length=200), nullable=True))
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("UPDATE payments SET customer_name = lower(left(customer->>'name', 200)) "
                   "WHERE customer ? 'name'")
        for column, ops in PATTERN.items():
            name = f'ix_payments_merchant_{column}'
            op.drop_index(name, table_name='payments')
            op.create_index(name, 'payments', ['merchant_id', column], unique=False,
                            postgresql_ops={column: ops})
    else:
        # In Python: SQLite's lower() folds ASCII only ("Ömer" would stay "Ömer"); the app lower-cases in Python.
        bind = op.get_bind()
        rows = bind.execute(sa.text("SELECT id, json_extract(customer, '$.name') FROM payments "
                                    "WHERE json_extract(customer, '$.name') IS NOT NULL")).all()
        for ident, name in rows:
            bind.execute(sa.text("UPDATE payments SET customer_name = :n WHERE id = :i"),
                         {"n": str(name).lower()[:200], "i": ident})
    op.create_index('ix_payments_merchant_customer_name', 'payments', ['merchant_id', 'customer_name'],
                    unique=False, postgresql_ops={'customer_name': 'text_pattern_ops'})


def downgrade():
    op.drop_index('ix_payments_merchant_customer_name', table_name='payments')
    if op.get_bind().dialect.name == 'postgresql':
        for column in PATTERN:
            name = f'ix_payments_merchant_{column}'
            op.drop_index(name, table_name='payments')
            op.create_index(name, 'payments', ['merchant_id', column], unique=False)
    with op.batch_alter_table('payments') as batch:
        batch.drop_column('customer_name')
