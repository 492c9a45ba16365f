"""Command-line tools: `flask --app wsgi merchants create …`, `flask --app wsgi seed-demo`."""

import json

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from app.extensions import db
from app.models import Merchant
from app.services.errors import ServiceError

merchants_cli = AppGroup("merchants", help="Manage merchant accounts.")

DEMO_EMAIL = "demo@paysmith.test"
DEMO_PASSWORD = "demo-password"
DEMO_SUPPORT_EMAIL = "support@paysmith.test"
DEMO_SUPPORT_PASSWORD = "support-password"


@merchants_cli.command("create")
@click.option("--name", required=True)
@click.option("--email", required=True)
@click.option("--password", required=True)
@click.option("--webhook-url", default=None)
def create_merchant_command(name, email, password, webhook_url):
    """Create a merchant and print {"id", "api_key", "webhook_secret"} as one JSON line."""
    from app.services.merchants import create_merchant

    try:
        merchant, key = create_merchant(name, email, password, webhook_url)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(json.dumps({"id": merchant.public_id, "api_key": key, "webhook_secret": merchant.webhook_secret}))


@merchants_cli.command("list")
def list_merchants_command():
    """List merchants (id, email, name)."""
    for merchant in db.session.scalars(select(Merchant).order_by(Merchant.id)):
        click.echo(f"{merchant.public_id}\t{merchant.email}\t{merchant.name}")


@click.command("seed-demo")
def seed_demo_command():
    """Create the demo merchant (idempotent) with a few payments in several states, an owner and a support
    member; print how to sign in."""
    from app.services.demo import seed_demo

    merchant, key, orders = seed_demo(DEMO_EMAIL, DEMO_PASSWORD, DEMO_SUPPORT_EMAIL, DEMO_SUPPORT_PASSWORD)
    base = current_app.config["PUBLIC_BASE_URL"]
    click.echo(f"Demo merchant: {merchant.name}")
    click.echo(f"  Dashboard:  {base}/dashboard/login")
    click.echo(f"  Sign in:    {DEMO_EMAIL} / {DEMO_PASSWORD}   (owner)")
    click.echo(f"              {DEMO_SUPPORT_EMAIL} / {DEMO_SUPPORT_PASSWORD}   (support: refunds up to a limit)")
    if key:
        click.echo(f"  API key:    {key}")
    for currency, payment in orders.items():  # one open order per currency: each offers its own gateways
        click.echo(f"  Pay a demo order ({currency}): {base}/pay/{payment.checkout_token}")


def register(app):
    app.cli.add_command(merchants_cli)
    app.cli.add_command(seed_demo_command)
