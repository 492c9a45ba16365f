"""RQ entry points. Jobs take ids, call one service and return; they are enqueued only after a commit."""

QUEUES = ["webhooks", "default", "sandbox"]


def after_commit(app, event_ids, payment_ids):
    """Hook run by the outbox relay after a commit (webhook delivery, expiry timers)."""
    # Filled in by the webhooks/expiry work; until then the outbox rows wait in the database.
    return None
