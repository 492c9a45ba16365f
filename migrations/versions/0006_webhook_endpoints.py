"""webhook endpoints: up to 16 per merchant, one delivery per event and endpoint

The merchant's single webhook URL and secret (and the previous secret of a rotation) become the merchant's
first endpoint, with the same encrypted secret, so signatures do not change. Every event that was pending,
delivered or failed gets its delivery to that endpoint (same status, attempts and next attempt), and its
attempts are linked to it, so nothing in flight is lost and the log stays whole. Downgrade moves the first
endpoint back into the merchant's columns.

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-02 03:30:00

"""
import secrets

from alembic import op
import sqlalchemy as sa
from sqlalchemy import Text  # noqa: F401
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('webhook_endpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=True),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('event_types', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.Column('enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('disabled_reason', sa.Text(), nullable=True),
    sa.Column('secret_enc', sa.Text(), nullable=False),
    sa.Column('previous_secret_enc', sa.Text(), nullable=True),
    sa.Column('previous_secret_until', sa.DateTime(), nullable=True),
    sa.Column('slow_until', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_webhook_endpoints_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoints')),
    sa.UniqueConstraint('public_id', name=op.f('uq_webhook_endpoints_public_id'))
    )
    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_endpoints_merchant_id'), ['merchant_id'], unique=False)

    op.create_table('webhook_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('endpoint_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', sa.DateTime(), nullable=True),
    sa.Column('delivered_at', sa.DateTime(), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], name=op.f('fk_webhook_deliveries_endpoint_id_webhook_endpoints'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['event_id'], ['outbox_events.id'], name=op.f('fk_webhook_deliveries_event_id_outbox_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
    sa.UniqueConstraint('event_id', 'endpoint_id', name=op.f('uq_webhook_deliveries_event_id_endpoint_id'))
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_deliveries_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_webhook_deliveries_endpoint', ['endpoint_id', 'id'], unique=False)

    with op.batch_alter_table('webhook_attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivery_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_webhook_attempts_delivery_id'), ['delivery_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_webhook_attempts_delivery_id_webhook_deliveries'), 'webhook_deliveries', ['delivery_id'], ['id'], ondelete='CASCADE')

    conn = op.get_bind()
    merchants = conn.execute(sa.text(
        "SELECT id, webhook_url, webhook_secret_enc, webhook_secret_previous_enc, webhook_secret_previous_until, "
        "created_at FROM merchants ORDER BY id")).all()
    if merchants:
        conn.execute(sa.text(
            "INSERT INTO webhook_endpoints (public_id, merchant_id, url, description, enabled, secret_enc, "
            "previous_secret_enc, previous_secret_until, created_at, updated_at) VALUES (:public_id, :merchant_id, "
            ":url, '', :enabled, :secret, :previous, :previous_until, :created, :created)"),
            [{"public_id": f"we_{secrets.token_hex(12)}", "merchant_id": m.id, "url": m.webhook_url,
              "enabled": True, "secret": m.webhook_secret_enc, "previous": m.webhook_secret_previous_enc,
              "previous_until": m.webhook_secret_previous_until, "created": m.created_at} for m in merchants])
    conn.execute(sa.text(
        "INSERT INTO webhook_deliveries (event_id, endpoint_id, status, attempts, next_attempt_at, delivered_at, "
        "last_error, created_at) SELECT e.id, w.id, e.delivery_status, e.attempts, "
        "COALESCE(e.next_attempt_at, e.created_at), e.delivered_at, e.last_error, e.created_at "
        "FROM outbox_events e JOIN webhook_endpoints w ON w.merchant_id = e.merchant_id "
        "WHERE e.delivery_status IN ('pending', 'delivered', 'failed')"))
    conn.execute(sa.text(
        "UPDATE webhook_attempts SET delivery_id = (SELECT d.id FROM webhook_deliveries d "
        "WHERE d.event_id = webhook_attempts.event_id)"))

    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.drop_column('locked_until')
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.drop_column('webhook_secret_previous_until')
        batch_op.drop_column('webhook_secret_previous_enc')
        batch_op.drop_column('webhook_secret_enc')
        batch_op.drop_column('webhook_url')


def downgrade():
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('webhook_url', sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column('webhook_secret_enc', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('webhook_secret_previous_enc', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('webhook_secret_previous_until', sa.DateTime(), nullable=True))
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locked_until', sa.DateTime(), nullable=True))

    conn = op.get_bind()
    first = ("(SELECT {column} FROM webhook_endpoints w WHERE w.merchant_id = merchants.id "
             "ORDER BY w.id LIMIT 1)")
    conn.execute(sa.text(
        "UPDATE merchants SET "
        + ", ".join(f"{old} = {first.format(column=new)}" for old, new in (
            ("webhook_url", "url"), ("webhook_secret_enc", "secret_enc"),
            ("webhook_secret_previous_enc", "previous_secret_enc"),
            ("webhook_secret_previous_until", "previous_secret_until")))))
    # A merchant with no endpoint left gets an unusable secret until it rotates (the column is required).
    conn.execute(sa.text("UPDATE merchants SET webhook_secret_enc = '' WHERE webhook_secret_enc IS NULL"))
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.alter_column('webhook_secret_enc', existing_type=sa.Text(), nullable=False)

    with op.batch_alter_table('webhook_attempts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_webhook_attempts_delivery_id_webhook_deliveries'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_webhook_attempts_delivery_id'))
        batch_op.drop_column('delivery_id')
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_deliveries_endpoint')
        batch_op.drop_index('ix_webhook_deliveries_due')
    op.drop_table('webhook_deliveries')
    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_endpoints_merchant_id'))
    op.drop_table('webhook_endpoints')
