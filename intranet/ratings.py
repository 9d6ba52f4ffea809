"""Ratings: what each person thought of a post, one rating per (employee, post).

A post asks for stars (1-5) or a thumb (up or down), its ``rating_style``. A second rating
replaces the first in one ``INSERT ... ON CONFLICT DO UPDATE``, so two requests racing to rate
the same post leave one row whatever the interleaving (the unique key decides, not a read).
Every change recounts the post's :class:`~intranet.models.PostRatingStats` row, which the ranker
reads instead of grouping ratings on every feed. Functions take the session and never commit.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
from collections.abc import Mapping
from typing import Any, Literal

from itsdangerous import BadSignature, URLSafeTimedSerializer

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator, model_validator
from sqlalchemy import Integer, case, func, literal, update
from sqlmodel import Session, delete, select

from intranet import feedback
from intranet.db import storable_utc
from intranet.errors import InvalidInput, NotFound, validated
from intranet.languages import N_
from intranet.models import Employee, Post, PostRatingStats, Rating
from intranet.shapes import Time

MAX_COMMENT = 2000
# C0 controls other than tab, newline and carriage return, DEL and C1: not text a person typed
# (and PostgreSQL cannot store NUL at all).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class RatingIn(BaseModel):
    """``PUT /api/v1/posts/<id>/rating``: stars or a thumb (exactly one), an optional comment."""

    model_config = ConfigDict(extra="forbid")

    # Strict: 3.5, "4", true and 1e309 (a float once parsed) are not star counts.
    stars: StrictInt | None = Field(default=None, ge=1, le=5)
    thumb: Literal["up", "down"] | None = None
    comment: str | None = Field(default=None, max_length=MAX_COMMENT,
                                description="Plain text for the author; blank means no comment")
    signed: StrictBool = Field(default=False, description="Whether the author may see your name with the comment")

    @field_validator("comment")
    @classmethod
    def _plain_text(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if _CONTROL.search(value):
            raise ValueError(N_("must be plain text (no control characters)"))
        return value.strip() or None

    @model_validator(mode="after")
    def _exactly_one(self) -> RatingIn:
        if (self.stars is None) == (self.thumb is None):
            raise ValueError('send exactly one of "stars" (1 to 5) or "thumb" ("up" or "down")')
        return self


class RatingPublic(BaseModel):
    """Your rating of a post."""

    post_id: int
    stars: int | None
    thumb: Literal["up", "down"] | None
    comment: str | None
    signed: bool
    created_at: Time
    updated_at: Time

    @classmethod
    def of(cls, rating: Rating) -> RatingPublic:
        """*rating* as the API shows it to the person who gave it."""
        return cls(post_id=rating.post_id, stars=rating.stars, thumb=rating.thumb,  # type: ignore[arg-type]
                   comment=rating.comment, signed=rating.signed, created_at=rating.created_at,
                   updated_at=rating.updated_at)


def check_style(post: Post, rating: RatingIn) -> None:
    """Refuse a rating of the kind *post* does not ask for.

    :raise InvalidInput: stars for a thumbs post, or a thumb for a stars post.
    """
    if post.rating_style == "thumbs" and rating.thumb is None:
        raise InvalidInput(N_('This post is rated with a thumb: send {"thumb": "up"} or {"thumb": "down"}.'),
                           details=[{"loc": "thumb", "message": "required by this post's rating style"}])
    if post.rating_style != "thumbs" and rating.stars is None:
        raise InvalidInput(N_('This post is rated with stars: send {"stars": 1} to {"stars": 5}.'),
                           details=[{"loc": "stars", "message": "required by this post's rating style"}])


def rate(session: Session, *, employee: Employee, post: Post, rating: RatingIn, now: dt.datetime) -> Rating:
    """Store *employee*'s rating of *post*, replacing any earlier one.

    :param rating: validated input (see :class:`RatingIn`); checked against the post's style.
    :raise InvalidInput: when the rating is not the kind the post asks for.
    """
    check_style(post, rating)
    insert = _dialect_insert(session)
    at = storable_utc(now)
    values = {"stars": rating.stars, "thumb": rating.thumb, "comment": rating.comment, "signed": rating.signed}
    # An ORM upsert returning the stored row as a Rating: no second query to read back what was written.
    statement = (insert(Rating).values(employee_pk=employee.id, post_id=post.id, created_at=at, updated_at=at, **values)
                 .on_conflict_do_update(index_elements=["employee_pk", "post_id"], set_={**values, "updated_at": at})
                 .returning(Rating))
    stored: Rating = session.scalars(statement, execution_options={"populate_existing": True}).one()
    recount(session, post.id)
    feedback.received(session, rating=stored, now=now)  # a comment goes to the author's inbox
    return stored


def withdraw(session: Session, *, employee: Employee, post: Post) -> bool:
    """Remove *employee*'s rating of *post*; whether there was one."""
    result = session.execute(delete(Rating).where(Rating.employee_pk == employee.id, Rating.post_id == post.id))
    if result.rowcount:  # type: ignore[attr-defined]
        recount(session, post.id)
    feedback.withdrawn(session, employee_pk=employee.id, post_id=post.id)  # and its comment with it
    return bool(result.rowcount)  # type: ignore[attr-defined]


#: Per post: stars given, their sum, thumbs up, thumbs down (what :class:`PostRatingStats` holds).
RATING_COUNTS = (func.count(Rating.stars), func.coalesce(func.sum(Rating.stars), 0),
                 func.coalesce(func.sum(case((Rating.thumb == "up", 1), else_=0)), 0),
                 func.coalesce(func.sum(case((Rating.thumb == "down", 1), else_=0)), 0))


def _dialect_insert(session: Session) -> Any:
    """The ``insert`` with ``ON CONFLICT`` of *session*'s database."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def recount(session: Session, post_id: int) -> None:
    """Count *post_id*'s ratings again into its :class:`PostRatingStats` row.

    Counting from the ratings (rather than adding the change) needs no earlier value, which an
    upsert does not return. The row is locked before counting: a second rater of the same post
    waits until the first commits, and its count, a new statement under READ COMMITTED, then
    includes the first one's rating.
    """
    stats = PostRatingStats.__table__  # type: ignore[attr-defined]
    # Two statements. The first makes the row exist and locks it (an upsert whose DO UPDATE changes
    # nothing still takes the row lock); the second counts in a statement of its own, so under READ
    # COMMITTED its snapshot is taken after the lock was granted and includes the rating of anyone
    # who held the lock before (the count runs as a subquery of the UPDATE, one round trip).
    insert = _dialect_insert(session)
    session.execute(insert(stats).values(post_id=post_id, n_stars=0, sum_stars=0, ups=0, downs=0)
                    .on_conflict_do_update(index_elements=["post_id"], set_={"post_id": stats.c.post_id}))
    # Aggregates without GROUP BY: one row even when no rating is left (zeros, not no update).
    counts = select(literal(post_id, Integer).label("post_id"),
                    *(c.label(name) for c, name in zip(RATING_COUNTS, ("n_stars", "sum_stars", "ups", "downs"))))
    counts = counts.where(Rating.post_id == post_id).subquery()
    session.execute(update(stats).where(stats.c.post_id == counts.c.post_id)
                    .values(n_stars=counts.c.n_stars, sum_stars=counts.c.sum_stars, ups=counts.c.ups,
                            downs=counts.c.downs))


def recount_all(session: Session) -> int:
    """Count every post's ratings again (the ``ranking-refresh`` job); the rows that changed.

    Catches what :func:`recount` cannot see: ratings removed by a cascade when a person is erased.
    """
    stats = PostRatingStats.__table__  # type: ignore[attr-defined]
    counted = {row[0]: tuple(int(v) for v in row[1:])
               for row in session.execute(select(Rating.post_id, *RATING_COUNTS).group_by(Rating.post_id))}
    stored = {row[0]: tuple(row[1:]) for row in session.execute(
        select(stats.c.post_id, stats.c.n_stars, stats.c.sum_stars, stats.c.ups, stats.c.downs))}
    changed = {post_id for post_id, counts in counted.items() if stored.get(post_id) != counts}
    changed |= {post_id for post_id, counts in stored.items() if post_id not in counted and counts != (0, 0, 0, 0)}
    # Few posts differ (a cascade, or a rating committed since the counts above were read): each
    # is recounted under its lock, so the job never writes an older count over a newer one.
    for post_id in sorted(changed):
        recount(session, post_id)
    return len(changed)


def my_rating(session: Session, *, employee: Employee, post: Post) -> Rating | None:
    """*employee*'s rating of *post*, or None."""
    return session.exec(select(Rating).where(Rating.employee_pk == employee.id, Rating.post_id == post.id)).first()


def mine_for(session: Session, *, employee: Employee, post_ids: list[int]) -> dict[int, Rating]:
    """*employee*'s ratings of the posts *post_ids*, by post id (for a page of cards, in one query)."""
    if not post_ids:
        return {}
    rows = session.exec(select(Rating).where(Rating.employee_pk == employee.id, Rating.post_id.in_(post_ids)))
    return {r.post_id: r for r in rows}


def from_form(form: Mapping[str, str], *, with_comment: bool) -> RatingIn:
    """The rating a browser form sent (``stars`` or ``thumb``, and ``comment``/``signed`` when shown).

    Form values are text, so a star count is read as an integer here; anything else is left for
    :class:`RatingIn` to refuse with its usual message.

    :param with_comment: whether the form had the comment fields (an absent checkbox means false
        only on a form that showed it; a compact form keeps no comment).
    :raise InvalidInput: as :func:`intranet.errors.validated` does.
    """
    data: dict[str, Any] = {}
    stars, thumb = form.get("stars"), form.get("thumb")
    if stars:
        data["stars"] = int(stars) if stars.isascii() and stars.isdigit() and len(stars) < 3 else stars
    if thumb:
        data["thumb"] = thumb
    if with_comment:
        data["comment"] = form.get("comment") or None
        data["signed"] = form.get("signed") in ("1", "on", "true")
    return validated(RatingIn, data, what="rating")


# --------------------------------------------------------------------------------------------
# Rating links in digests and Teams cards: the one place that signs and reads them
# --------------------------------------------------------------------------------------------

_LINK_SALT = "beacon-rating-link"


@dataclasses.dataclass(frozen=True)
class RatingLink:
    """What a rating link says: who may rate which post, and the value they clicked (if any).

    A digest signs one valueless link per (person, post) and puts the clicked value in the query
    (``?stars=4``, :func:`link_choice`): the value only preselects a choice on the confirmation
    page, whose POST says what is saved, so signing it protected nothing and cost five more
    signatures per post. Who and which post stay signed. Links signed with a value still work.
    """

    employee_id: str
    post_id: int
    stars: int | None = None
    thumb: str | None = None


@functools.lru_cache(maxsize=8)
def _link_serializer(secret: str) -> URLSafeTimedSerializer:
    # One per secret: building it per link cost a fifth of each signature.
    return URLSafeTimedSerializer(secret, salt=_LINK_SALT)


def link_token(secret: str, link: RatingLink) -> str:
    """A signed, timestamped token for *link* (checked by :func:`read_link_token`)."""
    return _link_serializer(secret).dumps([link.employee_id, link.post_id, link.stars, link.thumb])


def link_choice(link: RatingLink, query: Mapping[str, str]) -> dict[str, Any] | None:
    """The value to preselect on *link*'s confirmation page: the one signed in the token (older
    links), else a valid ``stars`` (1-5) or ``thumb`` (up, down) from the link's *query*, else None."""
    if link.stars or link.thumb:
        return {"stars": link.stars, "thumb": link.thumb}
    stars, thumb = query.get("stars", ""), query.get("thumb", "")
    if stars in ("1", "2", "3", "4", "5"):
        return {"stars": int(stars), "thumb": None}
    if thumb in ("up", "down"):
        return {"stars": None, "thumb": thumb}
    return None


def read_link_token(secret: str, token: str, *, max_age: dt.timedelta) -> RatingLink:
    """The link *token* names.

    :raise NotFound: when the token is forged, altered, malformed or older than *max_age*
        (deliberately one answer: a bad link reveals nothing).
    """
    try:
        employee_id, post_id, stars, thumb = _link_serializer(secret).loads(
            token, max_age=int(max_age.total_seconds()))
    except (BadSignature, ValueError, TypeError):  # SignatureExpired is a BadSignature
        raise NotFound(N_("This rating link is not valid any more; rate the post from your feed.")) from None
    if not (isinstance(employee_id, str) and type(post_id) is int and (stars is None or type(stars) is int)
            and (thumb is None or isinstance(thumb, str))):
        raise NotFound(N_("This rating link is not valid any more; rate the post from your feed."))
    return RatingLink(employee_id, post_id, stars, thumb)
