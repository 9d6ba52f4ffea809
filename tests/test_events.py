"""Reading events: the batch API (duplicates, refusals, CSRF in the body) and the CSV import."""
from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import func, select

from intranet.models import EngagementEvent

IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


def event(eid: str, post_id: int | None, kind: str = "read", at: dt.datetime | None = None, **extra):  # type: ignore[no-untyped-def]
    return {"id": eid, "post_id": post_id, "kind": kind,
            "occurred_at": (at or dt.datetime(2026, 11, 24, 8, 59, tzinfo=dt.timezone.utc)).isoformat(),
            "dwell_ms": 1200, **extra}


def stored(db) -> list[EngagementEvent]:  # type: ignore[no-untyped-def]
    db.expire_all()
    return list(db.exec(select(EngagementEvent).order_by(EngagementEvent.id)).scalars())


def test_batch_is_accepted_and_stored_with_local_time(client_for, make_employee, make_post, db):
    """Accepted events are stored in UTC with the reader's local hour and weekday."""
    person = make_employee(timezone="Asia/Tokyo")
    post = make_post()
    r = client_for(person).api("POST", "/api/v1/events", {"events": [event("a1", post.id), event("a2", None, "session")]})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    rows = stored(db)
    assert [(e.client_id, e.local_hour, e.local_weekday) for e in rows] == [("a1", 17, 1), ("a2", 17, 1)]
    assert rows[0].occurred_at == dt.datetime(2026, 11, 24, 8, 59, tzinfo=dt.timezone.utc)


def test_duplicates_are_counted_not_stored(client_for, make_employee, make_post, db):
    """A retried batch (same client ids) and repeats inside a batch are duplicates."""
    person = make_employee()
    post = make_post()
    client = client_for(person)
    batch = {"events": [event("x1", post.id), event("x1", post.id), event("x2", post.id, "open")]}
    assert client.api("POST", "/api/v1/events", batch).get_json() == {"accepted": 2, "duplicates": 1, "rejected": []}
    assert client.api("POST", "/api/v1/events", batch).get_json() == {"accepted": 0, "duplicates": 3, "rejected": []}
    assert len(stored(db)) == 2


def test_same_client_id_from_two_people_is_two_events(client_for, make_employee, make_post, db):
    """Client ids are unique per employee, not globally."""
    post = make_post()
    for person in (make_employee(), make_employee()):
        assert client_for(person).api("POST", "/api/v1/events", {"events": [event("same", post.id)]}).get_json()["accepted"] == 1
    assert len(stored(db)) == 2


def test_untargeted_and_missing_posts_are_refused_alike(client_for, make_employee, make_post, db):
    """An event about a post the person may not see gets the same code as one about no post at all."""
    person = make_employee(department="Sales")
    hidden = make_post({"segments": [{"departments": ["Finance"]}]})
    r = client_for(person).api("POST", "/api/v1/events", {"events": [event("h", hidden.id), event("m", 999999)]})
    body = r.get_json()
    assert body["accepted"] == 0
    assert sorted(body["rejected"], key=lambda x: x["id"]) == [{"id": "h", "code": "not_found"},
                                                               {"id": "m", "code": "not_found"}]
    assert stored(db) == []


def test_far_future_and_far_past_are_refused(client_for, make_employee, make_post, clock):
    """Timestamps beyond the allowed skew or age are out of range; the rest of the batch is stored."""
    person = make_employee()
    post = make_post()
    batch = [event("future", post.id, at=clock.now + dt.timedelta(hours=2)),
             event("past", post.id, at=clock.now - dt.timedelta(days=30)),
             event("ok", post.id, at=clock.now - dt.timedelta(hours=1))]
    body = client_for(person).api("POST", "/api/v1/events", {"events": batch}).get_json()
    assert body["accepted"] == 1
    assert {(x["id"], x["code"]) for x in body["rejected"]} == {("future", "out_of_range"), ("past", "out_of_range")}


def test_malformed_events_are_invalid(client_for, make_employee, make_post):
    """Unknown kinds, server-only kinds, missing post ids and naive timestamps are invalid."""
    person = make_employee()
    post = make_post()
    batch = [event("k", post.id, kind="explode"), event("s", None, kind="digest_sent"), event("p", None, kind="read"),
             {"id": "n", "post_id": post.id, "kind": "read", "occurred_at": "2026-11-24T08:00:00"},
             {"id": "d", "post_id": post.id, "kind": "read", "occurred_at": "2026-11-24T08:00:00Z", "dwell_ms": -5},
             "not an object"]
    body = client_for(person).api("POST", "/api/v1/events", {"events": batch}).get_json()
    assert body["accepted"] == 0
    assert {x["code"] for x in body["rejected"]} == {"invalid"}
    assert len(body["rejected"]) == 6


def test_numbers_and_names_must_have_their_json_type(client_for, make_employee, make_post):
    """true, 3.0 and "3" are not post ids or durations; a session event names no post; an empty surface is invalid."""
    person = make_employee()
    post = make_post()
    batch = [event("b", True), event("f", float(post.id)), event("s", str(post.id)),
             {**event("w", post.id), "dwell_ms": 1.0}, {**event("e", post.id), "surface": ""},
             event("n", post.id, kind="session"), event("ok", post.id)]
    body = client_for(person).api("POST", "/api/v1/events", {"events": batch}).get_json()
    assert body["accepted"] == 1
    assert sorted(x["id"] for x in body["rejected"] if x["code"] == "invalid") == ["b", "e", "f", "n", "s", "w"]


def test_csrf_token_in_body_is_accepted_without_header(client_for, make_employee, make_post, db):
    """sendBeacon cannot set headers: the token may come in the body (text/plain is fine)."""
    person = make_employee()
    post = make_post()
    client = client_for(person)
    payload = json.dumps({"csrf_token": client.csrf, "events": [event("b1", post.id)]})
    r = client.post("/api/v1/events", data=payload, content_type="text/plain;charset=UTF-8")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["accepted"] == 1


def test_missing_or_wrong_csrf_token_is_refused(client_for, make_employee, make_post, db):
    """Without a valid token (header or body) nothing is stored."""
    person = make_employee()
    post = make_post()
    client = client_for(person)
    for payload in ({"events": [event("c1", post.id)]}, {"csrf_token": "forged", "events": [event("c2", post.id)]}):
        r = client.post("/api/v1/events", json=payload)
        assert r.status_code == 400
        assert r.get_json()["error"]["code"] == "csrf"
    assert stored(db) == []


def test_cross_origin_beacon_is_refused(client_for, make_employee, make_post):
    """A valid token sent from another site's page is still refused."""
    person = make_employee()
    post = make_post()
    client = client_for(person)
    r = client.api("POST", "/api/v1/events", {"events": [event("o", post.id)]}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 400


def test_signed_out_is_401(client_for, make_post):
    """Nobody signed in: 401, nothing stored."""
    client = client_for(None)
    r = client.api("POST", "/api/v1/events", {"events": [event("z", make_post().id)]})
    assert r.status_code == 401


def test_device_class_comes_from_the_user_agent(client_for, make_employee, make_post, db):
    """The device is derived on the server from the User-Agent, never taken from the client."""
    person = make_employee()
    post = make_post()
    client_for(person).api("POST", "/api/v1/events", {"events": [event("m1", post.id, device="desktop")]},
                           headers={"User-Agent": IPHONE})
    assert stored(db)[0].device == "phone"


def test_oversized_batch_is_422(client_for, make_employee, make_post):
    """More events than the configured batch size is refused as a whole."""
    person = make_employee()
    post = make_post()
    batch = [event(f"e{i}", post.id) for i in range(501)]
    r = client_for(person).api("POST", "/api/v1/events", {"events": batch})
    assert r.status_code == 422


# --------------------------------------------------------------------------------------------
# CSV import
# --------------------------------------------------------------------------------------------


def write_csv(tmp_path, rows: list[str]):  # type: ignore[no-untyped-def]
    path = tmp_path / "events.csv"
    path.write_text("employee_id,post_id,kind,occurred_at,dwell_ms\n" + "\n".join(rows) + "\n")
    return path


def test_import_loads_valid_rows_and_reports_bad_ones_by_line(app, make_employee, make_post, db, tmp_path):
    """Unknown employees and posts are reported with line numbers; valid rows still load."""
    person = make_employee(employee_id="C001", timezone="Europe/Madrid")
    post = make_post()
    path = write_csv(tmp_path, [
        "C001,,digest_sent,2026-11-21T07:00:00+00:00,",
        f"C001,{post.id},read,2026-11-21T10:01:00+01:00,42000",
        "NOPE,,session,2026-11-21T10:00:00+01:00,",
        "C001,424242,read,2026-11-21T10:01:00+01:00,",
        "C001,,session,2026-11-21 10:00:00,",
    ])
    result = app.test_cli_runner().invoke(args=["intranet", "events", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "2 loaded" in result.stdout
    assert "line 4: unknown employee 'NOPE'" in result.stderr
    assert "line 5: unknown post 424242" in result.stderr
    assert "line 6: occurred_at" in result.stderr
    rows = stored(db)
    assert [(r.kind, r.local_hour, r.source) for r in rows] == [("digest_sent", 8, "import"), ("read", 10, "import")]
    assert rows[0].employee_pk == person.id


def test_reimport_is_idempotent(app, make_employee, db, tmp_path):
    """Importing the same file twice loads nothing the second time (same instant, any offset)."""
    make_employee(employee_id="C002")
    path = write_csv(tmp_path, ["C002,,session,2026-11-21T10:00:00+01:00,", "C002,,session,2026-11-21T09:00:00Z,"])
    runner = app.test_cli_runner()
    first = runner.invoke(args=["intranet", "events", "import", str(path)])
    second = runner.invoke(args=["intranet", "events", "import", str(path)])
    assert "1 loaded, 1 already there" in first.stdout
    assert "0 loaded, 2 already there" in second.stdout
    assert db.exec(select(func.count()).select_from(EngagementEvent)).one()[0] == 1


def test_import_refuses_a_wrong_header(app, tmp_path):
    """A file without the documented header is refused as a whole, saying what is missing."""
    path = tmp_path / "bad.csv"
    path.write_text("who,when\nC1,2026-01-01\n")
    result = app.test_cli_runner().invoke(args=["intranet", "events", "import", str(path)])
    assert result.exit_code == 1
    assert "missing: employee_id" in result.stderr
