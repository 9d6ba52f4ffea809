"""Directory sync runs: the edge that takes the lease, records the run and commits.

A run goes: take the ``directory-sync`` lease (a second run is refused: "already running"; a run
whose process died is closed as abandoned by the next one, once its lease has lapsed) ->
read the source (a whole Graph delta round, a whole HR export, a whole canonical CSV) -> plan
(:mod:`intranet.directory.planning`) -> ask the guard -> either apply the plan
(:mod:`intranet.directory.apply`) in one transaction, together with the new deltaLink, or hold it
for an admin. Every run, whatever happens, is recorded in ``intranet_sync_run``. An expired
deltaLink (``syncStateNotFound``, 410) or a changed ``$select`` makes a Graph run a full resync
with mark-and-sweep.

The lease (``INTRANET_DIRECTORY_LEASE_SECONDS``) is renewed as pages arrive and while waiting
out Graph's Retry-After, so it stays short, and a crashed sync blocks the next one only that
long; the apply step re-takes it in its own transaction, so a run that lost it (paused past its
lease) never applies over a newer one. A killed run applies nothing: its plan is applied with
the new deltaLink in one transaction, and the next run starts again from the last one committed.

The planner and the apply step only flush; :class:`DirectorySync` commits between the phases,
like the scheduler's runner: the lease and the run record must be visible to other processes
while the run works.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import gc
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import update
from sqlmodel import Session

from intranet import leases
from intranet.directory import csv_import
from intranet.directory import guard as guard_mod
from intranet.directory import words
from intranet.directory.apply import apply_plan, save_state
from intranet.directory.hr import HrMapping, read_export
from intranet.directory.planning import Plan, Planner
from intranet.directory.policy import Policy, load as load_policy
from intranet.errors import IntranetError
from intranet.languages import N_, Phrase
from intranet.models import Employee, SyncHeld, SyncRun, SyncState
from intranet.settings import Settings

logger = logging.getLogger(__name__)

LEASE_NAME = "directory-sync"


class AlreadyRunning(RuntimeError):
    """Another directory sync holds the lease; the refused run is recorded as ``run_id``."""

    def __init__(self, run_id: int | None = None) -> None:
        super().__init__("A directory sync is already running; try again when it has finished.")
        self.run_id = run_id


class LeaseLost(RuntimeError):
    """Another sync took the lease while this one was paused past it; this one applies nothing."""

    def __init__(self) -> None:
        super().__init__("This directory sync lost its lease to another one (paused past it); nothing was applied.")


def _stage(staged: dict[str, Any], users: Iterable[dict[str, Any]]) -> int:
    """Fold one delta page into the round's staged changes (later items win, key by key)."""
    n = 0
    for user in users:
        oid = user.get("id")
        if not oid:
            continue
        n += 1
        removed = user.get("@removed")
        if removed is not None:
            staged[oid] = {"@removed": (removed or {}).get("reason") or "changed"}
            continue
        refs = user.pop("manager@delta", None)
        # Property names never contain "@": every such key is an OData annotation, not data.
        for key in [k for k in user if "@" in k]:
            del user[key]
        for key, value in user.items():
            # Complex values (employeeOrgData, onPremisesExtensionAttributes) are replaced whole, so a
            # null member is the same as a missing one: drop them (smaller records, faster JSON).
            if type(value) is dict and None in value.values():
                user[key] = {k: v for k, v in value.items() if v is not None}
        if refs is not None:
            alive = [r.get("id") for r in refs if "@removed" not in r and r.get("id")]
            user["_manager"] = alive[-1] if alive else None
        entry = staged.get(oid)
        if entry is None or "@removed" in entry:
            staged[oid] = user
        else:
            entry.update(user)
    return n


def _cycle_collector_paused(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run *method* with CPython's cyclic garbage collector paused.

    A round builds hundreds of thousands of small containers (staged users, plan rows) that hold
    no reference cycles; while they pile up, the collector re-scans all of them again and again
    (measured: some 12 s of gen-2 collections in a 100,000-user full sync). Reference counting
    still frees everything as usual; cycles made meanwhile are collected once it is back on.
    """

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return method(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return wrapper


@dataclasses.dataclass
class RunOutcome:
    run_id: int
    status: str
    message: str
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    #: The message as a phrase, for pages that word it in the reader's language (``message`` is its English).
    phrase: Phrase | None = None


class DirectorySync:
    """The edge of a sync run: lease, run record, read, plan, guard, apply or hold, commit.

    :param sessions: opens a database session (the app's ``state.sessions``); a run commits
        between its phases.
    :param settings: the app's settings (the time zone, the directory policy, Entra ID and Graph).
    :param clock: returns the current aware UTC time.
    :param graph_client: a :class:`intranet.directory.graph.GraphClient` (built from *settings* if None).
    :param progress: called with ``(done, total_or_None, label)`` while reading.
    """

    def __init__(self, sessions: Callable[[], Session], settings: Settings, *, clock: Callable[[], dt.datetime],
                 policy: Policy | None = None, graph_client: Any = None,
                 progress: Callable[[int, int | None, str], None] | None = None, owner: str | None = None) -> None:
        self.sessions = sessions
        self.settings = settings
        self.clock = clock
        self.policy = policy or load_policy(settings.directory)
        self._graph_client = graph_client
        self.progress = progress or (lambda done, total, label: None)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._released = True
        self.lease_ttl = settings.directory.lease
        self._renewed_at = 0.0

    def _session(self) -> Session:
        return self.sessions()

    @property
    def graph_client(self) -> Any:
        if self._graph_client is None:
            from intranet.directory.graph import GraphClient, GraphSettings

            self._graph_client = GraphClient(GraphSettings.from_settings(self.settings.entra), sleep=self._wait)
        return self._graph_client

    # -------------------------------------------------------------------------- lifecycle

    def _start(self, source: str, mode: str, trigger: str, **fields: Any) -> SyncRun:
        now = self.clock()
        with self._session() as session:
            if not leases.acquire(session, LEASE_NAME, self.owner, ttl=self.lease_ttl, now=now):
                session.rollback()
                run = SyncRun(source=source, mode=mode, trigger=trigger, status="refused", started_at=now,
                              finished_at=now, duration_ms=0,
                              error=words.REFUSED_ERROR, **fields)
                session.add(run)
                session.commit()
                raise AlreadyRunning(run.id)
            # Runs still "running" belong to a process that died (we hold the lease now, so none
            # is alive): close them, so the history says what happened. They applied nothing.
            abandoned = session.execute(update(SyncRun).where(SyncRun.status == "running").values(
                status="failed", finished_at=now,
                error="Abandoned: the process running it stopped before it finished; nothing was applied."))
            if abandoned.rowcount:
                logger.error("Closed %s directory sync run(s) whose process stopped mid-round (nothing of them "
                             "was applied)", abandoned.rowcount, extra={"alert": "directory_sync_abandoned"})
            run = SyncRun(source=source, mode=mode, trigger=trigger, status="running", started_at=now, **fields)
            session.add(run)
            session.commit()
            self._released = False
            self._renewed_at = time.monotonic()
            return run

    def _renew(self, *, force: bool = True) -> None:
        """Extend the lease (unless *force* is off and it was renewed less than a quarter lease ago)."""
        if not force and time.monotonic() - self._renewed_at < self.lease_ttl.total_seconds() / 4:
            return
        with self._session() as session:
            leases.acquire(session, LEASE_NAME, self.owner, ttl=self.lease_ttl, now=self.clock())
            session.commit()
        self._renewed_at = time.monotonic()

    def _wait(self, seconds: float) -> None:
        """Sleep *seconds* (a Graph Retry-After) while keeping the lease."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, self.lease_ttl.total_seconds() / 4))
            if not self._released:
                self._renew(force=False)

    def _release(self) -> None:
        if self._released:
            return
        with self._session() as session:
            leases.release(session, LEASE_NAME, self.owner)
            session.commit()

    def _fail(self, run: SyncRun, started: float, exc: BaseException) -> RunOutcome:
        with self._session() as session:
            row = session.get(SyncRun, run.id)
            assert row is not None
            row.status = "failed"
            row.error = str(exc)[:4000]
            row.request_id = getattr(exc, "request_id", None)
            # msal's correlation id (token errors) or the client-request-id we sent Graph.
            row.correlation_id = getattr(exc, "correlation_id", None) or getattr(exc, "client_request_id", None)
            row.finished_at = self.clock()
            row.duration_ms = int((time.perf_counter() - started) * 1000)
            session.add(row)
            session.commit()
        logger.error("Directory sync run %s failed: %s", run.id, exc)
        return RunOutcome(run.id, "failed", str(exc))

    def _conclude(self, run: SyncRun, plan: Plan, started: float, *, hold_reason: str | None,
                  extra: Mapping[str, Any] | None = None) -> RunOutcome:
        """Apply (or hold) the plan and record the run: one transaction."""
        now = self.clock()
        with self._session() as session:
            if not leases.acquire(session, LEASE_NAME, self.owner, ttl=self.lease_ttl, now=now):
                raise LeaseLost()
            row = session.get(SyncRun, run.id)
            assert row is not None
            for key, value in (extra or {}).items():
                setattr(row, key, value)
            _count(row, plan)
            if hold_reason:
                row.status = "held"
                row.error = str(Phrase(words.HELD_ERROR, reason=hold_reason))
                session.add(SyncHeld(run_id=run.id, reason=hold_reason[:1000], plan=plan.to_json(),
                                     diff=guard_mod.summarize(plan.diff), created_at=now))
            else:
                apply_plan(session, plan, now=now, policy=self.policy, run_id=run.id)
                row.delta_committed = save_state(session, plan, now)
                row.status = "succeeded"
            guard_mod.supersede_older(session, plan.source, run.id)
            row.finished_at = self.clock()
            row.duration_ms = int((time.perf_counter() - started) * 1000)
            session.add(row)
            leases.release(session, LEASE_NAME, self.owner)  # in the same commit: one fsync fewer
            session.commit()
            self._released = True
        message = (f"held: {hold_reason}" if hold_reason else
                   f"{plan.counts['seen']} seen, {plan.counts['created']} created, {plan.counts['updated']} updated, "
                   f"{plan.counts['deactivated']} deactivated, {plan.counts['reactivated']} reactivated, "
                   f"{plan.counts['quarantined']} quarantined, {plan.counts['unmapped']} unmapped values")
        logger.info("Directory sync run %s (%s %s): %s", run.id, plan.source, plan.mode, message)
        return RunOutcome(run.id, "held" if hold_reason else "succeeded", message, dict(plan.counts))

    def _recorded(self, run: SyncRun, started: float, body: Callable[[], RunOutcome], *,
                  refused: tuple[type[BaseException], ...]) -> RunOutcome:
        """Run one round's *body* and release the lease however it ends.

        A failure is recorded on the run; a *refused* one (a bad file, an error Graph answered)
        becomes the round's outcome, anything else propagates after it is recorded.
        """
        try:
            return body()
        except refused as exc:
            return self._fail(run, started, exc)
        except Exception as exc:
            self._fail(run, started, exc)
            raise
        finally:
            self._release()

    # -------------------------------------------------------------------------- Graph

    @_cycle_collector_paused
    def run_graph(self, *, full: bool = False, trigger: str = "cli") -> RunOutcome:
        """One Graph round (incremental from the committed deltaLink, or full with mark-and-sweep).

        :raise AlreadyRunning: another sync holds the lease (the refusal is recorded).
        """
        from intranet.directory.graph import DeltaExpired, GraphError

        started = time.perf_counter()
        client = self.graph_client
        select_hash = client.settings.select_hash()
        with self._session() as session:
            state = session.get(SyncState, "graph")
            delta_link = state.delta_link if state else None
            if state and state.select_hash and state.select_hash != select_hash:
                delta_link = None
                logger.warning("The Graph $select list changed; running a full resync")
        full = full or delta_link is None
        run = self._start("graph", "full" if full else "delta", trigger)
        notes: list[str] = []

        def body() -> RunOutcome:
            nonlocal full
            try:
                staged = self._read_round(None if full else delta_link)
            except DeltaExpired as exc:
                notes.append(f"deltaLink expired ({exc.status} {exc.code}); ran a full resync")
                full = True
                staged = self._read_round(None)
            staged, final_link = staged
            read_s = time.perf_counter() - started
            with self._session() as session:
                planner = Planner(session, self.policy, now=self.clock(),
                                  org_timezone=self.settings.site.org_timezone,
                                  tenant_id=client.settings.tenant_id)
                plan = planner.plan_graph(staged, full=full, delta_link=final_link, select_hash=select_hash)
                verdict = guard_mod.check(session, self.policy.guard, deactivations=plan.counts["deactivated"])
            logger.info("Graph round read in %.2f s, planned in %.2f s", read_s, time.perf_counter() - started - read_s)
            extra = {"mode": "full" if full else "delta"}
            if notes:
                extra["error"] = "; ".join(notes)
            return self._conclude(run, plan, started, hold_reason=verdict.reason if verdict.hold else None,
                                  extra=extra)

        return self._recorded(run, started, body, refused=(GraphError, LeaseLost))

    def _read_round(self, delta_link: str | None) -> tuple[dict[str, Any], str]:
        staged: dict[str, Any] = {}
        seen = pages = 0
        final = None
        for page in self.graph_client.iter_delta(delta_link):
            seen += _stage(staged, page.users)
            pages += 1
            self.progress(seen, None, "Reading Graph")
            self._renew(force=False)
            if page.delta_link:
                final = page.delta_link
        if final is None:  # pragma: no cover - iter_delta always ends with a deltaLink
            raise RuntimeError("The delta round ended without a deltaLink.")
        return staged, final

    # -------------------------------------------------------------------------- HR

    @_cycle_collector_paused
    def run_hr(self, data: bytes, *, file_name: str, mapping: str | None = None, as_of: dt.datetime | None = None,
               trigger: str = "cli") -> RunOutcome:
        """Import one HR export through its column mapping.

        :raise AlreadyRunning: another sync holds the lease (the refusal is recorded).
        """
        started = time.perf_counter()
        run = self._start("hr", "file", trigger, file_name=os_basename(file_name))

        def body() -> RunOutcome:
            hr_mapping = HrMapping.load(mapping or self.policy.hr_mapping, self.policy.mappings_dir)
            with self._session() as session:
                planner = Planner(session, self.policy, now=self.clock(),
                                  org_timezone=self.settings.site.org_timezone)
                export = read_export(data, hr_mapping, planner.normalizer, file_name=file_name, as_of=as_of,
                                     strip_leading_zeros=self.policy.strip_leading_zeros)
                self.progress(export.row_count, export.row_count, "Reading HR file")
                state = session.get(SyncState, "hr")
                last_rows = state.last_rows if state else None
                plan = planner.plan_hr(export, last_rows=last_rows)
                verdict = guard_mod.check(session, self.policy.guard, deactivations=plan.counts["deactivated"],
                                          hr_rows=export.row_count, last_hr_rows=last_rows)
            extra = {"file_sha256": export.sha256, "rows": export.row_count, "as_of": export.as_of,
                     "stale_source": bool(plan.counts.get("stale"))}
            if plan.counts.get("stale"):
                extra["error"] = (f"The HR file is older than {self.policy.hr_stale_after_days} days "
                                  f"(as of {export.as_of.date()}): HR was demoted to a fallback source.")
            return self._conclude(run, plan, started, hold_reason=verdict.reason if verdict.hold else None,
                                  extra=extra)

        return self._recorded(run, started, body, refused=(IntranetError, LeaseLost))

    # -------------------------------------------------------------------------- canonical CSV

    @_cycle_collector_paused
    def run_csv(self, data: bytes, *, file_name: str, trigger: str = "cli") -> RunOutcome:
        """Import a canonical CSV: all rows valid or nothing changes; the guard may hold it for an admin.

        A refused file is a failed run whose error is the line-numbered report.

        :raise AlreadyRunning: another sync holds the lease (the refusal is recorded).
        """
        started = time.perf_counter()
        run = self._start("csv", "file", trigger, file_name=os_basename(file_name),
                          file_sha256=hashlib.sha256(data).hexdigest())

        def body() -> RunOutcome:
            with self._session() as session:
                file = csv_import.read_file(session, data)
                self.progress(file.row_count, file.row_count, "Reading CSV")
                planner = Planner(session, self.policy, now=self.clock(),
                                  org_timezone=self.settings.site.org_timezone)
                plan = planner.plan_canonical(file)
                verdict = guard_mod.check(session, self.policy.guard, deactivations=plan.counts["deactivated"])
            return self._conclude(run, plan, started, hold_reason=verdict.reason if verdict.hold else None,
                                  extra={"rows": file.row_count})

        return self._recorded(run, started, body, refused=(IntranetError, LeaseLost))

    # -------------------------------------------------------------------------- held runs

    @_cycle_collector_paused
    def approve(self, run_id: int, *, admin: Employee) -> RunOutcome:
        """Apply a held run's plan exactly as the admin saw it (audited on the run)."""
        started = time.perf_counter()
        now = self.clock()
        with self._session() as session:
            if not leases.acquire(session, LEASE_NAME, self.owner, ttl=self.lease_ttl, now=now):
                raise AlreadyRunning(run_id)
            session.commit()
            self._released = False
        try:
            with self._session() as session:
                run, held = guard_mod.load_held(session, run_id)
                plan = Plan.from_json(held.plan)
                apply_plan(session, plan, now=now, policy=self.policy, run_id=run.id)
                run.delta_committed = save_state(session, plan, now)
                run.status, run.decided_by_pk, run.decided_at = "approved", admin.id, now
                held.plan = {}
                session.add_all([run, held])
                session.commit()
            logger.warning("Admin %s approved held %s sync run %s (%d deactivations)", admin.employee_id,
                           plan.source, run_id, len(plan.deactivate))
            applied = Phrase(N_("applied in %(seconds)s s"), seconds=f"{time.perf_counter() - started:.1f}")
            return RunOutcome(run_id, "approved", str(applied), phrase=applied)
        finally:
            self._release()


def os_basename(path: str) -> str:
    return os.path.basename(path)[:255]


def _count(row: SyncRun, plan: Plan) -> None:
    for name in ("seen", "created", "updated", "deactivated", "reactivated", "quarantined", "unmapped",
                 "reference_failures"):
        setattr(row, name, int(plan.counts.get(name, 0)))


# ================================================================================================
# The scheduled Graph sync
# ================================================================================================


def graph_job(sessions: Callable[[], Session], now: dt.datetime, settings: Settings) -> str | None:
    """Scheduled: an incremental Graph round, or a full resync when the last one is old.

    Commits as it goes (the run record, then the applied plan), so it takes a session factory.
    """
    if not settings.entra.configured:
        return None
    policy = load_policy(settings.directory)
    with sessions() as session:
        state = session.get(SyncState, "graph")
        full = state is None or state.last_full_at is None or (
            now - state.last_full_at >= dt.timedelta(hours=policy.full_resync_hours))
    sync = DirectorySync(sessions, settings, clock=lambda: now, policy=policy)
    try:
        return sync.run_graph(full=full, trigger="schedule").status
    except AlreadyRunning:
        logger.info("Scheduled directory sync skipped: another sync is running")
        return "refused"

