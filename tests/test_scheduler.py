"""The scheduler's home: jobs declared as data, one leased runner at a time, safe to run twice."""
from __future__ import annotations

import datetime as dt
import threading
import time

from sqlmodel import select

from intranet import leases
from intranet.delivery import schedule
from intranet.models import AuthSession, Lease


def test_jobs_are_declared_with_deliberate_misfire_settings():
    """Every job has an id, a period, coalescing and a misfire grace well above APScheduler's 1 s."""
    schedule._load_subsystem_jobs()
    ids = [job.id for job in schedule.JOBS]
    assert len(ids) == len(set(ids)) and "purge-sessions" in ids
    for job in schedule.JOBS:
        assert job.every > dt.timedelta(0) and job.coalesce and job.misfire_grace_time >= 60


def test_lease_is_exclusive_until_it_expires(db, clock):
    """A second owner cannot take a live lease, but takes an expired one."""
    ttl = dt.timedelta(seconds=60)
    assert leases.acquire(db, "job", "a", ttl=ttl, now=clock.now)
    db.commit()
    assert not leases.acquire(db, "job", "b", ttl=ttl, now=clock.now + dt.timedelta(seconds=30))
    db.commit()
    assert leases.acquire(db, "job", "a", ttl=ttl, now=clock.now + dt.timedelta(seconds=30))
    db.commit()
    assert leases.acquire(db, "job", "b", ttl=ttl, now=clock.now + dt.timedelta(seconds=200))
    db.commit()
    assert db.exec(select(Lease.owner)).one() == "b"


def test_purge_job_is_safe_to_run_twice(app, db, make_employee, client_for, clock):
    """Purging expired sessions twice removes them once and keeps live ones."""
    client_for(make_employee())
    clock.advance(hours=11)
    client_for(make_employee())
    job = next(j for j in schedule.JOBS if j.id == "purge-sessions")
    assert schedule.run_job(app, job) == 1
    assert schedule.run_job(app, job) == 0
    assert len(db.exec(select(AuthSession)).all()) == 1


def test_second_scheduler_waits_then_takes_over(app, clock):
    """Two runners: only one holds the lease; when it stops, the other takes over."""
    app.config["INTRANET_SCHEDULER_LEASE_SECONDS"] = 0.6
    clock_now = clock.now
    app.extensions["intranet"].clock = lambda: clock_now + dt.timedelta(seconds=time.monotonic() - start)
    start = time.monotonic()
    first, second = schedule.LeasedScheduler(app, "first"), schedule.LeasedScheduler(app, "second")
    waited = threading.Event()
    threads = [threading.Thread(target=first.run, daemon=True),
               threading.Thread(target=second.run, kwargs={"on_wait": waited.set}, daemon=True)]
    threads[0].start()
    deadline = time.monotonic() + 10
    while first.scheduler is None and time.monotonic() < deadline:
        time.sleep(0.05)
    threads[1].start()
    assert waited.wait(5)
    assert first.scheduler is not None and second.scheduler is None
    first.stop()
    threads[0].join(10)
    deadline = time.monotonic() + 10
    while second.scheduler is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert second.scheduler is not None
    second.stop()
    threads[1].join(10)


def test_scheduled_post_is_recorded_published_once(app, db, make_post, clock):
    """The publish job flips a due scheduled post to published exactly once, with a transition."""
    from intranet.models import Post, PostTransition

    post = make_post(status="scheduled", published_at=clock.now + dt.timedelta(minutes=5))
    job = next(j for j in schedule.JOBS if j.id == "posts-publish-due")
    assert schedule.run_job(app, job) == 0
    clock.advance(minutes=6)
    schedule.run_job(app, job)
    schedule.run_job(app, job)
    db.expire_all()
    assert db.get(Post, post.id).status == "published"
    assert len(db.exec(select(PostTransition).where(PostTransition.post_id == post.id)).all()) == 1
