"""What Beacon holds about one person, as one JSON document they can download (GDPR art. 15 and 20).

The document has only that person's rows: their profile, their preferences (and which of them they
chose), their reading events, read and acknowledgement marks, ratings, the digests planned for
them and the messages sent, the journeys they were put on (each step's date and fate, and the
directory values journeys last saw of them), and their learned reading hours (the decayed counts per local hour of
the week that delivery learns from, and the send hours planned from them). Erasure lives with the
directory's lifecycle (:func:`intranet.directory.lifecycle.erase`).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Session, select

from intranet import feedback, people, preferences
from intranet.delivery import history, planning, timing
from intranet.webhooks import events as webhook_events
from intranet.models import (
    ROLES, Digest, Employee, EngagementEvent, FatigueNotice, Journey, JourneyEnrolment, JourneyRelease, JourneyStep,
    JourneyWatch, OutboxMessage, Post, PostState, Rating,
)

PROFILE_FIELDS = ("employee_id", "email", "display_name", "department", "division", "region", "country", "office",
                  "job_title", "level", "level_label", "manager_id", "timezone", "language", "active")
EVENT_FIELDS = ("kind", "post_id", "occurred_at", "received_at", "local_hour", "local_weekday", "dwell_ms",
                "delivery_id", "channel", "surface", "position", "device", "source")
FORMAT_VERSION = 1


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (dt.datetime, dt.date)) else value


def _row(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: _iso(getattr(obj, name)) for name in fields}


def _learned_hours(session: Session, employee: Employee, now: dt.datetime, org_timezone: str) -> dict[str, Any]:
    counts, _first = history.current_counts(session, [employee.id], now)  # type: ignore[list-item]

    def grid(row: Any) -> list[list[float]]:
        # Hour of week h = weekday * 24 + local hour, Monday first.
        return [[round(float(row[d * 24 + h]), 3) for h in range(24)] for d in range(7)]

    schedule = planning.schedule_for(session, employee, now, org_timezone=org_timezone)
    return {
        "explanation": "Decayed counts per local weekday (Monday first) and hour, as of the export; "
                       "older activity counts for less (half-life of four weeks).",
        "digest_reads": grid(counts.reads[0]),
        "activity": grid(counts.activity[0]),
        "observed_weeks": round(float(counts.observed_weeks[0]), 3),
        "planned": {key: schedule[key] for key in ("timezone", "basis", "local_hours", "usual_read_hour", "why")},
        "hours_per_week": timing.HOURS_PER_WEEK,
    }


def export(session: Session, employee: Employee, *, now: dt.datetime, org_timezone: str = "UTC") -> dict[str, Any]:
    """Everything Beacon stores about *employee*, as JSON-ready data (only their rows)."""
    pk = employee.id
    events = session.exec(select(EngagementEvent).where(EngagementEvent.employee_pk == pk)
                          .order_by(EngagementEvent.occurred_at, EngagementEvent.id)).all()
    ratings = session.exec(select(Rating).where(Rating.employee_pk == pk).order_by(Rating.post_id)).all()
    states = session.exec(select(PostState).where(PostState.employee_pk == pk).order_by(PostState.post_id)).all()
    digests = session.exec(select(Digest).where(Digest.employee_pk == pk).order_by(Digest.due_at)).all()
    messages = session.exec(select(OutboxMessage).where(OutboxMessage.employee_pk == pk)
                            .order_by(OutboxMessage.created_at, OutboxMessage.id)).all()
    return {
        "format": FORMAT_VERSION,
        "exported_at": _iso(now),
        "profile": {**_row(employee, PROFILE_FIELDS), "created_at": _iso(employee.created_at),
                    "roles": [r for r in ROLES if getattr(employee, people.ROLE_COLUMNS[r])]},
        "preferences": preferences.PreferencesPublic.of(preferences.for_employee(session, employee)).model_dump(mode="json"),
        "events": [_row(e, EVENT_FIELDS) for e in events],
        "post_states": [{"post_id": s.post_id, "read_at": _iso(s.read_at), "acknowledged_at": _iso(s.acknowledged_at)}
                        for s in states],
        "ratings": [_row(r, ("post_id", "stars", "thumb", "comment", "signed", "created_at", "updated_at"))
                    for r in ratings],
        "digests": [_row(d, ("kind", "local_date", "ordinal", "due_at", "timezone", "local_hour", "basis", "status",
                             "reason")) for d in digests],
        "messages": [_row(m, ("channel", "status", "attempts", "post_ids", "sent_at", "created_at")) for m in messages],
        "feedback": [item.model_dump(mode="json") for item in feedback.mine(session, employee)],
        "learned_hours": _learned_hours(session, employee, now, org_timezone),
        "cadence_notice": _cadence_notice(session, employee),
        "journeys": _journeys(session, employee),
        "journey_watch": _journey_watch(session, employee),
        # What Beacon told other systems about the person (acknowledgements, digests sent).
        "webhook_events": webhook_events.about(session, employee),
    }


def _cadence_notice(session: Session, employee: Employee) -> dict[str, Any] | None:
    """The person's latest suggested (or automatic) cadence step down (:mod:`intranet.delivery.fatigue`)."""
    notice = session.get(FatigueNotice, employee.id)
    if notice is None:
        return None
    return _row(notice, ("kind", "from_cadence", "to_cadence", "ignored", "created_at", "resolved_at", "resolution",
                         "announced_at"))


def _journeys(session: Session, employee: Employee) -> list[dict[str, Any]]:
    """Each journey enrolment (the event that started it) with its steps: when each was due and what became of it."""
    enrolments = session.exec(select(JourneyEnrolment, Journey).join(Journey, Journey.id == JourneyEnrolment.journey_id)
                              .where(JourneyEnrolment.employee_pk == employee.id)
                              .order_by(JourneyEnrolment.enrolled_at, JourneyEnrolment.id)).all()
    releases = session.exec(select(JourneyRelease, JourneyStep, Post)
                            .join(JourneyStep, JourneyStep.id == JourneyRelease.step_id)
                            .join(Post, Post.id == JourneyRelease.post_id)
                            .where(JourneyRelease.employee_pk == employee.id)
                            .order_by(JourneyRelease.due_at, JourneyRelease.id)).all()
    steps: dict[int, list[dict[str, Any]]] = {}
    for release, step, post in releases:
        steps.setdefault(release.enrolment_id, []).append({
            "step": step.key, "post_id": post.id, "title": post.title,
            **_row(release, ("due_at", "status", "reason", "released_at", "reminded_at"))})
    return [{"journey": journey.name, "trigger": journey.trigger,
             **_row(enrolment, ("event_key", "event_date", "enrolled_at")), "steps": steps.get(enrolment.id, [])}
            for enrolment, journey in enrolments]


def _journey_watch(session: Session, employee: Employee) -> dict[str, Any] | None:
    """What journeys last saw of the person's department, country and level (a change starts a journey)."""
    watch = session.get(JourneyWatch, employee.id)
    return None if watch is None else _row(watch, ("department", "country", "level", "seen_at"))
