"""A journey as a timeline for one person, and how it is doing (aggregate only).

The timeline is a preview: the dates each step would be released for a chosen employee, from the
event the journey starts on (their hire date, or today for moves and promotions), with the
conditions that could skip a step. When the person is enrolled, each step's actual state is shown.

Measurement reads releases and reading state: per step, how many people it was released to,
skipped for, and of those released how many read it (and acknowledged a must-read). A step
released to fewer than the minimum group (``INTRANET_ANALYTICS_MIN_GROUP``) shows no rates
(:func:`intranet.analytics.privacy.guard_population`), so no one person's reading can be read off.
"""
from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import and_, case, func
from sqlmodel import Session, select

from intranet.analytics import privacy
from intranet.engagement.events import zone_of
from intranet.journeys.definitions import steps_of
from intranet.journeys.enrolment import DEFAULT_RULES, due_at, late_before
from intranet.models import Employee, Journey, JourneyEnrolment, JourneyRelease, JourneyStep, Post, PostState
from intranet.settings import JourneySettings


@dataclasses.dataclass(frozen=True)
class TimelineRow:
    """One step as it would (or did) reach the person."""

    step: JourneyStep
    post: Post
    due: dt.datetime
    local_date: dt.date
    #: "would_release", "too_late" (would be skipped), or the enrolled person's: "pending", "released", "skipped".
    #: Codes, not words: the page says them in the viewer's language, with the conditions from the step itself.
    state: str
    #: Why an enrolled person's step was skipped ("late", "not_read"), else None.
    reason: str | None = None


def event_date_for(journey: Journey, employee: Employee, now: dt.datetime) -> dt.date:
    """The date a preview starts from: the hire date for hire journeys (else today)."""
    if journey.trigger == "hire" and employee.hire_date is not None:
        return employee.hire_date
    return now.date()


def timeline(session: Session, journey: Journey, employee: Employee, now: dt.datetime, *,
             event_date: dt.date | None = None, org_timezone: str = "UTC",
             rules: JourneySettings = DEFAULT_RULES) -> tuple[dt.date, list[TimelineRow]]:
    """The dates each step of *journey* would be released to *employee* (and what may skip it)."""
    start = event_date or event_date_for(journey, employee, now)
    enrolment = session.exec(select(JourneyEnrolment).where(
        JourneyEnrolment.journey_id == journey.id, JourneyEnrolment.employee_pk == employee.id,
        JourneyEnrolment.event_date == start)).first()
    actual = {}
    if enrolment is not None:
        actual = {r.step_id: r for r in session.exec(select(JourneyRelease).where(
            JourneyRelease.enrolment_id == enrolment.id)).all()}
    zone = zone_of(employee.timezone, org_timezone)
    rows = []
    for step, post in steps_of(session, journey.id):
        due = due_at(start, step.offset_days, employee.timezone, org_timezone, rules=rules)
        reason = None
        if step.id in actual:
            state, reason = actual[step.id].status, actual[step.id].reason
        else:
            state = "too_late" if due < late_before(now, rules) else "would_release"
        rows.append(TimelineRow(step, post, due, due.astimezone(zone).date(), state, reason))
    return start, rows


@dataclasses.dataclass(frozen=True)
class StepStats:
    """How one step is doing; rates are None when fewer than the minimum group got the step."""

    step: JourneyStep
    title: str
    released: int
    skipped: int
    pending: int
    read_rate: float | None
    acknowledged_rate: float | None
    completion: float | None  # released among the enrolled people whose step is no longer pending
    hidden: bool


def measure(session: Session, journey: Journey, *, k: int) -> tuple[int, list[StepStats]]:
    """(people enrolled, per-step stats) for *journey*, under the minimum-group rule *k*."""
    enrolled = session.exec(select(func.count()).select_from(JourneyEnrolment)
                            .where(JourneyEnrolment.journey_id == journey.id)).one()
    enrolled = enrolled[0] if isinstance(enrolled, tuple) else enrolled
    state = and_(PostState.employee_pk == JourneyRelease.employee_pk, PostState.post_id == JourneyRelease.post_id)
    released = JourneyRelease.status == "released"
    rows = session.exec(
        select(JourneyRelease.step_id,
               func.sum(case((released, 1), else_=0)),
               func.sum(case((JourneyRelease.status == "skipped", 1), else_=0)),
               func.sum(case((JourneyRelease.status == "pending", 1), else_=0)),
               func.sum(case((and_(released, PostState.read_at.is_not(None)), 1), else_=0)),
               func.sum(case((and_(released, PostState.acknowledged_at.is_not(None)), 1), else_=0)))
        .join(JourneyStep, JourneyStep.id == JourneyRelease.step_id)
        .outerjoin(PostState, state)
        .where(JourneyStep.journey_id == journey.id)
        .group_by(JourneyRelease.step_id)).all()
    counts = {r[0]: [int(x or 0) for x in r[1:]] for r in rows}
    out = []
    for step, post in steps_of(session, journey.id):
        n_released, n_skipped, n_pending, n_read, n_acked = counts.get(step.id, [0, 0, 0, 0, 0])
        hidden = privacy.guard_population(n_released, k=k) is not None
        decided = n_released + n_skipped
        out.append(StepStats(
            step=step, title=post.title, released=n_released, skipped=n_skipped, pending=n_pending,
            read_rate=None if hidden else n_read / n_released,
            acknowledged_rate=None if hidden or not post.must_read else n_acked / n_released,
            completion=None if hidden or not decided else n_released / decided, hidden=hidden))
    return enrolled, out
