"""Monthly partitions of the reading-event table on PostgreSQL (SQLite keeps one plain table).

On PostgreSQL ``intranet_event`` is partitioned by range of ``occurred_at``, one partition per
calendar month in UTC (``intranet_event_y2026m11``), plus a default partition that catches an
event whose month has no partition yet (a historical import, or the job creating months ahead
not having run), so no insert ever fails for want of a partition. Retention then drops whole
months (:func:`drop_before`) instead of deleting rows one by one, which on a table of tens of
millions of events means no dead tuples, no vacuum debt and no long delete transactions.

**Uniqueness.** A partitioned table's unique constraints must include the partition key, so the
event key is ``(employee_pk, client_id, occurred_at)`` there (``(employee_pk, client_id)`` on
SQLite), and the primary key ``(id, occurred_at)``. Duplicates are still absorbed: a retried
batch, a re-sent offline queue and a re-import carry each event's own time, and the server's own
events use deterministic times (a digest is recorded sent once, in the commit that marks it sent;
an acknowledgement at the first acknowledgement's time). What PostgreSQL no longer refuses is
one client id reused for a *different* instant, which no Beacon client does (see
:func:`intranet.engagement.events.event_key`).

Partitions are created ahead by the ``events-partitions`` job (:func:`ensure_job`); creating a
month whose events already sit in the default partition moves them into it.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from intranet.settings import Settings

logger = logging.getLogger(__name__)

TABLE = "intranet_event"
DEFAULT = "intranet_event_default"
#: The partition table names (the schema comparison leaves them out: the models describe the parent).
NAME = re.compile(r"intranet_event_(y(\d{4})m(\d{2})|default)$")
#: Months created ahead of the current one.
AHEAD = 3
#: Creating, moving into and dropping partitions wait at most this long for the parent's lock,
#: rather than queue every event insert behind them; a job that gives up runs again next day.
LOCK_TIMEOUT = "5s"
#: Serialises partition changes between processes (the job, an import, a migration).
_LOCK_KEY = 0x6576_7470  # "evtp"


def month_start(at: dt.datetime) -> dt.datetime:
    """The first instant (UTC) of the calendar month *at* falls in."""
    at = at.astimezone(dt.timezone.utc)
    return dt.datetime(at.year, at.month, 1, tzinfo=dt.timezone.utc)


def add_months(month: dt.datetime, n: int) -> dt.datetime:
    """The first instant of the month *n* months after *month* (a month start)."""
    year, index = divmod(month.year * 12 + month.month - 1 + n, 12)
    return dt.datetime(year, index + 1, 1, tzinfo=dt.timezone.utc)


def partition_name(month: dt.datetime) -> str:
    return f"{TABLE}_y{month.year:04d}m{month.month:02d}"


def is_partitioned(bind: Session | Any) -> bool:
    """Whether the event table on *bind* (a session or connection) is partitioned (PostgreSQL after
    migration 0016)."""
    if _dialect(bind) != "postgresql":
        return False
    kind = bind.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": TABLE}).scalar()
    return kind == "p"


def months(bind: Session | Any) -> dict[dt.datetime, str]:
    """The monthly partitions that exist: month start -> table name (the default one left out)."""
    rows = bind.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(:t)"), {"t": TABLE}).scalars()
    found = {}
    for name in rows:
        match = NAME.match(name)
        if match and match.group(2):
            found[dt.datetime(int(match.group(2)), int(match.group(3)), 1, tzinfo=dt.timezone.utc)] = name
    return found


def ensure(bind: Session | Any, first: dt.datetime, last: dt.datetime) -> list[str]:
    """Create the monthly partitions from *first*'s month through *last*'s that are missing; return
    their names. Events of those months waiting in the default partition are moved in. The caller
    commits. Does nothing on an unpartitioned table."""
    if not is_partitioned(bind):
        return []
    _lock(bind)
    existing = months(bind)
    created = []
    month, end = month_start(first), month_start(last)
    while month <= end:
        if month not in existing:
            _create(bind, month)
            created.append(partition_name(month))
        month = add_months(month, 1)
    if created:
        logger.info("Created event partitions %s", ", ".join(created))
    return created


def _create(bind: Session | Any, month: dt.datetime) -> None:
    name, low, high = partition_name(month), month, add_months(month, 1)
    bounds = {"low": low, "high": high}
    waiting = bind.execute(text(f"SELECT 1 FROM {DEFAULT} WHERE occurred_at >= :low AND occurred_at < :high "
                                "LIMIT 1"), bounds).first()
    values = f"FROM ('{low.isoformat()}') TO ('{high.isoformat()}')"
    if waiting is None:
        bind.execute(text(f"CREATE TABLE {name} PARTITION OF {TABLE} FOR VALUES {values}"))
        return
    # The month's events are in the default partition, which a new partition may not overlap:
    # build the month beside the table, move them in, then attach it (all in this transaction).
    bind.execute(text(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    bind.execute(text(f"WITH moved AS (DELETE FROM {DEFAULT} WHERE occurred_at >= :low AND occurred_at < :high "
                      f"RETURNING *) INSERT INTO {name} SELECT * FROM moved"), bounds)
    bind.execute(text(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES {values}"))


def ensure_ahead(bind: Session | Any, now: dt.datetime, ahead: int = AHEAD) -> list[str]:
    """This month's partition and the next *ahead* months' (the caller commits)."""
    this = month_start(now)
    return ensure(bind, this, add_months(this, ahead))


def drop_before(bind: Session | Any, cutoff: dt.datetime) -> int:
    """Drop every monthly partition that ends at or before *cutoff*'s month, and delete default-partition
    events before that month; return how many events went. The caller commits.

    Whole months only: the month *cutoff* falls in stays until its last event is past *cutoff*.
    """
    if not is_partitioned(bind):
        return 0
    _lock(bind)
    boundary = month_start(cutoff)
    total = 0
    for month, name in sorted(months(bind).items()):
        if add_months(month, 1) <= boundary:
            total += bind.execute(text(f"SELECT count(*) FROM {name}")).scalar() or 0
            bind.execute(text(f"DROP TABLE {name}"))
            logger.info("Dropped event partition %s", name)
    deleted = bind.execute(text(f"DELETE FROM {DEFAULT} WHERE occurred_at < :boundary"), {"boundary": boundary})
    return total + (deleted.rowcount or 0)


def ensure_job(session: Session, now: dt.datetime, settings: Settings) -> int:
    """Scheduled (daily): create the event partitions of this month and the next few."""
    return len(ensure_ahead(session, now))


def _lock(bind: Session | Any) -> None:
    bind.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    bind.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def _dialect(bind: Session | Any) -> str:
    get_bind = getattr(bind, "get_bind", None)
    return (get_bind() if get_bind else bind).dialect.name  # type: ignore[no-any-return]
