"""A few weeks of believable reading history for the demo, so learned timing and charts are alive.

Each person gets a habit in their own time zone: most read mid-morning and after lunch (the
"triple peak day"), some early, some late, a few in the evening. On working days they open
Beacon around those peaks, read a post or two they are targeted at, and open the 09:00 digest
at their first visit after it arrives (or not at all). Deterministic for a given seed.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import random

from sqlalchemy import select
from sqlmodel import Session

from intranet import targeting
from intranet.db import insert_new
from intranet.engagement.events import event_key, local_hour_weekday, zone_of
from intranet.models import EngagementEvent, Employee, Post

HABITS = (  # (weight, peak local hours)
    (40, (10, 14)), (20, (8, 13)), (15, (11, 15, 16)), (10, (9, 12, 17)), (10, (10, 14, 21)), (5, (7, 19, 21)),
)
_TABLE = EngagementEvent.__table__  # type: ignore[attr-defined]


def _client_id(*parts: object) -> str:
    return "demo-" + hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=16).hexdigest()


def seed_history(session: Session, *, now: dt.datetime, weeks: int = 4, seed: int = 7,
                 org_timezone: str = "UTC") -> int:
    """Add *weeks* of sessions, reads and digest opens for every active employee; returns the event count.

    Safe to run twice: event ids derive from the content, so a second run adds nothing.
    """
    rng = random.Random(seed)
    people = session.execute(select(Employee).where(Employee.active.is_(True)).order_by(Employee.id)).scalars().all()
    rows: list[dict] = []
    total = 0
    for person in people:
        zone = zone_of(person.timezone, org_timezone)
        peaks = rng.choices([h for _, h in HABITS], [w for w, _ in HABITS])[0]
        shift = rng.choice((-1, 0, 0, 0, 1))
        keen = rng.uniform(0.4, 0.95)
        visible = session.execute(select(Post.id, Post.published_at).where(
            targeting.visible_posts_filter(person, targeting.group_keys_of(session, person.id), now))).all()
        start = (now.astimezone(zone) - dt.timedelta(days=7 * weeks)).date()
        for offset in range(7 * weeks):
            day = start + dt.timedelta(days=offset)
            if day.weekday() >= 5 and rng.random() > 0.1:
                continue
            digest_at = dt.datetime.combine(day, dt.time(9, 0), zone).astimezone(dt.timezone.utc)
            visits = sorted(dt.datetime.combine(day, dt.time(max(0, min(23, h + shift)), rng.randrange(60)), zone)
                            .astimezone(dt.timezone.utc) for h in peaks if rng.random() < keen)
            if digest_at < now and day.weekday() < 5:
                rows.append(_row(person, "digest_sent", digest_at, None, zone, now, offset))
                after = [v for v in visits if v >= digest_at]
                if after and rng.random() < 0.8:
                    rows.append(_row(person, "digest_open", after[0] + dt.timedelta(minutes=1), None, zone, now, offset))
            for visit in visits:
                if visit >= now:
                    continue
                rows.append(_row(person, "session", visit, None, zone, now, offset))
                readable = [pid for pid, published in visible if published <= visit]
                for pid in rng.sample(readable, min(len(readable), rng.choice((0, 1, 1, 2)))):
                    at = visit + dt.timedelta(minutes=rng.randrange(2, 20))
                    if at < now:
                        rows.append(_row(person, "read", at, pid, zone, now, offset, dwell=rng.randrange(8_000, 180_000)))
        if len(rows) >= 2000:
            total += len(insert_new(session, _TABLE, rows, event_key(session), ("id",)))
            rows = []
    total += len(insert_new(session, _TABLE, rows, event_key(session), ("id",)))
    return total


def _row(person: Employee, kind: str, at: dt.datetime, post_id: int | None, zone, now: dt.datetime, day: int,  # type: ignore[no-untyped-def]
         dwell: int | None = None) -> dict:
    hour, weekday = local_hour_weekday(at, zone)
    return {"employee_pk": person.id, "client_id": _client_id(person.employee_id, kind, at.isoformat(), post_id, day),
            "kind": kind, "post_id": post_id, "occurred_at": at, "received_at": now, "local_hour": hour,
            "local_weekday": weekday, "dwell_ms": dwell, "delivery_id": None, "channel": "email" if kind.startswith("digest") else None,
            "surface": None, "position": None, "device": None, "source": "demo"}
