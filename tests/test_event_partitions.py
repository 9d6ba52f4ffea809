"""The event table by month: PostgreSQL partitions it (retention drops whole months, partitions are
created ahead, duplicates are still absorbed); SQLite keeps one table and deletes rows."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, text

from intranet import jobs
from intranet.engagement import events, partitions, retention
from intranet.models import EngagementEvent
from tests.conftest import NOW

UTC = dt.timezone.utc
OCT_20, NOV_9, SEP_20 = (dt.datetime(2025, m, d, 9, tzinfo=UTC) for m, d in ((10, 20), (11, 9), (9, 20)))


def record(db, person, at, tag):  # type: ignore[no-untyped-def]
    assert events.record(db, person, "read", at=at, client_id=f"{tag}-{at:%Y%m%d}")
    db.commit()


def stored(db) -> list[dt.datetime]:  # type: ignore[no-untyped-def]
    db.expire_all()
    found = sorted(db.execute(select(EngagementEvent.occurred_at)).scalars())
    db.rollback()  # an open read would hold the lock a partition's drop waits for
    return found


def where(db, at: dt.datetime) -> str:  # type: ignore[no-untyped-def]
    """The partition holding the event at *at*."""
    name = db.execute(text("SELECT tableoid::regclass::text FROM intranet_event WHERE occurred_at = :at"),
                      {"at": at}).scalar_one()
    db.rollback()
    return name


def test_the_event_table_is_partitioned_on_postgresql_only(db):
    """PostgreSQL's event table is partitioned by month with a default partition; SQLite's is plain."""
    postgres = db.get_bind().dialect.name == "postgresql"
    assert partitions.is_partitioned(db) is postgres
    if postgres:
        assert db.execute(text("SELECT to_regclass('intranet_event_default')")).scalar() is not None


@pytest.mark.postgres_only
def test_purge_on_postgresql_drops_whole_months(app, db, make_employee):
    """Months wholly past the retention period are dropped as partitions (counted); the month holding
    the cutoff stays whole, so no row is deleted from a kept partition."""
    person = make_employee()
    partitions.ensure(db, SEP_20, NOV_9)
    db.commit()
    for at in (SEP_20, OCT_20, NOV_9):
        record(db, person, at, "e")
    assert where(db, SEP_20) == "intranet_event_y2025m09"
    state = app.extensions["intranet"]
    # 13 months before 2026-11-24 is 2025-10-24: September goes; October (the cutoff's month) stays.
    assert retention.purge(state.sessions, NOW, 13) == 1
    assert stored(db) == [OCT_20, NOV_9]
    assert dt.datetime(2025, 9, 1, tzinfo=UTC) not in partitions.months(db)
    assert dt.datetime(2025, 10, 1, tzinfo=UTC) in partitions.months(db)
    # A month later October is wholly past too.
    assert retention.purge(state.sessions, NOW + dt.timedelta(days=8), 13) == 1
    assert stored(db) == [NOV_9]


@pytest.mark.sqlite_only
def test_purge_on_sqlite_deletes_rows_before_the_cutoff(app, db, make_employee):
    """SQLite deletes every event before the exact cutoff, in batches, whatever its month."""
    person = make_employee()
    for at in (SEP_20, OCT_20, NOV_9):
        record(db, person, at, "e")
    assert retention.purge(app.extensions["intranet"].sessions, NOW, 13, batch=1) == 2
    assert stored(db) == [NOV_9]


@pytest.mark.postgres_only
def test_a_new_partition_takes_its_month_from_the_default_partition(db, make_employee):
    """Events that arrived before their month's partition existed are moved into it, and a retried
    event is still a duplicate afterwards."""
    person = make_employee()
    at = dt.datetime(2024, 3, 5, 12, tzinfo=UTC)
    record(db, person, at, "early")
    assert where(db, at) == "intranet_event_default"
    assert partitions.ensure(db, at, at) == ["intranet_event_y2024m03"]
    db.commit()
    assert where(db, at) == "intranet_event_y2024m03"
    assert not events.record(db, person, "read", at=at, client_id=f"early-{at:%Y%m%d}")
    assert partitions.ensure(db, at, at) == []


def test_duplicates_are_absorbed_across_months(db, make_employee):
    """The same event (person, client id, time) sent twice is stored once, in any month."""
    person = make_employee()
    partitions.ensure(db, OCT_20, NOV_9)  # nothing on SQLite
    for at in (OCT_20, NOV_9, NOV_9 + dt.timedelta(days=400)):
        record(db, person, at, "same")
        assert not events.record(db, person, "read", at=at, client_id=f"same-{at:%Y%m%d}")
    assert len(stored(db)) == 3


def test_the_partition_job_creates_months_ahead_once(app, db):
    """The daily events-partitions job creates this month and the next three on PostgreSQL (then
    nothing more); on SQLite it does nothing."""
    job = next(j for j in jobs.periodic_job_definitions() if j.id == "events-partitions")
    far = dt.datetime(2031, 1, 15, tzinfo=UTC)  # months no migration created
    app.extensions["intranet"].clock = lambda: far
    postgres = db.get_bind().dialect.name == "postgresql"
    assert jobs.run_once(app, job) == (4 if postgres else 0)
    assert jobs.run_once(app, job) == 0
    if postgres:
        have = partitions.months(db)
        assert all(partitions.add_months(partitions.month_start(far), n) in have for n in range(4))
        for month in range(4):  # leave no far-future months for other tests' purges to count
            db.execute(text(f"DROP TABLE {partitions.partition_name(partitions.add_months(far, month))}"))
        db.commit()


def test_purge_counts_every_event_it_removes(app, db, make_employee):
    """Whatever the backend, purge reports how many events went and the rest stay countable."""
    person = make_employee()
    for days in (800, 801):
        record(db, person, NOW - dt.timedelta(days=days), "old")
    record(db, person, NOW, "new")
    assert retention.purge(app.extensions["intranet"].sessions, NOW, 13) == 2
    db.expire_all()
    assert db.execute(select(func.count()).select_from(EngagementEvent)).scalar() == 1
