"""A person's data: they download it from their preferences page; an admin erases it; old events expire."""
from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import func, select

from intranet import feed, jobs, preferences, ratings
from intranet.directory import lifecycle
from intranet.journeys import definitions, enrolment, releases
from intranet.delivery import history
from intranet.engagement import events, retention
from intranet.models import (
    AnalyticsPostPerson, AuthSession, Digest, Employee, EngagementEvent, JourneyEnrolment, JourneyRelease, JourneyWatch,
    OutboxMessage, PostState, Preference, Rating, TimingState,
)
from tests.conftest import NOW
from tests.dashboard_support import organisation
from tests.delivery_support import make_digest


def _history(db, person, post, *, days_ago: float = 1, tag: str = "a") -> None:  # type: ignore[no-untyped-def]
    """An open, a read and a digest sent, *days_ago* days back, and a star rating."""
    at = NOW - dt.timedelta(days=days_ago)
    for kind in ("open", "read", "digest_sent"):
        events.record(db, person, kind, at=at, client_id=f"{tag}-{kind}-{days_ago}",
                      post_id=None if kind == "digest_sent" else post.id)
    db.commit()


def _give_a_person_data(db, person, post) -> None:  # type: ignore[no-untyped-def]
    _history(db, person, post)
    ratings.rate(db, employee=person, post=post, rating=ratings.RatingIn(stars=4, comment="Useful"), now=NOW)
    feed.mark_read(db, person, post, now=NOW)
    preferences.update(db, person, preferences.PreferencesIn(cadence="weekly"), now=NOW)
    digest = make_digest(db, person, NOW - dt.timedelta(hours=2))
    db.add(OutboxMessage(digest_id=digest.id, employee_pk=person.id, channel="email", status="sent",
                         next_attempt_at=NOW, expires_at=NOW, message_id="<m1@example>", post_ids=[post.id]))
    db.commit()
    history.refresh(db, NOW + dt.timedelta(days=3))
    db.commit()


def _count(db, table, person) -> int:  # type: ignore[no-untyped-def]
    return db.execute(select(func.count()).select_from(table).where(table.employee_pk == person.id)).scalar()


def test_a_person_downloads_their_own_data_and_nobody_elses(client_for, make_employee, make_post, db):
    """The JSON holds the person's profile, preferences, events, ratings, reads and learned hours, and no one else's."""
    me, other = make_employee(display_name="Mia Example"), make_employee(display_name="Otto Other")
    post = make_post()
    _give_a_person_data(db, me, post)
    _history(db, other, post, tag="other")
    client = client_for(me)
    page = client.get("/preferences").get_data(as_text=True)
    assert 'href="/me/data.json"' in page
    response = client.get("/me/data.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert "attachment" in response.headers["Content-Disposition"]
    data = json.loads(response.get_data(as_text=True))
    assert data["profile"]["display_name"] == "Mia Example" and data["profile"]["employee_id"] == me.employee_id
    assert data["preferences"]["cadence"] == "weekly" and "cadence" in data["preferences"]["chosen"]
    assert sorted(e["kind"] for e in data["events"]) == ["digest_sent", "open", "read"]
    assert data["ratings"] == [{"post_id": post.id, "stars": 4, "thumb": None, "comment": "Useful", "signed": False,
                                "created_at": data["ratings"][0]["created_at"],
                                "updated_at": data["ratings"][0]["updated_at"]}]
    assert [s["post_id"] for s in data["post_states"]] == [post.id]
    assert len(data["messages"]) == 1 and len(data["digests"]) == 1
    hours = data["learned_hours"]
    assert len(hours["activity"]) == 7 and all(len(day) == 24 for day in hours["activity"])
    assert sum(map(sum, hours["activity"])) > 0
    assert "Otto" not in response.get_data(as_text=True)


def _on_a_journey(db, author, *people) -> None:  # type: ignore[no-untyped-def]
    """A hire journey (day 0 welcome, day 5 tools) that *people*, hired today, are enrolled on; the welcome released."""
    journey = definitions.create_journey(db, definitions.JourneyIn(name="New joiners", trigger="hire"),
                                         author=author, now=NOW)
    for key, offset in (("welcome", 0), ("tools", 5)):
        definitions.add_step(db, journey, definitions.StepIn(key=key, offset_days=offset, title=f"Step {key}"),
                             author=author, now=NOW)
    db.commit()
    enrolment.detect(db, NOW)  # first sight: the watch rows
    for person in people:
        enrolment.enrol(db, journey, person, event_key=f"hire:{person.hire_date}", event_date=person.hire_date, now=NOW)
    releases.release_due(db, NOW + dt.timedelta(days=1))
    db.commit()


def test_the_download_holds_the_persons_journeys_and_nobody_elses(client_for, make_employee, db):
    """Each enrolment with its event and steps (due, released or pending), and what journeys last saw of them."""
    me = make_employee(hire_date=NOW.date(), department="Sales", country="ES", level=3)
    other = make_employee(hire_date=NOW.date(), department="Finance")
    _on_a_journey(db, make_employee(is_comms=True), me, other)
    data = client_for(me).get("/me/data.json").get_json()
    [journey] = data["journeys"]
    assert (journey["journey"], journey["trigger"], journey["event_date"]) == ("New joiners", "hire",
                                                                               NOW.date().isoformat())
    assert [(s["step"], s["title"], s["status"]) for s in journey["steps"]] == [
        ("welcome", "Step welcome", "released"), ("tools", "Step tools", "pending")]
    assert journey["steps"][0]["released_at"] and journey["steps"][1]["released_at"] is None
    assert (data["journey_watch"]["department"], data["journey_watch"]["level"]) == ("Sales", 3)
    assert "Finance" not in json.dumps(data)


def test_erasure_removes_the_persons_journey_enrolments(make_employee, db):
    """Enrolments, releases and the journey watch of the erased person go; a colleague's stay."""
    gone = make_employee(hire_date=NOW.date(), department="Sales")
    stays = make_employee(hire_date=NOW.date())
    _on_a_journey(db, make_employee(is_comms=True), gone, stays)
    result = lifecycle.erase(db, gone, NOW)
    db.commit()
    assert (result.deleted["journey_enrolments"], result.deleted["journey_releases"],
            result.deleted["journey_watch"]) == (1, 2, 1)
    for table in (JourneyEnrolment, JourneyRelease, JourneyWatch):
        assert _count(db, table, gone) == 0 and _count(db, table, stays) >= 1, table.__name__


def test_downloading_data_needs_a_signed_in_person(app):
    """Nobody signed in: no data, just the way to sign in."""
    response = app.test_client().get("/me/data.json")
    assert response.status_code == 302 and "/auth/" in response.headers["Location"]


def test_admin_erases_a_person_and_others_keep_their_data(client_for, make_employee, make_post, db):
    """Erasure deletes the person's events, ratings, reads, preferences, learned times, digests and outbox
    rows, anonymizes the profile and ends their sessions; another person's rows are untouched."""
    admin_person = make_employee(is_admin=True)
    gone, stays = make_employee(display_name="Gone Person"), make_employee()
    post = make_post()
    for person in (gone, stays):
        _give_a_person_data(db, person, post)
    gone_client = client_for(gone)
    assert _count(db, AuthSession, gone) == 1
    admin = client_for(admin_person)
    page = admin.get(f"/admin/people/{gone.employee_id}/erase").get_data(as_text=True)
    assert "Gone Person" in page and "cannot be undone" in page
    refused = admin.post(f"/admin/people/{gone.employee_id}/erase", data={"csrf_token": admin.csrf, "confirm": "no"})
    assert refused.status_code == 302 and _count(db, EngagementEvent, gone) == 3
    done = admin.post(f"/admin/people/{gone.employee_id}/erase",
                      data={"csrf_token": admin.csrf, "confirm": gone.employee_id})
    assert done.status_code == 302
    db.expire_all()
    for table in (EngagementEvent, Rating, PostState, Preference, TimingState, OutboxMessage, Digest, AuthSession):
        assert _count(db, table, gone) == 0, table.__name__
        assert _count(db, table, stays) >= (0 if table is AuthSession else 1), table.__name__
    erased = db.get(Employee, gone.id)
    assert (erased.display_name, erased.email, erased.department, erased.active) == ("Former employee", None, None,
                                                                                      False)
    assert erased.employee_id.startswith("erased-")
    assert gone_client.get("/me/data.json").status_code == 302  # signed out: to the sign-in page


def test_erasing_needs_an_admin_and_never_oneself(client_for, make_employee, db):
    """Comms managers get 403; an admin cannot erase themselves."""
    target = make_employee()
    comms = client_for(make_employee(is_comms=True))
    assert comms.get(f"/admin/people/{target.employee_id}/erase").status_code == 403
    assert comms.post(f"/admin/people/{target.employee_id}/erase",
                      data={"csrf_token": comms.csrf, "confirm": target.employee_id}).status_code == 403
    me = make_employee(is_admin=True)
    admin = client_for(me)
    assert admin.post(f"/admin/people/{me.employee_id}/erase",
                      data={"csrf_token": admin.csrf, "confirm": me.employee_id}).status_code == 403
    db.expire_all()
    assert db.get(Employee, target.id).active and db.get(Employee, me.id).active


def test_events_older_than_the_retention_period_are_deleted_by_the_job(app, make_employee, make_post, db, clock):
    """The events-purge job deletes events that happened more than 13 months ago, in batches, and keeps the rest."""
    person, post = make_employee(), make_post()
    # 2025-09-20: a month wholly before the cutoff's, so gone on SQLite and PostgreSQL alike (whose
    # partitions go by whole months: tests/test_event_partitions.py).
    _history(db, person, post, days_ago=430, tag="old")
    _history(db, person, post, days_ago=380, tag="recent")  # less than 13 months (from 2026-11-24: 2025-10-24)
    job = next(j for j in jobs.periodic_job_definitions() if j.id == "events-purge")
    assert jobs.run_once(app, job) == 3
    db.expire_all()
    left = db.execute(select(EngagementEvent.occurred_at)).scalars().all()
    assert len(left) == 3 and min(left) > NOW - dt.timedelta(days=396)
    assert jobs.run_once(app, job) == 0


def test_retention_is_counted_in_calendar_months():
    """13 months before 2026-11-24 is 2025-10-24; month ends clamp (31 March minus one month is 28 February)."""
    assert retention.months_before(NOW, 13) == NOW.replace(year=2025, month=10)
    assert retention.months_before(dt.datetime(2027, 3, 31, tzinfo=dt.timezone.utc), 1).date() == dt.date(2027, 2, 28)


def test_purge_deletes_in_committed_batches(app, make_employee, make_post, db):
    """Several small batches delete everything that expired."""
    person, post = make_employee(), make_post()
    for i in range(4):
        _history(db, person, post, days_ago=500 + i, tag=f"b{i}")
    state = app.extensions["intranet"]
    assert retention.purge(state.sessions, NOW, 13, batch=5) == 12
    db.expire_all()
    assert db.execute(select(func.count()).select_from(EngagementEvent)).scalar() == 0


def run(app, *args, **kwargs):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=["intranet", *args], catch_exceptions=False, **kwargs)


def test_cli_exports_erases_and_purges(app, make_employee, make_post, db):
    """people export prints the JSON; people erase asks first (or takes --yes); events purge reports its count."""
    person, post = make_employee(display_name="Cli Person"), make_post()
    _give_a_person_data(db, person, post)
    exported = run(app, "people", "export", person.employee_id)
    assert exported.exit_code == 0 and json.loads(exported.output)["profile"]["display_name"] == "Cli Person"
    assert run(app, "people", "export", "nobody").exit_code == 1
    declined = run(app, "people", "erase", person.employee_id, input="n\n")
    assert declined.exit_code == 1 and _count(db, EngagementEvent, person) == 3
    erased = run(app, "people", "erase", person.employee_id, "--yes")
    assert erased.exit_code == 0 and "3 events" in erased.output
    db.expire_all()
    assert _count(db, EngagementEvent, person) == 0 and db.get(Employee, person.id).display_name == "Former employee"
    other = make_employee()
    _history(db, other, post, days_ago=800, tag="ancient")
    purged = run(app, "events", "purge")
    assert purged.exit_code == 0 and "Deleted 3 events" in purged.output


def test_erasure_keeps_the_aggregates_and_they_stay_k_anonymous(client_for, make_employee, make_post, db):
    """Erasing two readers (one whose read still waits in the live queue) leaves the post's counts as they
    were: every read counted, the small Legal group still hidden, and nothing left that names them."""
    org = organisation(make_employee, make_post, db)
    post = org["post"]
    late = make_employee(department="Sales", region="EMEA", level=3)
    result = events.ingest(db, late, [{"id": "late-1", "kind": "open", "post_id": post.id,
                                       "occurred_at": (NOW - dt.timedelta(minutes=5)).isoformat()}], now=NOW)
    assert result.accepted == 1
    db.commit()
    admin = client_for(make_employee(is_admin=True, department="IT"))

    def counts() -> tuple[list[tuple[str, str]], list[str]]:
        funnel = admin.get(f"/analytics/posts/{post.id}/charts/funnel.csv").get_data(as_text=True)
        by = admin.get(f"/analytics/posts/{post.id}/charts/by-department.csv").get_data(as_text=True)
        rows = [tuple(line.split(",")[:2]) for line in funnel.splitlines()[1:]]
        return [r for r in rows if r[0] != "Audience"], [line.split(",")[0] for line in by.splitlines()[1:]]

    for person in (late, org["big"][0]):
        admin.post(f"/admin/people/{person.employee_id}/erase",
                   data={"csrf_token": admin.csrf, "confirm": person.employee_id})
    db.expire_all()
    assert _count(db, EngagementEvent, late) == 0 and _count(db, AnalyticsPostPerson, late) == 0
    assert counts() == ([("Reached", "14"), ("Read", "9")], ["Sales"])
