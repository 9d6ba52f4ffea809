"""Starting journeys from directory changes, idempotently, without a flood of old steps.

:func:`detect` compares each active employee with what journeys last saw of them
(:class:`~intranet.models.JourneyWatch`) and returns the events; :func:`enrol` puts a person on a
journey for one event. :func:`enrol_job` (job ``journeys-enrol``) does both.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, select

from intranet.db import insert_new
from intranet.engagement.events import zone_of
from intranet.models import Employee, Journey, JourneyEnrolment, JourneyRelease, JourneyStep, JourneyWatch
from intranet.settings import JourneySettings

logger = logging.getLogger(__name__)

#: The organisation's journey rules (``INTRANET_JOURNEY_*``) when a caller gives none: the declared defaults
#: (manager level 6, release at 09:00 local time, a 2-day catch-up window).
DEFAULT_RULES = JourneySettings()
_RELEASES = JourneyRelease.__table__  # type: ignore[attr-defined]
_ENROLMENTS = JourneyEnrolment.__table__  # type: ignore[attr-defined]


@dataclasses.dataclass(frozen=True)
class Event:
    """Something in a person's directory record that starts journeys with this trigger."""

    employee_pk: int
    trigger: str
    key: str
    on: dt.date


def due_at(event_date: dt.date, offset_days: int, timezone: str | None, org_timezone: str = "UTC", *,
           rules: JourneySettings = DEFAULT_RULES) -> dt.datetime:
    """When a step *offset_days* after *event_date* is released: ``rules.release_hour`` local time, in UTC."""
    day = event_date + dt.timedelta(days=offset_days)
    local = dt.datetime.combine(day, dt.time(rules.release_hour), tzinfo=zone_of(timezone, org_timezone))
    return local.astimezone(dt.timezone.utc)


def late_before(now: dt.datetime, rules: JourneySettings = DEFAULT_RULES) -> dt.datetime:
    """Steps due before this moment are too old to release (``rules.catch_up_days`` before *now*)."""
    return now - dt.timedelta(days=rules.catch_up_days)


def _hire_events(session: Session, now: dt.datetime, rules: JourneySettings) -> list[Event]:
    longest = session.exec(select(JourneyStep.offset_days).join(Journey, Journey.id == JourneyStep.journey_id)
                           .where(Journey.trigger == "hire").order_by(JourneyStep.offset_days.desc())).first()
    if longest is None:
        return []
    # Only hire dates whose last step could still be released: older hires can never be enrolled.
    since = now.date() - dt.timedelta(days=longest + rules.catch_up_days + 1)
    rows = session.exec(select(Employee.id, Employee.hire_date).where(
        Employee.active.is_(True), Employee.hire_date.is_not(None), Employee.hire_date >= since)).all()
    return [Event(pk, "hire", f"hire:{hired.isoformat()}", hired) for pk, hired in rows]


def detect(session: Session, now: dt.datetime, rules: JourneySettings = DEFAULT_RULES) -> list[Event]:
    """The events since the last call: hires (from hire dates), moves and promotions (from the watch).

    Moves are dated *now* (the sync saw them now); the watch rows are updated in the same
    transaction, so a committed detection is never seen again. A person seen for the first time is
    recorded without a move or promotion event: nothing says what they were before.
    """
    events = _hire_events(session, now, rules)
    manager = rules.manager_level
    today = now.date()
    changed = session.exec(
        select(Employee.id, Employee.department, Employee.country, Employee.level, JourneyWatch)
        .outerjoin(JourneyWatch, JourneyWatch.employee_pk == Employee.id)
        .where(Employee.active.is_(True), or_(
            JourneyWatch.employee_pk.is_(None),
            Employee.department.is_distinct_from(JourneyWatch.department),
            Employee.country.is_distinct_from(JourneyWatch.country),
            Employee.level.is_distinct_from(JourneyWatch.level)))).all()
    for pk, department, country, level, watch in changed:
        if watch is None:
            session.add(JourneyWatch(employee_pk=pk, department=department, country=country, level=level,
                                     seen_at=now))
            continue
        if department != watch.department and department is not None:
            events.append(Event(pk, "department_move", f"department:{watch.department}->{department}@{today}", today))
        if country != watch.country and country is not None:
            events.append(Event(pk, "country_move", f"country:{watch.country}->{country}@{today}", today))
        if level is not None and level >= manager and (watch.level is None or watch.level < manager):
            events.append(Event(pk, "manager_promotion", f"manager:{level}@{today}", today))
        watch.department, watch.country, watch.level, watch.seen_at = department, country, level, now
        session.add(watch)
    session.flush()
    return events


def enrol(session: Session, journey: Journey, employee: Employee, *, event_key: str, event_date: dt.date,
          now: dt.datetime, org_timezone: str = "UTC", rules: JourneySettings = DEFAULT_RULES
          ) -> JourneyEnrolment | None:
    """Put *employee* on *journey* for one event; None when already enrolled for it or when every
    step is too old to release (see ``rules.catch_up_days``).

    A paused journey still enrols (its steps wait for the resume); steps too old are recorded as
    skipped so the measurement sees them.
    """
    steps = session.exec(select(JourneyStep).where(JourneyStep.journey_id == journey.id)).all()
    if not steps or not employee.active:
        return None
    dues = {step.id: due_at(event_date, step.offset_days, employee.timezone, org_timezone, rules=rules)
            for step in steps}
    cutoff = late_before(now, rules)
    if all(due < cutoff for due in dues.values()):
        return None
    inserted = insert_new(session, _ENROLMENTS, [{"journey_id": journey.id, "employee_pk": employee.id,
                                                  "event_key": event_key[:255], "event_date": event_date,
                                                  "enrolled_at": now}],
                          ("journey_id", "employee_pk", "event_key"), ("id",))
    if not inserted:
        return None
    enrolment_id = inserted[0][0]
    insert_new(session, _RELEASES, [
        {"enrolment_id": enrolment_id, "step_id": step.id, "employee_pk": employee.id, "post_id": step.post_id,
         "due_at": dues[step.id], "status": "skipped" if dues[step.id] < cutoff else "pending",
         "reason": "late" if dues[step.id] < cutoff else "", "released_at": None, "reminded_at": None}
        for step in steps], ("enrolment_id", "step_id"), ("id",))
    session.flush()
    logger.info("Journey %s: enrolled employee %s for %s", journey.id, employee.employee_id, event_key)
    return session.get(JourneyEnrolment, enrolment_id)


def enrol_events(session: Session, events: list[Event], now: dt.datetime, *, org_timezone: str = "UTC",
                 rules: JourneySettings = DEFAULT_RULES) -> int:
    """Enrol each event's person on every journey with its trigger; returns the new enrolments."""
    journeys: dict[str, list[Journey]] = {}
    for journey in session.exec(select(Journey)).all():
        journeys.setdefault(journey.trigger, []).append(journey)
    new = 0
    for event in events:
        employee = session.get(Employee, event.employee_pk)
        for journey in journeys.get(event.trigger, []):
            if employee is not None and enrol(session, journey, employee, event_key=event.key, event_date=event.on,
                                              now=now, org_timezone=org_timezone, rules=rules):
                new += 1
    return new


def enrol_job(session: Session, now: dt.datetime, settings: Any) -> int:
    """Scheduled (``journeys-enrol``): detect directory changes and start the journeys they trigger."""
    org_timezone = settings.site.org_timezone if settings is not None else "UTC"
    rules = settings.journeys if settings is not None else DEFAULT_RULES
    return enrol_events(session, detect(session, now, rules), now, org_timezone=org_timezone, rules=rules)
