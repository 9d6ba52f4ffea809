"""A sending run (the digests-send job, every minute) sends batch after batch while there is work,
stops once its time budget is spent, and leaves a struggling channel to its backoff."""
from __future__ import annotations

import datetime as dt
import itertools

import pytest

from intranet import jobs
from intranet.delivery import sending
from tests.delivery_support import messages, queue_digest

PEOPLE = 5


def queue_everyone(db, make_employee, make_post, clock) -> None:  # type: ignore[no-untyped-def]
    make_post(title="Canteen reopens")
    for _ in range(PEOPLE):
        queue_digest(db, make_employee(timezone="UTC"), clock.now)


def run(app, clock, **kwargs):  # type: ignore[no-untyped-def]
    state = app.extensions["intranet"]
    with app.app_context():
        return sending.send_batch(state.sessions, clock, state.settings, jobs.renderer_for(app), **kwargs)


def emailed(db) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(m.status for m in messages(db) if m.channel == "email")


@pytest.mark.settings(INTRANET_OUTBOX_BATCH=2)
def test_an_unpaced_run_sends_every_due_message_batch_after_batch(app, config, smtp, db, make_employee, make_post,
                                                                  clock):
    """Five digests in batches of two (email and in-app messages share the claim): one run sends them all."""
    queue_everyone(db, make_employee, make_post, clock)
    report = run(app, clock)
    assert report.sent == 2 * PEOPLE and len(smtp.messages) == PEOPLE
    assert emailed(db) == ["sent"] * PEOPLE


@pytest.mark.settings(INTRANET_OUTBOX_BATCH=2)
def test_a_run_starts_no_batch_once_its_budget_is_spent(app, config, smtp, db, make_employee, make_post, clock):
    """With a minute passing between readings of the run's own clock, the run ends after its first batch."""
    queue_everyone(db, make_employee, make_post, clock)
    minutes = itertools.count(0, 60)
    report = run(app, clock, budget=dt.timedelta(seconds=45), monotonic=lambda: float(next(minutes)))
    assert report.sent == 2
    assert run(app, clock).sent == 2 * PEOPLE - 2  # the next run goes on


@pytest.mark.settings(INTRANET_OUTBOX_BATCH=2)
def test_a_temporary_failure_ends_the_run(app, config, smtp, db, make_employee, make_post, clock):
    """A 451 puts that message back for its retry and the run stops: the rest wait for the next run."""
    queue_everyone(db, make_employee, make_post, clock)
    smtp.refuse["person1@example.test"] = "451 4.3.0 try again later"
    report = run(app, clock)
    assert report.retried == 1 and len(smtp.messages) < PEOPLE
    assert "pending" in emailed(db)


def test_a_claim_takes_at_most_its_limit(app, config, db, make_employee, make_post, clock):
    """Ten due messages, a claim of three: three are taken, the rest stay pending (on PostgreSQL a
    subquery rescanned per row once took every due row)."""
    queue_everyone(db, make_employee, make_post, clock)
    claimed = sending.claim(db, clock.now, "sender-1", limit=3, lease=dt.timedelta(minutes=5))
    db.commit()
    assert len(claimed) == 3
    assert sorted(m.status for m in messages(db)) == ["pending"] * (2 * PEOPLE - 3) + ["sending"] * 3
