"""Beacon's periodic jobs, declared as data, and the process that runs them.

APScheduler cannot share a job store between processes, so exactly one process runs the jobs:
``flask intranet scheduler`` in production (it holds a database lease; a second one waits), or
the serving process itself on a single machine. Every job is also safe to run twice: it claims
its work through uniquely constrained rows, so a stray second scheduler does no harm.

This is the only module that imports APScheduler.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask
from sqlalchemy import delete, or_
from sqlmodel import Session
from werkzeug.serving import run_simple

from intranet import leases
from intranet.models import AuthSession

logger = logging.getLogger(__name__)
LEASE_NAME = "scheduler"


@dataclasses.dataclass(frozen=True)
class Job:
    """A periodic job. ``run(session, now, config)`` does the work; the runner commits."""

    id: str
    run: Callable[[Session, dt.datetime, dict[str, Any]], Any]
    every: dt.timedelta
    # Late runs (a restart, a long GC pause) still run within this window instead of being dropped
    # (APScheduler 3's default is 1 s); coalescing turns a backlog into one catch-up run.
    misfire_grace_time: int = 300
    coalesce: bool = True
    description: str = ""


def purge_sessions(session: Session, now: dt.datetime, config: dict[str, Any]) -> int:
    """Delete sessions past their idle or absolute timeout."""
    idle = now - dt.timedelta(minutes=config["INTRANET_SESSION_IDLE_MINUTES"])
    absolute = now - dt.timedelta(hours=config["INTRANET_SESSION_ABSOLUTE_HOURS"])
    result = session.exec(delete(AuthSession).where(
        or_(AuthSession.last_seen_at < idle, AuthSession.created_at < absolute)))
    return result.rowcount or 0


def publish_due_posts(session: Session, now: dt.datetime, config: dict[str, Any]) -> int:
    """Record scheduled posts whose time has come as published (visibility never waits for this)."""
    from intranet import posts

    return posts.publish_due(session, now)


def expire_due_posts(session: Session, now: dt.datetime, config: dict[str, Any]) -> int:
    """Record live posts past their expiry as expired."""
    from intranet import posts

    return posts.expire_due(session, now)


JOBS: list[Job] = [
    Job("purge-sessions", purge_sessions, dt.timedelta(minutes=15), description="End expired sessions."),
    Job("posts-publish-due", publish_due_posts, dt.timedelta(minutes=1), description="Publish scheduled posts."),
    Job("posts-expire-due", expire_due_posts, dt.timedelta(minutes=5), description="Expire posts past their date."),
]


def register(job: Job) -> None:
    """Add a job (subsystems call this at import); re-registering the same id replaces it."""
    JOBS[:] = [j for j in JOBS if j.id != job.id] + [job]


def _load_subsystem_jobs() -> None:
    # Subsystems register their jobs when imported; import them here so the runner sees them all.
    for module in ("intranet.posts", "intranet.directory.runs", "intranet.directory.lifecycle",
                   "intranet.delivery.digests"):
        try:
            __import__(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def run_job(app: Flask, job: Job) -> Any:
    """Run one job in its own session and transaction."""
    state = app.extensions["intranet"]
    with app.app_context(), Session(state.engine, expire_on_commit=False) as session:
        try:
            result = job.run(session, state.clock(), app.config)
            session.commit()
            return result
        except Exception:
            session.rollback()
            logger.exception("Scheduled job %s failed; it will run again at its next tick", job.id)
            return None


def build_scheduler(app: Flask) -> BackgroundScheduler:
    """A BackgroundScheduler with every declared job (not started)."""
    _load_subsystem_jobs()
    scheduler = BackgroundScheduler(timezone=dt.timezone.utc)
    for job in JOBS:
        scheduler.add_job(run_job, "interval", args=(app, job), id=job.id, name=job.description or job.id,
                          seconds=job.every.total_seconds(), misfire_grace_time=job.misfire_grace_time,
                          coalesce=job.coalesce, max_instances=1, replace_existing=True)
    return scheduler


class LeasedScheduler:
    """Runs the scheduler only while holding the database lease; waits (and retries) otherwise."""

    def __init__(self, app: Flask, owner: str | None = None) -> None:
        self.app = app
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.ttl = dt.timedelta(seconds=app.config["INTRANET_SCHEDULER_LEASE_SECONDS"])
        self.stopping = threading.Event()
        self.scheduler: BackgroundScheduler | None = None

    def _hold_lease(self) -> bool:
        state = self.app.extensions["intranet"]
        with Session(state.engine) as session:
            held = leases.acquire(session, LEASE_NAME, self.owner, ttl=self.ttl, now=state.clock())
            session.commit()
            return held

    def run(self, on_wait: Callable[[], None] | None = None) -> None:
        """Block until :meth:`stop`: hold the lease, run jobs while it is held."""
        renew_every = max(self.ttl.total_seconds() / 3, 0.2)
        waiting_logged = False
        try:
            while not self.stopping.is_set():
                held = self._hold_lease()
                if held and self.scheduler is None:
                    logger.info("Scheduler %s holds the lease; running %d jobs", self.owner, len(JOBS))
                    self.scheduler = build_scheduler(self.app)
                    self.scheduler.start()
                    waiting_logged = False
                elif not held:
                    if self.scheduler is not None:
                        logger.warning("Scheduler %s lost its lease; pausing", self.owner)
                        self.scheduler.shutdown(wait=False)
                        self.scheduler = None
                    if not waiting_logged:
                        logger.info("Another scheduler holds the lease; %s is waiting", self.owner)
                        waiting_logged = True
                        if on_wait:
                            on_wait()
                self.stopping.wait(renew_every)
        finally:
            if self.scheduler is not None:
                self.scheduler.shutdown(wait=True)
            state = self.app.extensions["intranet"]
            with Session(state.engine) as session:
                leases.release(session, LEASE_NAME, self.owner)
                session.commit()

    def stop(self) -> None:
        self.stopping.set()


def serve(app: Flask, host: str = "127.0.0.1", port: int = 5000) -> None:
    """Serve Beacon on one machine, running the scheduler in-process.

    The scheduler starts in the process that serves requests: never on import, and never in the
    reloader's parent process (it would run twice).
    """
    in_reloader_parent = app.debug and os.environ.get("WERKZEUG_RUN_MAIN") != "true"
    if app.config["INTRANET_RUN_SCHEDULER"] and not in_reloader_parent:
        runner = LeasedScheduler(app)
        threading.Thread(target=runner.run, name="beacon-scheduler", daemon=True).start()
    run_simple(host, port, app, use_reloader=app.debug, use_debugger=app.debug, threaded=True)

