"""Merchant webhooks: the after-commit relay from the outbox to RQ.

(Delivery, signing and retries are built on this in the webhooks issue.)
"""

import logging

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


def register_outbox_relay(app):
    """After every commit, enqueue the jobs for outbox events and payments created in that transaction.

    Enqueueing only after the commit means a job never sees a row that is not there yet; a Redis outage
    only delays the jobs, because the periodic sweeps find everything that is due in the database.
    """
    if getattr(register_outbox_relay, "_done", False):
        return
    register_outbox_relay._done = True

    @event.listens_for(Session, "after_commit")
    def _relay(session):
        events = session.info.pop("outbox_new", None)
        payments = session.info.pop("payments_created", None)
        if not (events or payments):
            return
        try:
            from app.jobs import after_commit

            after_commit(current_app._get_current_object(), events or [], payments or [])
        except Exception:  # Redis down: the sweeps will pick these up
            log.warning("could not enqueue jobs after commit; the sweeper will retry", exc_info=True)

    @event.listens_for(Session, "after_rollback")
    def _forget(session):
        session.info.pop("outbox_new", None)
        session.info.pop("payments_created", None)
