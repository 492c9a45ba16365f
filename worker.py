"""The RQ worker: `python worker.py` processes Paysmith's queues with RQ's scheduler (like
`rq worker --with-scheduler`), on the app's own config and Redis, with the app context pushed so jobs can
use the database. Run several for more throughput (each forks a work horse per job, so a slow webhook
endpoint holds one worker for at most its timeout); each also keeps the periodic sweeps scheduled, and RQ
lets only one of them move scheduled jobs at a time.

    python worker.py            # work forever
    python worker.py --burst    # work until the queues are empty, then exit
    python worker.py --queues webhooks_slow   # a worker only for endpoints that were slow or failing
"""

import argparse
import logging

from app import create_app
from app.extensions import db, get_queue, get_redis
from app.jobs import QUEUES
from app.ops.jobs import Worker


def main(argv=None):
    parser = argparse.ArgumentParser(description="Paysmith RQ worker")
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--queues", nargs="+", choices=QUEUES, default=QUEUES,
                        help="queues to serve, in priority order (default: all)")
    args = parser.parse_args(argv)
    app = create_app()
    with app.app_context():
        from app.jobs.schedule import ensure_periodic_jobs

        if not args.burst:
            ensure_periodic_jobs()
        db.engine.dispose()  # no pooled connection may cross the work horse's fork()
        worker = Worker([get_queue(name) for name in args.queues], connection=get_redis())
        logging.getLogger(__name__).info("worker listening on %s", ", ".join(args.queues))
        worker.work(burst=args.burst, with_scheduler=not args.burst)


if __name__ == "__main__":
    main()
