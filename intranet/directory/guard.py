"""The mass-deactivation guard: a run that would empty the directory waits for an admin.

A run is held, with nothing applied, when it would deactivate more than
``max(guard.min_count, guard.percent % of active employees)`` people, or when an HR file has
sharply fewer rows than the last applied one (``guard.hr_row_drop``). The held run keeps its
complete change plan and a readable diff; an admin approves it (the plan is applied as shown)
or rejects it (nothing happens). Both decisions are recorded on the run.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from intranet.directory.policy import Guard
from intranet.errors import Conflict, NotFound
from intranet.languages import N_, Phrase, recognised
from intranet.models import Employee, SyncHeld, SyncRun

logger = logging.getLogger(__name__)


#: Why a run is held, one sentence a reason (a held run stores them in English, joined by "; ";
#: :func:`reason_phrases` reads them back to be worded in the admin's language).
TOO_MANY_DEACTIVATIONS = N_("it would deactivate %(count)s of %(active)s active employees (limit %(limit)s: "
                            "max(%(min)s, %(percent)s %%))")
HR_ROWS_DROPPED = N_("the HR file has %(rows)s rows, down from %(last)s last time (more than %(drop)s fewer)")
HOLD_REASONS = (TOO_MANY_DEACTIVATIONS, HR_ROWS_DROPPED)
#: A run's status, as a refusal to decide it says it (the same words as the admin pages').
RUN_STATUS_WORDS: dict[str, Phrase] = {status: Phrase(words) for status, words in (
    ("running", N_("running")), ("succeeded", N_("succeeded")), ("failed", N_("failed")), ("held", N_("held")),
    ("approved", N_("approved")), ("rejected", N_("rejected")), ("refused", N_("refused")),
    ("superseded", N_("superseded")))}


def reason_phrases(reason: str) -> tuple[Phrase | str, ...]:
    """A held run's stored *reason*, each of its sentences as the phrase that wrote it (to word in any language)."""
    return tuple(recognised(part, HOLD_REASONS) for part in reason.split("; "))


@dataclasses.dataclass(frozen=True)
class Verdict:
    hold: bool
    reason: str = ""


def check(session: Session, guard: Guard, *, deactivations: int, hr_rows: int | None = None,
          last_hr_rows: int | None = None) -> Verdict:
    """Whether a run with these effects must wait for an admin, and why."""
    active = session.exec(select(func.count()).select_from(Employee).where(Employee.active.is_(True))).one()
    limit = guard.limit(active)
    reasons = []
    if deactivations > limit:
        reasons.append(str(Phrase(TOO_MANY_DEACTIVATIONS, count=deactivations, active=active, limit=limit,
                                  min=guard.min_count, percent=f"{guard.percent:g}")))
    if (hr_rows is not None and last_hr_rows and hr_rows < last_hr_rows * (1 - guard.hr_row_drop)
            and last_hr_rows - hr_rows >= guard.hr_row_drop_min_rows):
        reasons.append(str(Phrase(HR_ROWS_DROPPED, rows=hr_rows, last=last_hr_rows, drop=f"{guard.hr_row_drop:.0%}")))
    return Verdict(bool(reasons), "; ".join(reasons))


def held_runs(session: Session) -> list[tuple[SyncRun, SyncHeld]]:
    """Runs waiting for a decision, newest first."""
    rows = session.exec(select(SyncRun, SyncHeld).join(SyncHeld, SyncHeld.run_id == SyncRun.id)
                        .where(SyncRun.status == "held").order_by(SyncRun.id.desc())).all()
    return [(run, held) for run, held in rows]


def load_held(session: Session, run_id: int) -> tuple[SyncRun, SyncHeld]:
    """:raise NotFound: no held run with that id. :raise Conflict: it was decided already."""
    run = session.get(SyncRun, run_id)
    held = session.get(SyncHeld, run_id)
    if run is None or held is None:
        raise NotFound(N_("No such held sync run."))
    if run.status != "held":
        raise Conflict(N_("Sync run %(id)s is %(status)s, not waiting for a decision."), id=run_id,
                       status=RUN_STATUS_WORDS.get(run.status, run.status))
    newer = session.exec(select(func.count()).select_from(SyncRun).where(
        SyncRun.source == run.source, SyncRun.id > run.id,
        SyncRun.status.in_(("succeeded", "approved", "held")))).one()
    if newer:
        raise Conflict(N_("A newer %(source)s sync run exists; this held run is out of date. Decide the newest one."),
                       source=run.source)
    return run, held


def reject(session: Session, run_id: int, *, admin: Employee, now: dt.datetime) -> SyncRun:
    """Drop the held changes (audited on the run)."""
    run, held = load_held(session, run_id)
    run.status, run.decided_by_pk, run.decided_at = "rejected", admin.id, now
    held.plan = {}
    session.add_all([run, held])
    session.flush()
    logger.warning("Admin %s rejected held %s sync run %s", admin.employee_id, run.source, run.id)
    return run


def supersede_older(session: Session, source: str, newer_run_id: int) -> int:
    """Mark held runs of *source* older than *newer_run_id* superseded (their plans are out of date)."""
    older = session.exec(select(SyncRun).where(SyncRun.source == source, SyncRun.status == "held",
                                               SyncRun.id < newer_run_id)).all()
    for run in older:
        run.status = "superseded"
        session.add(run)
    return len(older)


def summarize(diff: dict[str, Any], limit: int = 200) -> dict[str, Any]:
    """A diff trimmed for display."""
    out = dict(diff)
    for key in ("deactivations", "updates", "creates"):
        if isinstance(out.get(key), list):
            out[f"{key}_total"] = len(out[key])
            out[key] = out[key][:limit]
    return out
