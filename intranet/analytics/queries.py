"""Per-post and reading-hour analytics, answered from the rollups and passed through the privacy rule.

Every function takes a session, plain values and the minimum group size ``k``, reads rollup
tables (never groups raw events, except :func:`reading_hours` for a zone that is not tracked)
and returns plain dataclasses that name no one.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlmodel import Session

from intranet import targeting
from intranet.analytics import privacy, rollups
from intranet.models import AnalyticsHourReaders, AnalyticsHourReads, AnalyticsPostGroup, EngagementEvent, Post

logger = logging.getLogger(__name__)

#: The default reading-hours window, in days (today included).
DEFAULT_DAYS = 28


# --------------------------------------------------------------------------------------------
# One post
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GroupRow:
    """One department, region or level of a post's people (``value`` None: not known)."""

    value: str | int | None
    audience: int
    reached: int
    read: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class PostAnalytics:
    post_id: int
    audience: int
    reached: int
    read: int
    acknowledged: int
    by: dict[str, list[GroupRow]]

    def to_json(self) -> dict[str, Any]:
        return {"post_id": self.post_id, "audience": self.audience, "reached": self.reached, "read": self.read,
                "acknowledged": self.acknowledged,
                "by": {dim: [row.to_json() for row in rows] for dim, rows in self.by.items()}}


def _audience_breakdown(session: Session, post: Post) -> dict[str, Any]:
    """The audience preview's answer for *post* as it targets now (nothing for a draft with no audience)."""
    try:
        audience = targeting.Audience.model_validate(post.audience or {})
    except ValidationError:
        return {"count": 0, "by_department": {}, "by_region": {}, "by_level": {}}
    return targeting.audience_breakdown(session, audience)


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


@dataclasses.dataclass(frozen=True)
class HourCell:
    weekday: int
    hour: int
    reads: int
    readers: int


@dataclasses.dataclass(frozen=True)
class ReadingHours:
    zone: str
    start: dt.date
    end: dt.date
    cells: list[HourCell]

    def to_json(self) -> dict[str, Any]:
        return {"zone": self.zone, "from": self.start.isoformat(), "to": self.end.isoformat(),
                "cells": [dataclasses.asdict(c) for c in self.cells]}


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
