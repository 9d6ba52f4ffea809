"""The scheduler's home: every job declared in one table, one leased runner at a time, safe to run twice."""
from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlmodel import select

from intranet import jobs, leases
from intranet.models import AuthSession, Lease


def _job(job_id: str) -> jobs.Job:
    return next(j for j in jobs.periodic_job_definitions() if j.id == job_id)


def test_jobs_are_declared_with_deliberate_misfire_settings():
    """Every job has a unique id, a period, coalescing and a misfire grace well above APScheduler's 1 s."""
    table = jobs.periodic_job_definitions()
    ids = [job.id for job in table]
    assert len(ids) == len(set(ids)) and "purge-sessions" in ids
    for job in table:
        assert job.every > dt.timedelta(0) and job.coalesce and job.misfire_grace_time >= 60


def test_every_job_names_a_function():
    """Each job's target imports to a function (a renamed module or function fails here, not at 3 a.m.)."""
    for job in jobs.periodic_job_definitions():
        assert callable(job.function()), job.id


def test_a_job_naming_no_function_says_which():
    """A target that names nothing raises an error naming the job and its target."""
    broken = jobs.Job("broken", "intranet.jobs:no_such_job", dt.timedelta(minutes=1), "Broken.")
    with pytest.raises(LookupError, match="broken: intranet.jobs:no_such_job"):
        broken.function()


def test_scheduler_is_built_from_the_table(app):
    """The APScheduler instance gets exactly the declared jobs, with their periods."""
    scheduler = jobs.build_scheduler(app)
    built = {j.id: j.trigger.interval for j in scheduler.get_jobs()}
    assert built == {j.id: j.every for j in jobs.periodic_job_definitions()}


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
    job = _job("purge-sessions")
    assert jobs.run_job(app, job) == 1
    assert jobs.run_job(app, job) == 0
    assert len(db.exec(select(AuthSession)).all()) == 1


def test_failing_job_is_rolled_back_and_logged(app, db, make_post, clock, caplog, monkeypatch):
    """A job that fails leaves nothing behind; the scheduler logs it and carries on."""
    from intranet.models import Post

    post = make_post(status="scheduled", published_at=clock.now - dt.timedelta(minutes=1))
    publish = jobs.publish_due_posts

    def publish_then_fail(session, now, settings):  # type: ignore[no-untyped-def]
        publish(session, now, settings)
        raise RuntimeError("boom")

    monkeypatch.setattr(jobs, "publish_due_posts", publish_then_fail)
    assert jobs.run_job(app, _job("posts-publish-due")) is None
    db.expire_all()
    assert db.get(Post, post.id).status == "scheduled"
    assert "posts-publish-due failed" in caplog.text


def test_second_scheduler_waits_then_takes_over(make_app, clock):
    """Two runners: only one holds the lease; when it stops, the other takes over."""
    start = time.monotonic()
    app = make_app(clock=lambda: clock.now + dt.timedelta(seconds=time.monotonic() - start),
                   INTRANET_SCHEDULER_LEASE_SECONDS="0.6")
    first, second = jobs.LeasedScheduler(app, "first"), jobs.LeasedScheduler(app, "second")
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
    job = _job("posts-publish-due")
    assert jobs.run_job(app, job) == 0
    clock.advance(minutes=6)
    jobs.run_job(app, job)
    jobs.run_job(app, job)
    db.expire_all()
    assert db.get(Post, post.id).status == "published"
    assert len(db.exec(select(PostTransition).where(PostTransition.post_id == post.id)).all()) == 1


def test_rate_limit_purge_forgets_windows_a_day_old(app, db, clock):
    """A bucket hit once (an embed token's jti) leaves its window behind; the daily purge removes
    windows that ended a day ago and keeps the ones still counting, and a second run finds nothing."""
    from intranet import throttle
    from intranet.models import RateWindow

    throttle.hit(db, "embed-jti:spent-once", limit=1, window=dt.timedelta(hours=1), now=clock.now)
    db.commit()
    clock.advance(hours=25)
    throttle.hit(db, "rating:7", limit=10, window=dt.timedelta(minutes=1), now=clock.now)
    db.commit()
    job = _job("rate-limits-purge")
    assert jobs.run_job(app, job) == 1
    assert jobs.run_job(app, job) == 0
    db.expire_all()
    assert [row.bucket for row in db.exec(select(RateWindow)).all()] == ["rating:7"]
