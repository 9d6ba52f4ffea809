"""What the per-post dashboard shows beside the funnel: readers since publishing, and the ratings.

Both pass the minimum-group rule in their own shape. The reading curve is cumulative, so its
steps are chosen so that each one adds at least k people (consecutive days are merged until
they do; a remainder under k is merged into the last step): no difference of two points, and no
point subtracted from the total, reveals fewer than k readers. Ratings are shown only when at
least k people rated the post.
"""
from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import func
from sqlmodel import Session, select

from intranet.analytics import queries
from intranet.models import Post, Rating


@dataclasses.dataclass(frozen=True)
class ReadStep:
    """By the end of ``day`` (UTC), ``readers`` distinct people had read the post."""

    day: dt.date
    days_since_publishing: int
    readers: int


@dataclasses.dataclass(frozen=True)
class Readership:
    audience: int
    steps: list[ReadStep]
    #: Readers too few to show (the whole curve is hidden when fewer than k people read).
    hidden_readers: int


def k_steps(daily: list[tuple[dt.date, int]], k: int) -> tuple[list[tuple[dt.date, int]], int]:
    """Cumulative points of *daily* new readers where each step adds at least *k* people.

    Returns the points and the readers left out (all of them when there are fewer than *k*).
    """
    points: list[tuple[dt.date, int]] = []
    total = pending = 0
    last_day = None
    for day, n in sorted(daily):
        if n <= 0:
            continue
        total += n
        pending += n
        last_day = day
        if pending >= k:
            points.append((day, total))
            pending = 0
    if pending and points:
        points[-1] = (last_day, total)  # type: ignore[assignment]
        pending = 0
    return points, pending if not points else 0


def readership(session: Session, post: Post, *, audience: int, k: int) -> Readership:
    """Distinct readers of *post* by the end of each day since publishing, in steps of at least *k*.

    Built on :func:`intranet.analytics.queries.post_timeline` (people reading for the first time
    per day), whose days may each hold fewer than *k* new readers: they are merged here.
    """
    timeline = queries.post_timeline(session, post, k=k)
    if timeline.hidden is not None:
        return Readership(audience=audience, steps=[], hidden_readers=timeline.hidden.hidden_people)
    points, hidden = k_steps([(row.day, row.new_readers) for row in timeline.rows], k)
    start = (post.published_at or post.created_at).date()
    return Readership(audience=audience, hidden_readers=hidden,
                      steps=[ReadStep(day, max((day - start).days, 0), n) for day, n in points])


@dataclasses.dataclass(frozen=True)
class RatingDistribution:
    style: str
    #: (label, count) in scale order: "1".."5" stars, or "up"/"down".
    counts: list[tuple[str, int]]
    raters: int
    hidden: bool


def rating_distribution(session: Session, post: Post, *, k: int) -> RatingDistribution:
    """How many people gave each rating; hidden (no counts) when fewer than *k* people rated."""
    if post.rating_style == "thumbs":
        column, labels = Rating.thumb, ["up", "down"]
    else:
        column, labels = Rating.stars, ["1", "2", "3", "4", "5"]
    found = {str(value): int(n) for value, n in session.execute(
        select(column, func.count()).where(Rating.post_id == post.id, column.is_not(None)).group_by(column))}
    raters = sum(found.values())
    if raters < k:
        return RatingDistribution(style=post.rating_style, counts=[], raters=0, hidden=raters > 0)
    return RatingDistribution(style=post.rating_style, counts=[(label, found.get(label, 0)) for label in labels],
                              raters=raters, hidden=False)


def published_posts(session: Session, *, start: dt.date, end: dt.date, topic: str | None = None,
                    author_pk: int | None = None, limit: int = 50) -> list[Post]:
    """Posts published between two days (UTC, inclusive), newest first: the dashboard's way to a post."""
    lo = dt.datetime.combine(start, dt.time(), dt.timezone.utc)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
    query = select(Post).where(Post.published_at.is_not(None), Post.published_at >= lo, Post.published_at < hi)
    if topic is not None:
        query = query.where(Post.topic == topic)
    if author_pk is not None:
        query = query.where(Post.author_pk == author_pk)
    return list(session.exec(query.order_by(Post.published_at.desc(), Post.id.desc()).limit(limit)).all())
