"""Each employee's feed: the live posts targeted at them, must-reads they owe pinned first,
then the rest in the order :mod:`intranet.ranking` gives them, each with its reasons.

Paging through a ranked feed must not repeat or skip a post when others publish or rate in
between, yet a ranked order has no key to resume after. So the first page ranks the whole
candidate set (the posts the targeting SQL returns, one grouped query per signal) and, when
there is more than one page, stores the order as a :class:`~intranet.models.FeedSnapshot`
with a random id and an expiry; the cursor names the snapshot and an offset. Later pages read
the snapshot and load only their own posts (re-checking visibility, so a post retracted
meanwhile drops out). A snapshot kept server-side rather than a signed id list in the cursor
keeps cursors short whatever the feed's length, and it expires on its own; a new first page
(a reload) ranks again and shows what was published since.
"""
from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import re
import secrets
import zlib
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy import Integer, String, and_, bindparam, case, delete, false, func, insert, literal, type_coerce, update
from sqlmodel import Session, select

from intranet import feedback, preferences, ranking, ratings, reasons, targeting
from intranet.delivery import fatigue
from intranet.engagement import events
from intranet.db import UTCDateTime, insert_new, utc_micros
from intranet.errors import InvalidInput
from intranet.languages import N_
from intranet.models import (Attachment, AudienceSegment, AudienceValue, Employee, FatigueNotice, FeedSnapshot, Post,
                             PostRatingStats, PostState, Rating)
from intranet.shapes import Time
from intranet.webhooks.events import post_acknowledged_event


@dataclasses.dataclass(frozen=True)
class FeedItem:
    post: Post
    read: bool
    acknowledged: bool
    #: Reasons for the item's place (worded in the reader's language when shown: "Targeted at Sales").
    why: tuple[reasons.Reason, ...] = ()

    @property
    def pinned(self) -> bool:
        return self.post.must_read and not self.acknowledged

@dataclasses.dataclass(frozen=True)
class FeedPage:
    items: list[FeedItem]
    next_cursor: str | None


@dataclasses.dataclass(frozen=True)
class Reader:
    """What the feed page needs about the person reading it, read in one statement per request."""

    prefs: preferences.Preferences
    #: Their open cadence notice, if any.
    notice: FatigueNotice | None
    #: Replies to their feedback they have not seen.
    unseen_replies: int


# Built once (building it cost ~0.5 ms a request); only the statement is shared, never what it read.
_READER_PK = bindparam("reader_pk")
_READER = (preferences.statement_for(_READER_PK)
           .add_columns(FatigueNotice, feedback.unseen_replies_count(_READER_PK))
           .outerjoin(FatigueNotice, fatigue.open_notice_join(_READER_PK)))


def reader(session: Session, employee: Employee) -> Reader:
    """*employee*'s preferences, open cadence notice and unread replies in one statement.

    Each is read afresh per request (never kept across requests): only the round trips are shared.
    """
    row, org, notice, unseen = session.execute(_READER, {"reader_pk": employee.id}).one()
    return Reader(prefs=preferences.of_rows(row, org), notice=notice, unseen_replies=int(unseen or 0))


# --------------------------------------------------------------------------------------------
# Output: what the employee API answers
# --------------------------------------------------------------------------------------------


class _PostHeadline(BaseModel):
    id: int
    title: str
    summary: str
    topic: str
    must_read: bool
    published_at: Time | None
    language: str = Field(description="The language of the title, summary and body served: yours when the post "
                          "has a version in it, else the language it was written in")
    read: bool = Field(description="Whether you have opened it")
    acknowledged: bool = Field(description="Whether you have acknowledged it (must-reads)")

    @staticmethod
    def _fields_of(post: Post, *, read: bool, acknowledged: bool) -> dict[str, Any]:
        return {"id": post.id, "title": post.title, "summary": post.summary, "topic": post.topic,
                "must_read": post.must_read, "published_at": post.published_at, "language": post.language, "read": read,

                "acknowledged": acknowledged}


class FeedItemPublic(_PostHeadline):
    """A post in your feed."""

    why: list[str] = Field(description="Plain-language reasons for the post's place in your feed, in your language")

    @classmethod
    def of(cls, item: FeedItem, language: str | None = None) -> FeedItemPublic:
        """*item* for the API, its reasons worded in *language*."""
        return cls(**cls._fields_of(item.post, read=item.read, acknowledged=item.acknowledged),
                   why=reasons.words(item.why, language))


class FeedPagePublic(BaseModel):
    """A page of your feed."""

    items: list[FeedItemPublic]
    next_cursor: str | None = Field(description="Send as ?cursor= for the next page; null on the last")

    @classmethod
    def of(cls, page: FeedPage, language: str | None = None) -> FeedPagePublic:
        """*page* for the API, its reasons worded in *language*."""
        return cls(items=[FeedItemPublic.of(item, language) for item in page.items], next_cursor=page.next_cursor)


class PostPublic(_PostHeadline):
    """A post targeted at you, with its body."""

    body_html: str = Field(description="Sanitized HTML")
    expires_at: Time | None
    ack_deadline: Time | None
    rating_style: Literal["stars", "thumbs"]
    my_rating: ratings.RatingPublic | None = Field(description="Your rating of this post, or null")

    @classmethod
    def of(cls, post: Post, state: PostState | None, my_rating: Rating | None) -> PostPublic:
        return cls(**cls._fields_of(post, read=bool(state and state.read_at),
                                    acknowledged=bool(state and state.acknowledged_at)),
                   expires_at=post.expires_at, ack_deadline=post.ack_deadline,
                   rating_style=post.rating_style, body_html=post.body_html,  # type: ignore[arg-type]
                   my_rating=ratings.RatingPublic.of(my_rating) if my_rating else None)


class ReadPublic(BaseModel):
    """Recorded: you opened the post (the first time counts)."""

    read: bool
    read_at: Time

    @classmethod
    def of(cls, state: PostState) -> ReadPublic:
        return cls(read=True, read_at=state.read_at)  # type: ignore[arg-type]


class AcknowledgedPublic(BaseModel):
    """Recorded: you acknowledged the must-read post."""

    acknowledged: bool
    acknowledged_at: Time

    @classmethod
    def of(cls, state: PostState) -> AcknowledgedPublic:
        return cls(acknowledged=True, acknowledged_at=state.acknowledged_at)  # type: ignore[arg-type]


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


# Built once: a feed page asks for them on every page (building cost more CPU than the tiny query).
# The author's name and the cover (the post's first image attachment) ride along each post's id.
_CARDS = select(Post.id,
                select(Employee.display_name).where(Employee.id == Post.author_pk).scalar_subquery(),
                select(func.min(Attachment.id)).where(Attachment.post_id == Post.id, Attachment.kind == "image")
                .scalar_subquery()).where(Post.id.in_(bindparam("card_posts", expanding=True)))
# The same, with the reader's own rating of each post (outer-joined: most posts have none).
_RATED_CARDS = (_CARDS.add_columns(Rating).select_from(Post)
                .outerjoin(Rating, and_(Rating.post_id == Post.id, Rating.employee_pk == bindparam("card_rater"))))


def _card(post: Post, author: str | None, cover_id: int | None) -> Card:
    return Card(author=author or None, cover_id=cover_id, minutes=reading_minutes(post))


def cards(session: Session, posts: list[Post]) -> dict[int, Card]:
    """Each post's card details, in one query for the whole page.

    The cover is the post's first image attachment (the first picture its author added).
    """
    if not posts:
        return {}
    by_id = {p.id: p for p in posts}
    rows = session.connection().execute(_CARDS, {"card_posts": list(by_id)}).all()
    return {post_id: _card(by_id[post_id], author, cover) for post_id, author, cover in rows}


def rated_cards(session: Session, posts: list[Post], employee: Employee) -> tuple[dict[int, Card], dict[int, Rating]]:
    """:func:`cards` and *employee*'s ratings of *posts* (as :func:`ratings.mine_for`), in one query."""
    if not posts:
        return {}, {}
    by_id = {p.id: p for p in posts}
    out: dict[int, Card] = {}
    mine: dict[int, Rating] = {}
    for post_id, author, cover, rating in session.execute(_RATED_CARDS, {"card_posts": list(by_id),
                                                                          "card_rater": employee.id}):
        out[post_id] = _card(by_id[post_id], author, cover)
        if rating is not None:
            mine[post_id] = rating
    return out, mine


#: How long a ranked order stays pageable; a later cursor asks the person to start again.
SNAPSHOT_TTL = dt.timedelta(hours=12)
_SNAPSHOT_ID = re.compile(r"^[A-Za-z0-9_-]{16,32}$")
MAX_OFFSET = 10_000_000


def _encode_cursor(snapshot_id: str, offset: int) -> str:
    raw = json.dumps({"s": snapshot_id, "o": offset}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:  # ours are under 80 characters
            raise ValueError("too long")
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        snapshot_id, offset = raw["s"], raw["o"]
        if not isinstance(snapshot_id, str) or not _SNAPSHOT_ID.match(snapshot_id):
            raise ValueError("bad snapshot id")
        if isinstance(offset, bool) or not isinstance(offset, int) or not 0 < offset <= MAX_OFFSET:
            raise ValueError("out of range")
        return snapshot_id, offset
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(N_("This feed cursor is not valid; start again without one."),
                           details={"field": "cursor"}) from exc


def _pack(post_ids: list[int], why: list[list[reasons.Reason]]) -> bytes:
    # Reasons are kept as codes and values, not words: later pages are worded in the reader's
    # language of the moment. The few distinct reasons are listed once and referred to by index.
    distinct: dict[reasons.Reason, int] = {}
    codes = [[distinct.setdefault(r, len(distinct)) for r in item] for item in why]
    # Level 1: a few times faster than the default on a long feed, and nearly as small (digits compress well).
    return zlib.compress(json.dumps({"ids": post_ids, "reasons": [r.to_json() for r in distinct], "why": codes},
                                    separators=(",", ":")).encode(), 1)


def _unpack(blob: bytes) -> tuple[list[int], list[list[reasons.Reason]]]:
    data = json.loads(zlib.decompress(blob))
    # "texts": a snapshot taken before reasons had codes (still within its lifetime): shown as it was worded.
    distinct = [reasons.Reason.from_json(r) for r in data.get("reasons", data.get("texts", []))]
    return data["ids"], [[distinct[c] for c in codes] for codes in data["why"]]


def _flag(expression: Any) -> Any:
    # The driver's 0/1 (SQLite) or bool (PostgreSQL) as is: numpy reads either, and skipping
    # SQLAlchemy's per-value result processing is most of the cost of a row here.
    return type_coerce(expression, Integer)


#: The candidate statement by :func:`_candidate_shape`: built once per shape of person, run with each one's values.
_CANDIDATE_STATEMENTS: dict[tuple[Any, ...], Any] = {}
#: More shapes than people plausibly have (dimensions filled, manager, level, hire date): a bound, not a limit.
_MAX_CANDIDATE_STATEMENTS = 512


def _candidate_shape(employee: Employee, now: dt.datetime) -> tuple[Any, ...]:
    return (targeting.rule_shape(employee, None, now), bool(employee.department))


def _candidate_statement(employee: Employee, now: dt.datetime) -> Any:
    """The candidate statement for people of *employee*'s shape, every per-person value a named parameter."""
    employee_pk = bindparam("feed_employee_pk", employee.id, type_=Integer)
    acknowledged = PostState.acknowledged_at.is_not(None)
    if employee.department:
        for_department = Post.id.in_(
            select(AudienceSegment.post_id).join(AudienceValue, AudienceValue.segment_id == AudienceSegment.id)
            .where(AudienceSegment.exclude.is_(False), AudienceValue.dimension == "department",
                   AudienceValue.value == bindparam("feed_department", employee.department, type_=String)))
    else:
        for_department = false()
    # Only a pinned must-read names its author's department ("Must-read from ..."), so only those look it up.
    source = case((and_(Post.must_read.is_(True), PostState.acknowledged_at.is_(None)),
                   select(Employee.department).where(Employee.id == Post.author_pk).scalar_subquery()))
    # A journey step is addressed to everyone only in form: it is the person's own, not "shared with everyone".
    return (select(Post.id, Post.topic, type_coerce(targeting.shown_at(employee_pk), String), _flag(Post.must_read),
                   _flag(and_(Post.all_staff.is_(True), Post.journey_only.is_(False))),
                   _flag(Post.rating_style == "thumbs"), _flag(PostState.read_at.is_not(None)), _flag(acknowledged),
                   _flag(for_department), source,
                   PostRatingStats.n_stars, PostRatingStats.sum_stars, PostRatingStats.ups, PostRatingStats.downs,
                   PostRatingStats.reached, PostRatingStats.engaged)
            .outerjoin(PostState, and_(PostState.post_id == Post.id, PostState.employee_pk == employee_pk))
            .outerjoin(PostRatingStats, PostRatingStats.post_id == Post.id)
            .where(targeting.visible_posts_filter(employee, None, now)))


def _candidates(session: Session, employee: Employee, *, now: dt.datetime) -> tuple[ranking.Candidates, np.ndarray]:
    """The visible posts as columns, and each one's kept counts (n_stars, sum_stars, ups, downs, reached,
    engaged), in one statement: the targeting rule (groups included), the person's read/acknowledged
    state, the post's counts, and the author's department of a pinned must-read.

    The statement is built once per shape of person (building it cost more CPU than running it) and
    run with this person's values: every one of them is a named parameter, set here on each run.
    """
    shape = _candidate_shape(employee, now)
    statement = _CANDIDATE_STATEMENTS.get(shape)
    if statement is None:
        if len(_CANDIDATE_STATEMENTS) >= _MAX_CANDIDATE_STATEMENTS:
            _CANDIDATE_STATEMENTS.clear()
        statement = _CANDIDATE_STATEMENTS[shape] = _candidate_statement(employee, now)
    values = {**targeting.visible_posts_values(employee, None, now), "feed_employee_pk": employee.id}
    if employee.department:
        values["feed_department"] = employee.department
    rows = session.connection().execute(statement, values).all()
    columns = list(zip(*rows)) if rows else [()] * 16
    topics = columns[1]
    names = sorted(set(topics))
    index = {t: i for i, t in enumerate(names)}
    found = ranking.Candidates(
        post_id=np.array(columns[0], dtype=np.int64), topic_index=np.array([index[t] for t in topics], dtype=np.int64),
        topics=names, published_us=utc_micros(columns[2]), must_read=np.array(columns[3], dtype=bool),
        all_staff=np.array(columns[4], dtype=bool), thumbs=np.array(columns[5], dtype=bool),
        read=np.array(columns[6], dtype=bool), acknowledged=np.array(columns[7], dtype=bool),
        for_department=np.array(columns[8], dtype=bool), author_department=list(columns[9]))
    counts = np.array([r[10:16] for r in rows], dtype=float).reshape(len(rows), 6)
    return found, np.nan_to_num(counts)


def ranked_ids(session: Session, employee: Employee, *, now: dt.datetime, page_size: int = 20,
               prefs: preferences.Preferences | None = None) -> tuple[list[int], list[list[reasons.Reason]]]:
    """*employee*'s whole feed in ranked order at *now*: post ids and each one's reasons."""
    found, counts = _candidates(session, employee, now=now)
    if not len(found):
        return [], []
    prefs = prefs or preferences.for_employee(session, employee)
    profile = ranking.load_profile(session, employee, now=now)
    quality = ranking.quality(counts[:, 0], counts[:, 1], counts[:, 2], counts[:, 3], found.thumbs,
                              reached=counts[:, 4], engaged=counts[:, 5])
    ranked = ranking.rank_columns(found, profile=profile, quality=quality, now=now, department=employee.department,
                                  followed=prefs.followed_topics, muted=prefs.muted_topics, page_size=page_size)
    ids = found.post_id.tolist()
    return [ids[i] for i in ranked.order], [ranked.why[i] for i in ranked.order]


# Core statements, built once: the ORM's unit of work and delete synchronisation cost more than the SQL here.
_SNAPSHOTS = FeedSnapshot.__table__  # type: ignore[attr-defined]
_CLEAR_EXPIRED = delete(_SNAPSHOTS).where(_SNAPSHOTS.c.employee_pk == bindparam("snapshot_employee_pk"),
                                          _SNAPSHOTS.c.expires_at <= bindparam("snapshot_now"))
_STORE = insert(_SNAPSHOTS)


def _snapshot(session: Session, employee: Employee, post_ids: list[int], why: list[list[reasons.Reason]], *,
              now: dt.datetime) -> str:
    connection = session.connection()
    # Each new first page clears the person's own expired orders; the purge job catches the rest.
    connection.execute(_CLEAR_EXPIRED, {"snapshot_employee_pk": employee.id, "snapshot_now": now})
    snapshot_id = secrets.token_urlsafe(16)
    connection.execute(_STORE, {"id": snapshot_id, "employee_pk": employee.id, "items": _pack(post_ids, why),
                                "created_at": now, "expires_at": now + SNAPSHOT_TTL})
    return snapshot_id


def feed_page(session: Session, employee: Employee, *, now: dt.datetime, cursor: str | None = None,
              limit: int = 20, prefs: preferences.Preferences | None = None) -> FeedPage:
    """One page of *employee*'s feed at *now*, after *cursor* (from the previous page).

    The first page ranks the feed and, when it runs longer than a page, stores the order (the
    caller commits); later pages follow that order. *prefs* saves reading the preferences again
    when the caller has them (see :func:`reader`).

    :raise InvalidInput: the cursor is malformed, someone else's, or expired.
    """
    if cursor:
        snapshot_id, offset = _decode_cursor(cursor)
        snapshot = session.get(FeedSnapshot, snapshot_id)
        if snapshot is None or snapshot.employee_pk != employee.id or snapshot.expires_at <= now:
            raise InvalidInput(N_("This feed cursor has expired; start again without one."),
                               details={"field": "cursor"})
        post_ids, why = _unpack(snapshot.items)
        if offset > len(post_ids):
            raise InvalidInput(N_("This feed cursor is not valid; start again without one."),
                               details={"field": "cursor"})
    else:
        offset, snapshot_id = 0, None
        post_ids, why = ranked_ids(session, employee, now=now, page_size=limit, prefs=prefs)
        if len(post_ids) > limit:
            snapshot_id = _snapshot(session, employee, post_ids, why, now=now)
    end = offset + limit
    page_ids, page_why = post_ids[offset:end], why[offset:end]
    state_join = and_(PostState.post_id == Post.id, PostState.employee_pk == employee.id)
    query = select(Post, PostState.read_at, PostState.acknowledged_at).outerjoin(PostState, state_join).where(
        Post.id.in_(page_ids))
    if cursor:  # the first page's ids were just chosen by the targeting rule; later ones are re-checked
        query = query.where(
            targeting.visible_posts_filter(employee, targeting.group_keys_of(session, employee.id), now))
    rows = {post.id: (post, read_at, ack_at) for post, read_at, ack_at in session.exec(query)} if page_ids else {}
    # A post retracted or re-targeted since the order was taken drops out; the rest keep their places.
    items = [FeedItem(post=rows[i][0], read=rows[i][1] is not None, acknowledged=rows[i][2] is not None,
                      why=tuple(item_why))
             for i, item_why in zip(page_ids, page_why, strict=True) if i in rows]
    next_cursor = _encode_cursor(snapshot_id, end) if snapshot_id and end < len(post_ids) else None
    return FeedPage(items=items, next_cursor=next_cursor)


def purge_snapshots(session: Session, now: dt.datetime, settings: Any = None) -> int:
    """Delete expired feed snapshots (the periodic job)."""
    result = session.execute(delete(FeedSnapshot).where(FeedSnapshot.expires_at <= now))
    return result.rowcount or 0  # type: ignore[attr-defined]


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
        raise InvalidInput(N_("This post does not ask for acknowledgement."))
    already = session.exec(select(PostState.acknowledged_at).where(
        PostState.employee_pk == employee.id, PostState.post_id == post.id)).first()
    state = _touch(session, employee, post, now=now, acknowledge=True)
    if already is None and state.acknowledged_at is not None:
        # Two clicks racing both get here; the event's key keeps it to one.
        post_acknowledged_event(session, post, employee, acknowledged_at=state.acknowledged_at, now=now)
    # Also an event (one per person and post), so analytics count it like an imported acknowledgement.
    events.record(session, employee, "acknowledge", at=state.acknowledged_at or now, client_id=f"ack-{post.id}",
                  post_id=post.id)
    return state

