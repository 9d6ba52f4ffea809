"""What a digest or an alert says: the posts, capped, and how many more are waiting.

Both kinds of slot are composed here, by one :func:`compose`, when they are queued (an empty one
is not sent) and again when each message goes out (so a post retracted, re-targeted, read or
acknowledged in the meantime is left out):

* a **planned digest** lists the must-reads the person has not acknowledged (whatever their topic
  mutes say, until the deadline, newest first), then the unread posts published since their last
  digest, in the person's ranked order (:mod:`intranet.ranking`, as in their feed) up to the cap;
* a **weekly budget** (:mod:`intranet.delivery.fatigue`) caps the posts that are not must-reads
  one person is sent in any 7 days, digests and alerts together: past it, only must-reads go out;
* an **alert** lists only the posts its items carry (:mod:`intranet.delivery.alerts` attaches
  them): must-reads still unacknowledged, and as-it-happens posts still unread, not muted and
  followed, while the person's cadence is still ``as_it_happens``, in the same two tiers.

Visibility is decided by :func:`intranet.targeting.visible_posts_filter` at that moment. The
result, a :class:`DigestContent`, is rendered for every channel by
:mod:`intranet.delivery.rendering`.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import and_, func, or_, select
from sqlmodel import Session

from intranet import post_versions, preferences, ranking, targeting
from intranet.delivery import fatigue
from intranet.models import Digest, DigestItem, Employee, OutboxMessage, Post, PostState
from intranet.shapes import Time


@dataclasses.dataclass(frozen=True)
class ContentItem:
    """One post as a digest lists it (the table :class:`intranet.models.DigestItem` records which
    posts an alert slot carries)."""

    post_id: int
    title: str
    summary: str
    topic: str
    must_read: bool
    published_at: dt.datetime
    ack_deadline: dt.datetime | None
    #: What the post asks for, so a message can offer one rating link per star or thumb.
    rating_style: str = "stars"
    #: The language of ``title`` and ``summary`` (the post's own, or the version of :func:`in_language`).
    language: str = "en"


@dataclasses.dataclass(frozen=True)
class DigestContent:
    """What one digest holds: at most ``limit`` items and how many more are waiting."""

    items: list[ContentItem]
    more: int
    overdue_must_reads: int
    #: Posts left out because the person's weekly budget is used up (they count in ``more`` too).
    held_back: int = 0

    @property
    def empty(self) -> bool:
        return not self.items

    @property
    def post_ids(self) -> list[int]:
        return [i.post_id for i in self.items]


NOTHING = DigestContent([], 0, 0)
#: What composing reads of each post (and the person's state of it).
_COLUMNS = (Post.id, Post.title, Post.summary, Post.topic, Post.must_read, Post.published_at, Post.ack_deadline,
            Post.rating_style, Post.all_staff, Post.audience, Post.language, PostState.read_at, PostState.acknowledged_at)


def wanted(prefs: preferences.Preferences, topic: str, *, must_read: bool) -> bool:
    """Whether a post of *topic* goes out as it happens: mutes and follows apply to ordinary
    posts, must-reads bypass them."""
    if must_read:
        return True
    if topic in prefs.muted_topics:
        return False
    return not prefs.followed_topics or topic in prefs.followed_topics


def last_sent_at(session: Session, employee_pk: int, *, before_digest: int | None = None) -> dt.datetime | None:
    """When *employee_pk*'s last digest went out (any channel), ignoring *before_digest* itself.

    Alerts do not count: a weekly digest still covers what came out before a must-read alert.
    """
    query = (select(func.max(OutboxMessage.sent_at)).join(Digest, Digest.id == OutboxMessage.digest_id)
             .where(OutboxMessage.employee_pk == employee_pk, OutboxMessage.status == "sent",
                    Digest.kind == "digest"))
    if before_digest is not None:
        query = query.where(OutboxMessage.digest_id != before_digest)
    return session.execute(query).scalar()


def rank_rest(session: Session, employee: Employee, posts: Sequence[Any], now: dt.datetime, *,
              prefs: preferences.Preferences, limit: int,
              priors: dict[str | None, dict[str, float]] | None = None) -> list[Any]:
    """*posts* (unread, none of them pinned) in *employee*'s ranked order, the first *limit* diversified.

    :param posts: :class:`Post` rows, or result rows with the same names (``id``, ``topic``,
        ``published_at``, ``must_read``, ``all_staff``, ``rating_style``, ``audience``).

    :param priors: department priors already loaded in this run, by department (filled as it goes).
    """
    if len(posts) < 2:
        return list(posts)
    if priors is None:
        priors = {}
    if employee.department not in priors:
        # Composing only reads (previews compose too); the ranking-refresh job keeps the priors.
        priors[employee.department] = ranking.department_prior(session, employee.department, now=now, keep=False)
    profile = ranking.load_profile(session, employee, now=now, prior=priors[employee.department])
    quality = ranking.load_quality(session, [p.id for p in posts], [p.rating_style for p in posts])
    candidates = [ranking.Candidate(post_id=p.id, topic=p.topic, published_at=p.published_at, must_read=p.must_read,
                                    acknowledged=True, read=False, all_staff=p.all_staff, rating_style=p.rating_style,
                                    for_department=ranking.targets_department(p.audience, employee.department))
                  for p in posts]
    ranked = ranking.rank(candidates, profile=profile, quality=quality, now=now, department=employee.department,
                          followed=prefs.followed_topics, muted=prefs.muted_topics, page_size=limit)
    return [posts[i] for i in ranked.order]


def compose(session: Session, employee: Employee, slot: Digest, now: dt.datetime, *,
            prefs: preferences.Preferences | None = None, limit: int = 10, lookback_days: int = 7,
            reminder_after: dt.timedelta = dt.timedelta(hours=48), must_reads_only: bool = False,
            rank: bool = True, priors: dict[str | None, dict[str, float]] | None = None,
            weekly_budget: int = 0, budget_used: int | None = None) -> DigestContent:
    """What the digest or alert *slot* has to say to *employee* at *now* (see the module's rules).

    :param lookback_days: a first digest lists posts published this many days back.
    :param reminder_after: a digest counts a must-read published this long ago as overdue (an
        alert counts the must-reads it carries in a reminder round).
    :param must_reads_only: the message is a reminder on a second channel: must-reads only.
    :param rank: order the rest with the ranker (False when only emptiness and counts matter, as
        when queueing: the sender composes again).
    :param priors: department priors shared by one run's compositions (see :func:`rank_rest`).
    :param weekly_budget: most posts that are not must-reads the person may be sent in 7 days (0: no
        budget); what this slot may still carry is the budget less what was sent in the last 7 days
        (:func:`intranet.delivery.fatigue.sent_this_week`). Must-reads never count and are never cut.
    :param budget_used: that count, when the caller loaded it for many people at once.
    """
    if not employee.active:
        return NOTHING
    prefs = prefs or preferences.for_employee(session, employee)
    rounds: dict[int, int] = {}
    since = now - dt.timedelta(days=lookback_days)
    if slot.kind == "alert":
        rounds = dict(session.execute(select(DigestItem.post_id, DigestItem.round)
                                      .where(DigestItem.digest_id == slot.id)).all())
        if not rounds:
            return NOTHING
    else:
        since = last_sent_at(session, employee.id, before_digest=slot.id) or since
    state = and_(PostState.post_id == Post.id, PostState.employee_pk == employee.id)
    # Only the columns a message shows and the ranker reads (not the bodies), and only the rows
    # that can be listed: pending must-reads, and unread posts of the window.
    # A journey step is new when it was released to the person, not when its post was published.
    shown = targeting.shown_at(employee.id)
    columns = tuple(shown.label("published_at") if c is Post.published_at else c for c in _COLUMNS)
    query = (select(*columns).outerjoin(PostState, state)
             .where(targeting.visible_posts_filter(employee, targeting.group_keys_of(session, employee.id), now))
             .order_by(Post.published_at.desc(), Post.id.desc()))
    pending = and_(Post.must_read.is_(True), PostState.acknowledged_at.is_(None),
                   or_(Post.ack_deadline.is_(None), Post.ack_deadline > now))
    if rounds:
        query = query.where(Post.id.in_(list(rounds)))
    elif must_reads_only:
        query = query.where(pending)
    else:
        query = query.where(or_(pending, and_(PostState.read_at.is_(None), shown > since)))
    must, rest = [], []
    posts: dict[int, Any] = {}
    overdue = 0
    for post in session.execute(query):
        read_at, ack_at = post.read_at, post.acknowledged_at
        posts[post.id] = post
        item = ContentItem(post.id, post.title, post.summary, post.topic, post.must_read, post.published_at,
                           post.ack_deadline, post.rating_style, post.language)

        if post.must_read and ack_at is None and (post.ack_deadline is None or post.ack_deadline > now):
            must.append(item)
            # An alert's reminder rounds say it is overdue; a digest counts from publishing.
            overdue += rounds[post.id] >= 1 if rounds else post.published_at <= now - reminder_after
        elif must_reads_only or read_at is not None:
            continue
        elif rounds:
            if rounds[post.id] == 0 and prefs.cadence == "as_it_happens" and wanted(prefs, post.topic,
                                                                                    must_read=False):
                rest.append(item)
        elif post.published_at > since and post.topic not in prefs.muted_topics:
            rest.append(item)
    room = max(limit - len(must), 0)
    held_back = 0
    if weekly_budget and rest:
        if budget_used is None:
            budget_used = fatigue.sent_this_week(session, employee.id, now, excluding_digest=slot.id)
        allowed = max(weekly_budget - budget_used, 0)
        held_back = max(len(rest) - allowed, 0)
        room = min(room, allowed)
    if rank and room and len(rest) > 1:
        by_id = {item.post_id: item for item in rest}
        ranked = rank_rest(session, employee, [posts[item.post_id] for item in rest], now, prefs=prefs,
                           limit=room, priors=priors)
        rest = [by_id[p.id] for p in ranked]
    items = must[:limit] + rest[:room]
    return DigestContent(items=items, more=len(must) + len(rest) - len(items), overdue_must_reads=overdue,
                         held_back=held_back)


# --------------------------------------------------------------------------------------------
# The in-app digest, as the API shows the latest one
# --------------------------------------------------------------------------------------------


class DigestPostPublic(BaseModel):
    """A post in an in-app digest."""

    id: int
    title: str
    summary: str
    must_read: bool


class LatestDigestPublic(BaseModel):
    """Your latest in-app digest, as sent (posts you may no longer see left out)."""

    sent_at: Time | None = Field(description="null: no in-app digest has been sent to you yet")
    items: list[DigestPostPublic]


def latest_in_app(session: Session, employee: Employee, now: dt.datetime) -> LatestDigestPublic:
    """The latest in-app digest sent to *employee*, listing only the posts they may still see at *now*."""
    message = session.execute(select(OutboxMessage).where(
        OutboxMessage.employee_pk == employee.id, OutboxMessage.channel == "in_app", OutboxMessage.status == "sent")
        .order_by(OutboxMessage.sent_at.desc()).limit(1)).scalar()
    if message is None:
        return LatestDigestPublic(sent_at=None, items=[])
    items = []
    for post_id in message.post_ids:
        post = session.get(Post, post_id)
        if post is not None and targeting.may_see(session, employee, post, now):
            items.append(DigestPostPublic(id=post.id, title=post.title, summary=post.summary,  # type: ignore[arg-type]
                                          must_read=post.must_read))
    return LatestDigestPublic(sent_at=message.sent_at, items=items)


def in_language(session: Session, content: DigestContent, language: str) -> DigestContent:
    """*content* with each post's title and summary in *language* where the post has a version in it.

    Posts without one keep their own language (a message does not hide a post for want of a translation).
    """
    others = [item.post_id for item in content.items if item.language != language]
    found = post_versions.versions_in(session, others, language) if others else {}
    if not found:
        return content
    items = [dataclasses.replace(item, title=found[item.post_id].title, summary=found[item.post_id].summary,
                                 language=language) if item.post_id in found else item for item in content.items]
    return dataclasses.replace(content, items=items)
