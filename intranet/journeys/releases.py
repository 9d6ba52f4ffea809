"""Releasing due journey steps, with their conditions, and reminding about unacknowledged must-reads.

:func:`release_due` (job ``journeys-release``) is safe to run twice or in two schedulers at once:
every change is a compare-and-set from ``pending`` (or an unset ``reminded_at``), so only one run
wins each row, and alert items are inserted once per (person, post, round).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, select

from intranet.delivery import alerts
from intranet.journeys.enrolment import DEFAULT_RULES, late_before
from intranet.models import Journey, JourneyRelease, JourneyStep, Post, PostState
from intranet.settings import AlertSettings, JourneySettings

logger = logging.getLogger(__name__)
_RELEASES = JourneyRelease.__table__  # type: ignore[attr-defined]


@dataclasses.dataclass
class Outcome:
    """What one run did."""

    released: int = 0
    skipped: int = 0
    reminded: int = 0


def _set(session: Session, release_id: int, now: dt.datetime, *, status: str, reason: str = "") -> bool:
    # Compare-and-set: a second scheduler finds the row no longer pending and changes nothing.
    result = session.execute(update(_RELEASES).where(_RELEASES.c.id == release_id, _RELEASES.c.status == "pending")
                             .values(status=status, reason=reason,
                                     released_at=now if status == "released" else None))
    return result.rowcount == 1


def _read(session: Session, employee_pk: int, post_id: int) -> bool:
    state = session.get(PostState, (employee_pk, post_id))
    return state is not None and state.read_at is not None


def release_due(session: Session, now: dt.datetime, *, alert_settings: AlertSettings | None = None,
                org_timezone: str = "UTC", rules: JourneySettings = DEFAULT_RULES) -> Outcome:
    """Release (or skip) every pending step due by *now* on an active journey, then send reminders."""
    outcome = Outcome()
    due = session.exec(
        select(JourneyRelease, JourneyStep, Post)
        .join(JourneyStep, JourneyStep.id == JourneyRelease.step_id)
        .join(Journey, Journey.id == JourneyStep.journey_id)
        .join(Post, Post.id == JourneyRelease.post_id)
        .where(JourneyRelease.status == "pending", JourneyRelease.due_at <= now, Journey.status == "active")
        .order_by(JourneyRelease.due_at, JourneyStep.offset_days, JourneyRelease.id)
        .execution_options(populate_existing=True)).all()
    owed: dict[int, list[Any]] = {}
    cutoff = late_before(now, rules)
    for release, step, post in due:
        if release.due_at < cutoff:  # paused (or stopped) too long: never a backlog at once
            outcome.skipped += _set(session, release.id, now, status="skipped", reason="late")
            continue
        if step.skip_unless_read:
            earlier = session.exec(select(JourneyRelease.post_id).join(
                JourneyStep, JourneyStep.id == JourneyRelease.step_id).where(
                JourneyRelease.enrolment_id == release.enrolment_id,
                JourneyStep.key == step.skip_unless_read)).first()
            if earlier is None or not _read(session, release.employee_pk, earlier):
                outcome.skipped += _set(session, release.id, now, status="skipped", reason="not_read")
                continue
        if _set(session, release.id, now, status="released"):
            outcome.released += 1
            if post.must_read:  # a new must-read is alerted, as any must-read is when it goes live
                owed.setdefault(release.employee_pk, []).append(
                    alerts.owe(post.id, 0, must_read=True, topic=post.topic))
    outcome.reminded = _remind(session, now, owed)
    alerts.attach(session, owed, now, settings=alert_settings, org_timezone=org_timezone)
    session.flush()
    return outcome


def _remind(session: Session, now: dt.datetime, owed: dict[int, list[Any]]) -> int:
    """Owe a reminder (alert round 1) for each released must-read step unacknowledged after its days."""
    rows = session.exec(
        select(JourneyRelease, JourneyStep, Post)
        .join(JourneyStep, JourneyStep.id == JourneyRelease.step_id)
        .join(Journey, Journey.id == JourneyStep.journey_id)
        .join(Post, Post.id == JourneyRelease.post_id)
        .where(JourneyRelease.status == "released", JourneyRelease.reminded_at.is_(None),
               JourneyStep.reminder_after_days.is_not(None), Post.must_read.is_(True),
               Journey.status == "active")
        # Releases were just changed by Core updates: read them afresh, not from the identity map.
        .execution_options(populate_existing=True)).all()
    reminded = 0
    for release, step, post in rows:
        assert release.released_at is not None and step.reminder_after_days is not None
        if release.released_at + dt.timedelta(days=step.reminder_after_days) > now:
            continue
        state = session.get(PostState, (release.employee_pk, post.id))
        if state is not None and state.acknowledged_at is not None:
            continue
        won = session.execute(update(_RELEASES).where(_RELEASES.c.id == release.id,
                                                      _RELEASES.c.reminded_at.is_(None))
                              .values(reminded_at=now)).rowcount == 1
        if won:
            reminded += 1
            owed.setdefault(release.employee_pk, []).append(alerts.owe(post.id, 1, must_read=True, topic=post.topic))
    return reminded


def release_job(session: Session, now: dt.datetime, settings: Any) -> int:
    """Scheduled (``journeys-release``): release due journey steps and send due reminders."""
    outcome = release_due(session, now, alert_settings=settings.alerts if settings is not None else None,
                          org_timezone=settings.site.org_timezone if settings is not None else "UTC",
                          rules=settings.journeys if settings is not None else DEFAULT_RULES)
    return outcome.released
