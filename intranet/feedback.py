"""Feedback: comments left with ratings, answered privately by the post's author or a comms manager.

A rating with a comment lands in an inbox: the author sees the feedback on their own posts,
comms managers (and admins) see all of it. The writer's name is shown only when they signed the
comment; otherwise nothing in what the inbox returns names them (no name, no employee id, no
department), and a reply goes back through Beacon without telling its writer who receives it.
The inbox lists what is waiting oldest first with its age, so feedback gets answered within a
day or two; answering (a reply, or "mark as answered") takes it off the waiting list.

The writer sees the replies in Beacon (their "your feedback" list and a notice on the feed)
and, when email is one of their channels, by email: a reply queues a :class:`FeedbackMail` row
that :mod:`intranet.delivery.feedback_mail` sends after the reply is committed.

Functions take the session and never commit.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator
from sqlalchemy import and_, case, delete, false, func, or_, select, true, update
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from intranet import posts, preferences
from intranet.db import storable_utc
from intranet.errors import NotFound
from intranet.languages import N_
from intranet.models import Employee, Feedback, FeedbackMail, FeedbackReply, Post, Rating
from intranet.shapes import Time

MAX_REPLY = 2000
#: Feedback waiting longer than this is highlighted: the goal is an answer within a day or two.
OVERDUE = dt.timedelta(days=1)
#: A reply's email is not sent after this long (the reply is in Beacon anyway).
MAIL_VALID = dt.timedelta(days=2)
STATUSES = ("waiting", "answered", "all")
# As for rating comments: C0 controls other than tab and newlines, DEL and C1 are not typed text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class ReplyIn(BaseModel):
    """``POST /api/v1/feedback/<id>/replies``: a private, plain-text answer."""

    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=MAX_REPLY, description="Plain text, at most 2,000 characters")

    @field_validator("body")
    @classmethod
    def _plain_text(cls, value: str) -> str:
        if _CONTROL.search(value):
            raise ValueError(N_("must be plain text (no control characters)"))
        if not value.strip():
            raise ValueError(N_("must not be blank"))
        return value.strip()


class InboxQuery(BaseModel):
    """``GET /api/v1/feedback``: which part of the inbox."""

    status: Literal["waiting", "answered", "all"] = Field(
        default="waiting", description="waiting (oldest first), answered or all (newest first)")


class InboxPublic(BaseModel):
    """Your feedback inbox, and how much of it waits."""

    items: list[FeedbackPublic]
    waiting: int
    overdue: int = Field(description="Waiting more than a day")
    oldest_waiting_seconds: int | None


class MyFeedbackListPublic(BaseModel):
    """The feedback you left, newest first."""

    items: list[MyFeedbackPublic]
    unseen_replies: int


class SeenPublic(BaseModel):
    """How many replies were new."""

    marked: int


# --------------------------------------------------------------------------------------------
# Receiving: kept in step with the rating it came with
# --------------------------------------------------------------------------------------------


def received(session: Session, *, rating: Rating, now: dt.datetime) -> None:
    """Bring the inbox in line with *rating*: its comment is new, changed, unchanged or gone.

    A new or changed comment is waiting from *now*; an unchanged one keeps its place (re-rating
    with the same words is not new feedback); no comment withdraws it (:func:`withdrawn`).
    One statement decides, keyed on (employee, post), so two requests racing leave one row.
    """
    if rating.comment is None:
        withdrawn(session, employee_pk=rating.employee_pk, post_id=rating.post_id)
        return
    table = Feedback.__table__  # type: ignore[attr-defined]
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    at = storable_utc(now)
    statement = insert(table).values(employee_pk=rating.employee_pk, post_id=rating.post_id, comment=rating.comment,
                                     signed=rating.signed, received_at=at)
    changed = table.c.comment.is_distinct_from(statement.excluded.comment)
    statement = statement.on_conflict_do_update(
        index_elements=["employee_pk", "post_id"],
        set_={"comment": statement.excluded.comment, "signed": statement.excluded.signed,
              "received_at": case((changed, statement.excluded.received_at), else_=table.c.received_at),
              "answered_at": case((changed, None), else_=table.c.answered_at),
              "answered_by_pk": case((changed, None), else_=table.c.answered_by_pk)})
    session.execute(statement)


def withdrawn(session: Session, *, employee_pk: int, post_id: int) -> None:
    """The writer took their comment back: forget it, or only its text once someone replied
    (the replies stay in the writer's list; the inbox keeps the thread without the words)."""
    # Most ratings carry no comment and never did: the update finds no row, and that is all (one
    # statement). Otherwise the words are gone first, then the row too unless someone replied.
    this = (Feedback.employee_pk == employee_pk, Feedback.post_id == post_id)
    cleared = session.execute(update(Feedback).where(*this).values(comment=None, signed=False))
    if not cleared.rowcount:  # type: ignore[attr-defined]
        return
    replied = select(FeedbackReply.id).where(FeedbackReply.feedback_id == Feedback.id).exists()
    session.execute(delete(Feedback).where(*this, ~replied))


# --------------------------------------------------------------------------------------------
# Who sees what: one rule, as SQL and as a predicate
# --------------------------------------------------------------------------------------------


def may_use_inbox(session: Session, viewer: Employee) -> bool:
    """Whether *viewer* has a feedback inbox: people who write posts, comms managers and admins."""
    return viewer.has_role("comms") or posts.may_author(session, viewer)


def visible_filter(session: Session, viewer: Employee) -> ColumnElement[bool]:
    """A WHERE clause over :class:`Post`: the posts whose feedback *viewer* may read and answer."""
    if viewer.has_role("comms"):
        return true()
    if not posts.may_author(session, viewer):
        return false()
    return Post.author_pk == viewer.id


def may_see(session: Session, viewer: Employee, post: Post) -> bool:
    """:func:`visible_filter` for one post."""
    return viewer.has_role("comms") or (post.author_pk == viewer.id and posts.may_author(session, viewer))


# --------------------------------------------------------------------------------------------
# The inbox
# --------------------------------------------------------------------------------------------


class ReplyPublic(BaseModel):
    """A reply to feedback, as the writer and the inbox see it."""

    model_config = ConfigDict(frozen=True)

    body: str
    created_at: Time
    by: str = Field(description="Who answered (repliers are never anonymous)")
    seen: bool = Field(description="Whether the writer has marked it read")


class FeedbackPublic(BaseModel):
    """Feedback as the inbox shows it: the writer is named only when they signed."""

    model_config = ConfigDict(frozen=True)

    id: int
    post_id: int
    post_title: str
    comment: str | None = Field(description="null once the writer withdrew it")
    signed_by: str | None = Field(description="The writer's name when they signed; null otherwise (and nothing "
                                              "else names them)")
    stars: int | None
    thumb: Literal["up", "down"] | None
    received_at: Time = Field(description="When the comment (or its last change) arrived")
    #: How long it has waited for an answer (None: answered); shown as ``waiting_seconds``.
    waiting: dt.timedelta | None = Field(exclude=True)
    answered_at: Time | None
    replies: tuple[ReplyPublic, ...]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def signed(self) -> bool:
        return self.signed_by is not None

    @computed_field(description="How long it has waited for an answer (null: answered)")  # type: ignore[prop-decorator]
    @property
    def waiting_seconds(self) -> int | None:
        return int(self.waiting.total_seconds()) if self.waiting is not None else None

    @computed_field(description="Waiting more than a day")  # type: ignore[prop-decorator]
    @property
    def overdue(self) -> bool:
        return self.waiting is not None and self.waiting > OVERDUE


def _reply(reply: FeedbackReply, names: dict[int, str]) -> ReplyPublic:
    by = names.get(reply.author_pk, "Former colleague") if reply.author_pk else "Former colleague"
    return ReplyPublic(body=reply.body, created_at=reply.created_at, by=by, seen=reply.seen_at is not None)


def _names(session: Session, pks: set[int]) -> dict[int, str]:
    if not pks:
        return {}
    return dict(session.execute(select(Employee.id, Employee.display_name).where(Employee.id.in_(sorted(pks)))).all())


def _replies(session: Session, feedback_ids: list[int]) -> dict[int, list[FeedbackReply]]:
    out: dict[int, list[FeedbackReply]] = {}
    if feedback_ids:
        for reply in session.execute(select(FeedbackReply).where(FeedbackReply.feedback_id.in_(feedback_ids))
                                     .order_by(FeedbackReply.created_at, FeedbackReply.id)).scalars():
            out.setdefault(reply.feedback_id, []).append(reply)
    return out


def _items(session: Session, rows: list[tuple[Feedback, Post, Rating | None]], now: dt.datetime) -> list[FeedbackPublic]:
    replies = _replies(session, [f.id for f, _, _ in rows])
    signers = {f.employee_pk for f, _, _ in rows if f.signed and f.comment is not None}
    repliers = {r.author_pk for rs in replies.values() for r in rs if r.author_pk is not None}
    names = _names(session, signers | repliers)
    items = []
    for fb, post, rating in rows:
        waiting = now - fb.received_at if fb.answered_at is None and fb.comment is not None else None
        items.append(FeedbackPublic(
            id=fb.id, post_id=post.id, post_title=post.title, comment=fb.comment,
            signed_by=names.get(fb.employee_pk) if fb.signed and fb.comment is not None else None,
            stars=rating.stars if rating else None, thumb=rating.thumb if rating else None,
            received_at=fb.received_at, waiting=waiting, answered_at=fb.answered_at,
            replies=tuple(_reply(r, names) for r in replies.get(fb.id, []))))
    return items


def _joined() -> Any:
    return (select(Feedback, Post, Rating).join(Post, Post.id == Feedback.post_id)
            .outerjoin(Rating, and_(Rating.employee_pk == Feedback.employee_pk, Rating.post_id == Feedback.post_id)))


def inbox(session: Session, viewer: Employee, *, now: dt.datetime, status: str = "waiting",
          post_id: int | None = None, limit: int = 200) -> list[FeedbackPublic]:
    """The feedback *viewer* may answer: waiting oldest first; answered (or all) newest first.

    :param status: ``waiting``, ``answered`` or ``all``.
    :param post_id: only this post's feedback.
    """
    query = _joined().where(visible_filter(session, viewer))
    if post_id is not None:
        query = query.where(Feedback.post_id == post_id)
    if status == "waiting":
        query = query.where(Feedback.answered_at.is_(None), Feedback.comment.is_not(None)).order_by(
            Feedback.received_at, Feedback.id)
    elif status == "answered":
        query = query.where(or_(Feedback.answered_at.is_not(None), Feedback.comment.is_(None))).order_by(
            Feedback.received_at.desc(), Feedback.id.desc())
    else:
        query = query.order_by(Feedback.received_at.desc(), Feedback.id.desc())
    return _items(session, [tuple(r) for r in session.execute(query.limit(limit)).all()], now)  # type: ignore[misc]


@dataclasses.dataclass(frozen=True)
class Waiting:
    count: int
    overdue: int
    oldest: dt.timedelta | None


def waiting_summary(session: Session, viewer: Employee, *, now: dt.datetime) -> Waiting:
    """How much feedback waits for *viewer*, how much of it for over a day, and the oldest's age."""
    row = session.execute(
        select(func.count(Feedback.id), func.min(Feedback.received_at),
               func.count(Feedback.id).filter(Feedback.received_at < now - OVERDUE))
        .join(Post, Post.id == Feedback.post_id)
        .where(visible_filter(session, viewer), Feedback.answered_at.is_(None), Feedback.comment.is_not(None))).one()
    count, oldest, overdue = row
    return Waiting(count=count or 0, overdue=overdue or 0, oldest=now - oldest if oldest else None)


def feedback_or_404(session: Session, viewer: Employee, feedback_id: int) -> tuple[Feedback, Post]:
    """The feedback *viewer* may read and answer.

    :raise NotFound: when it does not exist or is not theirs to see (the same answer).
    """
    row = session.execute(select(Feedback, Post).join(Post, Post.id == Feedback.post_id)
                          .where(Feedback.id == feedback_id, visible_filter(session, viewer))).first()
    if row is None:
        raise NotFound(N_("This feedback does not exist."))
    return row[0], row[1]


def item(session: Session, viewer: Employee, feedback_id: int, *, now: dt.datetime) -> FeedbackPublic:
    """One piece of feedback with its replies, as :func:`inbox` shows it.

    :raise NotFound: as :func:`feedback_or_404`.
    """
    feedback_or_404(session, viewer, feedback_id)
    row = session.execute(_joined().where(Feedback.id == feedback_id)).one()
    return _items(session, [tuple(row)], now)[0]  # type: ignore[list-item]


# --------------------------------------------------------------------------------------------
# Answering
# --------------------------------------------------------------------------------------------


def reply(session: Session, viewer: Employee, feedback: Feedback, data: ReplyIn, *, now: dt.datetime,
          message_domain: str = "beacon.local") -> FeedbackReply:
    """Answer *feedback* privately as *viewer* (who must be allowed to see it), and mark it answered.

    When email is one of the writer's channels, the reply's email is queued (sent by the
    feedback mail job once this transaction commits).

    :raise NotFound: when the comment was withdrawn (there is nothing to answer any more).
    """
    if feedback.comment is None:
        raise NotFound(N_("This feedback was withdrawn by its writer."))
    at = storable_utc(now)
    row = FeedbackReply(feedback_id=feedback.id, author_pk=viewer.id, body=data.body, created_at=at)
    session.add(row)
    feedback.answered_at, feedback.answered_by_pk = at, viewer.id
    session.add(feedback)
    session.flush()
    writer = session.get(Employee, feedback.employee_pk)
    if writer is not None and writer.active and writer.email \
            and "email" in preferences.for_employee(session, writer).channels:
        session.add(FeedbackMail(reply_id=row.id, next_attempt_at=at, expires_at=at + MAIL_VALID,
                                 message_id=f"<feedback-reply-{row.id}.{uuid.uuid4().hex[:12]}@{message_domain}>"))
    return row


def mark_answered(session: Session, viewer: Employee, feedback: Feedback, *, now: dt.datetime) -> None:
    """Take *feedback* off the waiting list without a reply (an answer given elsewhere, nothing to say)."""
    if feedback.answered_at is None:
        feedback.answered_at, feedback.answered_by_pk = storable_utc(now), viewer.id
        session.add(feedback)


# --------------------------------------------------------------------------------------------
# The writer's side: their feedback and the replies to it
# --------------------------------------------------------------------------------------------


class MyFeedbackPublic(BaseModel):
    """A comment you left with a rating, and the replies it got."""

    model_config = ConfigDict(frozen=True)

    id: int
    post_id: int
    post_title: str
    comment: str | None
    signed: bool
    received_at: Time
    answered: bool
    replies: tuple[ReplyPublic, ...]

    @property
    def unseen(self) -> int:
        return sum(1 for r in self.replies if not r.seen)


def mine(session: Session, employee: Employee, *, post_id: int | None = None) -> list[MyFeedbackPublic]:
    """*employee*'s own feedback, newest first, with the replies it got."""
    query = (select(Feedback, Post).join(Post, Post.id == Feedback.post_id)
             .where(Feedback.employee_pk == employee.id))
    if post_id is not None:
        query = query.where(Feedback.post_id == post_id)
    rows = session.execute(query.order_by(Feedback.received_at.desc(), Feedback.id.desc())).all()
    replies = _replies(session, [f.id for f, _ in rows])
    names = _names(session, {r.author_pk for rs in replies.values() for r in rs if r.author_pk is not None})
    return [MyFeedbackPublic(id=fb.id, post_id=post.id, post_title=post.title, comment=fb.comment, signed=fb.signed,
                             received_at=fb.received_at, answered=fb.answered_at is not None,
                             replies=tuple(_reply(r, names) for r in replies.get(fb.id, [])))
            for fb, post in rows]


def unseen_replies_count(employee_pk: Any) -> Any:
    """The count of :func:`unseen_replies` as a scalar subquery, to ride along another page's statement."""
    return (select(func.count(FeedbackReply.id)).join(Feedback, Feedback.id == FeedbackReply.feedback_id)
            .where(Feedback.employee_pk == employee_pk, FeedbackReply.seen_at.is_(None)).scalar_subquery())


def unseen_replies(session: Session, employee: Employee) -> int:
    """How many replies to *employee*'s feedback they have not marked as read."""
    return session.execute(select(unseen_replies_count(employee.id))).scalar_one()


def mark_seen(session: Session, employee: Employee, *, now: dt.datetime) -> int:
    """Mark every reply to *employee*'s feedback as read; how many were new."""
    mine_ids = select(Feedback.id).where(Feedback.employee_pk == employee.id)
    result = session.execute(update(FeedbackReply).where(FeedbackReply.feedback_id.in_(mine_ids),
                                                         FeedbackReply.seen_at.is_(None))
                             .values(seen_at=storable_utc(now)))
    return result.rowcount or 0  # type: ignore[attr-defined]


CSV_HEADER = ("received_at", "stars", "thumb", "comment", "signed_by", "status", "replies")


def csv_rows(items: list[InboxItem]) -> list[tuple[Any, ...]]:
    """*items* as rows of :data:`CSV_HEADER` (the writer's name only when they signed, as everywhere)."""
    return [(i.received_at.isoformat(), i.stars, i.thumb, i.comment, i.signed_by or "",
             "withdrawn" if i.comment is None else ("waiting" if i.waiting is not None else "answered"),
             len(i.replies)) for i in items]
