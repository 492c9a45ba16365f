"""The clock every `python worker.py` runs beside its jobs: the periodic sweeps and RQ's scheduled jobs.

It replaces two things that did not survive faults (issue 10): sweeps kept only as a chain of scheduled jobs
in Redis (gone after Redis restarted empty, until a worker was restarted by hand), and RQ's scheduler, whose
lock a worker killed with SIGKILL keeps for up to RQ's 10-minute maintenance interval. Every tick
(CLOCK_TICK_SECONDS):

- **sweeps**: for each periodic sweep, the worker that first sets `paysmith:periodic:<name>:<slot>` (SET NX,
  one key per period) enqueues that period's run, so however many workers tick, a sweep runs once a period.
  Nothing has to be re-created after Redis comes back empty: the next tick sets the key of the current
  period, so sweeps run again within one interval;
- **scheduled jobs** (`enqueue_at`/`enqueue_in`: expiry timers, retries): one worker at a time moves the due
  ones onto their queues, holding a lock it renews each tick and that expires after CLOCK_LOCK_SECONDS, so a
  killed holder is replaced seconds later.

Redis being away only makes ticks fail (logged once per outage); the clock keeps trying.
"""

import logging
import threading
import time
import uuid

from redis.exceptions import LockError, RedisError

from app.extensions import get_queue, get_redis

log = logging.getLogger(__name__)

LOCK_KEY = "paysmith:clock:scheduled-jobs"


class Clock:
    def __init__(self, app, queues):
        self.app, self.queues = app, list(queues)
        self.owner = uuid.uuid4().hex
        self._stop = threading.Event()
        self._lock = None
        self._failing = False

    # --- one tick -------------------------------------------------------------------------------------------

    def tick(self, now=None):
        """Enqueue the sweeps whose period has no run yet and move the due scheduled jobs; return the names of
        the sweeps this tick enqueued."""
        from app.jobs.schedule import PERIODIC

        now = time.time() if now is None else now
        redis, started = get_redis(self.app), []
        for name, (_, setting) in PERIODIC.items():
            every = self.app.config[setting]
            slot = int(now // every)
            if redis.set(f"paysmith:periodic:{name}:{slot}", self.owner, nx=True, ex=max(int(every * 2), 2)):
                get_queue("default", self.app).enqueue(
                    "app.jobs.schedule.run_periodic", name, job_id=f"periodic-{name}-{slot}", result_ttl=0,
                    job_timeout=max(int(every * 4), 300))
                started.append(name)
        if self._hold_lock(redis):
            self.move_scheduled_jobs(now)
        return started

    def _hold_lock(self, redis):
        """Take or renew the scheduled-jobs lock; False when another worker holds it."""
        timeout = self.app.config["CLOCK_LOCK_SECONDS"]
        if self._lock is not None:
            try:
                self._lock.reacquire()
                return True
            except LockError:  # expired or flushed meanwhile: try to take it again
                self._lock = None
        lock = redis.lock(LOCK_KEY, timeout=timeout, blocking=False)
        if lock.acquire(blocking=False):
            self._lock = lock
            return True
        return False

    def move_scheduled_jobs(self, now):
        for name in self.queues:
            queue = get_queue(name, self.app)
            registry = queue.scheduled_job_registry
            for job_id in registry.get_jobs_to_schedule(int(now)):
                job = queue.fetch_job(job_id)
                registry.remove(job_id)
                if job is not None:
                    queue.enqueue_job(job)

    # --- the thread -----------------------------------------------------------------------------------------

    def run(self):
        every = self.app.config["CLOCK_TICK_SECONDS"]
        while not self._stop.is_set():
            try:
                with self.app.app_context():
                    self.tick()
                if self._failing:
                    log.info("clock: Redis answers again")
                self._failing = False
            except RedisError:
                if not self._failing:
                    log.warning("clock: Redis is unreachable; sweeps and scheduled jobs wait for it")
                self._failing = True
            except Exception:
                log.exception("clock tick failed")
            self._stop.wait(every)

    def start(self):
        thread = threading.Thread(target=self.run, name="paysmith-clock", daemon=True)
        thread.start()
        return thread

    def stop(self):
        self._stop.set()
