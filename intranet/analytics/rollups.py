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
moves department stays counted where they read.
"""
from __future__ import annotations

import bisect
import datetime as dt
import functools
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Table, select, tuple_, update
from sqlmodel import Session

from intranet.db import insert_new
from intranet.models import (
    STAGE_ACKNOWLEDGED,
    STAGE_REACHED,
    STAGE_READ,
    AnalyticsDelivery,
    AnalyticsDeliveryDay,
    AnalyticsHourReaders,
    AnalyticsHourReads,
    AnalyticsPostDay,
    AnalyticsPostGroup,
    AnalyticsPostPerson,
    AnalyticsReaderCell,
    Digest,
    DigestItem,
    OutboxMessage,
    Post,
)

#: Event kinds that are a read (mail-scanner digest clicks are not: a person's click is followed by an open).
READ_KINDS = frozenset({"open", "read"})
#: Event kinds that show a post reached a person (delivered digests and alerts count too, see :func:`fold`).
REACH_KINDS = frozenset({"impression", "open", "read"})
#: ``prev_day`` of a person's first day in a cell.
NO_DAY = dt.date.min
#: The dimensions per-post groups are counted by.
DIMENSIONS = ("department", "region", "level")
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
        _add(session, AnalyticsPostDay, ("post_id", "day"),
             [{"post_id": p, "day": d, "reads": 0, "readers": 0, "reached": 0, "acknowledged": 0, column: n}
              for (p, d, column), n in day_counts.items() if n])
    if reads:
        _fold_hours(session, reads, people, tracked_zones(org_timezone), org_timezone)
        _fold_delivery_reads(session, reads)
    opens = [r for r in rows if r["kind"] == "digest_open" and r.get("delivery_id")]
    if opens:
        _fold_opens(session, opens)


def _utc_day(at: dt.datetime) -> dt.date:
    return at.astimezone(dt.timezone.utc).date()


# --------------------------------------------------------------------------------------------
# Posts: markers, groups, days
# --------------------------------------------------------------------------------------------


def _fold_markers(session: Session, candidates: list[dict[str, Any]], people: Mapping[int, Person],
                  day_counts: Counter[tuple[int, dt.date, str]]) -> None:
    earliest: dict[tuple[int, int, int], dict[str, Any]] = {}
    for c in candidates:
        key = (c["post_id"], c["employee_pk"], c["stage"])
        if key not in earliest or c["first_at"] < earliest[key]["first_at"]:
            earliest[key] = c
    new = insert_new(session, _table(AnalyticsPostPerson), list(earliest.values()),
                     ("post_id", "employee_pk", "stage"), ("post_id", "employee_pk", "stage"))
    groups: Counter[tuple[int, str, str, str]] = Counter()
    for post_id, employee_pk, stage in new:
        key = (post_id, employee_pk, stage)
        column = _STAGE_COLUMN[stage]
        day_counts[(post_id, _utc_day(earliest.pop(key)["first_at"]), _STAGE_DAY_COLUMN[stage])] += 1
        person = people[employee_pk]
        for dimension in DIMENSIONS:
            groups[(post_id, dimension, group_value(person, dimension), column)] += 1
    if earliest:
        # Already counted: an earlier event arriving late moves the person's first day back.
        table = AnalyticsPostPerson
        stored = session.execute(select(table.post_id, table.employee_pk, table.stage, table.first_at).where(
            tuple_(table.post_id, table.employee_pk, table.stage).in_(list(earliest)))).all()
        for post_id, employee_pk, stage, first_at in stored:
            candidate = earliest[(post_id, employee_pk, stage)]["first_at"]
            if candidate < first_at:
                session.execute(update(table).where(table.post_id == post_id, table.employee_pk == employee_pk,
                                                    table.stage == stage).values(first_at=candidate))
                column = _STAGE_DAY_COLUMN[stage]
                if _utc_day(candidate) != _utc_day(first_at):
                    day_counts[(post_id, _utc_day(first_at), column)] -= 1
                    day_counts[(post_id, _utc_day(candidate), column)] += 1
    if groups:
        _add(session, AnalyticsPostGroup, ("post_id", "dimension", "value"),
             [{"post_id": p, "dimension": dim, "value": value, "reached": 0, "read": 0, "acknowledged": 0, column: n}
              for (p, dim, value, column), n in groups.items()])


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
    _add(session, AnalyticsHourReads, ("zone", "day", "weekday", "hour"),
         [{"zone": z, "day": d, "weekday": w, "hour": h, "reads": n} for (z, d, w, h), n in counts.items()])
    names = ("zone", "employee_pk", "weekday", "hour", "day")
    new = insert_new(session, _table(AnalyticsReaderCell), [dict(zip(names, m)) for m in markers], names, names)
    if not new:
        return
    added: dict[tuple[str, int, int, int], set[dt.date]] = defaultdict(set)
    for zone, employee_pk, weekday, hour, day in new:
        added[(zone, employee_pk, weekday, hour)].add(day)
    cell = AnalyticsReaderCell
    days: dict[tuple[str, int, int, int], list[dt.date]] = defaultdict(list)
    for zone, employee_pk, weekday, hour, day in session.execute(
            select(cell.zone, cell.employee_pk, cell.weekday, cell.hour, cell.day).where(
                tuple_(cell.zone, cell.employee_pk, cell.weekday, cell.hour).in_(list(added)))):
        days[(zone, employee_pk, weekday, hour)].append(day)
    delta: Counter[tuple[str, int, int, dt.date, dt.date]] = Counter()
    for key, new_days in added.items():
        after = sorted(days[key])
        before = [d for d in after if d not in new_days]
        for sign, series in ((-1, before), (1, after)):
            for i, d in enumerate(series):
                delta[(key[0], key[2], key[3], d, series[i - 1] if i else NO_DAY)] += sign
    _add(session, AnalyticsHourReaders, ("zone", "weekday", "hour", "day", "prev_day"),
         [{"zone": z, "weekday": w, "hour": h, "day": d, "prev_day": p, "readers": n}
          for (z, w, h, d, p), n in delta.items() if n])


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
        rows.append({"outbox_id": outbox_id, "day": _utc_day(at), "channel": channel, "arm": arm_of(basis, kind),
                     "sent_at": at, "opened_at": None, "read_at": None})
        carried[outbox_id] = (employee_pk, at, list(post_ids or ()))
    new = {outbox_id for (outbox_id,) in insert_new(session, _table(AnalyticsDelivery), rows, ("outbox_id",),
                                                      ("outbox_id",))}
    counts = Counter((r["day"], r["channel"], r["arm"]) for r in rows if r["outbox_id"] in new)
    _add_delivery(session, counts, "sent")
    wanted = {p for outbox_id in new for p in carried[outbox_id][2]}
    existing = set(session.execute(select(Post.id).where(Post.id.in_(sorted(wanted)))).scalars()) if wanted else set()
    return [{"post_id": p, "employee_pk": carried[o][0], "stage": STAGE_REACHED, "first_at": carried[o][1]}
            for o in new for p in carried[o][2] if p in existing]


def arm_of(basis: str | None, kind: str | None) -> str:
    """The arm a sent message belongs to: its plan's basis (``personal``, ``peers``, ``default``,
    ``control``), or ``alert`` for must-read and as-it-happens alerts."""
    if kind == "alert":
        return "alert"
    return basis or "default"


def _fold_opens(session: Session, opens: list[Mapping[str, Any]]) -> None:
    d = AnalyticsDelivery
    counts: Counter[tuple[dt.date, str, str]] = Counter()
    for r in opens:
        owned = select(OutboxMessage.id).where(OutboxMessage.id == r["delivery_id"],
                                               OutboxMessage.employee_pk == r["employee_pk"]).scalar_subquery()
        done = session.execute(update(d).where(d.outbox_id == owned, d.opened_at.is_(None))
                               .values(opened_at=r["occurred_at"]).returning(d.day, d.channel, d.arm)).all()
        counts.update(tuple(row) for row in done)
    _add_delivery(session, counts, "opened")


def _fold_delivery_reads(session: Session, reads: list[Mapping[str, Any]]) -> None:
    """The first read (within 24 h) of a post a sent message carried marks that message read."""
    d = AnalyticsDelivery
    people = sorted({r["employee_pk"] for r in reads})
    posts = sorted({r["post_id"] for r in reads})
    found = session.execute(
        select(DigestItem.employee_pk, DigestItem.post_id, d.outbox_id, d.sent_at, d.read_at, d.day, d.channel, d.arm)
        .join(OutboxMessage, OutboxMessage.digest_id == DigestItem.digest_id)
        .join(d, d.outbox_id == OutboxMessage.id)
        .where(DigestItem.employee_pk.in_(people), DigestItem.post_id.in_(posts))).all()
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
    for outbox_id, (at, row) in first.items():
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
    _add(session, AnalyticsDeliveryDay, ("day", "channel", "arm"),
         [{"day": day, "channel": channel, "arm": arm, "sent": 0, "opened": 0, "read_2h": 0, "read_24h": 0, column: n}
          for (day, channel, arm), n in counts.items() if n])


# --------------------------------------------------------------------------------------------
# Upserts
# --------------------------------------------------------------------------------------------


@functools.cache
def _table(model: type[Any]) -> Table:
    return model.__table__  # type: ignore[no-any-return]


def _add(session: Session, model: type[Any], keys: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """Add each row's counts to the stored row with the same *keys* (inserting it when missing)."""
    if not rows:
        return
    table = _table(model)
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    counted = [c for c in rows[0] if c not in keys]
    statement = insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys), set_={c: table.c[c] + statement.excluded[c] for c in counted})
    # Sorted by key, so concurrent writers take row locks in the same order (no deadlocks on PG).
    session.execute(statement, sorted(rows, key=lambda r: tuple(str(r[k]) for k in keys)))
