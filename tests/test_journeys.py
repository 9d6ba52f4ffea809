"""Journeys: defined by comms managers, started by directory changes, released over a frozen clock."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import func, select

from intranet import targeting
from intranet.analytics import queries
from intranet.errors import ConfigurationError, InvalidInput
from intranet.journeys import definitions, enrolment, releases, reports
from intranet.models import DigestItem, Employee, JourneyEnrolment, JourneyRelease, Post, PostState
from intranet.settings import Settings


@pytest.fixture
def onboarding(db, make_employee, clock):  # type: ignore[no-untyped-def]
    """A hire journey: day 0 welcome, day 3 tools (skipped unless the welcome was read), day 10 a
    must-read benefits step with a reminder after 3 days."""
    author = make_employee(is_comms=True, employee_id="COMMS", email="comms@example.test")
    journey = definitions.create_journey(db, definitions.JourneyIn(name="New joiners", trigger="hire"),
                                         author=author, now=clock.now)
    for key, offset, title, extra in (
            ("welcome", 0, "Welcome aboard", {}),
            ("tools", 3, "Your tools guide", {"skip_unless_read": "welcome"}),
            ("benefits", 10, "Your benefits", {"must_read": True, "reminder_after_days": 3})):
        definitions.add_step(db, journey, definitions.StepIn(key=key, offset_days=offset, title=title,
                                                             body_html=f"<p>{title}</p>", **extra),
                             author=author, now=clock.now)
    db.commit()
    return journey


def titles_visible(db, person: Employee, now: dt.datetime) -> set[str]:  # type: ignore[no-untyped-def]
    rows = db.exec(select(Post.title).where(targeting.visible_posts_filter(person, (), now))).all()
    return set(rows)


def run(db, clock) -> releases.Outcome:  # type: ignore[no-untyped-def]
    enrolment.enrol_job(db, clock.now, None)
    outcome = releases.release_due(db, clock.now)
    db.commit()
    return outcome


def at_release_hour(clock, days: int) -> None:  # type: ignore[no-untyped-def]
    """Move the clock to the release hour (09:00 in Berlin) *days* after the hire date."""
    clock.now = dt.datetime(2026, 11, 25, 8, 5, tzinfo=dt.timezone.utc) + dt.timedelta(days=days)


def test_a_journey_runs_end_to_end_over_a_frozen_clock(db, make_employee, onboarding, clock):
    """Hired today: welcome at once, tools on day 3 once the welcome was read, benefits on day 10, a reminder on day 13."""
    at_release_hour(clock, 0)
    joiner = make_employee(hire_date=clock.now.date())
    colleague = make_employee(hire_date=dt.date(2020, 1, 1))
    assert run(db, clock).released == 1
    assert titles_visible(db, joiner, clock.now) == {"Welcome aboard"}
    assert titles_visible(db, colleague, clock.now) == set()
    db.add(PostState(employee_pk=joiner.id, post_id=db.exec(select(Post.id).where(Post.title == "Welcome aboard")).one(),
                     read_at=clock.now))
    db.commit()
    at_release_hour(clock, 2)
    assert run(db, clock).released == 0
    at_release_hour(clock, 3)
    assert run(db, clock).released == 1
    assert titles_visible(db, joiner, clock.now) == {"Welcome aboard", "Your tools guide"}
    at_release_hour(clock, 10)
    assert run(db, clock).released == 1
    benefits = db.exec(select(Post).where(Post.title == "Your benefits")).one()
    assert db.exec(select(DigestItem.round).where(DigestItem.employee_pk == joiner.id,
                                                  DigestItem.post_id == benefits.id)).all() == [0]
    at_release_hour(clock, 13)
    assert run(db, clock).reminded == 1
    assert sorted(db.exec(select(DigestItem.round).where(DigestItem.employee_pk == joiner.id,
                                                         DigestItem.post_id == benefits.id)).all()) == [0, 1]
    assert run(db, clock).reminded == 0  # once
    assert titles_visible(db, colleague, clock.now) == set()


def test_a_step_is_skipped_when_the_named_step_was_not_read(db, make_employee, onboarding, clock):
    """Skip the tools guide when the welcome was not read."""
    at_release_hour(clock, 0)
    joiner = make_employee(hire_date=clock.now.date())
    run(db, clock)
    at_release_hour(clock, 3)
    outcome = run(db, clock)
    assert (outcome.released, outcome.skipped) == (0, 1)
    assert titles_visible(db, joiner, clock.now) == {"Welcome aboard"}


def test_rerunning_the_sync_never_enrols_twice(db, make_employee, onboarding, clock):
    """Detection and enrolment repeated (and releases repeated) change nothing the second time."""
    at_release_hour(clock, 0)
    make_employee(hire_date=clock.now.date())
    run(db, clock)
    run(db, clock)
    assert len(db.exec(select(JourneyEnrolment)).all()) == 1
    assert len(db.exec(select(JourneyRelease)).all()) == 3
    assert releases.release_due(db, clock.now).released == 0


def test_a_person_past_the_window_is_not_flooded(db, make_employee, onboarding, clock):
    """Hired 5 days ago: welcome and tools are too old and skipped, only benefits will come; hired
    long ago: not enrolled at all."""
    at_release_hour(clock, 0)
    recent = make_employee(hire_date=clock.now.date() - dt.timedelta(days=5))
    make_employee(hire_date=clock.now.date() - dt.timedelta(days=400))
    assert run(db, clock).released == 0
    assert db.exec(select(JourneyEnrolment.employee_pk)).all() == [recent.id]
    states = dict(db.exec(select(JourneyRelease.status, JourneyRelease.reason)).all())
    assert states == {"skipped": "late", "pending": ""}


def test_paused_journeys_release_nothing_until_resumed(db, make_employee, onboarding, clock):
    """A paused journey's due step waits; resuming releases it."""
    at_release_hour(clock, 0)
    joiner = make_employee(hire_date=clock.now.date())
    definitions.set_paused(db, onboarding, True, now=clock.now)
    db.commit()
    assert run(db, clock).released == 0
    assert titles_visible(db, joiner, clock.now) == set()
    definitions.set_paused(db, onboarding, False, now=clock.now)
    db.commit()
    assert run(db, clock).released == 1


def test_moves_and_promotions_start_their_journeys(db, make_employee, clock):
    """A department move, a country move and a promotion to a manager level are events; a first sight is not."""
    author = make_employee(is_comms=True)
    for trigger in ("department_move", "country_move", "manager_promotion"):
        journey = definitions.create_journey(db, definitions.JourneyIn(name=trigger, trigger=trigger),
                                             author=author, now=clock.now)
        definitions.add_step(db, journey, definitions.StepIn(key="hello", offset_days=0, title=f"Hello {trigger}"),
                             author=author, now=clock.now)
    person = make_employee(department="Sales", country="DE", level=4)
    run(db, clock)
    assert db.exec(select(JourneyEnrolment)).all() == []
    person.department, person.country, person.level = "Finance", "ES", 6
    db.add(person)
    db.commit()
    run(db, clock)
    assert len(db.exec(select(JourneyEnrolment).where(JourneyEnrolment.employee_pk == person.id)).all()) == 3
    run(db, clock)
    assert len(db.exec(select(JourneyEnrolment)).all()) == 3


def test_the_manager_level_is_the_organisations_setting(db, make_employee, clock):
    """With INTRANET_JOURNEY_MANAGER_LEVEL=8, reaching level 6 is no promotion to manager; reaching 8 is."""
    rules = Settings.from_config({"INTRANET_JOURNEY_MANAGER_LEVEL": "8"}).journeys
    author = make_employee(is_comms=True)
    journey = definitions.create_journey(db, definitions.JourneyIn(name="Managers", trigger="manager_promotion"),
                                         author=author, now=clock.now)
    definitions.add_step(db, journey, definitions.StepIn(key="hello", offset_days=0, title="Hello"),
                         author=author, now=clock.now)
    person = make_employee(level=4)
    enrolment.detect(db, clock.now, rules)
    person.level = 6
    db.add(person)
    assert enrolment.detect(db, clock.now, rules) == []
    person.level = 8
    db.add(person)
    assert [e.trigger for e in enrolment.detect(db, clock.now, rules)] == ["manager_promotion"]


def test_release_hour_and_catch_up_window_are_the_organisations_settings(db, make_employee, onboarding, clock):
    """Steps go out at INTRANET_JOURNEY_RELEASE_HOUR local time, and INTRANET_JOURNEY_CATCH_UP_DAYS decides what is too late."""
    rules = Settings.from_config({"INTRANET_JOURNEY_RELEASE_HOUR": "14", "INTRANET_JOURNEY_CATCH_UP_DAYS": "6"}).journeys
    assert enrolment.due_at(dt.date(2026, 11, 25), 3, "Europe/Berlin", rules=rules) == \
        dt.datetime(2026, 11, 28, 13, 0, tzinfo=dt.timezone.utc)
    assert enrolment.due_at(dt.date(2026, 11, 25), 0, "Europe/Berlin") == \
        dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.timezone.utc)  # the default, 09:00
    at_release_hour(clock, 0)
    clock.now += dt.timedelta(hours=6)  # 15:05 in Berlin
    recent = make_employee(hire_date=clock.now.date() - dt.timedelta(days=5))
    enrolment.enrol_events(db, enrolment.detect(db, clock.now, rules), clock.now, rules=rules)
    outcome = releases.release_due(db, clock.now, rules=rules)
    db.commit()
    # Five days late is inside a six-day window: the welcome still goes out (the tools step was not read).
    assert outcome.released == 1 and "Welcome aboard" in titles_visible(db, recent, clock.now)
    with pytest.raises(ConfigurationError, match="INTRANET_JOURNEY_RELEASE_HOUR"):
        Settings.from_config({"INTRANET_JOURNEY_RELEASE_HOUR": "24"})


def test_a_steps_dashboard_counts_as_its_audience_the_people_it_was_released_to(
        db, make_employee, make_post, onboarding, client_for, clock):
    """The welcome's audience is the two joiners it reached, not the whole staff its all-staff audience names."""
    at_release_hour(clock, 0)
    joiners = [make_employee(hire_date=clock.now.date(), department="Sales") for _ in range(2)]
    for _ in range(4):
        make_employee(hire_date=dt.date(2020, 1, 1), department="Sales")
    welcome = db.exec(select(Post).where(Post.title == "Welcome aboard")).one()
    assert queries.post_analytics(db, welcome, k=5).audience == 0  # released to nobody yet
    run(db, clock)
    answer = queries.post_analytics(db, welcome, k=5)
    assert answer.audience == len(joiners)
    comms = client_for(db.exec(select(Employee).where(Employee.employee_id == "COMMS")).one())
    assert comms.api("GET", f"/api/v1/analytics/posts/{welcome.id}").get_json()["audience"] == 2
    everyone = db.exec(select(func.count()).select_from(Employee).where(Employee.active.is_(True))).one()
    assert queries.post_analytics(db, make_post(title="For all"), k=5).audience == everyone  # an ordinary post


def test_the_desk_lists_journey_steps_under_their_journey_not_as_ordinary_posts(
        db, make_employee, make_post, onboarding, client_for):
    """The status tabs show ordinary posts only; the journey-steps tab shows each step with its journey and day."""
    comms = db.exec(select(Employee).where(Employee.employee_id == "COMMS")).one()
    make_post(title="Canteen news", author_pk=comms.id)  # an ordinary post
    desk = client_for(comms)
    for url in ("/publish", "/publish?status=published"):
        page = desk.get(url).get_data(as_text=True)
        assert "Canteen news" in page and "Welcome aboard" not in page and "Your benefits" not in page, url
        assert "status=journey_steps" in page
    steps = desk.get("/publish?status=journey_steps").get_data(as_text=True)
    assert "Canteen news" not in steps
    for title, day in (("Welcome aboard", 0), ("Your tools guide", 3), ("Your benefits", 10)):
        assert title in steps and f"New joiners, day {day}" in steps
    assert f'href="/journeys/{onboarding.id}"' in steps and 'aria-current="page">Journey steps' in steps
    welcome = db.exec(select(Post.id).where(Post.title == "Welcome aboard")).one()
    editor = desk.get(f"/publish/posts/{welcome}").get_data(as_text=True)
    assert "Step “welcome” of the journey" in editor and f'href="/journeys/{onboarding.id}"' in editor
    canteen = db.exec(select(Post.id).where(Post.title == "Canteen news")).one()
    assert "journey-note" not in desk.get(f"/publish/posts/{canteen}").get_data(as_text=True)
    managed = {item["title"]: item["journey_only"] for item in desk.api("GET", "/api/v1/manage/posts").get_json()["items"]}
    assert managed["Canteen news"] is False and managed["Welcome aboard"] is True
    only_steps = desk.api("GET", "/api/v1/manage/posts?journey_steps=true").get_json()["items"]
    assert sorted(item["title"] for item in only_steps) == ["Welcome aboard", "Your benefits", "Your tools guide"]
    ordinary = desk.api("GET", "/api/v1/manage/posts?journey_steps=false").get_json()["items"]
    assert [item["title"] for item in ordinary] == ["Canteen news"]


def test_step_conditions_must_name_an_earlier_step(db, onboarding, make_employee, clock):
    """"Skip unless read" naming a later or unknown step is refused."""
    with pytest.raises(InvalidInput):
        definitions.add_step(db, onboarding, definitions.StepIn(key="early", offset_days=1, title="t",
                                                                skip_unless_read="benefits"),
                             author=make_employee(), now=clock.now)


def test_timeline_shows_the_dates_for_a_sample_person(db, make_employee, onboarding, clock):
    """The preview lists each step's local release date from the person's hire date."""
    person = make_employee(hire_date=dt.date(2026, 12, 1), timezone="Europe/Madrid")
    start, rows = reports.timeline(db, onboarding, person, clock.now)
    assert start == dt.date(2026, 12, 1)
    assert [(r.step.key, r.local_date) for r in rows] == [
        ("welcome", dt.date(2026, 12, 1)), ("tools", dt.date(2026, 12, 4)), ("benefits", dt.date(2026, 12, 11))]
    assert all(r.state == "would_release" for r in rows)


def test_measurement_hides_steps_released_to_fewer_than_five(db, make_employee, onboarding, clock):
    """Read rates per step appear only once five people got the step."""
    at_release_hour(clock, 0)
    joiners = [make_employee(hire_date=clock.now.date()) for _ in range(4)]
    run(db, clock)
    _, stats = reports.measure(db, onboarding, k=5)
    assert stats[0].released == 4 and stats[0].hidden and stats[0].read_rate is None
    joiners.append(make_employee(hire_date=clock.now.date()))
    run(db, clock)
    welcome = db.exec(select(Post.id).where(Post.title == "Welcome aboard")).one()
    db.add_all(PostState(employee_pk=j.id, post_id=welcome, read_at=clock.now) for j in joiners[:2])
    db.commit()
    enrolled, stats = reports.measure(db, onboarding, k=5)
    assert enrolled == 5 and not stats[0].hidden and stats[0].read_rate == pytest.approx(0.4)
    assert stats[0].completion == 1.0


# -------------------------------------------------------------------------------------------------
# Desk pages and every route a post can be reached through
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/journeys", "/journeys/new", "/journeys/1", "/journeys/1/timeline",
                                  "/journeys/1/steps/1"])
def test_employees_and_contributors_cannot_see_desk_pages(make_employee, client_for, onboarding, path):
    """Journey pages are for comms managers: a 403 for employees and contributors."""
    assert client_for(make_employee()).get(path).status_code == 403
    assert client_for(make_employee(is_contributor=True)).get(path).status_code == 403


def test_comms_manager_builds_pauses_and_resumes_a_journey_through_the_pages(db, make_employee, client_for):
    """Create, add steps (with a condition), pause and resume, all through the forms."""
    manager = make_employee(is_comms=True)
    client = client_for(manager)
    response = client.post("/journeys/new", data={"name": "Movers", "trigger": "department_move",
                                                  "csrf_token": client.csrf})
    assert response.status_code == 302
    detail = response.headers["Location"]
    for key, offset, extra in (("hello", 0, {}), ("team", 2, {"skip_unless_read": "hello"})):
        response = client.post(f"{detail}/steps", data={"key": key, "offset_days": offset, "title": f"Step {key}",
                                                         "body_html": "<p>Hi<script>x</script></p>",
                                                         "csrf_token": client.csrf, **extra})
        assert response.status_code == 302
    refused = client.post(f"{detail}/steps", data={"key": "bad", "offset_days": 1, "title": "t",
                                                   "skip_unless_read": "team", "csrf_token": client.csrf})
    assert refused.status_code == 422 and "earlier step" in refused.get_data(as_text=True)
    page = client.get(detail).get_data(as_text=True)
    assert "Step hello" in page and "skipped unless “hello” was read" in page
    assert client.post(f"{detail}/status", data={"status": "paused", "csrf_token": client.csrf}).status_code == 302
    assert "Paused" in client.get(detail).get_data(as_text=True)
    client.post(f"{detail}/status", data={"status": "active", "csrf_token": client.csrf})
    assert "Paused" not in client.get(detail).get_data(as_text=True)
    body = db.exec(select(Post.body_html).where(Post.title == "Step hello")).one()
    assert "<script>" not in body


def test_timeline_page_lists_dates_for_the_chosen_employee(make_employee, client_for, onboarding):
    """The preview page shows each step's date for the person asked about."""
    person = make_employee(hire_date=dt.date(2026, 12, 1), email="new.joiner@example.test")
    page = client_for(make_employee(is_comms=True)).get(
        f"/journeys/{onboarding.id}/timeline?employee={person.email}").get_data(as_text=True)
    assert page.index("Tue 1 Dec 2026") < page.index("Fri 4 Dec 2026") < page.index("Fri 11 Dec 2026")


def test_a_step_is_invisible_to_everyone_it_was_not_released_to_on_every_route(
        db, make_employee, onboarding, client_for, clock):
    """Feed, post page, API and search: a released step is the joiner's only; others get a 404 or nothing."""
    at_release_hour(clock, 0)
    joiner = make_employee(hire_date=clock.now.date())
    colleague = make_employee(hire_date=dt.date(2020, 1, 1))
    manager = make_employee(is_comms=True, hire_date=dt.date(2020, 1, 1))
    run(db, clock)
    welcome = db.exec(select(Post.id).where(Post.title == "Welcome aboard")).one()
    tools = db.exec(select(Post.id).where(Post.title == "Your tools guide")).one()
    for person, sees in ((joiner, True), (colleague, False), (manager, False)):
        client = client_for(person)
        feed = [item["title"] for item in client.get("/api/v1/feed").get_json()["items"]]
        assert ("Welcome aboard" in feed) is sees
        assert client.get(f"/posts/{welcome}").status_code == (200 if sees else 404)
        assert client.api("GET", f"/api/v1/posts/{welcome}").status_code == (200 if sees else 404)
        assert (f"/posts/{welcome}" in client.get("/search?q=welcome").get_data(as_text=True)) is sees
        hits = client.get("/api/v1/search?q=welcome").get_json()
        assert (welcome in [hit["id"] for hit in hits["items"]]) is sees
        # Not released yet (day 3), even to the joiner.
        assert client.get(f"/posts/{tools}").status_code == 404
