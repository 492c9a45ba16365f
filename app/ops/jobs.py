"""RQ with our logs and metrics: the request id travels from a request into the jobs it enqueues (job meta),
and every job run is one JSON line (`job`, `status`, `duration_ms`, `request_id`, `job_id`).

`RequestQueue` (what `app.extensions.get_queue` returns) copies the current request id into each new job's
meta; `LoggedJob.perform` logs the run under that id; `Worker` / `SimpleWorker` use both. A forking
`Worker` also names its work horses for Prometheus' multiprocess files (see `app.ops.metrics`): all horses
of one worker share one set of files, instead of one per job.
"""

import logging
import os
import time

import rq
from rq.worker import SimpleWorker as RQSimpleWorker

from app.ops import logs, metrics

log = logging.getLogger("app.jobs.run")


class LoggedJob(rq.job.Job):
    def perform(self):
        token = logs.bind(request_id=self.meta.get("request_id"), job_id=self.id, job=self.func_name,
                          queue=self.origin)
        started, status = time.perf_counter(), "failed"
        try:
            result = super().perform()
            status = "finished"
            return result
        finally:
            seconds = time.perf_counter() - started
            log.log(logging.INFO if status == "finished" else logging.WARNING, "job",
                    extra={"status": status, "duration_ms": round(seconds * 1000, 1)})
            metrics.job_run(self.func_name, status, seconds)
            logs.unbind(token)


class RequestQueue(rq.Queue):
    """An RQ queue whose new jobs carry the current request id in their meta."""

    job_class = LoggedJob

    def create_job(self, *args, **kwargs):
        request_id = logs.current("request_id")
        if request_id:
            kwargs["meta"] = {"request_id": request_id, **(kwargs.get("meta") or {})}
        return super().create_job(*args, **kwargs)


class Worker(rq.Worker):
    job_class = LoggedJob
    queue_class = RequestQueue

    def main_work_horse(self, job, queue):
        # One identity for every horse of this worker (they run one at a time): see app.ops.metrics.
        os.environ[metrics.PROCESS_ENV] = f"rqhorse{os.getppid()}"
        super().main_work_horse(job, queue)


class SimpleWorker(RQSimpleWorker):
    """Runs jobs in its own process (worker.py, the tests), with the same logs."""

    job_class = LoggedJob
    queue_class = RequestQueue
