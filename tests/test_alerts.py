"""Alerts against a real SMTP server on loopback: must-reads outside planned digests and posts sent
as they happen, batched, held by quiet hours, re-checked at send time, exactly once."""
from __future__ import annotations

import datetime as dt
import threading
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlmodel import Session

from intranet import people, preferences
from intranet.delivery import alerts, enqueue, planning
from intranet.models import Digest, DigestItem, OutboxMessage, Post, PostState
from tests.delivery_support import choose, make_digest, messages, send

UTC = dt.timezone.utc


def run(app, db, config, clock):  # type: ignore[no-untyped-def]
    """One round of the scheduler's jobs: scan, enqueue, send (email)."""
    alerts.scan_job(db, clock.now, config)
    enqueue.enqueue_job(db, clock.now, config)
    db.commit()
    return send(app, db, config, clock)


def bodies(smtp) -> list[str]:  # type: ignore[no-untyped-def]
    return [m.get_body(preferencelist=("plain",)).get_content() for m in smtp.parsed()]


def alert_slots(db) -> list[Digest]:  # type: ignore[no-untyped-def]
    db.expire_all()
    return list(db.exec(select(Digest).where(Digest.kind == "alert").order_by(Digest.due_at)).scalars())


# --------------------------------------------------------------------------------------------
# As it happens
# --------------------------------------------------------------------------------------------


def test_as_it_happens_posts_are_batched_into_one_message(app, db, config, smtp, make_employee, make_post, clock):
    """Two posts going live minutes apart reach an as-it-happens reader in one email, within 15 minutes."""
    reader = make_employee(email="fast@example.com")
    make_employee(email="daily@example.com")
    choose(db, reader, cadence="as_it_happens")
    make_post(title="First news", published_at=clock.now - dt.timedelta(minutes=3))
    make_post(title="Second news", published_at=clock.now)
    assert run(app, db, config, clock).sent == 0                               # batched, not yet due
    [slot] = alert_slots(db)
    assert slot.due_at == dt.datetime(2026, 11, 24, 9, 15, tzinfo=UTC) and slot.ordinal >= alerts.ORDINAL_BASE
    clock.advance(minutes=15)
    assert run(app, db, config, clock).sent == 1
    assert smtp.recipients() == ["fast@example.com"]
    [text] = bodies(smtp)
    assert "First news" in text and "Second news" in text
    assert smtp.parsed()[0]["Message-ID"].startswith("<alert.")
    clock.advance(minutes=30)
    assert run(app, db, config, clock).sent == 0                               # a second run sends nothing more
    assert len(smtp.messages) == 1


def test_a_later_post_goes_in_a_later_window_once(app, db, config, smtp, make_employee, make_post, clock):
    """A post published after the first alert went out gets its own alert; nothing is sent twice."""
    reader = make_employee()
    choose(db, reader, cadence="as_it_happens")
    make_post(title="Morning")
    clock.advance(minutes=15)
    run(app, db, config, clock)
    clock.advance(minutes=15)
    run(app, db, config, clock)
    make_post(title="Noon", published_at=clock.now)
    for _ in range(4):
        clock.advance(minutes=10)
        run(app, db, config, clock)
    texts = bodies(smtp)
    assert len(texts) == 2 and "Morning" in texts[0] and "Noon" in texts[1] and "Morning" not in texts[1]
    assert db.exec(select(DigestItem)).all().__len__() == 2


def test_quiet_hours_hold_alerts_until_they_end(app, db, config, smtp, make_employee, make_post, clock):
    """Posts published in the evening in Tokyo wait for 08:00 there, and go out together."""
    reader = make_employee(timezone="Asia/Tokyo", email="tokyo@example.com")   # 09:00 UTC = 18:00 local
    choose(db, reader, cadence="as_it_happens", quiet_start=17, quiet_end=8)
    make_post(title="Evening news", published_at=clock.now)
    run(app, db, config, clock)
    clock.advance(hours=6)                                                     # 00:00 in Tokyo
    make_post(title="Midnight news", published_at=clock.now)
    run(app, db, config, clock)
    [slot] = alert_slots(db)
    due = dt.datetime(2026, 11, 25, 8, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert slot.due_at == due
    assert slot.expires_at == dt.datetime(2026, 11, 25, 17, tzinfo=ZoneInfo("Asia/Tokyo"))
    clock.now = due - dt.timedelta(minutes=1)
    assert run(app, db, config, clock).sent == 0 and smtp.messages == []
    clock.now = due
    assert run(app, db, config, clock).sent == 1
    [text] = bodies(smtp)
    assert "Evening news" in text and "Midnight news" in text


def test_alert_failing_until_quiet_hours_begin_is_not_sent_in_them(app, db, config, smtp, make_employee, make_post,
                                                                    clock):
    """A temporary SMTP refusal retried past 20:00 local expires instead of arriving in quiet hours."""
    reader = make_employee(email="late@example.com")                           # Berlin, quiet 20-07
    choose(db, reader, cadence="as_it_happens")
    clock.now = dt.datetime(2026, 11, 24, 18, 40, tzinfo=UTC)                  # 19:40 in Berlin
    make_post(published_at=clock.now)
    run(app, db, config, clock)
    [slot] = alert_slots(db)
    assert slot.expires_at == dt.datetime(2026, 11, 24, 20, tzinfo=ZoneInfo("Europe/Berlin"))
    clock.now = slot.due_at
    smtp.refuse["late@example.com"] = "451 4.3.0 Try again later"
    assert run(app, db, config, clock).retried == 1
    smtp.refuse.clear()
    clock.advance(minutes=20)                                                  # 20:05 in Berlin
    assert run(app, db, config, clock).expired == 1
    assert smtp.messages == []


def test_weekend_holds_alerts_until_the_first_working_day(db, make_employee):
    """Friday evening in Berlin with quiet hours 20-07: the first allowed window is Monday 07:00."""
    prefs = preferences.for_employee(db, make_employee())                      # the built-in defaults
    assert (prefs.quiet_start, prefs.quiet_end, prefs.working_days) == (20, 7, (0, 1, 2, 3, 4))
    berlin = ZoneInfo("Europe/Berlin")
    window = alerts.first_window(dt.datetime(2026, 11, 27, 19, 50, tzinfo=berlin), berlin, prefs,
                                 dt.timedelta(minutes=15))
    assert window.due == dt.datetime(2026, 11, 30, 7, tzinfo=berlin)
    assert window.local_date == dt.date(2026, 11, 30) and window.ordinal == alerts.ORDINAL_BASE + 28
    assert window.until == dt.datetime(2026, 11, 30, 19, tzinfo=berlin)      # 12 hours at most


def test_repeated_local_window_on_a_dst_day_is_sent_once_each(app, db, config, smtp, make_employee, make_post,
                                                               clock):
    """New York falls back on 1 November: 01:15 happens twice; the second alert moves to the next
    free window instead of reusing the slot that already went out."""
    reader = make_employee(timezone="America/New_York")
    choose(db, reader, cadence="as_it_happens", quiet_start=0, quiet_end=0, working_days=[0, 1, 2, 3, 4, 5, 6])
    clock.now = dt.datetime(2026, 11, 1, 5, 5, tzinfo=UTC)                    # 01:05 EDT
    make_post(title="Before the change", published_at=clock.now)
    run(app, db, config, clock)
    clock.now = dt.datetime(2026, 11, 1, 5, 15, tzinfo=UTC)
    assert run(app, db, config, clock).sent == 1
    clock.now = dt.datetime(2026, 11, 1, 6, 5, tzinfo=UTC)                    # 01:05 EST, again
    make_post(title="After the change", published_at=clock.now)
    run(app, db, config, clock)
    first, second = alert_slots(db)
    assert (first.local_date, first.ordinal) != (second.local_date, second.ordinal)
    assert second.due_at == dt.datetime(2026, 11, 1, 6, 30, tzinfo=UTC)
    clock.now = second.due_at
    assert run(app, db, config, clock).sent == 1
    texts = bodies(smtp)
    assert "Before the change" in texts[0] and "After the change" in texts[1] and "Before" not in texts[1]


def test_only_the_targeted_audience_is_alerted(app, db, config, smtp, make_employee, make_post, clock):
    """A post for Sales reaches Sales readers as it happens, and nobody else."""
    sales = make_employee(department="Sales", email="sales@example.com")
    marketing = make_employee(department="Marketing", email="marketing@example.com")
    for person in (sales, marketing):
        choose(db, person, cadence="as_it_happens")
    make_post({"segments": [{"departments": ["Sales"]}]}, title="Sales kick-off")
    make_post({"segments": [{"departments": ["Sales"]}]}, title="Sales must-read", must_read=True)
    run(app, db, config, clock)
    clock.advance(minutes=15)
    run(app, db, config, clock)
    assert smtp.recipients() == ["sales@example.com"]


def test_mutes_and_follows_shape_as_it_happens_but_not_must_reads(app, db, config, smtp, make_employee, make_post,
                                                                   clock):
    """A muted topic is left out and follows narrow the stream; must-reads come regardless."""
    muting = make_employee(email="muting@example.com")
    following = make_employee(email="following@example.com")
    choose(db, muting, cadence="as_it_happens", muted_topics=["Events"])
    choose(db, following, cadence="as_it_happens", followed_topics=["Engineering"])
    make_post(title="Party", topic="Events")
    make_post(title="Evacuation drill", topic="Events", must_read=True)
    make_post(title="Release notes", topic="Engineering")
    make_post(title="Quarterly results", topic="Finance")
    clock.advance(minutes=1)
    run(app, db, config, clock)
    clock.advance(minutes=15)
    run(app, db, config, clock)
    got = {rcpts[0]: m.get_body(preferencelist=("plain",)).get_content()
           for (rcpts, _), m in zip(smtp.messages, smtp.parsed())}
    assert set(got) == {"muting@example.com", "following@example.com"}
    assert "Party" not in got["muting@example.com"]
    assert all(t in got["muting@example.com"] for t in ("Evacuation drill", "Release notes", "Quarterly results"))
    assert "Release notes" in got["following@example.com"] and "Evacuation drill" in got["following@example.com"]
    assert "Quarterly results" not in got["following@example.com"] and "Party" not in got["following@example.com"]


def test_scheduled_post_is_sent_when_it_goes_live(app, db, config, smtp, make_employee, make_post, clock):
    """A scheduled post is not announced before its time, and is soon after."""
    reader = make_employee()
    choose(db, reader, cadence="as_it_happens")
    make_post(title="Embargoed", status="scheduled", published_at=clock.now + dt.timedelta(minutes=30))
    run(app, db, config, clock)
    assert alert_slots(db) == []
    clock.advance(minutes=31)
    run(app, db, config, clock)
    clock.advance(minutes=15)
    assert run(app, db, config, clock).sent == 1
    assert "Embargoed" in bodies(smtp)[0]


def test_post_unpublished_before_send_is_not_sent(app, db, config, smtp, make_employee, make_post, clock):
    """Targeting is re-checked when the alert goes out: a post taken back in the meantime is left out."""
    reader = make_employee()
    choose(db, reader, cadence="as_it_happens")
    post = make_post(title="Oops")
    run(app, db, config, clock)
    db.get(Post, post.id).status = "unpublished"
    db.commit()
    clock.advance(minutes=15)
    assert run(app, db, config, clock).sent == 0
    clock.advance(minutes=15)
    assert run(app, db, config, clock).sent == 0
    assert smtp.messages == [] and alert_slots(db)[0].status == "skipped"


def test_post_read_before_send_is_not_sent(app, db, config, smtp, make_employee, make_post, clock):
    """Someone who already read the post in the feed is not told about it."""
    reader = make_employee()
    choose(db, reader, cadence="as_it_happens")
    post = make_post()
    run(app, db, config, clock)
    db.add(PostState(employee_pk=reader.id, post_id=post.id, read_at=clock.now))
    db.commit()
    clock.advance(minutes=15)
    assert run(app, db, config, clock).sent == 0 and smtp.messages == []


def test_deactivated_people_get_no_alerts(app, db, config, smtp, make_employee, make_post, clock):
    """Leaving before the scan means no slot; leaving between scan and send means no email."""
    leaving = make_employee()
    gone = make_employee()
    for person in (leaving, gone):
        choose(db, person, cadence="as_it_happens")
    people.deactivate(db, gone, clock.now)
    db.commit()
    make_post(must_read=True)
    run(app, db, config, clock)
    assert [s.employee_pk for s in alert_slots(db)] == [leaving.id]
    people.deactivate(db, leaving, clock.now)
    db.commit()
    clock.advance(minutes=15)
    assert run(app, db, config, clock).sent == 0 and smtp.messages == []
    assert alert_slots(db)[0].status == "cancelled"


# --------------------------------------------------------------------------------------------
# Must-reads outside planned digests
# --------------------------------------------------------------------------------------------


def test_must_read_reaches_people_without_a_planned_digest(app, db, config, smtp, make_employee, make_post, clock):
    """Cadence off, as it happens and weekly (between digests) all get a new must-read; daily people
    get it in their digest instead."""
    for cadence in ("off", "as_it_happens", "weekly", "daily"):
        choose(db, make_employee(email=f"{cadence}@example.com"), cadence=cadence)
    make_post(title="New security policy", must_read=True, published_at=clock.now)
    run(app, db, config, clock)
    clock.advance(minutes=15)
    assert run(app, db, config, clock).sent == 3
    assert sorted(smtp.recipients()) == ["as_it_happens@example.com", "off@example.com", "weekly@example.com"]
    assert all(m["Subject"] == "Beacon: 1 must-read and 0 more" for m in smtp.parsed())
    assert all("New security policy" in t for t in bodies(smtp))
    clock.advance(hours=1)
    assert run(app, db, config, clock).sent == 0 and len(smtp.messages) == 3


def test_must_read_reminders_until_acknowledged_or_deadline(app, db, config, smtp, make_employee, make_post, clock):
    """Unacknowledged after 48 hours: a reminder; acknowledged or past its deadline: nothing more."""
    person = make_employee(email="off@example.com")
    choose(db, person, cadence="off")
    policy = make_post(title="Code of conduct", must_read=True, published_at=clock.now)
    make_post(title="Fire drill", must_read=True, published_at=clock.now, ack_deadline=clock.now + dt.timedelta(days=1))
    run(app, db, config, clock)
    clock.advance(minutes=15)
    run(app, db, config, clock)
    assert len(smtp.messages) == 1 and "Fire drill" in bodies(smtp)[0]
    clock.advance(hours=48)                                                   # Thursday 09:15 UTC
    run(app, db, config, clock)
    clock.advance(minutes=15)
    assert run(app, db, config, clock).sent == 1
    reminder = smtp.parsed()[1]
    assert reminder["Subject"].startswith("Reminder: ")
    text = bodies(smtp)[1]
    assert "Code of conduct" in text and "Fire drill" not in text
    db.add(PostState(employee_pk=person.id, post_id=policy.id, acknowledged_at=clock.now))
    db.commit()
    for _ in range(3):
        clock.advance(hours=48)
        run(app, db, config, clock)
        clock.advance(minutes=15)
        run(app, db, config, clock)
    assert len(smtp.messages) == 2


def test_reminder_is_escalated_on_a_second_channel(app, db, make_employee, make_post, clock):
    """A reminder round goes out on the person's channels and, as escalation, on one more."""
    person = make_employee()
    choose(db, person, cadence="off")
    make_post(must_read=True, published_at=clock.now - dt.timedelta(hours=49))
    alerts.scan(db, clock.now)
    clock.advance(minutes=15)
    assert enqueue.enqueue_due(db, clock.now, teams_enabled=True) == 1
    db.commit()
    assert sorted((m.channel, m.escalation) for m in messages(db)) == [("email", False), ("in_app", False),
                                                                       ("teams", True)]
    assert db.exec(select(DigestItem.round)).one()[0] == 1                     # only the round now due


def test_weekly_digest_carries_the_must_read_when_it_comes_first(app, db, config, smtp, make_employee, make_post,
                                                                  clock):
    """A weekly reader whose digest is due before the alert would be gets the must-read there, once."""
    person = make_employee(email="weekly@example.com")
    choose(db, person, cadence="weekly")
    make_digest(db, person, clock.now + dt.timedelta(minutes=5))
    make_post(title="Must read", must_read=True, published_at=clock.now)
    run(app, db, config, clock)
    assert alert_slots(db) == []
    for _ in range(4):
        clock.advance(minutes=10)
        run(app, db, config, clock)
    assert len(smtp.messages) == 1 and "Must read" in bodies(smtp)[0]
    assert smtp.parsed()[0]["Message-ID"].startswith("<digest.")


def test_weekly_reader_gets_the_must_read_before_a_later_digest(app, db, config, smtp, make_employee, make_post,
                                                                clock):
    """A weekly digest three days away does not hold a must-read back: it goes out now, once."""
    person = make_employee(email="weekly@example.com")
    choose(db, person, cadence="weekly")
    later = make_digest(db, person, clock.now + dt.timedelta(days=3))
    make_post(title="Must read", must_read=True, published_at=clock.now)
    run(app, db, config, clock)
    clock.advance(minutes=15)
    assert run(app, db, config, clock).sent == 1
    assert smtp.parsed()[0]["Message-ID"].startswith("<alert.")
    [item] = db.exec(select(DigestItem)).scalars().all()
    assert item.digest_id != later.id


def test_weekly_digest_after_an_alert_still_covers_earlier_posts(app, db, config, smtp, make_employee, make_post,
                                                                 clock):
    """An alert does not count as the last digest: the next weekly digest still lists what came before."""
    person = make_employee()
    choose(db, person, cadence="weekly")
    make_post(title="Ordinary news", published_at=clock.now - dt.timedelta(hours=2))
    make_post(title="Must read", must_read=True, published_at=clock.now)
    run(app, db, config, clock)
    clock.advance(minutes=15)
    run(app, db, config, clock)
    assert "Ordinary news" not in bodies(smtp)[0]
    make_digest(db, person, clock.now + dt.timedelta(hours=1))
    clock.advance(hours=1)
    run(app, db, config, clock)
    assert len(smtp.messages) == 2
    assert "Ordinary news" in bodies(smtp)[1] and "Must read" in bodies(smtp)[1]


def test_replanning_keeps_alert_slots(app, db, make_employee, make_post, clock):
    """The planning job replaces planned digests, never planned alerts (or their items)."""
    person = make_employee()
    choose(db, person, cadence="off")
    make_post(must_read=True)
    alerts.scan(db, clock.now)
    db.commit()
    planning.plan_job(db, clock.now, app.extensions["intranet"].settings)
    db.commit()
    assert len(alert_slots(db)) == 1 and len(db.exec(select(DigestItem)).all()) == 1


def test_scanning_twice_claims_once(db, make_employee, make_post, clock):
    """A second scan (a second scheduler) finds nothing new to claim."""
    for cadence in ("off", "as_it_happens"):
        choose(db, make_employee(), cadence=cadence)
    make_post(must_read=True)
    make_post()
    assert alerts.scan(db, clock.now) == 3
    assert alerts.scan(db, clock.now) == 0
    db.commit()
    assert len(alert_slots(db)) == 2


@pytest.mark.postgres_only
def test_two_concurrent_schedulers_alert_each_person_once(app, db, config, smtp, make_employee, make_post, clock):
    """Two schedulers scanning and enqueueing at once on PostgreSQL: one email per person."""
    staff = [make_employee() for _ in range(20)]
    for person in staff:
        choose(db, person, cadence="as_it_happens")
    make_post(must_read=True)
    make_post()
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def scheduler() -> None:
        try:
            with Session(db.get_bind(), expire_on_commit=False) as own:
                barrier.wait()
                for at in (clock.now, clock.now + dt.timedelta(minutes=15)):
                    alerts.scan_job(own, at, config)
                    own.commit()
                    enqueue.enqueue_job(own, at, config)
                    own.commit()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    clock.advance(minutes=15)
    send(app, db, config, clock, limit=100)
    assert sorted(smtp.recipients()) == sorted(p.email for p in staff)
    assert len(db.exec(select(OutboxMessage).where(OutboxMessage.channel == "email")).all()) == 20


def test_digests_run_command_covers_alerts(app, db, config, smtp, make_employee, make_post, clock):
    """`flask intranet digests run` scans for alerts too, so a manual round delivers them."""
    reader = make_employee(email="cli@example.com")
    choose(db, reader, cadence="off")
    make_post(title="Read me", must_read=True, published_at=clock.now)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["intranet", "digests", "run"]).exit_code == 0
    clock.advance(minutes=15)
    result = runner.invoke(args=["intranet", "digests", "run"])
    assert result.exit_code == 0, result.output
    assert smtp.recipients() == ["cli@example.com"]
