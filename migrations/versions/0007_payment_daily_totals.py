"""daily payment totals for the overview, kept by triggers on payments, filled from the payments already there

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 11:00:00

See app/models/totals.py for why. The triggers append to payment_total_changes; the `totals` sweep rolls
those into payment_daily_totals. On PostgreSQL they are statement-level triggers with transition tables, so
a set-based UPDATE of a thousand payments (the expiry sweep) appends a few grouped rows, not two thousand;
SQLite has row-level triggers only. The triggers are created before the totals are filled, in the same
transaction (on PostgreSQL CREATE TRIGGER holds off concurrent writes to payments until the commit), so no
change falls between the fill and the first trigger.
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

KEY = "merchant_id, day, currency, gateway, status"


def _key_columns():
    return [
        sa.Column('merchant_id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('gateway', sa.String(length=32), nullable=False),
        sa.Column('status', sa.String(length=24), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
    ]


#: A payment's totals key and amount, as the triggers and the fill write them (`date()` works on both).
def _row(alias, sign):
    return (f"{alias}.merchant_id, date({alias}.created_at), {alias}.currency, coalesce({alias}.gateway, ''), "
            f"{alias}.status, {sign}1, {sign}{alias}.amount")


def _key_of(alias):
    return (f"({alias}.merchant_id, date({alias}.created_at), {alias}.currency, coalesce({alias}.gateway, ''), "
            f"{alias}.status, {alias}.amount)")


POSTGRES = f"""
CREATE FUNCTION paysmith_totals_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO payment_total_changes ({KEY}, count, amount)
    SELECT merchant_id, date(created_at), currency, coalesce(gateway, ''), status, count(*), sum(amount)
    FROM new_rows GROUP BY 1, 2, 3, 4, 5;
    RETURN NULL;
END $$;

CREATE FUNCTION paysmith_totals_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO payment_total_changes ({KEY}, count, amount)
    SELECT {KEY}, sum(n), sum(a) FROM (
        SELECT {_row('o', '-')} FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE {_key_of('o')} IS DISTINCT FROM {_key_of('n')}
        UNION ALL
        SELECT {_row('n', '')} FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE {_key_of('o')} IS DISTINCT FROM {_key_of('n')}
    ) AS moved ({KEY}, n, a)
    GROUP BY 1, 2, 3, 4, 5 HAVING sum(n) <> 0 OR sum(a) <> 0;
    RETURN NULL;
END $$;

CREATE TRIGGER payments_totals_inserted AFTER INSERT ON payments
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION paysmith_totals_inserted();
CREATE TRIGGER payments_totals_updated AFTER UPDATE ON payments
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION paysmith_totals_updated();
"""

SQLITE = [
    f"""CREATE TRIGGER payments_totals_inserted AFTER INSERT ON payments BEGIN
        INSERT INTO payment_total_changes ({KEY}, count, amount) VALUES ({_row('NEW', '')});
    END""",
    f"""CREATE TRIGGER payments_totals_updated
        AFTER UPDATE OF merchant_id, created_at, currency, gateway, status, amount ON payments
        WHEN {_key_of('OLD')} IS NOT {_key_of('NEW')}
    BEGIN
        INSERT INTO payment_total_changes ({KEY}, count, amount) VALUES ({_row('OLD', '-')}), ({_row('NEW', '')});
    END""",
]


def upgrade():
    op.create_table('payment_daily_totals', *_key_columns(),
        sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'],
                                name=op.f('fk_payment_daily_totals_merchant_id_merchants'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('merchant_id', 'day', 'currency', 'gateway', 'status',
                                name=op.f('pk_payment_daily_totals')),
    )
    op.create_table('payment_total_changes',
        sa.Column('id', sa.Integer(), nullable=False), *_key_columns(),
        sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'],
                                name=op.f('fk_payment_total_changes_merchant_id_merchants'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_total_changes')),
    )
    op.create_index('ix_payment_total_changes_merchant_day', 'payment_total_changes', ['merchant_id', 'day'])
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(POSTGRES)
    else:
        for statement in SQLITE:
            op.execute(statement)
    op.execute(f"INSERT INTO payment_daily_totals ({KEY}, count, amount) "
               "SELECT merchant_id, date(created_at), currency, coalesce(gateway, ''), status, count(*), sum(amount) "
               "FROM payments GROUP BY 1, 2, 3, 4, 5")


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER payments_totals_updated ON payments; DROP TRIGGER payments_totals_inserted ON payments; "
                   "DROP FUNCTION paysmith_totals_updated(); DROP FUNCTION paysmith_totals_inserted()")
    else:
        op.execute("DROP TRIGGER payments_totals_updated")
        op.execute("DROP TRIGGER payments_totals_inserted")
    op.drop_index('ix_payment_total_changes_merchant_day', table_name='payment_total_changes')
    op.drop_table('payment_total_changes')
    op.drop_table('payment_daily_totals')
