"""How one post was received, for comms managers: its rating distribution, the comments left with
ratings (anonymous unless signed, as in the feedback inbox), and the segments where it landed
notably worse (:mod:`intranet.segment_signals`).

Services take a session and never commit.
"""
from __future__ import annotations

import dataclasses
import datetime as dt

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlmodel import Session

from intranet import feedback, segment_signals
from intranet.models import Employee, Post, Rating


class ReceptionPublic(BaseModel):
    """A post's reception: ratings, comments and the segments where it landed notably worse."""

    post_id: int
    rating_style: str
    stars: dict[str, int] = Field(description='Ratings per star, "1" to "5" (stars posts)')
    thumbs: dict[str, int] = Field(description='Ratings per thumb, "up" and "down" (thumbs posts)')
    ratings: int
    comments: list[feedback.FeedbackPublic]
    exposed: int = Field(description="People shown the post (impressions, digests, opens)")
    good: int = Field(description="Of them, engaged reads or good ratings")
    segments: list[segment_signals.SegmentSignalPublic] = Field(
        description="Departments, regions and levels of at least 5 exposed people, most likely worse first")
    hidden_segments: int = Field(description="Segments not shown: fewer than 5 people, or fewer than 5 beside them")
    min_group: int


@dataclasses.dataclass(frozen=True)
class Reception:
    post: Post
    stars: dict[str, int]
    thumbs: dict[str, int]
    comments: list[feedback.FeedbackPublic]
    signals: segment_signals.PostSignals

    @property
    def min_group(self) -> int:
        return segment_signals.MIN_GROUP

    @property
    def ratings(self) -> int:
        return sum(self.stars.values()) + sum(self.thumbs.values())

    def public(self) -> ReceptionPublic:
        return ReceptionPublic(
            post_id=self.post.id, rating_style=self.post.rating_style, stars=self.stars, thumbs=self.thumbs,  # type: ignore[arg-type]
            ratings=self.ratings, comments=self.comments,
            exposed=self.signals.exposed, good=self.signals.good, segments=self.signals.segments,
            hidden_segments=self.signals.hidden, min_group=segment_signals.MIN_GROUP)


def distribution(session: Session, post: Post) -> tuple[dict[str, int], dict[str, int]]:
    """*post*'s ratings per star value and per thumb."""
    stars = {str(n): 0 for n in range(1, 6)}
    thumbs = {"up": 0, "down": 0}
    for value, count in session.execute(select(Rating.stars, func.count()).where(
            Rating.post_id == post.id, Rating.stars.is_not(None)).group_by(Rating.stars)):
        stars[str(value)] = count
    for value, count in session.execute(select(Rating.thumb, func.count()).where(
            Rating.post_id == post.id, Rating.thumb.is_not(None)).group_by(Rating.thumb)):
        thumbs[value] = count
    return stars, thumbs


def for_post(session: Session, viewer: Employee, post: Post, *, now: dt.datetime) -> Reception:
    """*post*'s reception, as *viewer* (a comms manager) sees it."""
    stars, thumbs = distribution(session, post)
    return Reception(post=post, stars=stars, thumbs=thumbs,
                     comments=feedback.inbox(session, viewer, now=now, status="all", post_id=post.id),
                     signals=segment_signals.for_post(session, post, now=now))
