"""Digest preferences: defaults, personal choices, organisation defaults, refused fields, the page."""
from __future__ import annotations

import datetime as dt


def test_new_person_gets_the_documented_defaults(client_for, make_employee):
    """Once a day, Monday to Friday, email and in-app, quiet 20:00-07:00, learned timing on."""
    body = client_for(make_employee()).get("/api/v1/me/preferences").get_json()
    assert body["cadence"] == "daily"
    assert body["working_days"] == [0, 1, 2, 3, 4]
    assert body["channels"] == ["email", "in_app"]
    assert (body["quiet_start"], body["quiet_end"]) == (20, 7)
    assert body["learned_timing"] is True
    assert body["chosen"] == []


def test_put_changes_only_the_given_fields(client_for, make_employee):
    """A PUT sets the fields it names; null restores the default."""
    client = client_for(make_employee())
    r = client.api("PUT", "/api/v1/me/preferences", {"cadence": "weekly", "weekly_day": 4, "muted_topics": ["Events"]})
    assert r.status_code == 200, r.get_data(as_text=True)
    body = client.get("/api/v1/me/preferences").get_json()
    assert (body["cadence"], body["weekly_day"], body["muted_topics"]) == ("weekly", 4, ["Events"])
    assert body["channels"] == ["email", "in_app"]
    client.api("PUT", "/api/v1/me/preferences", {"cadence": None})
    assert client.get("/api/v1/me/preferences").get_json()["cadence"] == "daily"


def test_mass_assignment_is_refused(client_for, make_employee, db):
    """Fields that are not preferences (ids, roles) are a 422, and nothing changes."""
    person = make_employee()
    client = client_for(person)
    for body in ({"employee_pk": 1, "cadence": "off"}, {"is_admin": True}, {"updated_at": "2020-01-01T00:00:00Z"}):
        r = client.api("PUT", "/api/v1/me/preferences", body)
        assert r.status_code == 422
    db.refresh(person)
    assert not person.is_admin
    assert client.get("/api/v1/me/preferences").get_json()["cadence"] == "daily"


def test_invalid_values_are_422(client_for, make_employee):
    """Bad cadences, hours, days and contradictory topics are refused with details."""
    client = client_for(make_employee())
    for body in ({"cadence": "hourly"}, {"quiet_start": 24}, {"working_days": [7]}, {"working_days": []},
                 {"followed_topics": ["News"], "muted_topics": ["News"]}, {"channels": ["fax"]}):
        r = client.api("PUT", "/api/v1/me/preferences", body)
        assert r.status_code == 422, body
        assert r.get_json()["error"]["code"] == "invalid"


def test_org_defaults_reach_people_who_did_not_choose(client_for, make_employee):
    """A comms manager's new default applies to everyone except those who chose for themselves."""
    comms = client_for(make_employee(is_comms=True))
    chooser = client_for(make_employee())
    follower = client_for(make_employee())
    chooser.api("PUT", "/api/v1/me/preferences", {"cadence": "daily"})
    r = comms.api("PUT", "/api/v1/org/digest-defaults", {"cadence": "twice_daily", "quiet_start": 21})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert follower.get("/api/v1/me/preferences").get_json()["cadence"] == "twice_daily"
    assert chooser.get("/api/v1/me/preferences").get_json()["cadence"] == "daily"
    assert chooser.get("/api/v1/me/preferences").get_json()["quiet_start"] == 21


def test_only_comms_change_org_defaults(client_for, make_employee):
    """An employee cannot change the organisation's defaults."""
    r = client_for(make_employee()).api("PUT", "/api/v1/org/digest-defaults", {"cadence": "off"})
    assert r.status_code == 403


def test_preferences_page_saves_the_form(client_for, make_employee):
    """The page shows the schedule's explanation and saves choices (only what differs from defaults)."""
    client = client_for(make_employee())
    page = client.get("/preferences")
    assert page.status_code == 200
    assert "Your digest" in page.get_data(as_text=True)
    form = {"csrf_token": client.csrf, "cadence": "twice_daily", "weekly_day": "0", "channels": ["email", "in_app"],
            "quiet_start": "20", "quiet_end": "7", "working_days": ["0", "1", "2", "3", "4"],
            "followed_topics": "", "muted_topics": "Events, Products", "learned_timing": "on", "device": "phone",
            "open_tracking": "on"}
    r = client.post("/preferences", data=form)
    assert r.status_code == 302
    body = client.get("/api/v1/me/preferences").get_json()
    assert body["cadence"] == "twice_daily"
    assert body["muted_topics"] == ["Events", "Products"]
    assert body["device"] == "phone"
    assert set(body["chosen"]) == {"cadence", "muted_topics", "device"}


def test_digest_schedule_says_when_and_why(client_for, make_employee):
    """The schedule lists upcoming sends in the person's zone with a reason."""
    client = client_for(make_employee(timezone="America/New_York"))
    body = client.get("/api/v1/me/digest-schedule").get_json()
    assert body["timezone"] == "America/New_York"
    assert body["cadence"] == "daily"
    assert body["next_sends"] and all(7 <= s["local_hour"] < 20 for s in body["next_sends"])
    assert body["why"]
    client.api("PUT", "/api/v1/me/preferences", {"cadence": "off"})
    body = client.get("/api/v1/me/digest-schedule").get_json()
    assert body["next_sends"] == [] and body["basis"] is None
    assert "turned the digest off" in body["why"]


def _form(client, **changes):  # type: ignore[no-untyped-def]
    form = {"csrf_token": client.csrf, "cadence": "daily", "weekly_day": "0", "channels": ["email", "in_app"],
            "quiet_start": "20", "quiet_end": "7", "working_days": ["0", "1", "2", "3", "4"],
            "followed_topics": "", "muted_topics": "", "learned_timing": "on", "device": "either",
            "open_tracking": "on"}
    form.update(changes)
    return form


def test_saving_with_no_channel_is_refused_with_a_reason(client_for, make_employee):
    """No channel ticked for a digest: a 422 that explains why (must-reads still come), nothing saved."""
    client = client_for(make_employee())
    r = client.post("/preferences", data=_form(client, channels=[], muted_topics="Events"))
    page = r.get_data(as_text=True)
    assert r.status_code == 422
    assert "at least one place for your digest" in page and "must-reads still reach you in Beacon" in page
    assert "saved" not in page
    body = client.get("/api/v1/me/preferences").get_json()
    assert body["channels"] == ["email", "in_app"] and body["muted_topics"] == []


def test_no_channel_is_fine_when_the_digest_is_off(client_for, make_employee):
    """Someone who wants no digest may untick every channel; the page promises no send time."""
    client = client_for(make_employee())
    r = client.post("/preferences", data=_form(client, cadence="off", channels=[]))
    assert r.status_code == 302
    body = client.get("/api/v1/me/digest-schedule").get_json()
    assert body["channels"] == [] and body["next_sends"] == []


def test_api_refuses_a_digest_with_nowhere_to_go(client_for, make_employee):
    """PUT channels [] with a digest cadence, or a cadence on while channels are empty, is a 422."""
    client = client_for(make_employee())
    r = client.api("PUT", "/api/v1/me/preferences", {"channels": []})
    assert r.status_code == 422 and "must-reads still reach you" in r.get_json()["error"]["message"]
    assert client.api("PUT", "/api/v1/me/preferences", {"cadence": "off", "channels": []}).status_code == 200
    assert client.api("PUT", "/api/v1/me/preferences", {"cadence": "weekly"}).status_code == 422
    assert client.get("/api/v1/me/preferences").get_json()["cadence"] == "off"


def test_org_defaults_need_a_channel_too(client_for, make_employee):
    """The organisation's default cannot leave everyone's digest with no channel."""
    comms = client_for(make_employee(is_comms=True))
    assert comms.api("PUT", "/api/v1/org/digest-defaults", {"channels": []}).status_code == 422


# --- the person's own time zone ------------------------------------------------------------------


def test_person_picks_their_own_time_zone(client_for, make_employee, make_post, clock, db):
    """Choosing Asia/Tokyo moves every time Beacon shows them (and their digest) to Tokyo."""
    me = make_employee(timezone="Europe/Berlin")
    client = client_for(me)
    page = client.get("/preferences").get_data(as_text=True)
    assert '<option value="" selected>As the company directory says (Europe/Berlin)</option>' in page
    assert client.post("/preferences", data=_form(client, timezone="Asia/Tokyo")).status_code == 302
    db.refresh(me)
    assert me.timezone == "Asia/Tokyo"
    assert 'value="Asia/Tokyo" selected' in client.get("/preferences").get_data(as_text=True)
    post = make_post(published_at=clock.now - dt.timedelta(hours=2))  # 07:00 UTC = 16:00 in Tokyo
    assert ">24 Nov 2026, 16:00</time>" in client.get(f"/posts/{post.id}").get_data(as_text=True)
    assert client.get("/api/v1/me/digest-schedule").get_json()["timezone"] == "Asia/Tokyo"


def test_own_time_zone_refuses_what_people_cannot_choose(client_for, make_employee, db):
    """`localtime` is refused with a reason and nothing is saved."""
    me = make_employee(timezone="Europe/Berlin")
    client = client_for(me)
    response = client.post("/preferences", data=_form(client, timezone="localtime", muted_topics="Events"))
    assert response.status_code == 422
    assert "“localtime” is not a time zone you can choose" in response.get_data(as_text=True)
    db.refresh(me)
    assert me.timezone == "Europe/Berlin"
    assert client.get("/api/v1/me/preferences").get_json()["muted_topics"] == []


def test_directory_syncs_keep_a_chosen_zone(client_for, make_employee, database, clock, db):
    """The directory gives the HQ office's zone; the person chose Tokyo: two later syncs keep Tokyo, until they hand it back."""
    from tests.directory_support import employees, hr_csv, make_sync, person

    sync = make_sync(database, clock)
    assert sync.run_hr(hr_csv([person("E1")]), file_name="workers_2026-11-24.csv").status == "succeeded"
    me = employees(db)["E1"]
    assert me.timezone == "America/New_York"  # config/directory.toml: office HQ
    client = client_for(me)
    client.post("/preferences", data=_form(client, timezone="Asia/Tokyo"))
    for n, dept in ((25, "Sales"), (26, "Legal")):
        clock.advance(days=1)
        outcome = sync.run_hr(hr_csv([person("E1", dept=dept)]), file_name=f"workers_2026-11-{n}.csv")
        assert outcome.status == "succeeded"
        assert (employees(db)["E1"].department, employees(db)["E1"].timezone) == (dept, "Asia/Tokyo")
    client = client_for(employees(db)["E1"])  # signed in again: two days idle ended the session
    client.post("/preferences", data=_form(client, timezone=""))  # "as the company directory says"
    clock.advance(days=1)
    sync.run_hr(hr_csv([person("E1", dept="Legal", level="L4")]), file_name="workers_2026-11-27.csv")
    assert employees(db)["E1"].timezone == "America/New_York"
