"""Defining journeys: the journey, its steps (each step owns a journey-only post), pause and resume.

Functions take an explicit session and flush at most; the caller commits.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, select

from intranet import posts, targeting
from intranet.errors import InvalidInput, NotFound
from intranet.languages import N_
from intranet.models import JOURNEY_TRIGGERS, Employee, Journey, JourneyStep, Post

#: What starts a journey, in words (marked for translation; pages say them in the viewer's language).
TRIGGER_LABELS = {
    "hire": N_("Hired (from the hire date)"),
    "department_move": N_("Moved to another department"),
    "country_move": N_("Moved to another country"),
    "manager_promotion": N_("Promoted to a people-manager level"),
}
assert set(TRIGGER_LABELS) == set(JOURNEY_TRIGGERS)
KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class JourneyIn(BaseModel):
    """A journey as a comms manager writes it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=1000)
    trigger: Literal["hire", "department_move", "country_move", "manager_promotion"]


class StepIn(BaseModel):
    """One step as a comms manager writes it: when, what, and its conditions."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=64, description="a short name conditions refer to, e.g. welcome")
    offset_days: int = Field(ge=0, le=365)
    title: str = Field(min_length=1, max_length=300)
    summary: str = Field(default="", max_length=1000)
    body_html: str = ""
    topic: str = Field(default="Onboarding", max_length=64)
    must_read: bool = False
    skip_unless_read: str | None = None
    reminder_after_days: int | None = Field(default=None, ge=1, le=60)


def journey_or_404(session: Session, journey_id: int) -> Journey:
    """:raise NotFound: no such journey."""
    journey = session.get(Journey, journey_id)
    if journey is None:
        raise NotFound(N_("This journey does not exist."))
    return journey


def steps_of(session: Session, journey_id: int) -> list[tuple[JourneyStep, Post]]:
    """A journey's steps with their posts, in release order (offset, then key)."""
    rows = session.exec(select(JourneyStep, Post).join(Post, Post.id == JourneyStep.post_id)
                        .where(JourneyStep.journey_id == journey_id)
                        .order_by(JourneyStep.offset_days, JourneyStep.key)).all()
    return list(rows)


def steps_by_post(session: Session, post_ids: Iterable[int]) -> dict[int, tuple[Journey, JourneyStep]]:
    """The journey and step of each of *post_ids* that is a journey step (one query)."""
    ids = sorted(set(post_ids))
    if not ids:
        return {}
    rows = session.exec(select(JourneyStep, Journey).join(Journey, Journey.id == JourneyStep.journey_id)
                        .where(JourneyStep.post_id.in_(ids))).all()
    return {step.post_id: (journey, step) for step, journey in rows}


def all_journeys(session: Session) -> list[Journey]:
    """Every journey, newest first."""
    return list(session.exec(select(Journey).order_by(Journey.created_at.desc(), Journey.id.desc())).all())


def create_journey(session: Session, data: JourneyIn, *, author: Employee, now: dt.datetime) -> Journey:
    """A new, active journey without steps yet."""
    journey = Journey(name=data.name.strip(), description=data.description.strip(), trigger=data.trigger,
                      status="active", created_by_pk=author.id, created_at=now, updated_at=now)
    session.add(journey)
    session.flush()
    return journey


def update_journey(session: Session, journey: Journey, data: JourneyIn, *, now: dt.datetime) -> Journey:
    """Rename or re-describe a journey; its trigger changes only for people enrolled from now on."""
    journey.name, journey.description, journey.trigger = data.name.strip(), data.description.strip(), data.trigger
    journey.updated_at = now
    session.add(journey)
    session.flush()
    return journey


def set_paused(session: Session, journey: Journey, paused: bool, *, now: dt.datetime) -> Journey:
    """Pause (nothing is released, nobody new is enrolled) or resume a journey."""
    journey.status = "paused" if paused else "active"
    journey.updated_at = now
    session.add(journey)
    session.flush()
    return journey


def _check_step(session: Session, journey: Journey, data: StepIn, step: JourneyStep | None) -> None:
    if not KEY.match(data.key):
        raise InvalidInput(N_("A step's short name uses lower-case letters, digits, - and _ (e.g. welcome)."),
                           details={"field": "key"})
    others = {s.key: s for s, _ in steps_of(session, journey.id) if step is None or s.id != step.id}
    if data.key in others:
        raise InvalidInput(N_("This journey already has a step named %(key)s."), key=repr(data.key), details={"field": "key"})
    if data.skip_unless_read:
        earlier = others.get(data.skip_unless_read)
        if earlier is None or earlier.offset_days >= data.offset_days:
            raise InvalidInput(N_("“Skip unless read” must name an earlier step of this journey."),
                               details={"field": "skip_unless_read"})
    if data.reminder_after_days is not None and not data.must_read:
        raise InvalidInput(N_("Only a must-read step can have a reminder."), details={"field": "reminder_after_days"})


def add_step(session: Session, journey: Journey, data: StepIn, *, author: Employee, now: dt.datetime) -> JourneyStep:
    """Add a step and its post (published, journey-only: nobody sees it until it is released to them)."""
    _check_step(session, journey, data, None)
    body_html, body_text = posts.clean_body(data.body_html)
    post = Post(title=data.title.strip(), summary=data.summary.strip(), body_html=body_html, body_text=body_text,
                topic=data.topic.strip() or "Onboarding", must_read=data.must_read, status="published",
                publish_at=now, published_at=now, journey_only=True, author_pk=author.id, created_at=now,
                updated_at=now)
    session.add(post)
    session.flush()
    # Everyone by audience; the release rule narrows it to the people the step was released to.
    targeting.store_audience(session, post, targeting.parse_audience({"all": True}))
    step = JourneyStep(journey_id=journey.id, key=data.key, offset_days=data.offset_days, post_id=post.id,
                       skip_unless_read=data.skip_unless_read or None, reminder_after_days=data.reminder_after_days)
    session.add(step)
    journey.updated_at = now
    session.add(journey)
    session.flush()
    return step


def update_step(session: Session, journey: Journey, step: JourneyStep, data: StepIn, *, now: dt.datetime) -> JourneyStep:
    """Change a step; its post's content changes for everyone it was released to, as an edit would."""
    _check_step(session, journey, data, step)
    post = session.get(Post, step.post_id)
    assert post is not None
    post.body_html, post.body_text = posts.clean_body(data.body_html)
    post.title, post.summary, post.topic = data.title.strip(), data.summary.strip(), data.topic.strip() or "Onboarding"
    post.must_read, post.updated_at = data.must_read, now
    step.key, step.offset_days = data.key, data.offset_days
    step.skip_unless_read, step.reminder_after_days = data.skip_unless_read or None, data.reminder_after_days
    session.add_all([post, step])
    journey.updated_at = now
    session.add(journey)
    session.flush()
    return step


def step_or_404(session: Session, journey: Journey, step_id: int) -> JourneyStep:
    """:raise NotFound: no such step in *journey*."""
    step = session.get(JourneyStep, step_id)
    if step is None or step.journey_id != journey.id:
        raise NotFound(N_("This step does not exist."))
    return step
