"""Periodic jobs (sweeps), kept scheduled by every worker with deterministic job ids so they never pile up."""

PERIODIC = []  # (dotted function path, every N seconds); filled by the webhooks/expiry/reconciliation work


def ensure_periodic_jobs():
    """Schedule each periodic job unless it is already queued or scheduled."""
    from datetime import timedelta

    from app.extensions import get_queue

    queue = get_queue("default")
    for func, every in PERIODIC:
        job_id = f"periodic:{func}"
        job = queue.fetch_job(job_id)
        if job is None or job.get_status(refresh=True) in ("finished", "failed", "canceled", "stopped"):
            queue.enqueue_in(timedelta(seconds=every), func, job_id=job_id)
