"""Analytics answers (one post, reading hours, the organisation) from the rollups, through the privacy rule.

Every function takes a session, plain values and the minimum group size ``k``, reads rollup
tables (never groups raw events, except :func:`reading_hours` for a zone that is not tracked)
and returns models that name no one (the API's answers, as they are).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, literal_column, select
from sqlmodel import Session

from intranet import targeting
from intranet.analytics import privacy, rollups
from intranet.models import (
    AnalyticsDeliveryDay,
    AnalyticsGroupDay,
    AnalyticsHourReaders,
    AnalyticsHourReads,
    AnalyticsPostDay,
    AnalyticsPostGroup,
    EngagementEvent,
    Post,
)

logger = logging.getLogger(__name__)

#: The default reading-hours window, in days (today included).
DEFAULT_DAYS = 28


# --------------------------------------------------------------------------------------------
# One post
# --------------------------------------------------------------------------------------------


#: A number of people or reads.
Count = Annotated[int, Field(ge=0)]


class GroupRow(BaseModel):
    """One department, region or level of a post's people."""

    model_config = ConfigDict(frozen=True)

    value: str | int | None = Field(description="The group (a level's number; null: not known)")
    audience: Count
    reached: Count
    read: Count


class PostAnalytics(BaseModel):
    """Engagement with one post, in aggregate."""

    model_config = ConfigDict(frozen=True)

    post_id: int
    audience: Count = Field(description="Active people the post targets now (exact headcount)")
    reached: Count = Field(description="People who saw it, opened it or were sent it")
    read: Count = Field(description="People with an open or read event on it")
    acknowledged: Count
    by: dict[Literal[rollups.DIMENSIONS], list[GroupRow]] = Field(  # type: ignore[valid-type]
        description="By department, region, level and language (the directory's language tag); groups of fewer "
                    "than INTRANET_ANALYTICS_MIN_GROUP people "
                    "are left out, with more so no subtraction reveals them")


def _audience_breakdown(session: Session, post: Post) -> dict[str, Any]:
    """The audience preview's answer for *post* as it targets now (nothing for a draft with no audience).

    A journey step's audience is the people it was released to, not everyone its audience names.
    """
    try:
        audience = targeting.Audience.model_validate(post.audience or {})
    except ValidationError:
        return {"count": 0, "by_department": {}, "by_region": {}, "by_level": {}, "by_language": {}}
    # By language too, in the same pass over the audience (a second pass was half of a post's answer).
    return targeting.audience_breakdown(session, audience, post=post, by_language=True)


def _audience_counts(session: Session, posts: Sequence[Post]) -> list[int]:
    """The headcount each of *posts* targets now (0 for one without a valid audience), counted together."""
    valid: list[tuple[Post, targeting.Audience]] = []
    for post in posts:
        try:
            valid.append((post, targeting.Audience.model_validate(post.audience or {})))
        except ValidationError:
            pass
    counts = dict(zip((post.id for post, _ in valid), targeting.count_post_audiences(session, valid)))
    return [counts.get(post.id, 0) for post in posts]


def audience_count(session: Session, post: Post) -> int:
    """The headcount *post* targets now, alone: :attr:`PostAnalytics.audience` without the rest of the answer."""
    return _audience_counts(session, [post])[0]


#: The dimension whose group rows give a post's totals: each dimension's rows partition a post's
#: people, and levels (ten and "not known") are far fewer rows than departments.
TOTALS_DIMENSION = "level"


def _stored_value(dimension: str, preview_key: str) -> str:
    # The preview names missing values "unknown"; the rollups store "".
    return "" if preview_key == "unknown" else preview_key


def _shown_value(dimension: str, stored: str) -> str | int | None:
    if stored == "":
        return None
    return int(stored) if dimension == "level" else stored


def post_analytics(session: Session, post: Post, *, k: int) -> PostAnalytics:
    """Audience, reached, read and acknowledged for *post*, overall and by department, region and level.

    ``audience`` is the exact headcount the post targets now (a directory fact); the other
    figures are distinct people from the rollups. Group rows pass :func:`privacy.keep_groups`
    (a row's size is the larger of its audience and its reached people).
    """
    preview = _audience_breakdown(session, post)
    g = AnalyticsPostGroup
    counted: dict[str, dict[str, tuple[int, int, int]]] = defaultdict(dict)
    for dimension, value, reached, read, acknowledged in session.execute(
            select(g.dimension, g.value, g.reached, g.read, g.acknowledged).where(g.post_id == post.id)):
        counted[dimension][value] = (reached, read, acknowledged)
    totals = [sum(v[i] for v in counted["department"].values()) for i in range(3)]
    by: dict[str, list[GroupRow]] = {}
    for dimension in rollups.DIMENSIONS:
        heads = {_stored_value(dimension, key): n for key, n in preview[f"by_{dimension}"].items()}
        rows = [GroupRow(value=_shown_value(dimension, value), audience=heads.get(value, 0),
                         reached=counted[dimension].get(value, (0, 0, 0))[0],
                         read=counted[dimension].get(value, (0, 0, 0))[1])
                for value in sorted(set(heads) | set(counted[dimension]),
                                    key=lambda v: (-heads.get(v, 0), v))]
        by[dimension] = privacy.keep_groups(rows, size=lambda r: max(r.audience, r.reached), k=k).rows
    return PostAnalytics(post_id=post.id, audience=preview["count"], reached=totals[0], read=totals[1],
                         acknowledged=totals[2], by=by)


# --------------------------------------------------------------------------------------------
# Reading hours
# --------------------------------------------------------------------------------------------


class HourCell(BaseModel):
    model_config = ConfigDict(frozen=True)

    weekday: int = Field(ge=0, le=6, description="Monday = 0")
    hour: int = Field(ge=0, le=23)
    reads: Count
    readers: Count


class ReadingHours(BaseModel):
    """Reads and distinct readers by weekday and hour."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    zone: str
    start: dt.date = Field(alias="from")
    end: dt.date = Field(alias="to")
    cells: list[HourCell] = Field(description="Cells read by fewer than INTRANET_ANALYTICS_MIN_GROUP people are "
                                              "left out")


def default_window(zone: str, now: dt.datetime, days: int = DEFAULT_DAYS) -> tuple[dt.date, dt.date]:
    """The last *days* days up to today (UTC days for ``local``, the zone's days otherwise)."""
    today = now.astimezone(dt.timezone.utc if zone == rollups.LOCAL else ZoneInfo(zone)).date()
    return today - dt.timedelta(days=days - 1), today


def reading_hours(session: Session, *, zone: str, start: dt.date, end: dt.date, k: int,
                  org_timezone: str = "UTC") -> ReadingHours:
    """Read events and distinct readers per (weekday, hour), Monday = 0, between two days inclusive.

    :param zone: ``local`` (each reader's own time; days are UTC days) or an IANA zone (times and
        days in that zone).
    Cells read by fewer than *k* people are left out.
    """
    if zone in rollups.tracked_zones(org_timezone):
        raw = _tracked_hours(session, zone, start, end)
    else:
        logger.info("Reading hours for untracked zone %s are computed from raw events", zone)
        raw = _untracked_hours(session, zone, start, end)
    cells = [HourCell(weekday=w, hour=h, reads=reads, readers=readers) for (w, h), (reads, readers) in sorted(raw.items())]
    kept = privacy.keep_cells(cells, readers=lambda c: c.readers, k=k)
    return ReadingHours(zone=zone, start=start, end=end, cells=kept.rows)


def _tracked_hours(session: Session, zone: str, start: dt.date, end: dt.date) -> dict[tuple[int, int], tuple[int, int]]:
    r, p = AnalyticsHourReads, AnalyticsHourReaders
    reads = dict(((w, h), int(n)) for w, h, n in session.execute(
        select(r.weekday, r.hour, func.sum(r.reads)).where(r.zone == zone, r.day >= start, r.day <= end)
        .group_by(r.weekday, r.hour)))
    readers = dict(((w, h), int(n)) for w, h, n in session.execute(
        select(p.weekday, p.hour, func.sum(p.readers)).where(p.zone == zone, p.day >= start, p.day <= end,
                                                             p.prev_day < start)
        .group_by(p.weekday, p.hour)))
    return {cell: (n, readers.get(cell, 0)) for cell, n in reads.items() if n}


def _untracked_hours(session: Session, zone: str, start: dt.date, end: dt.date) -> dict[tuple[int, int], tuple[int, int]]:
    tz = ZoneInfo(zone)
    lo = dt.datetime.combine(start, dt.time(), tz).astimezone(dt.timezone.utc)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.timezone.utc)
    e = EngagementEvent
    reads: dict[tuple[int, int], int] = defaultdict(int)
    people: dict[tuple[int, int], set[int]] = defaultdict(set)
    for employee_pk, at in session.execute(
            select(e.employee_pk, e.occurred_at).where(e.kind.in_(sorted(rollups.READ_KINDS)), e.post_id.is_not(None),
                                                       e.occurred_at >= lo, e.occurred_at < hi)).yield_per(10_000):
        local = at.astimezone(tz)
        cell = (local.weekday(), local.hour)
        reads[cell] += 1
        people[cell].add(employee_pk)
    return {cell: (n, len(people[cell])) for cell, n in reads.items()}


# --------------------------------------------------------------------------------------------
# The organisation
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Filters:
    """What an organisation chart is narrowed to: posts published between two days (inclusive, UTC),
    of a topic, by an author; and one department, region or level (for that dimension's rows)."""

    start: dt.date
    end: dt.date
    topic: str | None = None
    author_pk: int | None = None
    department: str | None = None
    region: str | None = None
    level: int | None = None
    language: str | None = None

    def post_clauses(self) -> list[Any]:

        lo = dt.datetime.combine(self.start, dt.time(), dt.timezone.utc)
        hi = dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
        clauses = [Post.published_at >= lo, Post.published_at < hi]
        if self.topic is not None:
            clauses.append(Post.topic == self.topic)
        if self.author_pk is not None:
            clauses.append(Post.author_pk == self.author_pk)
        return clauses

    def value_of(self, dimension: str) -> str | None:
        """The stored group value this filter keeps in *dimension* (None: every group)."""
        value = getattr(self, dimension)
        return None if value is None else str(value)


@dataclasses.dataclass(frozen=True)
class RateRow:
    """People reached and reading among the posts published in one period, for one group."""

    period: dt.date
    value: str | int | None
    reached: int
    read: int

    @property
    def rate(self) -> float:
        return self.read / self.reached if self.reached else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"period": self.period.isoformat(), "value": self.value, "reached": self.reached, "read": self.read,
                "rate": round(self.rate, 4)}


@dataclasses.dataclass(frozen=True)
class Series:
    """Rows of a chart, with what the minimum-group rule left out (counts only, never which)."""

    rows: list[Any]
    hidden_rows: int = 0
    hidden: privacy.Hidden | None = None

    def to_json(self) -> dict[str, Any]:
        if self.hidden is not None:
            return self.hidden.to_json()
        return {"rows": [r.to_json() for r in self.rows], "hidden_rows": self.hidden_rows}


def _week(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def read_rate_by_group(session: Session, *, dimension: str, filters: Filters, k: int) -> Series:
    """Read rate (people reading / people reached, summed over posts) per week of publishing and group.

    Counted per post and summed, so a person reached by three posts counts three times. A row's
    size for the rule is its largest single post's reach in that group (a lower bound of the
    distinct people behind it); each week's rows are protected against differencing together.
    """
    if dimension not in rollups.DIMENSIONS:
        raise ValueError(f"dimension must be one of {rollups.DIMENSIONS}")
    wanted = filters.value_of(dimension)
    sums: dict[tuple[dt.date, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for published_day, value, reached, read, largest in _group_days(session, dimension, filters, wanted):
        if isinstance(published_day, str):
            published_day = dt.date.fromisoformat(published_day)
        row = sums[(_week(published_day), value)]
        row[0] += int(reached)
        row[1] += int(read)
        row[2] = max(row[2], int(largest))
    rows = [(RateRow(period=period, value=_shown_value(dimension, value), reached=r[0], read=r[1]), r[2])
            for (period, value), r in sorted(sums.items(), key=lambda kv: (kv[0][0], -kv[1][0], kv[0][1]))]
    if wanted is not None:
        guard = privacy.guard_population(max((size for _, size in rows), default=0), k=k)
        if guard is not None:
            return Series(rows=[], hidden=guard)
    kept = privacy.keep_groups_by(rows, partition=lambda pair: pair[0].period, size=lambda pair: pair[1], k=k)
    return Series(rows=[row for row, _ in kept.rows], hidden_rows=kept.hidden_rows)


def _group_days(session: Session, dimension: str, filters: Filters, wanted: str | None) -> Any:
    """(publishing day, group, reached, read, largest post reach) of *dimension*'s rows under *filters*.

    Without a topic or author, from the group days (a row per day and group); with one, from the
    post group rows of the posts that match, summed per publishing day here in SQL.
    """
    if filters.topic is None and filters.author_pk is None:
        # A post unpublished and published again since it was counted moves its rows first.
        rollups.refile(session)
        gd = AnalyticsGroupDay
        query = (select(gd.day, gd.value, gd.reached, gd.read, gd.largest)
                 .where(gd.dimension == dimension, gd.day >= filters.start, gd.day <= filters.end))
        if wanted is not None:
            query = query.where(gd.value == wanted)
        return session.execute(query)
    g = AnalyticsPostGroup
    day = literal_column(rollups.sql_parts(session.get_bind().dialect.name)["day"].format(
        c=f"{Post.__tablename__}.published_at"))
    query = (select(day, g.value, func.sum(g.reached), func.sum(g.read), func.max(g.reached))
             .join(Post, Post.id == g.post_id).where(g.dimension == dimension, *filters.post_clauses())
             .group_by(day, g.value))
    if wanted is not None:
        query = query.where(g.value == wanted)
    return session.execute(query)


@dataclasses.dataclass(frozen=True)
class TopicRow:
    topic: str
    posts: int
    reached: int
    read: int
    reads: int

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "rate": round(self.read / self.reached, 4) if self.reached else 0.0}


def topic_engagement(session: Session, *, filters: Filters, k: int) -> Series:
    """Per topic, over the posts published in the window: posts, people reached and reading
    (summed over posts), and read events. Topics whose largest post reached fewer than *k* people
    are left out."""
    g, d = AnalyticsPostGroup, AnalyticsPostDay
    per_post = {post_id: (topic, reached, read) for post_id, topic, reached, read in session.execute(
        select(Post.id, Post.topic, func.sum(g.reached), func.sum(g.read)).join(g, g.post_id == Post.id)
        .where(g.dimension == TOTALS_DIMENSION, *filters.post_clauses()).group_by(Post.id, Post.topic))}
    reads = dict(session.execute(select(d.post_id, func.sum(d.reads)).join(Post, Post.id == d.post_id)
                                 .where(*filters.post_clauses()).group_by(d.post_id)).all())
    topics: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for post_id, (topic, reached, read) in per_post.items():
        t = topics[topic]
        t[0] += 1
        t[1] += int(reached)
        t[2] += int(read)
        t[3] += int(reads.get(post_id, 0))
        t[4] = max(t[4], int(reached))
    rows = [(TopicRow(topic=name, posts=t[0], reached=t[1], read=t[2], reads=t[3]), t[4])
            for name, t in sorted(topics.items(), key=lambda kv: (-kv[1][2], kv[0]))]
    kept = [row for row, size in rows if size >= k]
    return Series(rows=kept, hidden_rows=len(rows) - len(kept))


@dataclasses.dataclass(frozen=True)
class DeliveryRow:
    channel: str
    sent: int
    opened: int
    read_2h: int
    read_24h: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def digest_performance(session: Session, *, start: dt.date, end: dt.date, k: int) -> Series:
    """Per channel, messages sent between two days (UTC): sent, opened, and read within 2 h and 24 h
    (a post the message carried opened or read by its recipient).

    Channels sent to fewer than *k* people are left out. People, not messages: one person's
    twice-daily digests over a month are sixty messages about one reader. A channel's size is its
    largest day's distinct recipients in one arm (a lower bound of the people behind the row).
    """
    dd = AnalyticsDeliveryDay
    rows = [(DeliveryRow(channel=channel, sent=int(s), opened=int(o), read_2h=int(r2), read_24h=int(r24)), int(people))
            for channel, s, o, r2, r24, people in session.execute(
                select(dd.channel, func.sum(dd.sent), func.sum(dd.opened), func.sum(dd.read_2h), func.sum(dd.read_24h),
                       func.max(dd.recipients))
                .where(dd.day >= start, dd.day <= end).group_by(dd.channel).order_by(dd.channel))]
    kept = [row for row, people in rows if people >= k]
    return Series(rows=kept, hidden_rows=len(rows) - len(kept))


@dataclasses.dataclass(frozen=True)
class AckRow:
    post_id: int
    title: str
    audience: int
    acknowledged: int
    ack_deadline: dt.datetime | None

    def to_json(self) -> dict[str, Any]:
        return {"post_id": self.post_id, "title": self.title, "audience": self.audience,
                "acknowledged": self.acknowledged,
                "ack_deadline": self.ack_deadline.isoformat() if self.ack_deadline else None}


#: Must-reads the organisation dashboard shows at a time (newest first, paged): each needs an exact
#: audience headcount, and 160 of them at 100k people were most of the page's time (and a chart
#: of 160 bars nobody reads).
MUST_READS_PER_PAGE = 20


@dataclasses.dataclass(frozen=True)
class AckPage(Series):
    """A page of :func:`acknowledgement_progress`: its rows, and where it lies among all of them."""

    offset: int = 0
    #: Must-reads published in the window under the filters, on every page (before the rule).
    total: int = 0
    #: The page's size asked for (None: every must-read at once).
    limit: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "offset": self.offset, "total": self.total}


def acknowledgement_progress(session: Session, *, filters: Filters, k: int, limit: int | None = None,
                             offset: int = 0) -> AckPage:
    """Must-read posts published in the window, newest first: their audience now and how many acknowledged.

    :param limit: the most must-reads to answer, from *offset* on (None: all of them); only those are
        counted, their audiences included.

    Acknowledging is a named act (authors may list who did), but a must-read for fewer than *k*
    people is still left out here, like every other small group (each row is one post's own
    people, so a page leaves nothing to subtract).
    """
    g = AnalyticsPostGroup
    where = (Post.must_read.is_(True), *filters.post_clauses())
    query = select(Post).where(*where).order_by(Post.published_at.desc(), Post.id.desc()).offset(offset)
    posts = session.execute(query if limit is None else query.limit(limit)).scalars().all()
    if limit is None:
        total = offset + len(posts)
    else:
        total = int(session.execute(select(func.count()).select_from(Post).where(*where)).scalar_one())
    ids = [p.id for p in posts]
    acked = dict(session.execute(select(g.post_id, func.sum(g.acknowledged))
                                 .where(g.dimension == TOTALS_DIMENSION, g.post_id.in_(ids))
                                 .group_by(g.post_id)).all()) if ids else {}
    rows = [AckRow(post_id=p.id, title=p.title, audience=audience, acknowledged=int(acked.get(p.id, 0)),
                   ack_deadline=p.ack_deadline) for p, audience in zip(posts, _audience_counts(session, posts))]
    kept = [r for r in rows if max(r.audience, r.acknowledged) >= k]
    return AckPage(rows=kept, hidden_rows=len(rows) - len(kept), offset=offset, total=total, limit=limit)


#: Arms whose send times were learned (the treatment); ``control`` gets the default hour.
PERSONALISED_ARMS = ("personal", "peers")


@dataclasses.dataclass(frozen=True)
class Lift:
    """Read-within-24-h rate of personalised send times against the control holdout.

    ``difference`` is personalised minus control, with a 95 % confidence interval (normal
    approximation for a difference of two proportions); None where an arm is empty.
    """

    personalised_sent: int
    personalised_read: int
    control_sent: int
    control_read: int
    difference: float | None
    low: float | None
    high: float | None
    hidden: privacy.Hidden | None = None

    def to_json(self) -> dict[str, Any]:
        if self.hidden is not None:
            return self.hidden.to_json()
        return {"personalised": {"sent": self.personalised_sent, "read_24h": self.personalised_read},
                "control": {"sent": self.control_sent, "read_24h": self.control_read},
                "difference": self.difference, "ci95": [self.low, self.high]}


def learned_timing_lift(session: Session, *, start: dt.date, end: dt.date, k: int, channel: str | None = None) -> Lift:
    """The lift of learned send times: digests sent between two days, personalised vs control arm."""
    dd = AnalyticsDeliveryDay
    query = (select(dd.arm, func.sum(dd.sent), func.sum(dd.read_24h), func.max(dd.recipients))
             .where(dd.day >= start, dd.day <= end, dd.arm.in_((*PERSONALISED_ARMS, "control"))).group_by(dd.arm))
    if channel is not None:
        query = query.where(dd.channel == channel)
    sums = {arm: (int(s), int(r), int(people)) for arm, s, r, people in session.execute(query)}
    n_t = sum(sums.get(a, (0, 0, 0))[0] for a in PERSONALISED_ARMS)
    x_t = sum(sums.get(a, (0, 0, 0))[1] for a in PERSONALISED_ARMS)
    n_c, x_c, _ = sums.get("control", (0, 0, 0))
    # The rule counts people (each side's largest day of distinct recipients), not messages.
    smaller = min(max((sums.get(a, (0, 0, 0))[2] for a in PERSONALISED_ARMS), default=0),
                  sums.get("control", (0, 0, 0))[2])
    if smaller < k:
        return Lift(n_t, x_t, n_c, x_c, None, None, None, hidden=privacy.Hidden(hidden_people=smaller, min_group=k))
    p_t, p_c = x_t / n_t, x_c / n_c
    difference = p_t - p_c
    se = (p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c) ** 0.5
    return Lift(n_t, x_t, n_c, x_c, round(difference, 6), round(difference - 1.96 * se, 6),
                round(difference + 1.96 * se, 6))


@dataclasses.dataclass(frozen=True)
class DayRow:
    day: dt.date
    reads: int
    new_readers: int
    readers: int

    def to_json(self) -> dict[str, Any]:
        return {"day": self.day.isoformat(), "reads": self.reads, "new_readers": self.new_readers,
                "readers": self.readers}


def post_timeline(session: Session, post: Post, *, k: int) -> Series:
    """Per day since publishing (UTC): read events, people reading for the first time, and the
    running total. A post read by fewer than *k* people shows only that count."""
    d = AnalyticsPostDay
    days = session.execute(select(d.day, d.reads, d.readers).where(d.post_id == post.id).order_by(d.day)).all()
    total = sum(int(r) for _, _, r in days)
    guard = privacy.guard_population(total, k=k)
    if guard is not None:
        return Series(rows=[], hidden=guard)
    rows, running = [], 0
    for day, reads, readers in days:
        running += int(readers)
        rows.append(DayRow(day=day, reads=int(reads), new_readers=int(readers), readers=running))
    return Series(rows=rows)
