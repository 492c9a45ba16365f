"""Webhook delivery jobs."""

from app.services import webhooks


def deliver(event_id):
    """One delivery attempt (schedules the next one itself when it fails)."""
    return webhooks.deliver_event(event_id)


def sweep():
    """Enqueue every due, undelivered, unleased event (periodic)."""
    return webhooks.sweep_due_events()
