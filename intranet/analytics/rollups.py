"""Rollup tables, kept current as events are stored, so dashboards never group raw events.

:func:`fold` is called with the events a write has just stored (live ingest, server-recorded
events such as a digest sent, and the historical import), in the same transaction. Every count
it keeps is either additive (read events per post and day, per reading-hour cell and day) or
distinct, and distinct counts rest on marker tables whose primary keys make a second insert a
no-op: a person is counted once per (post, stage) and once per (zone, cell, day). Events are
stored once (their own unique key), and only newly stored events are folded, so a duplicate
never counts twice; folding is also independent of arrival order (an earlier event arriving
late moves a first-read day back).

Distinct readers of a reading-hour cell over any window of days come from counts of
(day, previous day) pairs per cell (:class:`~intranet.models.AnalyticsHourReaders`): a person
reading in the cell between ``from`` and ``to`` is counted by exactly one of their days in the
window, the first, which is the one whose previous day lies before ``from``.

Groups (department, region, level) are the reader's when first counted: a person who later
moves department stays counted where they read. Group rows are also summed per publishing day of
their posts (:class:`~intranet.models.AnalyticsGroupDay`), which is what the organisation's
read-rate charts read; :func:`refile` keeps that right when a post's publishing day changes.
"""
from __future__ import annotations

import bisect
import datetime as dt
import functools
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Table, bindparam, delete, func, insert, literal_column, select, update
from sqlmodel import Session

from intranet.analytics import statements

from intranet.models import (
    STAGE_ACKNOWLEDGED,
    STAGE_REACHED,
    STAGE_READ,
    AnalyticsDelivery,
    AnalyticsDeliveryDay,
    AnalyticsGroupDay,
    AnalyticsHourReaders,
    AnalyticsHourReads,
    AnalyticsPending,
    AnalyticsPostDay,
    AnalyticsPostFiled,
    AnalyticsPostGroup,
    AnalyticsPostPerson,
    AnalyticsReaderCell,
    Digest,
    DigestItem,
    OutboxMessage,
    Post,
)
from intranet.settings import Settings

logger = logging.getLogger(__name__)

#: Event kinds that are a read (mail-scanner digest clicks are not: a person's click is followed by an open).
READ_KINDS = frozenset({"open", "read"})
#: Event kinds that show a post reached a person (delivered digests and alerts count too, see :func:`fold`).
REACH_KINDS = frozenset({"impression", "open", "read"})
#: ``prev_day`` of a person's first day in a cell.
NO_DAY = dt.date.min
#: The dimensions per-post groups are counted by.
DIMENSIONS = ("department", "region", "level", "language")
LOCAL = "local"
_TWO_HOURS, _DAY = dt.timedelta(hours=2), dt.timedelta(hours=24)
_STAGE_COLUMN = {STAGE_REACHED: "reached", STAGE_READ: "read", STAGE_ACKNOWLEDGED: "acknowledged"}
_STAGE_DAY_COLUMN = {STAGE_REACHED: "reached", STAGE_READ: "readers", STAGE_ACKNOWLEDGED: "acknowledged"}


class Person(Protocol):
    """What folding needs to know about the person behind an event (an :class:`Employee` fits)."""

    id: int | None
    department: str | None
    region: str | None
    level: int | None
    timezone: str | None
    #: The directory's language tag (``es-ES``): groups by language are the tags as synced.
    language: str | None



def tracked_zones(org_timezone: str) -> tuple[str, ...]:
    """The zones reading hours are kept for: each reader's own (``local``), UTC and the organisation's."""
    return tuple(dict.fromkeys((LOCAL, "UTC", org_timezone)))


def group_value(person: Person, dimension: str) -> str:
    """The stored group of *person* in *dimension* (``""`` when unknown; levels as their number)."""
    value = getattr(person, dimension)
    return "" if value is None else str(value)


def fold(session: Session, rows: Sequence[Mapping[str, Any]], people: Mapping[int, Person], *,
         org_timezone: str = "UTC", stored: Collection[tuple[int, str]] | None = None) -> None:
    """Fold newly stored events into every rollup (never call it twice with the same event).

    :param rows: the event rows a write tried to store (``employee_pk``, ``client_id``, ``kind``,
        ``post_id``, ``occurred_at``, ``local_hour``, ``local_weekday``, ``delivery_id``).
    :param people: the people behind *rows*, by primary key.
    :param org_timezone: the organisation's zone (one of the tracked reading-hour zones).
    :param stored: the (employee_pk, client_id) keys the write actually stored; rows outside it
        were duplicates and are skipped. None: every row was stored.
    """
    if stored is not None and len(stored) < len(rows):
        keys = set(stored)
        rows = [r for r in rows if (r["employee_pk"], r["client_id"]) in keys]
    if not rows:
        return
    candidates: list[dict[str, Any]] = []
    sent = [r for r in rows if r["kind"] == "digest_sent" and r.get("delivery_id")]
    if sent:
        candidates += _fold_sent(session, sent)
    for r in rows:
        post_id, kind = r.get("post_id"), r["kind"]
        if post_id is None:
            continue
        stages = (STAGE_REACHED, STAGE_READ) if kind in READ_KINDS else (
            (STAGE_REACHED,) if kind in REACH_KINDS else ((STAGE_ACKNOWLEDGED,) if kind == "acknowledge" else ()))
        candidates += [{"post_id": post_id, "employee_pk": r["employee_pk"], "stage": s, "first_at": r["occurred_at"]}
                       for s in stages]
    reads = [r for r in rows if r["kind"] in READ_KINDS and r.get("post_id") is not None]
    day_counts: Counter[tuple[int, dt.date, str]] = Counter()
    for r in reads:
        day_counts[(r["post_id"], _utc_day(r["occurred_at"]), "reads")] += 1
    if candidates:
        _fold_markers(session, candidates, people, day_counts)
    if day_counts:
        columns = ("reads", "readers", "reached", "acknowledged")
        by_day: dict[tuple[int, dt.date], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for (post_id, day, column), n in day_counts.items():
            by_day[(post_id, day)][columns.index(column)] += n
        statements.add(session, _table(AnalyticsPostDay), ("post_id", "day", *columns), ("post_id", "day"),
                       [(*key, *counts) for key, counts in by_day.items() if any(counts)])
    if reads:
        _fold_hours(session, reads, people, tracked_zones(org_timezone), org_timezone)
        _fold_delivery_reads(session, reads)
    opens = [r for r in rows if r["kind"] == "digest_open" and r.get("delivery_id")]
    if opens:
        _fold_opens(session, opens)


# --------------------------------------------------------------------------------------------
# Live ingest: queued in the request, folded in bulk
# --------------------------------------------------------------------------------------------

#: Batches folded per statement round by :func:`fold_pending`.
PENDING_ROUND = 200
_EVENT_COLUMNS = ("id", "employee_pk", "client_id", "kind", "post_id", "occurred_at", "local_hour", "local_weekday",
                  "delivery_id")


def queue(session: Session, event_ids: Sequence[int]) -> None:
    """Queue one live batch's newly stored events for :func:`fold_pending` (one small insert).

    Folding a request's few events costs about as much as storing them; folded in bulk a
    moment later (by the fold job, or before an analytics answer) it costs a fraction.
    """
    if event_ids:
        statements.run(session, "INSERT INTO intranet_analytics_pending (event_ids) VALUES (?)",
                       [",".join(map(str, event_ids))], fetch=False)


#: The advisory lock folders of the queue take turns on (a fixed number, "beacon" and 1).
FOLD_LOCK = 0x6265_6163_6F6E_01

#: Claiming queued batches, by whether the database is PostgreSQL (SQLite has one writer at a time).
_CLAIM = {
    False: "DELETE FROM intranet_analytics_pending WHERE id IN "
           "(SELECT id FROM intranet_analytics_pending ORDER BY id LIMIT ?) RETURNING event_ids",
    True: "DELETE FROM intranet_analytics_pending WHERE id IN "
          "(SELECT id FROM intranet_analytics_pending ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED) RETURNING event_ids",
}


def fold_pending(session: Session, *, org_timezone: str = "UTC", limit: int | None = None) -> int:
    """Fold queued live batches into the rollups; the number of events folded.

    Each batch is claimed by deleting its queue row (``DELETE ... RETURNING``). On PostgreSQL
    folders take turns (a transaction-level advisory lock, released at commit): each adds to the
    same hot rollup rows (a post's day and groups), and two folders interleaving their rounds
    would each hold rows the other's next round needs. The claim locks its rows with ``SKIP
    LOCKED`` as well, so it never waits on a queue row: waiting there deadlocked, when a batch
    committed late (a lower id than one already claimed) was claimed by a second folder that then
    waited for the first's batch while the first's next round waited for it.
    A caller that folds within a longer transaction (an analytics request) commits right after,
    even when nothing was folded, to end its turn. *limit* bounds the batches taken.
    """
    from intranet.models import Employee, EngagementEvent

    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        # Only when there is something to fold: the turn lasts until the caller commits.
        if not statements.run(session, "SELECT 1 FROM intranet_analytics_pending LIMIT 1", []):
            return 0
        statements.run(session, "SELECT pg_advisory_xact_lock(?)", [FOLD_LOCK], fetch=False)
    claim = _CLAIM[postgres]
    folded = batches = 0
    while limit is None or batches < limit:
        take = PENDING_ROUND if limit is None else min(PENDING_ROUND, limit - batches)
        claimed = statements.run(session, claim, [take])
        if not claimed:
            break
        batches += len(claimed)
        ids = sorted({int(i) for (text,) in claimed for i in text.split(",") if i})
        e = EngagementEvent
        rows: list[dict[str, Any]] = []
        for start in range(0, len(ids), statements.CHUNK):
            rows += [dict(zip(_EVENT_COLUMNS, r)) for r in session.execute(
                select(*(getattr(e, c) for c in _EVENT_COLUMNS)).where(e.id.in_(ids[start:start + statements.CHUNK])))]
        people = {p.id: p for p in session.execute(
            select(Employee).where(Employee.id.in_(sorted({r["employee_pk"] for r in rows})))).scalars()}
        fold(session, rows, people, org_timezone=org_timezone)
        folded += len(rows)
    return folded


def fold_job(session: Session, now: dt.datetime, settings: Settings) -> int:
    """The periodic job: fold every queued live batch."""
    return fold_pending(session, org_timezone=settings.site.org_timezone)


def _utc_day(at: dt.datetime) -> dt.date:
    return at.astimezone(dt.timezone.utc).date()


# --------------------------------------------------------------------------------------------
# Posts: markers, groups, days
# --------------------------------------------------------------------------------------------


_MARKER = ("post_id", "employee_pk", "stage")


def _fold_markers(session: Session, candidates: list[dict[str, Any]], people: Mapping[int, Person],
                  day_counts: Counter[tuple[int, dt.date, str]]) -> None:
    earliest: dict[tuple[int, int, int], dt.datetime] = {}
    for c in candidates:
        key = (c["post_id"], c["employee_pk"], c["stage"])
        if key not in earliest or c["first_at"] < earliest[key]:
            earliest[key] = c["first_at"]
    table = _table(AnalyticsPostPerson)
    new = statements.insert_new(session, table, (*_MARKER, "first_at"),
                                [(*key, at) for key, at in earliest.items()], _MARKER, _MARKER)
    groups: Counter[tuple[int, str, str, str]] = Counter()
    for post_id, employee_pk, stage in new:
        column = _STAGE_COLUMN[stage]
        day_counts[(post_id, _utc_day(earliest.pop((post_id, employee_pk, stage))), _STAGE_DAY_COLUMN[stage])] += 1
        person = people[employee_pk]
        for dimension in DIMENSIONS:
            groups[(post_id, dimension, group_value(person, dimension), column)] += 1
    if earliest:
        # Already counted: an earlier event arriving late moves the person's first day back.
        moved: list[dict[str, Any]] = []
        for post_id, employee_pk, stage, first_at in statements.select_by_keys(
                session, table, (*_MARKER, "first_at"), _MARKER, list(earliest)):
            candidate = earliest[(post_id, employee_pk, stage)]
            if candidate < first_at:
                moved.append({"m_post": post_id, "m_person": employee_pk, "m_stage": stage, "m_first": candidate})
                column = _STAGE_DAY_COLUMN[stage]
                if _utc_day(candidate) != _utc_day(first_at):
                    day_counts[(post_id, _utc_day(first_at), column)] -= 1
                    day_counts[(post_id, _utc_day(candidate), column)] += 1
        if moved:
            # One executemany of a Core update: an ORM update per marker cost milliseconds each.
            # In key order, so concurrent folds lock markers in the same order.
            moved.sort(key=lambda m: (m["m_post"], m["m_person"], m["m_stage"]))
            session.execute(table.update().where(table.c.post_id == bindparam("m_post"),
                                                 table.c.employee_pk == bindparam("m_person"),
                                                 table.c.stage == bindparam("m_stage"))
                            .values(first_at=bindparam("m_first")), moved)
    if groups:
        by_key: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        for (post_id, dimension, value, column), n in groups.items():
            by_key[(post_id, dimension, value)][("reached", "read", "acknowledged").index(column)] += n
        stored = statements.add(session, _table(AnalyticsPostGroup),
                                ("post_id", "dimension", "value", "reached", "read", "acknowledged"),
                                ("post_id", "dimension", "value"), [(*key, *counts) for key, counts in by_key.items()],
                                returning=("post_id", "dimension", "value", "reached"))
        _fold_group_days(session, by_key, {(p, d, v): reached for p, d, v, reached in stored})


def _fold_group_days(session: Session, added: Mapping[tuple[int, str, str], list[int]],
                     reach_now: Mapping[tuple[int, str, str], int]) -> None:
    """Add post group counts to the group days their posts are filed under (filing new posts first)."""
    posts = sorted({post_id for post_id, _, _ in added})
    filed: dict[int, dt.date | None] = dict(statements.select_by_keys(
        session, _table(AnalyticsPostFiled), ("post_id", "day"), ("post_id",), [(p,) for p in posts]))
    missing = [p for p in posts if p not in filed]
    if missing:
        first = {post_id: (None if at is None else _utc_day(at)) for post_id, at in session.execute(
            select(Post.id, Post.published_at).where(Post.id.in_(missing)))}
        filed.update(first)
        statements.insert_new(session, _table(AnalyticsPostFiled), ("post_id", "day"), sorted(first.items()),
                              ("post_id",), ("post_id",))
    days: dict[tuple[str, dt.date, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for (post_id, dimension, value), (reached, read, _) in added.items():
        day = filed.get(post_id)
        if day is None:
            continue
        row = days[(dimension, day, value)]
        row[0] += reached
        row[1] += read
        row[2] = max(row[2], reach_now[(post_id, dimension, value)])
    statements.add(session, _table(AnalyticsGroupDay), ("dimension", "day", "value", "reached", "read", "largest"),
                   ("dimension", "day", "value"), [(*key, *counts) for key, counts in days.items()],
                   greatest=("largest",))


def refile(session: Session) -> int:
    """Recount the group days of posts whose publishing day is no longer the one they are filed
    under (unpublished and published again, or deleted); the number of posts refiled.

    Cheap when nothing moved (one pass over the filed posts, a row per post counted), so
    answers from group days call it first. Both the old and the new days are recounted from the
    post group rows, so the result is what a rebuild would give.
    """
    part = sql_parts(session.get_bind().dialect.name)
    day = part["day"].format(c="p.published_at")
    filed = _table(AnalyticsPostFiled)
    moved = statements.run(session, f"SELECT f.post_id, f.day, {day} FROM intranet_analytics_post_filed f "
                                    "LEFT JOIN intranet_post p ON p.id = f.post_id WHERE p.id IS NULL "
                                    f"OR (f.day IS NULL) <> (p.published_at IS NULL) OR f.day <> {day}",
                           [], decode=[(1, filed, "day"), (2, filed, "day")])
    if not moved:
        return 0
    affected = sorted({d for _, old, new in moved for d in (old, new) if d is not None})
    g, f = AnalyticsGroupDay, AnalyticsPostFiled
    if affected:
        published_day = literal_column(part["day"].format(c=f"{Post.__tablename__}.published_at"), type_=Date)
        session.execute(delete(g).where(g.day.in_(affected)))
        pg = AnalyticsPostGroup
        recount = (select(pg.dimension, published_day, pg.value, func.sum(pg.reached), func.sum(pg.read),
                          func.max(pg.reached))
                   .join(Post, Post.id == pg.post_id)
                   .where(published_day.in_(affected)).group_by(pg.dimension, published_day, pg.value))
        session.execute(insert(g).from_select(["dimension", "day", "value", "reached", "read", "largest"], recount))
    for post_id, _, new in moved:
        session.execute(update(f).where(f.post_id == post_id).values(day=new))
    logger.info("Refiled %s posts whose publishing day changed (%s days recounted)", len(moved), len(affected))
    return len(moved)


# --------------------------------------------------------------------------------------------
# Reading hours
# --------------------------------------------------------------------------------------------


def _fold_hours(session: Session, reads: list[Mapping[str, Any]], people: Mapping[int, Person],
                zones: tuple[str, ...], org_timezone: str) -> None:
    counts: Counter[tuple[str, dt.date, int, int]] = Counter()
    markers: set[tuple[str, int, int, int, dt.date]] = set()
    for r in reads:
        at = r["occurred_at"]
        for zone in zones:
            if zone == LOCAL:
                weekday, hour, day = r["local_weekday"], r["local_hour"], _utc_day(at)
            else:
                local = at.astimezone(ZoneInfo(zone))
                weekday, hour, day = local.weekday(), local.hour, local.date()
            counts[(zone, day, weekday, hour)] += 1
            markers.add((zone, r["employee_pk"], weekday, hour, day))
    statements.add(session, _table(AnalyticsHourReads), ("zone", "day", "weekday", "hour", "reads"),
                   ("zone", "day", "weekday", "hour"), [(*key, n) for key, n in counts.items()])
    names = ("zone", "employee_pk", "weekday", "hour", "day")
    table = _table(AnalyticsReaderCell)
    new = statements.insert_new(session, table, names, sorted(markers), names, names)
    if not new:
        return
    added: dict[tuple[str, int, int, int], set[dt.date]] = defaultdict(set)
    for zone, employee_pk, weekday, hour, day in new:
        added[(zone, employee_pk, weekday, hour)].add(day)
    days: dict[tuple[str, int, int, int], list[dt.date]] = defaultdict(list)
    for zone, employee_pk, weekday, hour, day in statements.select_by_keys(
            session, table, names, names[:4], list(added)):
        days[(zone, employee_pk, weekday, hour)].append(day)
    delta: Counter[tuple[str, dt.date, int, int, dt.date]] = Counter()
    for key, new_days in added.items():
        after = sorted(days[key])
        before = [d for d in after if d not in new_days]
        for sign, series in ((-1, before), (1, after)):
            for i, d in enumerate(series):
                delta[(key[0], d, key[2], key[3], series[i - 1] if i else NO_DAY)] += sign
    statements.add(session, _table(AnalyticsHourReaders), ("zone", "day", "weekday", "hour", "prev_day", "readers"),
                   ("zone", "day", "weekday", "hour", "prev_day"), [(*key, n) for key, n in delta.items() if n])


def readers_between(pairs: Iterable[tuple[dt.date, dt.date]], start: dt.date, end: dt.date) -> int:
    """Distinct people from one cell's (day, previous day) pairs, between *start* and *end* inclusive.

    The pure form of the SQL that :mod:`intranet.analytics.queries` runs (kept for tests and the bench).
    """
    return sum(1 for day, prev in pairs if start <= day <= end and prev < start)


# --------------------------------------------------------------------------------------------
# Deliveries: sent, opened, read within 2 h / 24 h, by channel and arm
# --------------------------------------------------------------------------------------------


def _fold_sent(session: Session, sent: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Delivery rows and counters for sent messages; returns the reached markers of the posts they carried."""
    by_id = {r["delivery_id"]: r for r in sent}
    found = session.execute(
        select(OutboxMessage.id, OutboxMessage.employee_pk, OutboxMessage.channel, OutboxMessage.post_ids,
               Digest.basis, Digest.kind)
        .join(Digest, Digest.id == OutboxMessage.digest_id).where(OutboxMessage.id.in_(sorted(by_id)))).all()
    rows, carried = [], {}
    for outbox_id, employee_pk, channel, post_ids, basis, kind in found:
        event = by_id[outbox_id]
        if event["employee_pk"] != employee_pk:
            continue
        at = event["occurred_at"]
        rows.append({"outbox_id": outbox_id, "employee_pk": employee_pk, "day": _utc_day(at), "channel": channel,
                     "arm": arm_of(basis, kind), "sent_at": at})
        carried[outbox_id] = (employee_pk, at, list(post_ids or ()))
    names = ("outbox_id", "employee_pk", "day", "channel", "arm", "sent_at")
    new = {outbox_id for (outbox_id,) in statements.insert_new(
        session, _table(AnalyticsDelivery), names, [tuple(r[n] for n in names) for r in rows], names[:1], names[:1])}
    added = [r for r in rows if r["outbox_id"] in new]
    _add_delivery(session, Counter((r["day"], r["channel"], r["arm"]) for r in added), "sent")
    _add_delivery(session, _new_recipients(session, added), "recipients")
    wanted = {p for outbox_id in new for p in carried[outbox_id][2]}
    existing = set(session.execute(select(Post.id).where(Post.id.in_(sorted(wanted)))).scalars()) if wanted else set()
    return [{"post_id": p, "employee_pk": carried[o][0], "stage": STAGE_REACHED, "first_at": carried[o][1]}
            for o in new for p in carried[o][2] if p in existing]


def _new_recipients(session: Session, added: list[dict[str, Any]]) -> Counter[tuple[dt.date, str, str]]:
    """Per (day, channel, arm), the people among *added* deliveries who had no message of that key before."""
    if not added:
        return Counter()
    d = AnalyticsDelivery
    earlier = {tuple(row) for row in session.execute(
        select(d.employee_pk, d.day, d.channel, d.arm)
        .where(d.employee_pk.in_(sorted({r["employee_pk"] for r in added})), d.day.in_(sorted({r["day"] for r in added})),
               d.outbox_id.notin_(sorted(r["outbox_id"] for r in added))))}
    people = {(r["employee_pk"], r["day"], r["channel"], r["arm"]) for r in added} - earlier
    return Counter(key[1:] for key in people)


def arm_of(basis: str | None, kind: str | None) -> str:
    """The arm a sent message belongs to: its plan's basis (``personal``, ``peers``, ``default``,
    ``control``), or ``alert`` for must-read and as-it-happens alerts."""
    if kind == "alert":
        return "alert"
    return basis or "default"


def _fold_opens(session: Session, opens: list[Mapping[str, Any]]) -> None:
    d = AnalyticsDelivery
    counts: Counter[tuple[dt.date, str, str]] = Counter()
    for r in sorted(opens, key=lambda o: o["delivery_id"]):  # in key order: concurrent folds lock rows alike
        owned = select(OutboxMessage.id).where(OutboxMessage.id == r["delivery_id"],
                                               OutboxMessage.employee_pk == r["employee_pk"]).scalar_subquery()
        done = session.execute(update(d).where(d.outbox_id == owned, d.opened_at.is_(None))
                               .values(opened_at=r["occurred_at"]).returning(d.day, d.channel, d.arm)).all()
        counts.update(tuple(row) for row in done)
    _add_delivery(session, counts, "opened")


_CARRIERS = (
    "SELECT i.employee_pk, i.post_id, d.outbox_id, d.sent_at, d.read_at, d.day, d.channel, d.arm "
    "FROM intranet_digest_item i JOIN intranet_outbox o ON o.digest_id = i.digest_id "
    "JOIN intranet_analytics_delivery d ON d.outbox_id = o.id "
    "WHERE i.employee_pk IN ({people}) AND i.post_id IN ({posts})")


class _Carrier(NamedTuple):
    employee_pk: int
    post_id: int
    outbox_id: int
    sent_at: dt.datetime
    read_at: dt.datetime | None
    day: dt.date
    channel: str
    arm: str


def _fold_delivery_reads(session: Session, reads: list[Mapping[str, Any]]) -> None:
    """The first read (within 24 h) of a post a sent message carried marks that message read."""
    d = AnalyticsDelivery
    people = sorted({r["employee_pk"] for r in reads})
    posts = sorted({r["post_id"] for r in reads})
    table = _table(AnalyticsDelivery)
    found = [_Carrier(*row) for row in statements.run(
        session, _CARRIERS.format(people=", ".join("?" * len(people)), posts=", ".join("?" * len(posts))),
        [*people, *posts], decode=[(3, table, "sent_at"), (4, table, "read_at"), (5, table, "day")])]
    if not found:
        return
    carriers: dict[tuple[int, int], list[Any]] = defaultdict(list)
    for row in found:
        carriers[(row[0], row[1])].append(row)
    first: dict[int, tuple[dt.datetime, Any]] = {}
    for r in reads:
        for row in carriers.get((r["employee_pk"], r["post_id"]), ()):
            at = r["occurred_at"]
            if row.sent_at <= at <= row.sent_at + _DAY and (row.outbox_id not in first or at < first[row.outbox_id][0]):
                first[row.outbox_id] = (at, row)
    counts_24: Counter[tuple[dt.date, str, str]] = Counter()
    counts_2: Counter[tuple[dt.date, str, str]] = Counter()
    for outbox_id, (at, row) in sorted(first.items()):  # in key order: concurrent folds lock rows alike
        old = row.read_at
        if old is not None and old <= at:
            continue
        session.execute(update(d).where(d.outbox_id == outbox_id).values(read_at=at))
        key = (row.day, row.channel, row.arm)
        if old is None:
            counts_24[key] += 1
        if at - row.sent_at <= _TWO_HOURS and (old is None or old - row.sent_at > _TWO_HOURS):
            counts_2[key] += 1
    _add_delivery(session, counts_24, "read_24h")
    _add_delivery(session, counts_2, "read_2h")


def _add_delivery(session: Session, counts: Mapping[tuple[dt.date, str, str], int], column: str) -> None:
    columns = ("recipients", "sent", "opened", "read_2h", "read_24h")
    statements.add(session, _table(AnalyticsDeliveryDay), ("day", "channel", "arm", *columns), ("day", "channel", "arm"),
                   [(*key, *(n if c == column else 0 for c in columns)) for key, n in counts.items() if n])


@functools.cache
def _table(model: type[Any]) -> Table:
    return model.__table__  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# Rebuilding from the stored events (after an upgrade, or to check the incremental counts)
# --------------------------------------------------------------------------------------------

#: Tables :func:`rebuild` empties and refills (deliveries are kept: they rest on outbox rows).
REBUILT = (AnalyticsPending, AnalyticsPostPerson, AnalyticsPostGroup, AnalyticsGroupDay, AnalyticsPostFiled,
           AnalyticsPostDay, AnalyticsHourReads, AnalyticsReaderCell, AnalyticsHourReaders)


def sql_parts(dialect: str) -> dict[str, str]:
    """Dialect pieces: the UTC day of an instant, (weekday Monday = 0, hour) in UTC, a JSON array's elements."""
    if dialect == "postgresql":
        return {"day": "(({c}) AT TIME ZONE 'UTC')::date",
                "weekday": "(EXTRACT(ISODOW FROM ({c}) AT TIME ZONE 'UTC')::int - 1)",
                "hour": "EXTRACT(HOUR FROM ({c}) AT TIME ZONE 'UTC')::int",
                "text": "CAST({c} AS VARCHAR)", "no_day": "DATE '0001-01-01'",
                "carried": "json_array_elements_text(o.post_ids)", "carried_id": "CAST(p.value AS INTEGER)"}
    return {"day": "date({c})", "weekday": "((CAST(strftime('%w', {c}) AS INTEGER) + 6) % 7)",
            "hour": "CAST(strftime('%H', {c}) AS INTEGER)", "text": "CAST({c} AS TEXT)", "no_day": "'0001-01-01'",
            "carried": "json_each(o.post_ids)", "carried_id": "CAST(p.value AS INTEGER)"}


def rebuild(session: Session, *, org_timezone: str = "UTC") -> None:
    """Recount the post and reading-hour rollups from the events stored now, set-based in SQL.

    For an existing installation after the upgrade that added analytics (its events predate
    the rollups), or to check the incremental counts. Events the retention purge deleted are
    gone: their counts are lost by a rebuild. Groups are the people's current ones. A zone
    SQLite cannot convert in SQL (an organisation zone other than UTC) is folded in Python.
    """
    dialect = session.get_bind().dialect.name
    part = sql_parts(dialect)
    day, weekday, hour = (part[k].format(c="occurred_at") for k in ("day", "weekday", "hour"))
    for model in REBUILT:
        session.execute(_table(model).delete())
    if dialect == "postgresql":
        # The aggregates below group millions of rows: in memory rather than spilled to disk.
        session.connection().exec_driver_sql("SET LOCAL work_mem = '256MB'")
    reads = "kind IN ('open', 'read') AND post_id IS NOT NULL"

    def run(sql: str) -> None:
        started = time.perf_counter()
        session.connection().exec_driver_sql(sql)
        logger.info("Rollup rebuild step took %.1f s: %s", time.perf_counter() - started, " ".join(sql.split())[:80])

    run(f"""INSERT INTO intranet_analytics_post_person (post_id, employee_pk, stage, first_at)
        SELECT post_id, employee_pk, stage, MIN(at) FROM (
          SELECT post_id, employee_pk, {STAGE_REACHED} AS stage, occurred_at AS at FROM intranet_event
            WHERE kind IN ('impression', 'open', 'read') AND post_id IS NOT NULL
          UNION ALL SELECT post_id, employee_pk, {STAGE_READ}, occurred_at FROM intranet_event WHERE {reads}
          UNION ALL SELECT post_id, employee_pk, {STAGE_ACKNOWLEDGED}, occurred_at FROM intranet_event
            WHERE kind = 'acknowledge' AND post_id IS NOT NULL
          UNION ALL SELECT {part['carried_id']}, ev.employee_pk, {STAGE_REACHED}, ev.occurred_at
            FROM intranet_event ev JOIN intranet_outbox o ON o.id = ev.delivery_id AND o.employee_pk = ev.employee_pk,
                 {part['carried']} p
            WHERE ev.kind = 'digest_sent' AND {part['carried_id']} IN (SELECT id FROM intranet_post)
        ) AS firsts GROUP BY post_id, employee_pk, stage""")
    for dimension in DIMENSIONS:
        value = f"COALESCE({part['text'].format(c='e.' + dimension)}, '')"
        run(f"""INSERT INTO intranet_analytics_post_group (post_id, dimension, value, reached, read, acknowledged)
            SELECT m.post_id, '{dimension}', {value},
                   SUM(CASE WHEN m.stage = {STAGE_REACHED} THEN 1 ELSE 0 END),
                   SUM(CASE WHEN m.stage = {STAGE_READ} THEN 1 ELSE 0 END),
                   SUM(CASE WHEN m.stage = {STAGE_ACKNOWLEDGED} THEN 1 ELSE 0 END)
            FROM intranet_analytics_post_person m JOIN intranet_employee e ON e.id = m.employee_pk
            GROUP BY m.post_id, {value}""")
    published = part["day"].format(c="p.published_at")
    run(f"""INSERT INTO intranet_analytics_post_filed (post_id, day)
        SELECT p.id, {published} FROM intranet_post p
        WHERE p.id IN (SELECT post_id FROM intranet_analytics_post_group)""")
    run(f"""INSERT INTO intranet_analytics_group_day (dimension, day, value, reached, read, largest)
        SELECT g.dimension, {published}, g.value, SUM(g.reached), SUM(g.read), MAX(g.reached)
        FROM intranet_analytics_post_group g JOIN intranet_post p ON p.id = g.post_id
        WHERE p.published_at IS NOT NULL GROUP BY g.dimension, {published}, g.value""")
    first_day = part["day"].format(c="first_at")
    run(f"""INSERT INTO intranet_analytics_post_day (post_id, day, reads, readers, reached, acknowledged)
        SELECT post_id, day, SUM(reads), SUM(readers), SUM(reached), SUM(acknowledged) FROM (
          SELECT post_id, {day} AS day, COUNT(*) AS reads, 0 AS readers, 0 AS reached, 0 AS acknowledged
            FROM intranet_event WHERE {reads} GROUP BY post_id, {day}
          UNION ALL SELECT post_id, {first_day}, 0,
                 SUM(CASE WHEN stage = {STAGE_READ} THEN 1 ELSE 0 END),
                 SUM(CASE WHEN stage = {STAGE_REACHED} THEN 1 ELSE 0 END),
                 SUM(CASE WHEN stage = {STAGE_ACKNOWLEDGED} THEN 1 ELSE 0 END)
            FROM intranet_analytics_post_person GROUP BY post_id, {first_day}
        ) AS days GROUP BY post_id, day""")
    cells = {LOCAL: (day, "local_weekday", "local_hour"), "UTC": (day, weekday, hour)}
    if org_timezone not in cells and dialect == "postgresql":
        at = f"(occurred_at AT TIME ZONE '{org_timezone.replace(chr(39), '')}')"
        cells[org_timezone] = (f"{at}::date", f"(EXTRACT(ISODOW FROM {at})::int - 1)", f"EXTRACT(HOUR FROM {at})::int")
    for zone, (d, w, h) in cells.items():
        run(f"""INSERT INTO intranet_analytics_hour_reads (zone, day, weekday, hour, reads)
            SELECT '{zone}', {d}, {w}, {h}, COUNT(*) FROM intranet_event WHERE {reads} GROUP BY {d}, {w}, {h}""")
        run(f"""INSERT INTO intranet_analytics_reader_cell (zone, employee_pk, weekday, hour, day)
            SELECT DISTINCT '{zone}', employee_pk, {w}, {h}, {d} FROM intranet_event WHERE {reads}""")
    run(f"""INSERT INTO intranet_analytics_hour_readers (zone, day, weekday, hour, prev_day, readers)
        SELECT zone, day, weekday, hour, COALESCE(prev_day, {part['no_day']}), COUNT(*) FROM (
          SELECT zone, day, weekday, hour,
                 LAG(day) OVER (PARTITION BY zone, employee_pk, weekday, hour ORDER BY day) AS prev_day
          FROM intranet_analytics_reader_cell) AS cells
        GROUP BY zone, day, weekday, hour, COALESCE(prev_day, {part['no_day']})""")
    if org_timezone not in cells:
        _fold_zone_in_python(session, org_timezone)
    # Fresh statistics: the planner would otherwise read millions of new rows as an empty table.
    for model in REBUILT:
        run(f"ANALYZE {_table(model).name}")


def _fold_zone_in_python(session: Session, zone: str) -> None:
    from intranet.models import EngagementEvent

    e = EngagementEvent
    query = (select(e.id, e.employee_pk, e.client_id, e.kind, e.post_id, e.occurred_at, e.local_hour,
                    e.local_weekday).where(e.kind.in_(sorted(READ_KINDS)), e.post_id.is_not(None)).order_by(e.id))
    batch: list[dict[str, Any]] = []
    names = ("id", "employee_pk", "client_id", "kind", "post_id", "occurred_at", "local_hour", "local_weekday")
    for row in session.execute(query).yield_per(10_000):
        batch.append(dict(zip(names, row)))
        if len(batch) >= 10_000:
            _fold_hours(session, batch, {}, (zone,), zone)
            batch = []
    if batch:
        _fold_hours(session, batch, {}, (zone,), zone)
