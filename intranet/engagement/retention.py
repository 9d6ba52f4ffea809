"""Raw reading events are kept for a limited time (``INTRANET_EVENTS_RETENTION_MONTHS``, default 13).

The dashboards do not need them afterwards: their rollups are maintained as events arrive (live
batches are queued and folded within a minute; ``events import`` folds as it loads), so every
event is counted in its aggregates long before it expires, and deleting it changes no chart. What goes is the per-person trail. The purge runs daily
in batches, each committed on its own, so a first run over a large backlog never holds a long
write lock (on SQLite that would stall every reader's event batch).

On PostgreSQL the event table is partitioned by month (:mod:`intranet.engagement.partitions`)
and retention drops whole months instead: a month goes once all of it is past the retention
period, so its events are kept up to a month longer than on SQLite, and no row is deleted.
"""
from __future__ import annotations

import calendar
import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import delete, select
from sqlmodel import Session

from intranet.analytics import rollups
from intranet.engagement import partitions
from intranet.models import EngagementEvent
from intranet.settings import Settings

logger = logging.getLogger(__name__)
BATCH = 5000


def months_before(now: dt.datetime, months: int) -> dt.datetime:
    """The same instant *months* calendar months earlier (the 31st becomes the month's last day)."""
    total = now.year * 12 + (now.month - 1) - months
    year, month = divmod(total, 12)
    day = min(now.day, calendar.monthrange(year, month + 1)[1])
    return now.replace(year=year, month=month + 1, day=day)


def purge_batch(session: Session, cutoff: dt.datetime, *, batch: int = BATCH) -> int:
    """Delete up to *batch* events that happened before *cutoff*; returns how many (the caller commits)."""
    ids = list(session.execute(select(EngagementEvent.id).where(EngagementEvent.occurred_at < cutoff)
                               .order_by(EngagementEvent.id).limit(batch)).scalars())
    if not ids:
        return 0
    session.execute(delete(EngagementEvent).where(EngagementEvent.id.in_(ids)))
    return len(ids)


def purge(sessions: Callable[[], Session], now: dt.datetime, months: int, *, batch: int = BATCH,
          org_timezone: str = "UTC") -> int:
    """Delete every event older than *months* before *now*, one committed batch at a time (on a
    partitioned table: drop the months wholly before then).

    Live events wait in a queue before they are folded into the rollups; that queue is folded
    first, so no event is deleted before it is counted.
    """
    cutoff = months_before(now, months)
    with sessions() as session:
        rollups.fold_pending(session, org_timezone=org_timezone)
        session.commit()
        if partitions.is_partitioned(session):
            total = partitions.drop_before(session, cutoff)
            session.commit()
            if total:
                logger.info("Dropped %s reading events of the months before %s", total, cutoff.isoformat())
            return total
    total = 0
    while True:
        with sessions() as session:
            deleted = purge_batch(session, cutoff, batch=batch)
            session.commit()
        total += deleted
        if deleted < batch:
            break
    if total:
        logger.info("Deleted %s reading events that happened before %s", total, cutoff.isoformat())
    return total


def purge_job(sessions: Callable[[], Session], now: dt.datetime, settings: Settings) -> int:
    """Scheduled (daily): delete raw events past the retention period."""
    return purge(sessions, now, settings.events.retention_months, org_timezone=settings.site.org_timezone)
