"""Webhook delivery jobs."""

from app.services import webhooks


def deliver(event_id, lane="fast"):
    """One delivery attempt (schedules the next one itself when it fails)."""
    return webhooks.deliver_event(event_id, lane=lane)


def sweep():
    """Enqueue every due, undelivered, unleased event (periodic)."""
    return webhooks.sweep_due_events()
