"""Rate limits whose counts every instance and worker shares: fixed windows counted in the database.

A per-process counter (Flask-Limiter's ``memory://``) would let each of N workers grant the whole
budget again. Here one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` adds a hit to the
caller's row for the current window and reads the total in the same statement, so concurrent
requests on any instance see each other's hits. Functions take the session and never commit.

A bucket's earlier windows are deleted by its next first hit, but some buckets are hit once and
never again (an embed token's ``jti``), so :func:`purge_job` sweeps windows that ended long ago.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math

from sqlmodel import Session, delete

from intranet.settings import Settings

from intranet.db import storable_utc
from intranet.models import RateWindow


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of one hit: whether it is within the limit, and if not how long to wait."""

    allowed: bool
    hits: int
    retry_after: int = 0


def window_start(now: dt.datetime, window: dt.timedelta) -> dt.datetime:
    """The start of the fixed window of length *window* that holds *now* (aligned to the epoch)."""
    seconds = window.total_seconds()
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    elapsed = (now - epoch).total_seconds()
    return epoch + dt.timedelta(seconds=math.floor(elapsed / seconds) * seconds)


def hit(session: Session, bucket: str, *, limit: int, window: dt.timedelta, now: dt.datetime) -> Verdict:
    """Count one hit on *bucket* (e.g. ``"rate:<employee pk>"``) and judge it against *limit* per *window*.

    The hit is counted even when refused, so hammering does not earn a fresh budget sooner.
    Commit soon after: on PostgreSQL the row stays locked until then.
    """
    start = storable_utc(window_start(now, window))
    table = RateWindow.__table__  # type: ignore[attr-defined]
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = (insert(table).values(bucket=bucket, window_start=start, hits=1)
                 .on_conflict_do_update(index_elements=["bucket", "window_start"], set_={"hits": table.c.hits + 1})
                 .returning(table.c.hits))
    hits = session.execute(statement).scalar_one()
    if hits == 1:  # the first hit of a window: earlier windows of this bucket are done with
        session.execute(delete(RateWindow).where(RateWindow.bucket == bucket, RateWindow.window_start < start))
    if hits <= limit:
        return Verdict(True, hits)
    wait = math.ceil((start + window - now).total_seconds())
    return Verdict(False, hits, max(wait, 1))


#: No limit counts over a window longer than this, so a window that started before it is over.
LONGEST_WINDOW = dt.timedelta(days=1)


def purge_job(session: Session, now: dt.datetime, settings: Settings) -> int:
    """Delete the counts of windows that ended at least a day ago (a scheduled job)."""
    cutoff = storable_utc(now - LONGEST_WINDOW)
    return session.exec(delete(RateWindow).where(RateWindow.window_start < cutoff)).rowcount or 0
