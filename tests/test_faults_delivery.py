"""Faults in delivery, on PostgreSQL with real processes: a sender and a scheduler killed (SIGKILL)
mid-batch, a standby scheduler taking over; every digest still goes out, at most once more per
crash and then with the same Message-ID."""
from __future__ import annotations

import collections
import datetime as dt
import time

import pytest
from sqlalchemy import select

from intranet.db import utcnow
from intranet.delivery import enqueue
from intranet.models import Lease, OutboxMessage
from tests.delivery_support import make_digest
from tests.fault_support import Beacon, environment, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.postgres_only]

PEOPLE = 24
LEASE_SECONDS = 2
SCHEDULER_LEASE = 3


def queue_digests(db, make_employee, make_post) -> set[str]:  # type: ignore[no-untyped-def]
    """A digest due now (by the real clock, which the processes use) for each of PEOPLE people;
    returns the Message-IDs queued."""
    now = utcnow()
    make_post(published_at=now - dt.timedelta(hours=1), title="Canteen reopens")
    for _ in range(PEOPLE):
        make_digest(db, make_employee(timezone="UTC"), now - dt.timedelta(minutes=1))
    enqueue.enqueue_due(db, now)
    db.commit()
    return {m.message_id for m in outbox(db) if m.channel == "email"}


def outbox(db) -> list[OutboxMessage]:  # type: ignore[no-untyped-def]
    db.expire_all()
    rows = list(db.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())
    db.rollback()
    return rows


def received(smtp) -> collections.Counter:  # type: ignore[no-untyped-def]
    return collections.Counter(m["Message-ID"] for m in smtp.parsed())


def sender_env(database, smtp, **more):  # type: ignore[no-untyped-def]
    # Paced at 10 a second, so a batch lasts long enough to be killed in the middle of it.
    return environment(database, SMTP_HOST="127.0.0.1", SMTP_PORT=smtp.port, MAIL_RATE_PER_MINUTE=600,
                       OUTBOX_LEASE_SECONDS=LEASE_SECONDS, OUTBOX_BATCH=PEOPLE, OUTBOX_RETRY_SECONDS=1, **more)


def assert_each_sent_once_more_at_most(expected: set[str], got: collections.Counter, crashes: int) -> None:
    assert set(got) == expected, "a digest was lost (or one nobody queued was sent)"
    assert sum(got.values()) - len(expected) <= crashes, f"more than one duplicate per crash: {got}"


def test_a_sender_killed_mid_batch_loses_nothing(database, db, make_employee, make_post, smtp, tmp_path):
    """SIGKILL `digests send` after some messages: the next sender, once the claims' lease is over,
    sends the rest; each digest arrives once (one crash: at most one again, same Message-ID)."""
    expected = queue_digests(db, make_employee, make_post)
    env = sender_env(database, smtp)
    with Beacon(["digests", "send"], env, tmp_path / "first.log") as first:
        wait_for(lambda: len(smtp.messages) >= PEOPLE // 3, what="a third of the batch", process=first)
        first.kill()
    assert len(smtp.messages) < PEOPLE
    stuck = [m for m in outbox(db) if m.status == "sending"]
    assert stuck, "the killed sender held claims"
    # The claims lapse after the lease; then a second sender takes them over.
    wait_for(lambda: utcnow() > max(m.lease_until for m in stuck), what="the claims' lease to end")
    second = Beacon(["digests", "send"], env, tmp_path / "second.log")
    assert second.wait() == 0, second.output()
    assert {m.status for m in outbox(db)} == {"sent"}
    assert_each_sent_once_more_at_most(expected, received(smtp), crashes=1)


def test_a_scheduler_killed_mid_tick_is_replaced_by_its_standby(database, db, make_employee, make_post, smtp,
                                                                  tmp_path):
    """Two `scheduler` processes: one holds the lease and sends; SIGKILLed mid-batch, the standby
    takes the lease within one lease period of the last renewal and finishes the digests."""
    expected = queue_digests(db, make_employee, make_post)
    # The dead sender's claims lapse (1 s) before the scheduler lease can (3 s), so the standby's
    # first sending round, at takeover, already finds them.
    env = {**sender_env(database, smtp, SCHEDULER_LEASE_SECONDS=SCHEDULER_LEASE), "INTRANET_OUTBOX_LEASE_SECONDS": "1"}

    def holder() -> str | None:
        lease = db.get(Lease, "scheduler", populate_existing=True)
        db.rollback()
        return lease.owner if lease else None

    with Beacon(["scheduler"], env, tmp_path / "active.log") as active, \
            Beacon(["scheduler"], env, tmp_path / "standby.log") as standby:
        first_owner = wait_for(holder, what="a scheduler to hold the lease", process=active)
        wait_for(lambda: len(smtp.messages) >= PEOPLE // 3, what="sending to start", process=active)
        which = active if str(active.process.pid) in first_owner else standby
        other = standby if which is active else active
        lease = db.get(Lease, "scheduler", populate_existing=True)
        last_expiry = lease.expires_at
        db.rollback()
        which.kill()
        killed_at = utcnow()
        wait_for(lambda: holder() not in (None, first_owner), what="the standby to take over", process=other)
        took_over = utcnow()
        # The standby polls every third of a lease: it holds the lease within one lease of the dead
        # one's expiry (a third in theory; the rest is slack for processes sharing two busy cores).
        assert took_over - max(last_expiry, killed_at) <= dt.timedelta(seconds=SCHEDULER_LEASE)
        wait_for(lambda: {m.status for m in outbox(db)} == {"sent"}, what="every digest sent", process=other)
    assert_each_sent_once_more_at_most(expected, received(smtp), crashes=1)
