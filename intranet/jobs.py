"""Beacon's periodic jobs, declared in one table, and the one process that runs them.

Every job is listed in :func:`periodic_job_definitions` (nothing registers a job by being
imported). A job is a function ``run(session, now, settings)``: it does its work in *session*
and the runner commits. The few jobs that must commit as they go (the sender commits each
message, the directory sync each step of its round) say so with ``commits=True``; they get
the app's session factory instead of a session and own their transactions.

APScheduler cannot share a job store between processes, so exactly one process runs the jobs:
``flask intranet scheduler`` in production (it holds a database lease; a second one waits), or
the serving process itself on a single machine. Every job is also safe to run twice: it claims
its work through uniquely constrained rows, so a stray second scheduler does no harm.

This is the only module that imports APScheduler.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask, current_app
from sqlalchemy import delete, or_
from sqlmodel import Session
from werkzeug.serving import run_simple

from intranet import leases
from intranet.models import AuthSession
from intranet.settings import Settings

if TYPE_CHECKING:
    from intranet.delivery.rendering import Renderer
    from intranet.engagement.buffer import FlusherThread

logger = logging.getLogger(__name__)
LEASE_NAME = "scheduler"
#: Jobs this frequent run when the scheduler starts (or takes over), then at their interval.
START_AT_ONCE = dt.timedelta(minutes=5)


@dataclasses.dataclass(frozen=True)
class Job:
    """A periodic job: what runs (``"module:function"``), how often, and how it handles lateness."""

    id: str
    #: ``"package.module:function"``, imported when the job first runs: this table names every
    #: job without importing (or being imported by) the subsystems that do the work.
    target: str
    every: dt.timedelta
    description: str
    # Late runs (a restart, a long GC pause) still run within this window instead of being dropped
    # (APScheduler 3's default is 1 s); coalescing turns a backlog into one catch-up run.
    misfire_grace_time: int = 300
    coalesce: bool = True
    #: The job commits as it goes and is given the session factory, not a session.
    commits: bool = False

    def function(self) -> Callable[..., Any]:
        """The job's function.

        :raise LookupError: the target names no function (a module or function was renamed).
        """
        module_name, _, name = self.target.partition(":")
        function = getattr(importlib.import_module(module_name), name, None)
        if not callable(function):
            raise LookupError(f"Job {self.id}: {self.target} is not a function.")
        return function


def periodic_job_definitions() -> list[Job]:
    """Every periodic job Beacon runs."""
    minute, hour = dt.timedelta(minutes=1), dt.timedelta(hours=1)
    return [
        Job("purge-sessions", "intranet.jobs:purge_sessions", 15 * minute, "End expired sessions."),
        Job("posts-publish-due", "intranet.jobs:publish_due_posts", minute, "Publish scheduled posts."),
        Job("posts-expire-due", "intranet.jobs:expire_due_posts", 5 * minute, "Expire posts past their date."),
        Job("feed-purge-snapshots", "intranet.feed:purge_snapshots", hour,
            "Forget ranked feed orders whose paging window has ended."),
        # ranking.PRIOR_REFRESH; feeds recompute a department themselves only past PRIOR_MAX_AGE.
        Job("ranking-refresh", "intranet.ranking:refresh_job", hour,
            "Recompute each department's topic prior and recount post ratings the ranker reads.",
            misfire_grace_time=3600),
        # Directory: a Graph round commits its run record, then the applied plan (a lease
        # spans the round), so it owns its transactions.
        Job("directory-graph-sync", "intranet.directory.runs:graph_job", 30 * minute,
            "Sync employees from Entra ID (incremental; full resync every 3 days).",
            misfire_grace_time=600, commits=True),
        Job("directory-lifecycle", "intranet.directory.lifecycle:lifecycle_job", hour,
            "Apply HR terminations that took effect; anonymize employees deleted in Entra once their "
            "retention ended."),
        # Digests: planning is idempotent and cheap to repeat, so a missed hour is caught up once.
        Job("digests-refresh-model", "intranet.delivery.planning:refresh_job", hour,
            "Fold settled reading events into each person's read-time counts.", misfire_grace_time=3600),
        Job("digests-plan", "intranet.delivery.planning:plan_job", hour,
            "Plan everyone's digest slots for the next hours.", misfire_grace_time=3600),
        # Every minute, like enqueueing: an alert is at most one window plus a minute late.
        Job("alerts-scan", "intranet.delivery.alerts:scan_job", minute,
            "Give new must-reads, their reminders and as-it-happens posts their alert slots."),
        # A late run still picks up every due slot (expired ones are marked).
        Job("digests-enqueue", "intranet.delivery.enqueue:enqueue_job", minute, "Queue due digests in the outbox."),
        # Coalesced, so a backlog after downtime is one catch-up run; a short grace time, since
        # expired messages are marked by the sender itself, never sent late. The sender commits
        # the claim, then each message's result right after sending it.
        Job("digests-send", "intranet.jobs:send_digests", minute,
            "Send due digest messages (paced to the provider's rate).", misfire_grace_time=120, commits=True),
        # Daily: a suggestion after days of unread digests needs no minute's precision.
        Job("digests-fatigue", "intranet.delivery.fatigue:scan_job", 24 * hour,
            "Suggest a gentler cadence to people who keep ignoring their digests (and, where enabled, step "
            "it down and tell them).", misfire_grace_time=6 * 3600),
        Job("digests-purge", "intranet.delivery.sending:purge_job", 24 * hour,
            "Forget digest slots and outbox rows older than 30 days.", misfire_grace_time=6 * 3600),
        # Journeys: enrolment compares the directory with what it last saw (idempotent by a unique
        # enrolment per event); releases and reminders are compare-and-set, so repeats change nothing.
        Job("journeys-enrol", "intranet.journeys.enrolment:enrol_job", 15 * minute,
            "Start journeys for people hired, moved or promoted in the directory.", misfire_grace_time=1800),
        Job("journeys-release", "intranet.journeys.releases:release_job", 5 * minute,
            "Release due journey steps to the people on them and remind about unacknowledged must-reads."),
        # Live events are queued by the ingest and folded here in bulk (analytics answers fold first too).
        Job("analytics-fold", "intranet.analytics.rollups:fold_job", minute,
            "Fold newly ingested reading events into the analytics rollups."),
        # Batches commit one by one, so a large first purge never holds a long write lock.
        Job("events-purge", "intranet.engagement.retention:purge_job", 24 * hour,
            "Delete raw reading events older than the retention period (rollups keep the aggregates).",
            misfire_grace_time=6 * 3600, commits=True),
        # PostgreSQL only (a no-op on SQLite): months are created ahead, so no event lands in the
        # default partition; the migration created the first three ahead.
        Job("events-partitions", "intranet.engagement.partitions:ensure_job", 24 * hour,
            "Create the reading-event table's monthly partitions for this month and the next three.",
            misfire_grace_time=6 * 3600),
        # Replies to feedback: emailed within a minute of the reply's commit, like digests.
        Job("feedback-send", "intranet.jobs:send_feedback_replies", minute,
            "Email replies to feedback to the people who wrote it (when email is their channel).",
            misfire_grace_time=120, commits=True),
        Job("feedback-purge", "intranet.delivery.feedback_mail:purge_job", 24 * hour,
            "Forget reply emails finished more than 30 days ago.", misfire_grace_time=6 * 3600),
        # Webhooks: every 15 seconds, so a host hears of an event within seconds of its commit; a
        # round that finds nothing due is one indexed query. The sender commits as it goes.
        Job("webhooks-send", "intranet.jobs:send_webhooks", dt.timedelta(seconds=15),
            "Deliver recorded webhook events to their endpoints (signed; retried with backoff).",
            misfire_grace_time=60, commits=True),
        # Rate-limit windows whose bucket is never hit again (an embed token's jti) stay behind otherwise.
        Job("rate-limits-purge", "intranet.throttle:purge_job", 24 * hour,
            "Forget rate-limit counts of windows that ended more than a day ago.", misfire_grace_time=6 * 3600),
        Job("webhooks-purge", "intranet.webhooks.sender:purge_job", 24 * hour,
            "Forget webhook events finished more than 30 days ago.", misfire_grace_time=6 * 3600),
    ]


# ------------------------------------------------------------------------------------------------
# The platform's own jobs, and the sender's edge (the others live with their subsystems)
# ------------------------------------------------------------------------------------------------


def purge_sessions(session: Session, now: dt.datetime, settings: Settings) -> int:
    """Delete sessions past their idle or absolute timeout."""
    idle, absolute = now - settings.sessions.idle, now - settings.sessions.absolute
    result = session.exec(delete(AuthSession).where(
        or_(AuthSession.last_seen_at < idle, AuthSession.created_at < absolute)))
    return result.rowcount or 0


def publish_due_posts(session: Session, now: dt.datetime, settings: Settings) -> int:
    """Record scheduled posts whose time has come as published (visibility never waits for this)."""
    from intranet import posts

    return posts.publish_due(session, now)


def expire_due_posts(session: Session, now: dt.datetime, settings: Settings) -> int:
    """Record live posts past their expiry as expired."""
    from intranet import posts

    return posts.expire_due(session, now)


def send_digests(sessions: Callable[[], Session], now: dt.datetime, settings: Settings) -> str:
    """Send paced batches of due digest and alert messages for up to 45 s (:mod:`intranet.delivery.sending`).

    An edge like the runner: the sender renders with the app's templates (a host may override
    them) and signs unsubscribe links with its secret key, and reads the app's clock again before
    each send, since pacing takes time.
    """
    from intranet.delivery import sending

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return str(sending.send_batch(sessions, app.extensions["intranet"].clock, settings, renderer_for(app)))


def send_feedback_replies(sessions: Callable[[], Session], now: dt.datetime, settings: Settings) -> str:
    """Email one paced batch of replies to feedback (:mod:`intranet.delivery.feedback_mail`), with
    the app's templates and clock, as :func:`send_digests` does."""
    from intranet.delivery import feedback_mail

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return str(feedback_mail.send_batch(sessions, app.extensions["intranet"].clock, settings, app.jinja_env))


def send_webhooks(sessions: Callable[[], Session], now: dt.datetime, settings: Settings) -> str:
    """Deliver one batch of webhook events (:mod:`intranet.webhooks.sender`), reading the app's clock
    again before each delivery, as :func:`send_digests` does."""
    from intranet.webhooks import sender

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return str(sender.send_batch(sessions, app.extensions["intranet"].clock, settings))


def renderer_for(app: Flask) -> Renderer:
    """How *app* renders messages: its Jinja environment, its secret key and its site settings."""
    from intranet.delivery.rendering import Renderer

    return Renderer(app.jinja_env, app.extensions["intranet"].secret_key, app.extensions["intranet"].settings.site)


# ------------------------------------------------------------------------------------------------
# The runner
# ------------------------------------------------------------------------------------------------


def run_once(app: Flask, job: Job) -> Any:
    """Run *job* now, in its own session and transaction (unless it commits itself), and commit.

    :raise Exception: whatever the job raised, after rolling its transaction back.
    """
    state = app.extensions["intranet"]
    function = job.function()
    with app.app_context():  # rendering mail needs the app's templates
        if job.commits:
            return function(state.sessions, state.clock(), state.settings)
        with state.sessions() as session:
            result = function(session, state.clock(), state.settings)
            session.commit()
            return result


def run_job(app: Flask, job: Job) -> Any:
    """Run *job* for the scheduler: a failure is logged (and rolled back), and the job runs again
    at its next tick."""
    try:
        return run_once(app, job)
    except Exception:
        logger.exception("Scheduled job %s failed; it will run again at its next tick", job.id)
        return None


def build_scheduler(app: Flask, jobs: list[Job] | None = None) -> BackgroundScheduler:
    """A BackgroundScheduler with every declared job (not started)."""
    scheduler = BackgroundScheduler(timezone=dt.timezone.utc)
    started = dt.datetime.now(dt.timezone.utc)
    for job in periodic_job_definitions() if jobs is None else jobs:
        # Frequent jobs (sending, queueing, alerts) run as soon as the scheduler starts: a standby
        # taking over from a crashed scheduler resumes the work at once, not an interval later.
        # Hourly and daily ones keep their interval (a restart must not rerun them every time).
        first = started if job.every <= START_AT_ONCE else None
        scheduler.add_job(run_job, "interval", args=(app, job), id=job.id, name=job.description,
                          seconds=job.every.total_seconds(), misfire_grace_time=job.misfire_grace_time,
                          coalesce=job.coalesce, max_instances=1, replace_existing=True,
                          **({"next_run_time": first} if first else {}))
    return scheduler


class LeasedScheduler:
    """Runs the scheduler only while holding the database lease; waits (and retries) otherwise."""

    def __init__(self, app: Flask, owner: str | None = None) -> None:
        self.app = app
        self.state = app.extensions["intranet"]
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.ttl = self.state.settings.scheduler.lease
        self.stopping = threading.Event()
        self.scheduler: BackgroundScheduler | None = None
        self.flusher: FlusherThread | None = None

    def _hold_lease(self) -> bool:
        with self.state.sessions() as session:
            held = leases.acquire(session, LEASE_NAME, self.owner, ttl=self.ttl, now=self.state.clock())
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
                    self.scheduler = build_scheduler(self.app)
                    logger.info("Scheduler %s holds the lease; running %d jobs", self.owner,
                                len(self.scheduler.get_jobs()))
                    self.scheduler.start()
                    self._start_flusher()
                    waiting_logged = False
                elif not held:
                    if self.scheduler is not None:
                        logger.warning("Scheduler %s lost its lease; pausing", self.owner)
                        self.scheduler.shutdown(wait=False)
                        self.scheduler = None
                        self._stop_flusher()
                    if not waiting_logged:
                        logger.info("Another scheduler holds the lease; %s is waiting", self.owner)
                        waiting_logged = True
                        if on_wait:
                            on_wait()
                self.stopping.wait(renew_every)
        finally:
            if self.scheduler is not None:
                self.scheduler.shutdown(wait=True)
            self._stop_flusher()
            with self.state.sessions() as session:
                leases.release(session, LEASE_NAME, self.owner)
                session.commit()

    def stop(self) -> None:
        self.stopping.set()

    def _start_flusher(self) -> None:
        # The event buffer's one flusher runs beside the jobs, under the same lease: it reads
        # continuously (every second), which an interval job could not do without piling up runs.
        from intranet.engagement.buffer import FlusherThread, flusher_for

        if self.state.event_buffer is not None and self.flusher is None:
            self.flusher = FlusherThread(flusher_for(self.state.event_buffer, self.state.sessions,
                                                     org_timezone=self.state.settings.site.org_timezone)).start()

    def _stop_flusher(self) -> None:
        if self.flusher is not None:
            self.flusher.stop()  # drains the stream first
            self.flusher = None


def serve(app: Flask, host: str = "127.0.0.1", port: int = 5000) -> None:
    """Serve Beacon on one machine, running the scheduler in-process.

    The scheduler starts in the process that serves requests: never on import, and never in the
    reloader's parent process (it would run twice).
    """
    in_reloader_parent = app.debug and os.environ.get("WERKZEUG_RUN_MAIN") != "true"
    if app.extensions["intranet"].settings.scheduler.run_in_server and not in_reloader_parent:
        runner = LeasedScheduler(app)
        threading.Thread(target=runner.run, name="beacon-scheduler", daemon=True).start()
    run_simple(host, port, app, use_reloader=app.debug, use_debugger=app.debug, threaded=True)
