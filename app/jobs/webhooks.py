"""Webhook delivery jobs: a batch per job (app.services.webhook_delivery), and the periodic sweep."""

from flask import current_app

from app.services import webhook_delivery, webhooks


def deliver_batch(lane="fast"):
    """Claim, POST and record one batch of due deliveries of the lane."""
    from app.jobs import started_delivery_job

    started_delivery_job(current_app._get_current_object(), lane)  # commits after this ask for a new job
    return webhook_delivery.deliver_batch(lane)


def sweep():
    """Ask for a batch job in every lane with deliveries due (periodic)."""
    return webhooks.sweep_due_events()
