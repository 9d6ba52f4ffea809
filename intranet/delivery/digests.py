"""Digests: plan when each person gets one, decide what goes in it, hand it to the outbox.

* **Planning** (:func:`plan_all`, job ``digests-plan``): everyone's decayed read-time counts
  (:mod:`intranet.delivery.history`) go through :func:`intranet.delivery.timing.plan_digests`;
  the sends of the next hours become :class:`~intranet.models.Digest` rows keyed by the slot
  (employee, local date, ordinal), so a slot can never be planned, queued or sent twice.
* **Enqueueing** (:func:`enqueue_due`, job ``digests-enqueue``): a due slot is claimed with a
  conditional UPDATE (one winner however many schedulers run), then one outbox message per
  channel is inserted (``ON CONFLICT DO NOTHING``).
* **Composing** (:func:`compose`, at send time): the unread posts targeted at the person since
  their last digest, must-reads they owe first, then feed order, capped, re-checked through
  the targeting rule at that moment. An empty digest is not sent.

Must-reads for people without a planned digest, their reminders, and posts for people who want
them as they happen travel as *alert* slots in the same table (``Digest.kind``), under the same
slot key; :mod:`intranet.delivery.alerts` explains that design. Enqueueing and sending treat both
kinds alike, except for what goes in them.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import and_, delete, func, select, update
from sqlmodel import Session

from intranet import preferences, targeting
from intranet.delivery import alerts, history, timing
from intranet.delivery.content import ContentItem, DigestContent
from intranet.db import insert_new
from intranet.engagement.events import zone_of
from intranet.models import Digest, Employee, OutboxMessage, Post, PostState
from intranet.settings import Settings

logger = logging.getLogger(__name__)


_DIGEST = Digest.__table__  # type: ignore[attr-defined]
_OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
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


def schedule_for(session: Session, employee: Employee, now: dt.datetime, *, org_timezone: str = "UTC") -> dict[str, Any]:
    """*employee*'s digest schedule for the next seven days and why, for ``GET /me/digest-schedule``.

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
                        "day": timing.day_label(s.local_date), "local_hour": s.local_hour, "ordinal": s.ordinal,
                        "explored": s.explored}
                       for s in plan.sends] if planned else [],
        "usual_read_hour": read_at[0] if read_at else None,
        "why": timing.explain(plan, prefs.cadence, read_at=read_at, learned_timing=prefs.learned_timing),
    }


# --------------------------------------------------------------------------------------------
# Composing
# --------------------------------------------------------------------------------------------


def last_sent_at(session: Session, employee_pk: int, *, before_digest: int | None = None) -> dt.datetime | None:
    """When *employee_pk*'s last digest went out (any channel), ignoring *before_digest* itself.

    Alerts do not count: a weekly digest still covers what came out before a must-read alert.
    """
    query = (select(func.max(OutboxMessage.sent_at)).join(Digest, Digest.id == OutboxMessage.digest_id)
             .where(OutboxMessage.employee_pk == employee_pk, OutboxMessage.status == "sent",
                    Digest.kind == "digest"))
    if before_digest is not None:
        query = query.where(OutboxMessage.digest_id != before_digest)
    return session.execute(query).scalar()


def compose(session: Session, employee: Employee, now: dt.datetime, *, since: dt.datetime | None,
            prefs: preferences.Preferences | None = None, limit: int = 10, lookback_days: int = 7,
            reminder_after: dt.timedelta = dt.timedelta(hours=48), must_reads_only: bool = False) -> DigestContent:
    """The digest *employee* should get at *now*.

    Must-reads they have not acknowledged come first (whatever their topic mutes say, until the
    deadline), then unread posts published since *since* (their last digest) in feed order.
    Visibility is decided by :func:`intranet.targeting.visible_posts_filter` at *now*, so a post
    retracted or re-targeted after the digest was planned is left out.
    """
    if not employee.active:
        return DigestContent([], 0, 0)
    prefs = prefs or preferences.for_employee(session, employee)
    since = since or now - dt.timedelta(days=lookback_days)
    group_keys = targeting.group_keys_of(session, employee.id)
    state = and_(PostState.post_id == Post.id, PostState.employee_pk == employee.id)
    query = (select(Post, PostState.read_at, PostState.acknowledged_at).outerjoin(PostState, state)
             .where(targeting.visible_posts_filter(employee, group_keys, now))
             .order_by(Post.published_at.desc(), Post.id.desc()))
    must, rest = [], []
    muted = set(prefs.muted_topics)
    overdue = 0
    for post, read_at, ack_at in session.execute(query):
        item = ContentItem(post.id, post.title, post.summary, post.topic, post.must_read, post.published_at,
                          post.ack_deadline)
        if post.must_read and ack_at is None and (post.ack_deadline is None or post.ack_deadline > now):
            must.append(item)
            if post.published_at <= now - reminder_after:
                overdue += 1
        elif not must_reads_only and read_at is None and post.published_at > since and post.topic not in muted:
            rest.append(item)
    ordered = must + rest
    return DigestContent(items=ordered[:limit], more=max(len(ordered) - limit, 0), overdue_must_reads=overdue)


# --------------------------------------------------------------------------------------------
# Enqueueing due slots
# --------------------------------------------------------------------------------------------


def message_id(employee: Employee, digest: Digest, channel: str, domain: str) -> str:
    """A Message-ID that stays the same on every retry of this slot and channel."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in employee.employee_id)
    return f"<{digest.kind}.{safe}.{digest.local_date.isoformat()}.{digest.ordinal}.{channel}@{domain}>"


def _second_channel(channels: tuple[str, ...]) -> str | None:
    for candidate in ("teams", "email"):
        if candidate not in channels:
            return candidate
    return None


def enqueue_due(session: Session, now: dt.datetime, *, domain: str = "beacon.invalid", limit: int = 2000,
                reminder_after: dt.timedelta = dt.timedelta(hours=48), teams_enabled: bool = False) -> int:
    """Turn due digest slots into outbox messages (one per channel); returns how many slots were queued.

    Each slot is claimed by a conditional UPDATE, so concurrent schedulers split the work instead
    of doubling it. A slot past its expiry is marked expired, a deactivated person's is cancelled.
    """
    due = session.execute(select(Digest.id).where(Digest.status == "planned", Digest.due_at <= now)
                          .order_by(Digest.due_at).limit(limit)).scalars().all()
    queued = 0
    for digest_id in due:
        claimed = session.execute(update(Digest).where(Digest.id == digest_id, Digest.status == "planned")
                                  .values(status="queued"))
        if claimed.rowcount != 1:
            continue
        digest = session.get(Digest, digest_id)
        employee = session.get(Employee, digest.employee_pk)
        if employee is None or not employee.active:
            digest.status, digest.reason = "cancelled", "employee inactive"
            continue
        if now >= digest.expires_at:
            digest.status, digest.reason = "expired", "enqueued after its expiry"
            continue
        prefs = preferences.for_employee(session, employee)
        if digest.kind == "digest" and prefs.cadence not in PLANNED_CADENCES:
            digest.status, digest.reason = "cancelled", f"cadence is now {prefs.cadence}"
            continue
        channels = [c for c in prefs.channels if c != "teams" or teams_enabled]
        if digest.kind == "alert":
            content = alerts.compose(session, employee, digest, now, prefs=prefs)
        else:
            content = compose(session, employee, now, since=last_sent_at(session, employee.id), prefs=prefs,
                              reminder_after=reminder_after)
        if content.empty:
            digest.status, digest.reason = "skipped", "nothing new"
            continue
        rows = [{"channel": c, "escalation": False} for c in channels]
        second = _second_channel(tuple(channels))
        if content.overdue_must_reads and second and (second != "teams" or teams_enabled):
            rows.append({"channel": second, "escalation": True})
        values = [{"digest_id": digest.id, "employee_pk": employee.id, "channel": r["channel"],
                   "escalation": r["escalation"], "status": "pending", "attempts": 0, "next_attempt_at": now,
                   "expires_at": digest.expires_at, "lease_until": None, "claimed_by": None,
                   "message_id": message_id(employee, digest, r["channel"], domain), "post_ids": [],
                   "sent_at": None, "last_error": None, "created_at": now} for r in rows]
        insert_new(session, _OUTBOX, values, ("digest_id", "channel"), ("id",))
        queued += 1
    session.flush()
    return queued


def enqueue_job(session: Session, now: dt.datetime, settings: Settings) -> int:
    """Scheduled: queue the digests that are due."""
    from urllib.parse import urlsplit

    domain = urlsplit(settings.site.base_url).hostname or "beacon.invalid"
    return enqueue_due(session, now, domain=domain, reminder_after=settings.alerts.reminder_after,
                       teams_enabled=settings.mail.teams_enabled)
