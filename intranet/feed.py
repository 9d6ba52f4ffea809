"""Each employee's feed: the live posts targeted at them, must-reads they owe pinned first.

Ordering is (pinned, published_at, id), all descending, and pages are keyset-paginated on that
key, so a page costs the same wherever it is in the feed and new posts never shift the cursor.
"""
from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, update
from sqlmodel import Session, select

from intranet import targeting
from intranet.db import MAX_ID, UTCDateTime, insert_new, storable_utc
from intranet.errors import InvalidInput
from intranet.models import Attachment, Employee, Post, PostState


@dataclasses.dataclass(frozen=True)
class FeedItem:
    post: Post
    read: bool
    acknowledged: bool

    @property
    def pinned(self) -> bool:
        return self.post.must_read and not self.acknowledged

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.post.id,
            "title": self.post.title,
            "summary": self.post.summary,
            "topic": self.post.topic,
            "must_read": self.post.must_read,
            "published_at": self.post.published_at.isoformat() if self.post.published_at else None,
            "read": self.read,
            "acknowledged": self.acknowledged,
        }


@dataclasses.dataclass(frozen=True)
class FeedPage:
    items: list[FeedItem]
    next_cursor: str | None


MAX_CURSOR_LENGTH = 256


#: A comfortable reading speed for news on screen; the estimate is rounded, at least a minute.
WORDS_PER_MINUTE = 230


@dataclasses.dataclass(frozen=True)
class Card:
    """What a feed card shows besides the post: who wrote it, its cover image, how long it takes to read."""

    author: str | None
    cover_id: int | None
    minutes: int


def reading_minutes(post: Post) -> int:
    """Estimated minutes to read *post*'s summary and body."""
    words = len(post.summary.split()) + len(post.body_text.split())
    return max(1, round(words / WORDS_PER_MINUTE))


def cards(session: Session, posts: list[Post]) -> dict[int, Card]:
    """Each post's card details, in two queries for the whole page.

    The cover is the post's first image attachment (the first picture its author added).
    """
    if not posts:
        return {}
    author_pks = {p.author_pk for p in posts} - {None}
    authors = dict(session.exec(select(Employee.id, Employee.display_name)
                                .where(Employee.id.in_(author_pks))).all()) if author_pks else {}
    covers = dict(session.exec(select(Attachment.post_id, func.min(Attachment.id))
                               .where(Attachment.post_id.in_([p.id for p in posts]), Attachment.kind == "image")
                               .group_by(Attachment.post_id)).all())
    return {p.id: Card(author=authors.get(p.author_pk) or None, cover_id=covers.get(p.id), minutes=reading_minutes(p))
            for p in posts}


def _encode_cursor(item: FeedItem) -> str:
    raw = json.dumps({"p": int(item.pinned), "t": item.post.published_at.isoformat(), "i": item.post.id})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, dt.datetime, int]:
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:  # ours are under 100 characters
            raise ValueError("too long")
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        published = storable_utc(dt.datetime.fromisoformat(raw["t"]))
        pinned, last_id = int(raw["p"]), int(raw["i"])
        if pinned not in (0, 1) or not 0 <= last_id <= MAX_ID:
            raise ValueError("out of range")
        return pinned, published, last_id
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput("This feed cursor is not valid; start again without one.",
                           details={"field": "cursor"}) from exc


def feed_page(session: Session, employee: Employee, *, now: dt.datetime, cursor: str | None = None,
              limit: int = 20) -> FeedPage:
    """One page of *employee*'s feed at *now*, after *cursor* (from the previous page)."""
    group_keys = targeting.group_keys_of(session, employee.id)
    state_join = and_(PostState.post_id == Post.id, PostState.employee_pk == employee.id)
    pinned = case((and_(Post.must_read.is_(True), PostState.acknowledged_at.is_(None)), 1), else_=0)
    # Rank on narrow columns first, then load whole rows (bodies included) for the page only.
    ranked = (
        select(Post.id, pinned.label("pinned"))
        .outerjoin(PostState, state_join)
        .where(targeting.visible_posts_filter(employee, group_keys, now))
    )
    if cursor:
        p, t, i = _decode_cursor(cursor)
        ranked = ranked.where(or_(pinned < p, and_(pinned == p, or_(
            Post.published_at < t, and_(Post.published_at == t, Post.id < i)))))
    page = ranked.order_by(pinned.desc(), Post.published_at.desc(), Post.id.desc()).limit(limit + 1).subquery()
    query = (
        select(Post, PostState.read_at, PostState.acknowledged_at, page.c.pinned)
        .join(page, page.c.id == Post.id)
        .outerjoin(PostState, state_join)
        .order_by(page.c.pinned.desc(), Post.published_at.desc(), Post.id.desc())
    )
    rows = session.exec(query).all()
    items = [FeedItem(post=post, read=read_at is not None, acknowledged=ack_at is not None)
             for post, read_at, ack_at, _ in rows[:limit]]
    next_cursor = _encode_cursor(items[-1]) if len(rows) > limit else None
    return FeedPage(items=items, next_cursor=next_cursor)


def _touch(session: Session, employee: Employee, post: Post, *, now: dt.datetime, acknowledge: bool) -> PostState:
    # An insert that ignores an existing row, then an update that keeps first times: the post
    # page's read beacon and an acknowledge click can arrive together, and neither may fail.
    insert_new(session, PostState.__table__, [{"employee_pk": employee.id, "post_id": post.id}],  # type: ignore[attr-defined]
               ("employee_pk", "post_id"), ("post_id",))
    at = literal(now, UTCDateTime())
    values = {"read_at": func.coalesce(PostState.read_at, at)}
    if acknowledge:
        values["acknowledged_at"] = func.coalesce(PostState.acknowledged_at, at)
    session.exec(update(PostState).where(PostState.employee_pk == employee.id, PostState.post_id == post.id)
                 .values(**values))
    return session.get(PostState, (employee.id, post.id), populate_existing=True)


def mark_read(session: Session, employee: Employee, post: Post, *, now: dt.datetime) -> PostState:
    """Record that *employee* opened *post* (the first time counts)."""
    return _touch(session, employee, post, now=now, acknowledge=False)


def acknowledge(session: Session, employee: Employee, post: Post, *, now: dt.datetime) -> PostState:
    """Record that *employee* acknowledged the must-read *post* (reading it, too).

    :raise InvalidInput: when the post does not ask for acknowledgement.
    """
    if not post.must_read:
        raise InvalidInput("This post does not ask for acknowledgement.")
    return _touch(session, employee, post, now=now, acknowledge=True)


def post_to_json(post: Post, state: PostState | None = None) -> dict[str, Any]:
    """A post as employees see it through the API (body included)."""
    return {
        "id": post.id,
        "title": post.title,
        "summary": post.summary,
        "topic": post.topic,
        "must_read": post.must_read,
        "published_at": post.published_at.isoformat() if post.published_at else None,
        "expires_at": post.expires_at.isoformat() if post.expires_at else None,
        "ack_deadline": post.ack_deadline.isoformat() if post.ack_deadline else None,
        "rating_style": post.rating_style,
        "body_html": post.body_html,
        "read": bool(state and state.read_at),
        "acknowledged": bool(state and state.acknowledged_at),
    }
