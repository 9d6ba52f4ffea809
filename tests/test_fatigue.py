"""Fatigue: people who keep ignoring digests are offered (or, where enabled, given and told) a gentler
cadence, and nobody is sent more than the weekly budget of posts that are not must-reads."""
from __future__ import annotations

import datetime as dt
import itertools

import pytest
from sqlalchemy import select
from sqlmodel import Session

from intranet import jobs, preferences
from intranet.delivery import content, fatigue, planning
from intranet.models import Digest, EngagementEvent, Employee, FatigueNotice, OutboxMessage
from tests.delivery_support import choose, make_digest, queue_digest, send

DAY = dt.timedelta(days=1)
_ids = itertools.count(1)


def sent_digests(db: Session, person: Employee, first: dt.datetime, count: int, *, kind: str = "digest",
                 post_ids: tuple[int, ...] = ()) -> list[dt.datetime]:
    """*count* digests (or alerts) sent to *person* by email, a day apart from *first*."""
    times = [first + i * DAY for i in range(count)]
    for at in times:
        n = next(_ids)
        slot = Digest(employee_pk=person.id, local_date=at.date(), ordinal=2 + n if kind == "digest" else 100 + n,
                      due_at=at, expires_at=at + dt.timedelta(hours=12), timezone="UTC", local_hour=at.hour,
                      status="queued", kind=kind)
        db.add(slot)
        db.flush()
        db.add(OutboxMessage(digest_id=slot.id, employee_pk=person.id, channel="email", status="sent",
                             next_attempt_at=at, expires_at=slot.expires_at, message_id=f"<test.{n}@example>",
                             post_ids=list(post_ids), sent_at=at))
    db.commit()
    return times


def engaged(db: Session, person: Employee, at: dt.datetime, kind: str = "digest_open", surface: str | None = None) -> None:
    db.add(EngagementEvent(employee_pk=person.id, client_id=f"e{next(_ids)}", kind=kind, occurred_at=at,
                           received_at=at, local_hour=at.hour, local_weekday=at.weekday(), surface=surface))
    db.commit()


def scan(app) -> str:  # type: ignore[no-untyped-def]
    """One run of the periodic job, through the job runner (its own session, committed)."""
    job = next(j for j in jobs.periodic_job_definitions() if j.id == "digests-fatigue")
    return jobs.run_once(app, job)


def notice_of(db: Session, person: Employee) -> FatigueNotice | None:
    db.expire_all()
    return db.get(FatigueNotice, person.id)


def cadence_of(db: Session, person: Employee) -> str:
    db.expire_all()
    return preferences.for_employee(db, person).cadence


def planned(db: Session, person: Employee) -> int:
    db.expire_all()
    return len(db.execute(select(Digest).where(Digest.employee_pk == person.id, Digest.status == "planned")).all())


def answer(client, choice: str, back: str = "preferences"):  # type: ignore[no-untyped-def]
    return client.post("/preferences/cadence-notice", data={"choice": choice, "back": back,
                                                             "csrf_token": client.csrf})


# --------------------------------------------------------------------------------------------
# Ignored digests
# --------------------------------------------------------------------------------------------


def test_five_ignored_digests_bring_a_suggestion_on_the_feed_and_preferences_page(app, db, make_employee,
                                                                                  client_for, clock):
    """Five daily digests without an open or a click: the feed and the preferences page offer weekly."""
    person = make_employee()
    sent_digests(db, person, clock.now - 5 * DAY, 5)
    assert scan(app) == "suggested 1, stepped_down 0, withdrawn 0"
    notice = notice_of(db, person)
    assert (notice.kind, notice.from_cadence, notice.to_cadence, notice.ignored) == ("suggestion", "daily", "weekly", 5)
    client = client_for(person)
    for page in ("/", "/preferences"):
        html = client.get(page).get_data(as_text=True)
        assert "Your last 5 digests went unopened" in html
        assert 'value="accept">Send it once a week' in html and 'value="dismiss" class="secondary">Keep it once a day' in html
    assert cadence_of(db, person) == "daily"


def test_four_ignored_digests_are_not_yet_a_pattern(app, db, make_employee, clock):
    """One digest short of the setting, nobody is bothered."""
    person = make_employee()
    sent_digests(db, person, clock.now - 4 * DAY, 4)
    scan(app)
    assert notice_of(db, person) is None


def test_an_open_or_a_click_resets_the_count_but_a_tracking_pixel_does_not(app, db, make_employee, clock):
    """A real open after the third digest leaves only two ignored since; a pixel load (Apple Mail prefetch) is no open."""
    reader, prefetched = make_employee(), make_employee()
    times = sent_digests(db, reader, clock.now - 5 * DAY, 5)
    sent_digests(db, prefetched, clock.now - 5 * DAY, 5)
    engaged(db, reader, times[2] + dt.timedelta(hours=1), kind="digest_click")
    engaged(db, prefetched, times[4] + dt.timedelta(minutes=1), surface="pixel")
    scan(app)
    assert notice_of(db, reader) is None
    assert notice_of(db, prefetched).kind == "suggestion"


def test_weekly_is_the_floor_and_never_is_left_alone(app, db, make_employee, clock):
    """Someone already on a weekly digest (or none) is never offered less."""
    weekly, off = make_employee(), make_employee()
    choose(db, weekly, cadence="weekly")
    choose(db, off, cadence="off")
    sent_digests(db, weekly, clock.now - 20 * DAY, 6)
    sent_digests(db, off, clock.now - 20 * DAY, 6)
    scan(app)
    assert notice_of(db, weekly) is None and notice_of(db, off) is None


def test_as_it_happens_is_judged_on_alerts_and_steps_down_to_daily(app, db, make_employee, clock):
    """People with news as it happens get alerts, not digests: ignoring five alerts suggests a daily digest."""
    person = make_employee()
    choose(db, person, cadence="as_it_happens")
    sent_digests(db, person, clock.now - 5 * DAY, 5, kind="alert")
    scan(app)
    assert notice_of(db, person).to_cadence == "daily"


def test_accepting_the_suggestion_steps_the_cadence_down(app, db, make_employee, client_for, clock):
    """One click on "Send it once a week" makes weekly the person's own choice and says so."""
    person = make_employee()
    sent_digests(db, person, clock.now - 5 * DAY, 5)
    scan(app)
    client = client_for(person)
    response = answer(client, "accept", back="feed")
    assert response.status_code == 302 and response.headers["Location"].endswith("/")
    assert cadence_of(db, person) == "weekly"
    assert notice_of(db, person).resolution == "accepted"
    page = client.get("/").get_data(as_text=True)
    assert "Done: your digest now comes once a week." in page and "went unopened" not in page
    assert client.api("GET", "/api/v1/me/preferences").get_json()["chosen"] == ["cadence"]


def test_answering_without_the_csrf_token_changes_nothing(app, db, make_employee, client_for, clock):
    """A cross-site POST (no token) is refused with a 400 and the cadence stays."""
    person = make_employee()
    sent_digests(db, person, clock.now - 5 * DAY, 5)
    scan(app)
    client = client_for(person)
    response = client.client.post("/preferences/cadence-notice", data={"choice": "accept"})
    assert response.status_code == 400
    assert cadence_of(db, person) == "daily" and notice_of(db, person).resolved_at is None


def test_an_unknown_answer_or_no_notice_is_refused(app, db, make_employee, client_for, clock):
    """Only accept/dismiss/keep/undo exist, and only for a notice that is waiting."""
    person = make_employee()
    client = client_for(person)
    assert answer(client, "accept").status_code == 404
    assert answer(client, "maybe").status_code == 422
    assert cadence_of(db, person) == "daily"


def test_a_dismissed_suggestion_returns_only_after_as_many_more_ignored_digests(app, db, make_employee, client_for,
                                                                                 clock):
    """Dismissing keeps the cadence; four more ignored digests change nothing, the fifth brings it back."""
    person = make_employee()
    sent_digests(db, person, clock.now - 5 * DAY, 5)
    scan(app)
    assert answer(client_for(person), "dismiss").status_code == 302
    assert cadence_of(db, person) == "daily" and notice_of(db, person).resolution == "dismissed"
    clock.advance(hours=1)
    sent_digests(db, person, clock.now, 4)
    clock.advance(days=4)
    scan(app)
    assert notice_of(db, person).resolution == "dismissed"
    sent_digests(db, person, clock.now, 1)
    clock.advance(hours=1)
    scan(app)
    assert notice_of(db, person).resolved_at is None and notice_of(db, person).ignored == 5


def test_reading_again_or_changing_the_cadence_withdraws_the_suggestion(app, db, make_employee, clock):
    """A suggestion goes away by itself once the person opens a digest again, or picks a cadence themselves."""
    reader, chooser = make_employee(), make_employee()
    for person in (reader, chooser):
        sent_digests(db, person, clock.now - 5 * DAY, 5)
    scan(app)
    clock.advance(hours=2)
    engaged(db, reader, clock.now - dt.timedelta(hours=1))
    choose(db, chooser, cadence="twice_daily")
    assert scan(app) == "suggested 0, stepped_down 0, withdrawn 2"
    assert notice_of(db, reader).resolution == "withdrawn" and notice_of(db, chooser).resolution == "withdrawn"


def test_the_job_is_safe_to_run_twice(app, db, make_employee, clock):
    """A second run finds nothing new: one notice per person."""
    person = make_employee()
    sent_digests(db, person, clock.now - 5 * DAY, 5)
    assert scan(app).startswith("suggested 1")
    assert scan(app) == "suggested 0, stepped_down 0, withdrawn 0"
    assert len(db.execute(select(FatigueNotice)).all()) == 1


def test_without_the_org_setting_a_suggestion_is_never_applied(app, db, make_employee, clock):
    """Automatic step down is off by default: ten ignored digests still only suggest."""
    person = make_employee()
    sent_digests(db, person, clock.now - 10 * DAY, 5)
    scan(app)
    sent_digests(db, person, clock.now - 4 * DAY + dt.timedelta(hours=1), 5)
    clock.advance(days=1)
    scan(app)
    assert notice_of(db, person).kind == "suggestion" and cadence_of(db, person) == "daily"


@pytest.mark.settings(INTRANET_FATIGUE_AUTO_STEP_DOWN=True)
def test_automatic_step_down_is_announced_in_beacon_and_in_the_next_digest(app, db, config, smtp, make_employee,
                                                                           make_post, client_for, clock):
    """Where enabled, a suggestion left unanswered for five more ignored digests becomes weekly; the feed says
    so until the person answers, the next digest says so once, and must-reads keep coming."""
    person = make_employee(email="ana@example.com")
    sent_digests(db, person, clock.now - 12 * DAY, 5)
    clock.now -= 7 * DAY
    scan(app)
    clock.now += 7 * DAY
    sent_digests(db, person, clock.now - 5 * DAY, 5)
    planning.replan_employee(db, person, clock.now, dt.timedelta(hours=36))
    db.commit()
    assert planned(db, person) > 0
    assert scan(app) == "suggested 0, stepped_down 1, withdrawn 0"
    assert cadence_of(db, person) == "weekly"
    notice = notice_of(db, person)
    assert (notice.kind, notice.ignored, notice.announced_at) == ("step_down", 10, None)
    client = client_for(person)
    feed = client.get("/").get_data(as_text=True)
    assert "Beacon now sends your digest once a week instead of once a day" in feed
    assert 'value="undo" class="secondary">Go back to once a day' in feed
    assert planned(db, person) == 0, "the daily slots planned before are gone (weekly: Mondays)"

    make_post(title="Fire drill", must_read=True)
    queue_digest(db, person, clock.now)
    assert send(app, db, config, clock).sent == 1
    text = smtp.parsed()[0].get_body(preferencelist=("plain",)).get_content()
    assert "Beacon now sends your digest once a week" in text and "Fire drill" in text
    assert notice_of(db, person).announced_at == clock.now
    clock.advance(days=1)
    make_post(title="Second drill", must_read=True)
    queue_digest(db, person, clock.now)
    send(app, db, config, clock)
    assert "once a week" not in smtp.parsed()[1].get_body(preferencelist=("plain",)).get_content()


@pytest.mark.settings(INTRANET_FATIGUE_AUTO_STEP_DOWN=True)
def test_undo_restores_the_cadence_and_keep_confirms_it(app, db, make_employee, client_for, clock):
    """"Go back to once a day" restores daily; "Keep it once a week" keeps weekly; either closes the notice."""
    undoer, keeper = make_employee(), make_employee()
    for person in (undoer, keeper):
        sent_digests(db, person, clock.now - 12 * DAY, 5)
    clock.now -= 7 * DAY
    scan(app)
    clock.now += 7 * DAY
    for person in (undoer, keeper):
        sent_digests(db, person, clock.now - 5 * DAY, 5)
    scan(app)
    assert answer(client_for(undoer), "undo").status_code == 302
    assert answer(client_for(keeper), "keep").status_code == 302
    assert cadence_of(db, undoer) == "daily" and notice_of(db, undoer).resolution == "reverted"
    assert cadence_of(db, keeper) == "weekly" and notice_of(db, keeper).resolution == "kept"
    assert answer(client_for(keeper), "accept").status_code == 404


# --------------------------------------------------------------------------------------------
# The weekly budget
# --------------------------------------------------------------------------------------------


@pytest.mark.settings(INTRANET_WEEKLY_ITEM_BUDGET=3)
def test_the_budget_holds_back_ordinary_posts_but_never_must_reads(app, db, config, smtp, make_employee, make_post,
                                                                   clock):
    """Two ordinary posts sent this week and a budget of 3: the digest carries the must-read and one more post;
    the rest are counted as waiting in the feed."""
    person = make_employee(email="ana@example.com")
    earlier = [make_post(title=f"Earlier {i}", published_at=clock.now - 3 * DAY) for i in range(2)]
    old_must = make_post(title="Old must-read", must_read=True, published_at=clock.now - 3 * DAY)
    sent_digests(db, person, clock.now - 2 * DAY, 1, post_ids=(earlier[0].id, earlier[1].id, old_must.id))
    for i in range(4):
        make_post(title=f"Fresh {i}")
    make_post(title="Evacuation plan", must_read=True)
    queue_digest(db, person, clock.now)
    assert send(app, db, config, clock).sent == 1
    text = smtp.parsed()[0].get_body(preferencelist=("plain",)).get_content()
    assert "Evacuation plan" in text and sum(f"Fresh {i}" in text for i in range(4)) == 1
    assert "3 more in your feed" in text and "this week's share of posts" in text


@pytest.mark.settings(INTRANET_WEEKLY_ITEM_BUDGET=2)
def test_a_spent_budget_skips_a_digest_with_nothing_else_but_not_one_with_a_must_read(app, db, make_employee,
                                                                                     make_post, clock):
    """Budget spent: a digest of ordinary posts is not sent at all; a must-read still goes out alone."""
    spent, urgent = make_employee(), make_employee(department="Legal")
    earlier = [make_post(title=f"Earlier {i}", published_at=clock.now - 3 * DAY) for i in range(2)]
    for person in (spent, urgent):
        sent_digests(db, person, clock.now - 2 * DAY, 1, post_ids=tuple(p.id for p in earlier))
    make_post(title="Canteen menu")
    make_post({"segments": [{"departments": ["Legal"]}]}, title="Policy change", must_read=True)
    make_digest(db, spent, clock.now)
    make_digest(db, urgent, clock.now)
    jobs.run_once(app, next(j for j in jobs.periodic_job_definitions() if j.id == "digests-enqueue"))
    db.expire_all()
    slots = {d.employee_pk: d for d in db.execute(select(Digest).where(Digest.due_at == clock.now)).scalars()}
    assert (slots[spent.id].status, slots[spent.id].reason) == ("skipped", "weekly budget spent")
    assert slots[urgent.id].status == "queued"
    composed = content.compose(db, urgent, slots[urgent.id], clock.now, weekly_budget=2)
    assert [i.title for i in composed.items] == ["Policy change"] and composed.held_back == 1


def test_the_budget_counts_each_post_once_and_only_for_seven_days(db, make_employee, make_post, clock):
    """The same post by email and in Beacon counts once; must-reads and posts sent 8 days ago do not count."""
    person = make_employee()
    a, b = make_post(title="A"), make_post(title="B")
    must = make_post(title="M", must_read=True)
    sent_digests(db, person, clock.now - 8 * DAY, 1, post_ids=(a.id,))
    sent_digests(db, person, clock.now - 2 * DAY, 2, post_ids=(a.id, must.id))
    sent_digests(db, person, clock.now - 3 * DAY, 1, post_ids=(b.id,))
    assert fatigue.sent_this_week(db, person.id, clock.now) == 2
    assert fatigue.sent_this_week_many(db, [person.id], clock.now) == {person.id: 2}


@pytest.mark.settings(INTRANET_WEEKLY_ITEM_BUDGET=4)
def test_the_preferences_page_shows_the_budget_plainly(app, db, make_employee, make_post, client_for, clock):
    """The page says how many posts a week the person may get, how many they had, and that must-reads always come."""
    person = make_employee()
    posts = [make_post(title=f"P{i}") for i in range(4)]
    sent_digests(db, person, clock.now - DAY, 1, post_ids=tuple(p.id for p in posts))
    html = client_for(person).get("/preferences").get_data(as_text=True)
    assert "at most 4 posts in any 7 days" in html and "In the last 7 days you were sent 4." in html
    assert "new posts wait in your feed" in html and "Must-reads always reach you." in html
    assert "If your last 5 digests go unopened, Beacon suggests sending them less often." in html


@pytest.mark.settings(INTRANET_FATIGUE_AUTO_STEP_DOWN=True, INTRANET_FATIGUE_IGNORED_DIGESTS=3)
def test_the_preferences_page_says_when_the_organisation_steps_cadences_down(app, make_employee, client_for):
    """Where automatic step down is on, the page says so before it ever happens."""
    html = client_for(make_employee()).get("/preferences").get_data(as_text=True)
    assert ("If your last 3 digests go unopened, Beacon suggests sending them less often, and if you neither accept "
            "nor refuse, after as many more it does so and tells you.") in html


@pytest.mark.settings(INTRANET_WEEKLY_ITEM_BUDGET=0)
def test_a_budget_of_zero_means_no_budget(app, db, make_employee, make_post, client_for, clock):
    """With the budget off, the page does not mention one and a digest carries everything up to its cap."""
    person = make_employee()
    for i in range(3):
        make_post(title=f"P{i}")
    slot = Digest(employee_pk=person.id, local_date=clock.now.date(), ordinal=0, due_at=clock.now,
                  expires_at=clock.now + DAY, timezone="UTC", local_hour=9)
    db.add(slot)
    db.commit()
    assert len(content.compose(db, person, slot, clock.now, weekly_budget=0).items) == 3
    assert "posts in any 7 days" not in client_for(person).get("/preferences").get_data(as_text=True)


def test_the_notice_is_in_the_persons_data_download_and_goes_with_their_erasure(app, db, make_employee, clock):
    """The download lists the latest cadence notice; erasing the person deletes it."""
    from intranet import personal_data
    from intranet.directory import lifecycle

    person = make_employee()
    sent_digests(db, person, clock.now - 5 * DAY, 5)
    scan(app)
    exported = personal_data.export(db, person, now=clock.now)["cadence_notice"]
    assert exported["kind"] == "suggestion" and exported["to_cadence"] == "weekly" and exported["ignored"] == 5
    erased = lifecycle.erase(db, person, clock.now)
    db.commit()
    assert erased.deleted["cadence_notices"] == 1 and notice_of(db, person) is None
