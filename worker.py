"""The RQ worker: `python worker.py` processes Paysmith's queues on the app's own config and Redis, with the
app context pushed so jobs can use the database.

It is an RQ `SimpleWorker`: jobs run in the worker process itself instead of a forked work horse per job,
which cost about 150 ms of CPU per job (issue 10). Isolation stays acceptable because jobs are short and
bounded: a webhook batch has per-request connect/read timeouts and a deadline, gateway and mail calls have
timeouts, and RQ's job timeout still stops a job that overruns (SIGALRM in this process). A job that crashes
the process takes the worker down; run it under a supervisor that restarts it (systemd `Restart=always`).

Beside the jobs runs the clock (app.jobs.clock): the periodic sweeps and the scheduled jobs (expiry timers,
retries), in a thread that survives Redis restarting empty and other workers being killed.

    python worker.py            # work forever
    python worker.py --burst    # work until the queues are empty, then exit (no clock)
    python worker.py --queues webhooks_slow   # a worker only for endpoints that were slow or failing
"""

import argparse
import logging
import time

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app import create_app
from app.extensions import get_queue, get_redis
from app.jobs import QUEUES
from app.ops.jobs import SimpleWorker  # RQ's, with our job log lines, metrics and request ids


def main(argv=None):
    parser = argparse.ArgumentParser(description="Paysmith RQ worker")
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--queues", nargs="+", choices=QUEUES, default=QUEUES,
                        help="queues to serve, in priority order (default: all)")
    args = parser.parse_args(argv)
    app = create_app()
    with app.app_context():
        if not args.burst:
            from app.jobs.clock import Clock

            Clock(app, QUEUES).start()
        supervise(app, args.queues, burst=args.burst)


def supervise(app, queues, *, burst=False):
    """Run an RQ worker; when Redis goes away under it (RQ retries only some of its calls, others end the
    worker), start a new one as soon as Redis answers again, so nobody has to restart anything."""
    log = logging.getLogger(__name__)
    wait = app.config["WORKER_RECONNECT_MAX_SECONDS"]
    while True:
        try:
            worker = SimpleWorker([get_queue(name) for name in queues], connection=get_redis())
            # While Redis is away RQ waits longer and longer between tries (up to a minute); come back sooner.
            worker.max_connection_wait_time = wait
            log.info("worker listening on %s", ", ".join(queues))
            worker.work(burst=burst, with_scheduler=False)
            return  # asked to stop, or a burst is done
        except (RedisConnectionError, RedisTimeoutError):
            log.warning("lost Redis; starting the worker again once it answers", exc_info=True)
            time.sleep(wait)


if __name__ == "__main__":
    main()
