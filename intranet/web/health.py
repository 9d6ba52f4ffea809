"""``/healthz`` and ``/readyz``: what a load balancer or an orchestrator asks of each instance.

* ``/healthz``: the process is alive and answering. It touches nothing else (no database), so a
  database outage never gets healthy processes restarted.
* ``/readyz``: this instance can serve: its settings are safe and the database answers one
  trivial query within ``INTRANET_READY_TIMEOUT``. Otherwise 503, and the balancer sends traffic
  elsewhere until it recovers (no restart needed: the pool re-connects, pre-ping drops dead
  connections).

Both are plain JSON without a session, CSRF or sign-in, and are never cached.
"""
from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy.exc import SQLAlchemyError

from intranet.db import ping
from intranet.web.context import public

bp = Blueprint("intranet_health", __name__)
logger = logging.getLogger(__name__)


def _answer(code: int, **body: str) -> Response:
    response = jsonify(body)
    response.status_code = code
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/healthz")
@public
def healthz() -> Response:
    """The process is alive (no database access)."""
    return _answer(200, status="ok")


@bp.get("/readyz")
@public
def readyz() -> Response:
    """Ready for traffic: safe settings and a database that answers in time; else 503."""
    state = current_app.extensions["intranet"]
    if state.unsafe is not None:
        return _answer(503, status="unavailable", reason="unsafe settings")
    try:
        ping(state.engine, timeout_s=state.settings.database.ready_timeout_s)
    except SQLAlchemyError as exc:
        # The driver's message names host and port, never the password (psycopg leaves it out).
        logger.warning("Not ready: the database did not answer (%s)", type(exc.orig or exc).__name__)
        return _answer(503, status="unavailable", reason="database")
    return _answer(200, status="ok")
