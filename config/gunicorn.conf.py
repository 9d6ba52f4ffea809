"""gunicorn settings for Beacon in production (``make serve-prod``; ``gunicorn -c config/gunicorn.conf.py app:app``).

Every value comes from a typed ``INTRANET_*`` setting (intranet/settings.py, ``ServerSettings``),
read from the environment like the app's own, so a bad value stops the start naming the variable.
The scheduler is **not** started here: it runs as one process of its own
(``flask --app app intranet scheduler``), which ``make serve-prod`` starts beside gunicorn.

Decisions, and why:

* ``gthread`` workers with a few threads: a request spends most of its time waiting for
  PostgreSQL, and threads share one worker's memory and connection pool. Each worker keeps
  ``INTRANET_DB_POOL_SIZE`` (>= threads) + ``INTRANET_DB_MAX_OVERFLOW`` connections at most.
* ``preload_app``: the app is built once in the master, so a bad setting fails the start once
  (instead of every worker crash-looping), and workers share the loaded code copy-on-write. The
  master must hand no open database connection to its children: :func:`post_fork` discards
  the pool the child inherited (SQLAlchemy's ``dispose(close=False)`` for forked processes).
* Forwarded headers are trusted in one place only, Werkzeug's ``ProxyFix`` inside the app, for
  exactly ``INTRANET_TRUSTED_PROXIES`` hops. gunicorn's own handling of ``X-Forwarded-Proto`` is
  switched off (``secure_scheme_headers = {}``), or two layers would disagree about the scheme.
* Logs: gunicorn's error log is JSON like the app's; its access log is off, because the app logs
  one ``intranet.access`` line per request carrying the request id that gunicorn cannot know.
* ``max_requests`` with jitter recycles workers now and then, which bounds any slow leak (in
  Beacon or a library) without all workers restarting at once.
"""
from __future__ import annotations

import logging
import os

from intranet.settings import Settings, from_environ

_server = Settings.from_config(from_environ(os.environ)).server

bind = _server.bind
workers = _server.workers
worker_class = "gthread"
threads = _server.threads
timeout = _server.timeout_s
graceful_timeout = _server.timeout_s
keepalive = 5
preload_app = True
max_requests = 5000
max_requests_jitter = 500
secure_scheme_headers: dict[str, str] = {}
forwarded_allow_ips = "127.0.0.1,::1"
accesslog = None
errorlog = "-"
loglevel = "info"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "intranet.web.request_log.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "intranet.web.request_log.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                   "formatter": _server.log_format, "filters": ["request_id"]},
    },
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        "apscheduler": {"level": "WARNING"},
    },
}


def when_ready(server) -> None:  # type: ignore[no-untyped-def]
    """Once the master is up: warn when the deployment could open more connections than PostgreSQL allows."""
    from intranet.connections import check_connection_budget

    app = server.app.wsgi()
    state = app.extensions["intranet"]
    check_connection_budget(state.engine, state.settings)


def post_fork(server, worker) -> None:  # type: ignore[no-untyped-def]
    """In each new worker: drop the database connections inherited from the master (never share a socket)."""
    app = server.app.wsgi()
    app.extensions["intranet"].engine.dispose(close=False)
    logging.getLogger("gunicorn.error").info("Worker %s ready", worker.pid)
