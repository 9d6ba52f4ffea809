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
from intranet.models import (Digest, DigestItem, Employee, Group, GroupMember, JourneyRelease, OutboxMessage,
                             Post, PostState)
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
              priors: dict[str | None, dict[str, float]] | None = None,
              profile: ranking.Profile | None = None,
              counts: dict[int, tuple[int, ...]] | None = None) -> list[Any]:
    """*posts* (unread, none of them pinned) in *employee*'s ranked order, the first *limit* diversified.

    :param posts: :class:`Post` rows, or result rows with the same names (``id``, ``topic``,
        ``published_at``, ``must_read``, ``all_staff``, ``rating_style``, ``audience``).

    :param priors: department priors already loaded in this run, by department (filled as it goes).
    :param profile: the person's profile when a batch loaded it (:func:`intranet.ranking.load_profiles`).
    :param counts: the posts' rating counts when a batch loaded them (:func:`intranet.ranking.load_rating_counts`).
    """
    if len(posts) < 2:
        return list(posts)
    if profile is None:
        if priors is None:
            priors = {}
        if employee.department not in priors:
            # Composing only reads (previews compose too); the ranking-refresh job keeps the priors.
            priors[employee.department] = ranking.department_prior(session, employee.department, now=now, keep=False)
        profile = ranking.load_profile(session, employee, now=now, prior=priors[employee.department])
    ids, styles = [p.id for p in posts], [p.rating_style for p in posts]
    quality = ranking.quality_of(counts, ids, styles) if counts is not None else ranking.load_quality(session, ids,
                                                                                                      styles)
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
    chosen = _select(list(session.execute(query)), now, rounds=rounds, since=since, prefs=prefs, limit=limit,
                     must_reads_only=must_reads_only, reminder_after=reminder_after)
    if weekly_budget and chosen.rest and budget_used is None:
        budget_used = fatigue.sent_this_week(session, employee.id, now, excluding_digest=slot.id)
    chosen = chosen.within_budget(weekly_budget, budget_used or 0)
    if rank and chosen.needs_ranking:
        chosen = chosen.ranked(rank_rest(session, employee, chosen.rest_rows, now, prefs=prefs, limit=chosen.room,
                                         priors=priors))
    return chosen.content(limit)


@dataclasses.dataclass(frozen=True)
class _Selection:
    """What one slot may list, before the budget and the ranking: pinned must-reads and the rest."""

    must: list[ContentItem]
    rest: list[ContentItem]
    rows: dict[int, Any]
    overdue: int
    room: int
    held_back: int = 0

    @property
    def needs_ranking(self) -> bool:
        return bool(self.room) and len(self.rest) > 1

    @property
    def rest_rows(self) -> list[Any]:
        return [self.rows[item.post_id] for item in self.rest]

    def within_budget(self, weekly_budget: int, budget_used: int) -> _Selection:
        """Held to the weekly budget: past it only must-reads go out (see :mod:`intranet.delivery.fatigue`)."""
        if not weekly_budget or not self.rest:
            return self
        allowed = max(weekly_budget - budget_used, 0)
        return dataclasses.replace(self, held_back=max(len(self.rest) - allowed, 0), room=min(self.room, allowed))

    def ranked(self, rows: list[Any]) -> _Selection:
        by_id = {item.post_id: item for item in self.rest}
        return dataclasses.replace(self, rest=[by_id[row.id] for row in rows])

    def content(self, limit: int) -> DigestContent:
        items = self.must[:limit] + self.rest[:self.room]
        return DigestContent(items=items, more=len(self.must) + len(self.rest) - len(items),
                             overdue_must_reads=self.overdue, held_back=self.held_back)


def _select(rows: Sequence[Any], now: dt.datetime, *, rounds: dict[int, int], since: dt.datetime,
            prefs: preferences.Preferences, limit: int, must_reads_only: bool,
            reminder_after: dt.timedelta) -> _Selection:
    """Split a slot's visible candidate *rows* (newest first, with the person's read and
    acknowledged times) into pending must-reads and the rest it may list (the module's rules)."""
    must, rest = [], []
    posts: dict[int, Any] = {}
    overdue = 0
    for post in rows:
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
    return _Selection(must=must, rest=rest, rows=posts, overdue=overdue, room=max(limit - len(must), 0))


# --------------------------------------------------------------------------------------------
# A batch of slots at once (the sender's batch, the composition benchmark)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Request:
    """One slot to compose in a batch: whose, which, and whether only must-reads (a reminder)."""

    employee: Employee
    slot: Digest
    must_reads_only: bool = False


@dataclasses.dataclass(frozen=True)
class _Row:
    """A candidate post as one person sees it (the columns :func:`compose`'s query reads)."""

    id: int
    title: str
    summary: str
    topic: str
    must_read: bool
    published_at: dt.datetime
    ack_deadline: dt.datetime | None
    rating_style: str
    all_staff: bool
    audience: Any
    language: str
    read_at: dt.datetime | None
    acknowledged_at: dt.datetime | None


_CANDIDATE_COLUMNS = (Post.id, Post.title, Post.summary, Post.topic, Post.must_read, Post.published_at,
                      Post.ack_deadline, Post.rating_style, Post.all_staff, Post.audience, Post.language,
                      Post.journey_only)


def _chunks(values: Sequence[Any], size: int = 1000) -> list[Sequence[Any]]:
    return [values[i:i + size] for i in range(0, len(values), size)]


def compose_many(session: Session, requests: Sequence[Request], now: dt.datetime, *,
                 prefs: dict[int, preferences.Preferences] | None = None, limit: int = 10, lookback_days: int = 7,
                 reminder_after: dt.timedelta = dt.timedelta(hours=48), rank: bool = True,
                 priors: dict[str | None, dict[str, float]] | None = None, weekly_budget: int = 0,
                 budget_used: dict[int, int] | None = None) -> list[DigestContent]:
    """:func:`compose` for a batch of slots: the same content for each, read with a few set-based
    queries for the whole batch instead of a dozen per person.

    The live posts any slot of the batch could list are read once; who may see each is decided
    by :func:`intranet.targeting.employee_matches` (the rule's Python form, asked only about the
    posts whose audience names one of the person's departments, places, groups or managers, or
    is open to all); read and acknowledged times, journey releases, groups, last digests, the
    budget used, alert items and the ranker's profiles (:func:`intranet.ranking.load_profiles`)
    and rating counts are each one query per batch.

    :param prefs: the people's preferences by primary key (loaded here when not given).
    :param budget_used: what each person was sent this week, when the caller counted it (a
        benchmark drawing it); otherwise counted here as :func:`compose` does, leaving out the slot itself.
    """
    out: list[DigestContent] = [NOTHING] * len(requests)
    todo = [i for i, r in enumerate(requests) if r.employee.active]
    if not todo:
        return out
    if priors is None:
        priors = {}
    people = {requests[i].employee.id: requests[i].employee for i in todo}
    pks = sorted(people)
    if prefs is None or any(pk not in prefs for pk in pks):
        prefs = {**preferences.for_employees(session, pks), **(prefs or {})}
    # Alerts list the posts their items carry; digests what came since the person's last digest.
    alert_slots = sorted({requests[i].slot.id for i in todo if requests[i].slot.kind == "alert"})
    rounds: dict[int, dict[int, int]] = {slot_id: {} for slot_id in alert_slots}
    for part in _chunks(alert_slots):
        for digest_id, post_id, round_ in session.execute(select(DigestItem.digest_id, DigestItem.post_id,
                                                                 DigestItem.round)
                                                          .where(DigestItem.digest_id.in_(part))):
            rounds[digest_id][post_id] = round_
    last_sent: dict[int, list[tuple[int, dt.datetime]]] = {}
    for part in _chunks(pks):
        for pk, digest_id, sent_at in session.execute(
                select(OutboxMessage.employee_pk, OutboxMessage.digest_id, func.max(OutboxMessage.sent_at))
                .join(Digest, Digest.id == OutboxMessage.digest_id)
                .where(OutboxMessage.employee_pk.in_(part), OutboxMessage.status == "sent", Digest.kind == "digest")
                .group_by(OutboxMessage.employee_pk, OutboxMessage.digest_id)):
            last_sent.setdefault(pk, []).append((digest_id, sent_at))
    default_since = now - dt.timedelta(days=lookback_days)
    since: dict[int, dt.datetime] = {}
    for i in todo:
        slot, pk = requests[i].slot, requests[i].employee.id
        earlier = [at for digest_id, at in last_sent.get(pk, ()) if digest_id != slot.id and at is not None]
        since[i] = max(earlier) if earlier else default_since
    todo = [i for i in todo if requests[i].slot.kind != "alert" or rounds[requests[i].slot.id]]

    # The live posts any slot could list, newest first (as compose orders them).
    oldest = min((since[i] for i in todo), default=default_since)
    alert_posts = sorted({p for slot_rounds in rounds.values() for p in slot_rounds})
    wanted_posts = or_(Post.must_read.is_(True), Post.published_at > oldest, Post.journey_only.is_(True))
    if alert_posts:
        wanted_posts = or_(wanted_posts, Post.id.in_(alert_posts))
    candidates = list(session.execute(select(*_CANDIDATE_COLUMNS).where(targeting.live_filter(now), wanted_posts)
                                      .order_by(Post.published_at.desc(), Post.id.desc())))
    if not todo or not candidates:
        return out
    audiences = {c.id: targeting.Audience.model_validate(c.audience) for c in candidates}
    # Which posts a person could match: open ones (everyone, or a segment naming no dimension), and
    # those with a segment naming one of the person's values. employee_matches decides.
    open_posts: set[int] = set()
    named: dict[tuple[str, str], set[int]] = {}
    for post_id, audience in audiences.items():
        if audience.all_staff:
            open_posts.add(post_id)
        for segment in audience.segments:
            values = segment.dimension_values()
            if not values:
                open_posts.add(post_id)
            for dimension, members in values.items():
                for value in members:
                    named.setdefault((dimension, value), set()).add(post_id)
    with_managers = any(targeting.uses_managers(a) for a in audiences.values())
    keys: dict[int, set[str]] = {pk: set() for pk in pks}
    for part in _chunks(pks):
        for pk, key in session.execute(select(GroupMember.employee_pk, Group.key)
                                       .join(Group, Group.id == GroupMember.group_id)
                                       .where(GroupMember.employee_pk.in_(part))):
            keys[pk].add(key)
    managers = {pk: targeting.managers_of(session, people[pk]) for pk in pks} if with_managers else {}
    journey_posts = [c.id for c in candidates if c.journey_only]
    released: dict[tuple[int, int], list[dt.datetime]] = {}
    if journey_posts:
        for part in _chunks(pks):
            for pk, post_id, at in session.execute(
                    select(JourneyRelease.employee_pk, JourneyRelease.post_id, JourneyRelease.released_at)
                    .where(JourneyRelease.employee_pk.in_(part), JourneyRelease.post_id.in_(journey_posts),
                           JourneyRelease.status == "released")):
                released.setdefault((pk, post_id), []).append(at)
    candidate_ids = [c.id for c in candidates]
    states: dict[tuple[int, int], tuple[Any, Any]] = {}
    for part in _chunks(pks):
        for ids in _chunks(candidate_ids, 5000):
            for pk, post_id, read_at, ack_at in session.execute(
                    select(PostState.employee_pk, PostState.post_id, PostState.read_at, PostState.acknowledged_at)
                    .where(PostState.employee_pk.in_(part), PostState.post_id.in_(ids))):
                states[(pk, post_id)] = (read_at, ack_at)

    visible: dict[int, set[int]] = {}
    for pk in pks:
        person = people[pk]
        maybe = set(open_posts)
        for pair in targeting.employee_pairs(person, keys[pk]):
            maybe |= named.get(pair, set())
        for manager in managers.get(pk, ()):
            maybe |= named.get(("reports_to", manager), set())
        visible[pk] = {post_id for post_id in maybe
                       if targeting.employee_matches(audiences[post_id], person, keys[pk], managers=managers.get(pk, ()),
                                                     now=now)}

    selections: dict[int, _Selection] = {}
    for i in todo:
        request = requests[i]
        pk, slot = request.employee.id, request.slot
        slot_rounds = rounds.get(slot.id, {}) if slot.kind == "alert" else {}
        rows = []
        for c in candidates:
            if c.id not in visible[pk]:
                continue
            shown = c.published_at
            if c.journey_only:
                times = released.get((pk, c.id))
                if not times or min(times) > now:
                    continue
                shown = max(times)
            read_at, ack_at = states.get((pk, c.id), (None, None))
            if slot_rounds:
                if c.id not in slot_rounds:
                    continue
            else:
                pending = c.must_read and ack_at is None and (c.ack_deadline is None or c.ack_deadline > now)
                if not pending and (request.must_reads_only or read_at is not None or not shown > since[i]):
                    continue
            rows.append(_Row(c.id, c.title, c.summary, c.topic, c.must_read, shown, c.ack_deadline, c.rating_style,
                             c.all_staff, c.audience, c.language, read_at, ack_at))
        selections[i] = _select(rows, now, rounds=slot_rounds, since=since[i], prefs=prefs[pk], limit=limit,
                                must_reads_only=request.must_reads_only, reminder_after=reminder_after)

    if weekly_budget and any(s.rest for s in selections.values()):
        if budget_used is not None:
            used = {i: budget_used.get(requests[i].employee.id, 0) for i in todo}
        else:
            used = _budget_used(session, requests, [i for i in todo if selections[i].rest], now)
        for i in todo:
            selections[i] = selections[i].within_budget(weekly_budget, used.get(i, 0))

    ranked = [i for i in todo if rank and selections[i].needs_ranking]
    if ranked:
        profiles = ranking.load_profiles(session, [people[pk] for pk in sorted({requests[i].employee.id
                                                                              for i in ranked})],
                                         now=now, priors=priors)
        counts = ranking.load_rating_counts(session, sorted({item.post_id for i in ranked
                                                             for item in selections[i].rest}))
        for i in ranked:
            person = requests[i].employee
            chosen = selections[i]
            selections[i] = chosen.ranked(rank_rest(session, person, chosen.rest_rows, now, prefs=prefs[person.id],
                                                    limit=chosen.room, profile=profiles[person.id], counts=counts))
    for i in todo:
        out[i] = selections[i].content(limit)
    return out


def _budget_used(session: Session, requests: Sequence[Request], indices: list[int], now: dt.datetime) -> dict[int, int]:
    """For each request of *indices*: :func:`intranet.delivery.fatigue.sent_this_week` for its person,
    leaving its own slot out (the other channels of the same digest), in two queries for all."""
    per_digest = fatigue.sent_post_ids_by_digest(session, sorted({requests[i].employee.id for i in indices}), now)
    must = fatigue.must_reads_among(session, {p for by_digest in per_digest.values()
                                              for ids in by_digest.values() for p in ids})
    used: dict[int, int] = {}
    for i in indices:
        ids: set[int] = set()
        for digest_id, post_ids in per_digest.get(requests[i].employee.id, {}).items():
            if digest_id != requests[i].slot.id:
                ids |= post_ids
        used[i] = len(ids - must)
    return used


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


def in_languages(session: Session, contents: Sequence[DigestContent], wanted: Sequence[str]) -> list[DigestContent]:
    """:func:`in_language` for a batch: each of *contents* in the language of the same place in *wanted*,
    with one query per language instead of one per message."""
    found: dict[str, dict[int, Any]] = {}
    for language in sorted(set(wanted)):
        ids = sorted({item.post_id for c, lang in zip(contents, wanted, strict=True) if lang == language
                      for item in c.items if item.language != language})
        found[language] = post_versions.versions_in(session, ids, language) if ids else {}
    out = []
    for c, language in zip(contents, wanted, strict=True):
        versions = found[language]
        if not any(item.post_id in versions and item.language != language for item in c.items):
            out.append(c)
            continue
        items = [dataclasses.replace(item, title=versions[item.post_id].title, summary=versions[item.post_id].summary,
                                     language=language)
                 if item.language != language and item.post_id in versions else item for item in c.items]
        out.append(dataclasses.replace(c, items=items))
    return out
