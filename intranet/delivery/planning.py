"""Digest planning: when each person gets a digest, written down as slots ahead of time.

* **Planning** (:func:`plan_all`, job ``digests-plan``): everyone's decayed read-time counts
  (:mod:`intranet.delivery.history`) go through :func:`intranet.delivery.timing.plan_digests`;
  the sends of the next hours become :class:`~intranet.models.Digest` rows keyed by the slot
  (employee, local date, ordinal), so a slot can never be planned, queued or sent twice.
* **Re-planning one person** (:func:`replan_employee`) when they change their preferences, and
  **explaining** their schedule (:func:`schedule_for`) against the stored peer curves.

The later steps each have a module: alerts get their own slots (:mod:`intranet.delivery.alerts`),
due slots are queued in the outbox (:mod:`intranet.delivery.enqueue`), what a slot says is
composed at send time (:mod:`intranet.delivery.content`), rendered
(:mod:`intranet.delivery.rendering`) and sent (:mod:`intranet.delivery.sending`).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy import delete, select
from sqlmodel import Session

from intranet import preferences
from intranet.delivery import history, timing
from intranet.db import insert_new
from intranet.engagement.events import zone_of
from intranet.models import Digest, Employee
from intranet.settings import Settings

logger = logging.getLogger(__name__)


_DIGEST = Digest.__table__  # type: ignore[attr-defined]
PLANNED_CADENCES = ("daily", "twice_daily", "weekly")
#: Slots are replaced by a new plan only when due later than this (enqueueing may be under way).
REPLAN_MARGIN = dt.timedelta(minutes=5)


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class PlanResult:
    """Everyone's plan: ``batch`` row ``i`` belongs to ``employee_pks[i]``."""

    employee_pks: list[int]
    employee_ids: list[str]
    zones: list[str]
    cadences: list[str]
    batch: timing.PlanBatch
    counts: timing.TimingCounts

    def as_dicts(self) -> list[dict[str, Any]]:
        """The ``digests plan --json`` document: one object per active employee."""
        out = []
        for i, plan in enumerate(self.batch):
            planned = self.cadences[i] in PLANNED_CADENCES
            out.append({
                "employee_id": self.employee_ids[i], "timezone": self.zones[i], "cadence": self.cadences[i],
                "next_sends_utc": [s.utc.isoformat().replace("+00:00", "Z") for s in plan.sends] if planned else [],
                "local_hours": list(plan.local_hours) if planned else [],
                "basis": str(plan.basis) if planned and plan.basis is not None else None,
            })
        return out


def _codes(values: list[str]) -> tuple[np.ndarray, dict[str, int]]:
    names, codes = np.unique(np.asarray(values, dtype=str), return_inverse=True) if values else (np.array([]), np.array([], np.int64))
    return codes.astype(np.int64), {str(n): i for i, n in enumerate(names)}


def _empty_batch() -> timing.PlanBatch:
    # Nobody to plan (timing.plan_digests expects at least one person).
    empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float64)
    return timing.PlanBatch(employee_ids=[], zones=[], basis=[], hours=np.zeros((0, 2), np.int64),
                            send_employee=empty_i, send_utc=empty_i, send_local_date=empty_i, send_ordinal=empty_i,
                            send_local_hour=empty_i, send_explored=np.zeros(0, bool), send_propensity=empty_f)


def plan_all(session: Session, now: dt.datetime, *, org_timezone: str = "UTC",
             settings: timing.TimingSettings | None = None,
             progress: Callable[[int], None] | None = None) -> PlanResult:
    """Plan the next seven days of digests for every active employee, and store the peer curves.

    :param now: aware UTC instant; sends fall in ``[now, now + 7 days)``.
    """
    s = settings or timing.TimingSettings()
    rows = session.execute(select(Employee.id, Employee.employee_id, Employee.timezone, Employee.department,
                                  Employee.region).where(Employee.active.is_(True))
                           .order_by(Employee.employee_id)).all()
    pks = [r[0] for r in rows]
    ids = [r[1] for r in rows]
    zones = [zone_of(r[2], org_timezone).key for r in rows]
    prefs = preferences.for_employees(session, pks)
    if progress:
        progress(len(rows) // 3)
    counts, _ = history.current_counts(session, pks, now, s)
    if progress:
        progress(len(rows) // 3)
    region, regions = _codes([r[4] or "" for r in rows])
    group, groups = _codes([f"{r[3] or ''}|{r[4] or ''}" for r in rows])
    windows = [preferences.delivery_window(prefs[pk]) for pk in pks]
    model = timing.fit_peers(counts, region, group, s) if rows else None
    batch = timing.plan_digests(ids, zones, windows, counts, group, now, model=model, settings=s) if rows else \
        _empty_batch()
    if model is not None:
        history.save_model(session, model, groups, regions, now)
    if progress:
        progress(len(rows) - 2 * (len(rows) // 3))
    return PlanResult(pks, ids, zones, [prefs[pk].cadence for pk in pks], batch, counts)


def store_plan(session: Session, result: PlanResult, now: dt.datetime, horizon: dt.timedelta) -> int:
    """Write the planned sends due before ``now + horizon`` as digest slots; returns how many were new.

    Future slots that are still only planned are replaced (preferences or habits may have changed);
    slots already queued are never touched, and the unique slot key keeps any slot single.
    """
    session.execute(delete(Digest).where(Digest.kind == "digest", Digest.status == "planned",
                                         Digest.due_at > now + REPLAN_MARGIN))
    rows: list[dict[str, Any]] = []
    for i, plan in enumerate(result.batch):
        if result.cadences[i] in PLANNED_CADENCES:
            rows += _slot_rows(result.employee_pks[i], result.zones[i], plan, now, now + horizon)
    return _insert_slots(session, rows)


def _slot_rows(employee_pk: int, zone: str, plan: timing.Plan, now: dt.datetime,
               end: dt.datetime) -> list[dict[str, Any]]:
    rows = []
    sends = plan.sends
    for k, send in enumerate(sends):
        if send.utc >= end:
            break
        nxt = sends[k + 1].utc if k + 1 < len(sends) else send.utc + dt.timedelta(hours=24)
        rows.append({"employee_pk": employee_pk, "local_date": send.local_date,
                     "ordinal": send.ordinal, "due_at": send.utc,
                     "expires_at": min(nxt, send.utc + dt.timedelta(hours=24)),
                     "timezone": zone, "local_hour": send.local_hour,
                     "basis": str(plan.basis) if plan.basis else None, "explored": send.explored,
                     "propensity": send.propensity, "status": "planned", "reason": "", "created_at": now})
    return rows


def _insert_slots(session: Session, rows: list[dict[str, Any]]) -> int:
    new = 0
    for start in range(0, len(rows), 500):
        new += len(insert_new(session, _DIGEST, rows[start:start + 500], ("employee_pk", "local_date", "ordinal"),
                              ("id",)))
    return new


def replan_employee(session: Session, employee: Employee, now: dt.datetime, horizon: dt.timedelta, *,
                    org_timezone: str = "UTC") -> int:
    """Replace *employee*'s planned digest slots with their current plan; returns how many were new.

    Called when they change their preferences, so the slots that go out before the next planning
    run are the very sends their preferences page lists, not the ones planned before the change.
    Slots already queued or sent keep their key, so none is sent twice.
    """
    session.execute(delete(Digest).where(Digest.employee_pk == employee.id, Digest.kind == "digest",
                                         Digest.status == "planned", Digest.due_at > now + REPLAN_MARGIN))
    prefs, zone, plan, *_ = _plan_for(session, employee, now, org_timezone)
    if prefs.cadence not in PLANNED_CADENCES:
        return 0
    return _insert_slots(session, _slot_rows(employee.id, zone, plan, now, now + horizon))


def plan_job(session: Session, now: dt.datetime, settings: Settings) -> int:
    """Scheduled: re-plan everyone and write the slots of the next hours."""
    result = plan_all(session, now, org_timezone=settings.site.org_timezone)
    return store_plan(session, result, now, settings.digests.plan_horizon)


def refresh_job(session: Session, now: dt.datetime, settings: Settings) -> int:
    """Scheduled: fold settled reading events into the stored read-time counts."""
    return history.refresh(session, now)


# --------------------------------------------------------------------------------------------
# One person's schedule, explained
# --------------------------------------------------------------------------------------------


def _plan_for(session: Session, employee: Employee, now: dt.datetime, org_timezone: str) -> tuple[
        preferences.Preferences, str, timing.Plan, timing.TimingCounts, timing.PeerModel, int]:
    """*employee*'s plan against the stored peer curves (fitted on one person if there are none)."""
    prefs = preferences.for_employee(session, employee)
    zone = zone_of(employee.timezone, org_timezone).key
    counts, _ = history.current_counts(session, [employee.id], now)
    stored = history.load_model(session)
    group_key = f"{employee.department or ''}|{employee.region or ''}"
    if stored is None:
        model = timing.fit_peers(counts, np.zeros(1, np.int64), np.zeros(1, np.int64))
        group = 0
    else:
        model, groups, _ = stored
        group = groups.get(group_key, -1)
    window = preferences.delivery_window(prefs)
    plan = timing.plan_employee(employee.employee_id, zone, window, counts, model, group, now)
    return prefs, zone, plan, counts, model, group


class PlannedSendPublic(BaseModel):
    """One digest send planned for you."""

    utc: str = Field(json_schema_extra={"format": "date-time"}, examples=["2026-12-07T08:00:00Z"])
    local_date: dt.date
    day: str = Field(description='The local day, short ("Wed 25 Nov")')
    local_hour: int
    ordinal: int = Field(description="Which of the day's sends (0: the first)")
    explored: bool = Field(description="A nearby hour, tried to keep learning when you read")


class SchedulePublic(BaseModel):
    """When your next digests go out, and why."""

    timezone: str
    cadence: preferences.Cadence
    channels: list[preferences.Channel]
    basis: str | None = Field(description="What the send hours are learned from (null: no planned digests)")
    local_hours: list[int]
    next_sends: list[PlannedSendPublic]
    usual_read_hour: int | None
    why: str


def schedule_for(session: Session, employee: Employee, now: dt.datetime, *, org_timezone: str = "UTC",
                 language: str | None = None) -> dict[str, Any]:
    """*employee*'s digest schedule for the next seven days and why (:class:`SchedulePublic`'s fields), the
    words (the explanation, the days) in *language*.

    Uses the organisation's stored peer curves when there are some, so one person is re-planned
    without refitting everyone (right after they change their preferences, say).
    """
    prefs, zone, plan, counts, model, group = _plan_for(session, employee, now, org_timezone)
    planned = prefs.cadence in PLANNED_CADENCES
    read_at = None
    if planned and plan.basis == timing.Basis.PERSONAL and plan.local_hours:
        # The hour each regular send is most likely read in, from the same sends the page lists.
        est = timing.estimate(counts, np.array([group]), model)
        days = (prefs.weekly_day,) if prefs.cadence == "weekly" else prefs.working_days
        read_at = timing.read_hours(est.mu[0], timing.regular_hours(plan), days)
    return {
        "timezone": zone, "cadence": prefs.cadence, "channels": list(prefs.channels),
        "basis": str(plan.basis) if planned and plan.basis else None,
        "local_hours": list(plan.local_hours) if planned else [],
        "next_sends": [{"utc": s.utc.isoformat().replace("+00:00", "Z"), "local_date": s.local_date.isoformat(),
                        "day": timing.day_label(s.local_date, language), "local_hour": s.local_hour, "ordinal": s.ordinal,
                        "explored": s.explored}
                       for s in plan.sends] if planned else [],
        "usual_read_hour": read_at[0] if read_at else None,
        "why": timing.explain(plan, prefs.cadence, read_at=read_at, learned_timing=prefs.learned_timing,
                              language=language),
    }
