"""The RQ worker: `python worker.py` processes Paysmith's queues with RQ's scheduler (like
`rq worker --with-scheduler`), on the app's own config and Redis, with the app context pushed so jobs can
use the database. Run several for more throughput; each also keeps the periodic sweeps scheduled.
"""

import logging

from rq import Worker

from app import create_app
from app.extensions import db, get_queue, get_redis
from app.jobs import QUEUES


def main():
    app = create_app()
    with app.app_context():
        db.engine.dispose()  # no pooled connection may cross the work horse's fork()
        from app.jobs.schedule import ensure_periodic_jobs

        ensure_periodic_jobs()
        worker = Worker([get_queue(name) for name in QUEUES], connection=get_redis())
        logging.getLogger(__name__).info("worker listening on %s", ", ".join(QUEUES))
        worker.work(with_scheduler=True)


if __name__ == "__main__":
    main()
