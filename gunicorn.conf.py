"""gunicorn settings: `gunicorn -c gunicorn.conf.py --bind … --workers N wsgi:app` (what `./dev run` does).

- Logs: gunicorn's own lines are JSON like the app's (app.ops.logs); there is no access log, because the app
  logs one JSON line per request itself, without the raw path and query string (callbacks carry signatures).
- Metrics: with PROMETHEUS_MULTIPROC_DIR set (an empty directory, shared with `worker.py`, wiped before the
  first of them starts) each worker process writes its series there and /metrics adds them up; `child_exit`
  drops the per-process live files of a worker that ended, as prometheus_client's multiprocess mode asks.
"""

accesslog = None
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "app.ops.logs.Formatter"}},
    "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["json"], "propagate": False}},
    # gunicorn's default puts a handler on the root logger; the app puts its own there (app.ops.logs).
    "root": {"level": "INFO", "handlers": []},
}


def child_exit(server, worker):
    from app.ops.metrics import mark_process_dead

    mark_process_dead(worker.pid)
