"""Input at the edges gets a clear 4xx, never a 500: sizes, huge ids, edge dates, deep JSON,
non-numbers, lone surrogates, oversized audiences; and one bad post cannot stop a job for everyone."""
from __future__ import annotations

import datetime as dt
import logging
import re

import pytest
from flask import Flask
from sqlalchemy import select

from intranet import Intranet, migrate, preferences, targeting
from intranet.delivery import alerts
from intranet.models import DigestItem, Post, Preference
from tests.delivery_support import choose

HUGE = 2**63
EDGE_DATES = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00")
DEEP = b"[" * 100_000 + b"]" * 100_000


def security_headers_present(response) -> bool:  # type: ignore[no-untyped-def]
    return "script-src 'self'" in response.headers.get("Content-Security-Policy", "") \
        and response.headers.get("X-Content-Type-Options") == "nosniff"


def api_error(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return response.get_json()["error"]


@pytest.fixture
def comms(make_employee):  # type: ignore[no-untyped-def]
    return make_employee(is_admin=True, is_comms=True, department="Comms")


# --------------------------------------------------------------------------------------------
# Request size
# --------------------------------------------------------------------------------------------


def test_body_over_the_default_cap_is_413_with_beacons_json(client_for, make_employee):
    """A body over INTRANET_MAX_REQUEST_BYTES (16 MB by default) is refused before it is read."""
    client = client_for(make_employee())
    body = b'{"events": [' + b" " * (16 * 1024 * 1024) + b"]}"
    response = client.post("/api/v1/events", data=body, content_type="application/json",
                           headers={"X-CSRFToken": client.csrf})
    error = api_error(response, 413)
    assert error["code"] == "too_large" and "16 MB" in error["message"]
    assert security_headers_present(response)


def test_request_cap_applies_to_beacon_routes_only(tmp_path):
    """A host app's own routes keep the host's limits; Beacon's get INTRANET_MAX_REQUEST_BYTES."""
    app = Flask("host")
    app.config.update(INTRANET_SECRET_KEY="k" * 40, INTRANET_DATABASE_URL=f"sqlite:///{tmp_path / 'b.db'}",
                      INTRANET_MAX_REQUEST_BYTES=1000)

    @app.post("/upload")
    def upload():  # type: ignore[no-untyped-def]
        from flask import request

        return {"size": len(request.get_data())}

    Intranet(app)
    migrate.upgrade(app.extensions["intranet"].engine)
    client = app.test_client()
    assert client.post("/upload", data=b"x" * 5000).get_json() == {"size": 5000}
    # Applied before the CSRF check reads the form, so even a request without a token gets it.
    assert client.post("/auth/dev-login", data={"email": "x" * 5000}).status_code == 413


# --------------------------------------------------------------------------------------------
# Ids of 2^63 and more
# --------------------------------------------------------------------------------------------


def _int_rules(app):  # type: ignore[no-untyped-def]
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("intranet") and "<int:" in rule.rule:
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield method, rule.rule


def test_every_int_path_answers_404_for_ids_past_the_columns(app, client_for, comms):
    """Every <int:...> route of Beacon's, page or API, answers 2^31 (PostgreSQL's integer), 2^63 and
    10^30 with its 404."""
    client = client_for(comms)
    checked = 0
    for method, rule in _int_rules(app):
        for huge in (2**31, HUGE, 10**30):
            url = re.sub(r"<int:\w+>", str(huge), re.sub(r"<(?!int:)[^>]+>", "x", rule))
            response = client.api(method, url, json={})
            assert response.status_code == 404, (method, url, response.status_code)
            assert security_headers_present(response)
            checked += 1
    assert checked >= 60


def test_huge_ids_in_cursors_and_events_are_refused(client_for, make_employee, comms):
    """The feed's and the desk's cursors and an event's post_id past the id columns are refused, not a 500."""
    import base64
    import json

    person = client_for(make_employee())
    cursor = base64.urlsafe_b64encode(json.dumps(
        {"p": 0, "t": "2026-11-24T09:00:00+00:00", "i": HUGE}).encode()).decode().rstrip("=")
    assert api_error(person.get(f"/api/v1/feed?cursor={cursor}"), 422)["details"] == {"field": "cursor"}
    assert client_for(comms).get(f"/api/v1/manage/posts?cursor={HUGE}").status_code == 422
    events = [{"id": f"e{n}", "post_id": n, "kind": "read", "occurred_at": "2026-11-24T08:59:00+00:00"}
              for n in (2**31, HUGE)]
    response = person.api("POST", "/api/v1/events", {"events": events})
    assert response.status_code == 200
    assert response.get_json()["rejected"] == [{"id": f"e{n}", "code": "invalid"} for n in (2**31, HUGE)]


# --------------------------------------------------------------------------------------------
# Dates at the edges of the calendar
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("when", EDGE_DATES)
@pytest.mark.parametrize("field", ["publish_at", "expires_at", "ack_deadline"])
def test_edge_dates_in_post_times_are_422(client_for, comms, field, when):
    """Post times that cannot be converted to UTC (or lie millennia away) are a 422 naming the field."""
    client = client_for(comms)
    base = {"title": "T", "audience": {"all": True}, "must_read": True}
    error = api_error(client.api("POST", "/api/v1/posts", json={**base, field: when}), 422)
    assert field in error["message"]
    post_id = client.api("POST", "/api/v1/posts", json=base).get_json()["id"]
    assert api_error(client.api("PATCH", f"/api/v1/posts/{post_id}", json={field: when}), 422)
    if field == "publish_at":
        for action in ("publish", "approve"):
            assert api_error(client.api("POST", f"/api/v1/posts/{post_id}/{action}", json={field: when}), 422)


@pytest.mark.parametrize("when", EDGE_DATES)
def test_edge_dates_in_events_and_the_feed_cursor_are_refused(client_for, make_employee, when):
    """An event at the edge of the calendar is rejected as invalid; a cursor there is a 422."""
    import base64
    import json

    client = client_for(make_employee())
    response = client.api("POST", "/api/v1/events", {"events": [{"id": "e1", "kind": "session", "occurred_at": when}]})
    assert response.status_code == 200 and response.get_json()["rejected"] == [{"id": "e1", "code": "invalid"}]
    cursor = base64.urlsafe_b64encode(json.dumps({"p": 0, "t": when, "i": 1}).encode()).decode().rstrip("=")
    assert api_error(client.get(f"/api/v1/feed?cursor={cursor}"), 422)["code"] == "invalid"


@pytest.mark.parametrize("when", ["0001-01-01T00:00", "9999-12-31T23:59"])
def test_edge_dates_on_the_desk_form_are_422(client_for, comms, when):
    """The desk's planned time at the edge of the calendar (in a far-east zone) is a 422 page."""
    client = client_for(comms)
    response = client.post("/publish/new", data={"title": "T", "all_staff": "1", "publish_at": when,
                                                 "timezone": "Pacific/Kiritimati", "csrf_token": client.csrf})
    assert response.status_code == 422 and b"publish at" in response.data


# --------------------------------------------------------------------------------------------
# JSON that cannot be read
# --------------------------------------------------------------------------------------------


def _json_operations(app):  # type: ignore[no-untyped-def]
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                yield method.upper(), "/api/v1" + path


def test_deeply_nested_json_is_400_on_every_json_endpoint(app, client_for, comms, make_post):
    """100,000 nested arrays are a 400 on each of the API's JSON endpoints."""
    post = make_post()
    client = client_for(comms)
    operations = list(_json_operations(app))
    assert len(operations) >= 13
    for method, path in operations:
        url = path.replace("{post_id}", str(post.id)).replace("{key}", "nope")
        response = client.api(method, url, data=DEEP, content_type="application/json")
        assert response.status_code in (400, 404), (method, url, response.status_code)
        if "{" not in path or "{post_id}" in path:
            assert api_error(response, 400)["code"] == "malformed", (method, url)


def test_moderately_deep_json_is_400_too(client_for, comms):
    """Nesting past 32 levels, which Python could still parse, is refused the same way."""
    client = client_for(comms)
    body = b'{"audience": ' + b"[" * 40 + b"]" * 40 + b"}"
    response = client.api("POST", "/api/v1/audiences/preview", data=body, content_type="application/json")
    assert "32 levels" in api_error(response, 400)["message"]


def test_lone_surrogates_are_refused_in_events_and_preferences(client_for, make_employee, db):
    r"""A "\ud800" in an event or in followed topics is a 400; a surrogate pair (an emoji) is fine."""
    person = make_employee()
    client = client_for(person)
    event = b'{"events": [{"id": "e1", "kind": "session", "occurred_at": "2026-11-24T08:59:00Z", "surface": "\\ud800"}]}'
    response = client.api("POST", "/api/v1/events", data=event, content_type="text/plain")
    assert "Unicode" in api_error(response, 400)["message"]
    response = client.api("PUT", "/api/v1/me/preferences", data=b'{"followed_topics": ["\\ud800"]}',
                          content_type="application/json")
    assert api_error(response, 400)["code"] == "malformed"
    ok = client.api("PUT", "/api/v1/me/preferences", data=b'{"followed_topics": ["News \\ud83d\\ude80"]}',
                    content_type="application/json")
    assert ok.status_code == 200 and ok.get_json()["followed_topics"] == ["News \U0001f680"]
    assert client.get("/preferences").status_code == 200


def test_nul_characters_are_refused_wherever_text_comes_in(client_for, comms, make_post):
    """A NUL (PostgreSQL text cannot hold one) in JSON, a path, a query or a form is a 400 everywhere."""
    post = make_post()
    client = client_for(comms)
    responses = [
        client.api("POST", "/api/v1/posts", data=b'{"title": "a\\u0000b", "audience": {"all": true}}',
                   content_type="application/json"),
        client.api("POST", "/api/v1/events", json={"events": [{"id": "e1", "kind": "session",
                                                               "occurred_at": "2026-11-24T08:59:00Z",
                                                               "surface": "a\x00"}]}),
        client.api("POST", "/api/v1/groups/a%00b/join"),
        client.get(f"/publish/posts/{post.id}/preview-as?who=a%00"),
        client.get("/api/v1/manage/posts?status=%00"),
        client.post("/publish/new", data={"title": "a\x00b", "all_staff": "1", "csrf_token": client.csrf}),
    ]
    assert [r.status_code for r in responses] == [400] * len(responses)
    assert all(security_headers_present(r) for r in responses)
    assert "NUL" in responses[0].get_json()["error"]["message"]
    # A literal backslash followed by "u0000" is ordinary text.
    ok = client.api("POST", "/api/v1/posts", json={"title": "C:\\u0000", "audience": {"all": True}})
    assert ok.status_code == 201 and ok.get_json()["title"] == "C:\\u0000"


def test_preferences_page_survives_a_stored_lone_surrogate(app, client_for, make_employee, db):
    """Topics stored before surrogates were refused (SQLite kept them) do not break the page."""
    if db.get_bind().dialect.name == "postgresql":
        pytest.skip("PostgreSQL never stored such text")
    person = make_employee()
    db.add(Preference(employee_pk=person.id, followed_topics=["\ud800", "News"]))
    db.commit()
    client = client_for(person)
    page = client.get("/preferences")
    assert page.status_code == 200 and b"News" in page.data
    assert client.get("/api/v1/me/preferences").get_json()["followed_topics"] == ["News"]


# --------------------------------------------------------------------------------------------
# Forms: non-numbers where numbers belong
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field,value", [("weekly_day", "Friday"), ("quiet_start", "8pm"), ("quiet_end", "²"),
                                         ("working_days", "1" * 5000)])
def test_preferences_form_with_non_numbers_is_422(client_for, make_employee, field, value):
    """The preferences form answers a non-number with its page and a message, not a 500."""
    client = client_for(make_employee())
    response = client.post("/preferences", data={"cadence": "daily", "channels": ["email"], field: value,
                                                 "csrf_token": client.csrf})
    assert response.status_code == 422 and b"must be chosen from the list" in response.data


@pytest.mark.parametrize("level", ["²", "1" * 5000, "٣"])
def test_desk_form_with_a_strange_level_is_422(client_for, comms, level):
    """A superscript, non-ASCII or 5,000-digit level is a 422 page naming levels."""
    client = client_for(comms)
    response = client.post("/publish/new", data={"title": "T", "inc-0-level_min": level, "csrf_token": client.csrf})
    assert response.status_code == 422 and b"Levels are whole numbers" in response.data


@pytest.mark.parametrize("index", ["²", "1" * 5000])
def test_desk_form_with_a_strange_segment_number_is_not_a_500(client_for, comms, index):
    """A segment field numbered with a superscript or 5,000 digits is ignored like any unknown field."""
    client = client_for(comms)
    response = client.post("/publish/new", data={"title": "T", f"inc-{index}-departments": "Comms",
                                                 "csrf_token": client.csrf})
    assert response.status_code == 302


# --------------------------------------------------------------------------------------------
# Errors after a failed flush
# --------------------------------------------------------------------------------------------


def _failing_update(session, employee, change, *, now):  # type: ignore[no-untyped-def]
    session.add(Preference(employee_pk=employee.id + 10_000))  # no such employee: the flush fails
    session.flush()


def test_error_after_a_failed_flush_is_beacons_page_with_headers(client_for, make_employee, monkeypatch, caplog):
    """A database error mid-request still gets Beacon's error page and JSON, with security headers."""
    monkeypatch.setattr(preferences, "update", _failing_update)
    client = client_for(make_employee())
    with caplog.at_level(logging.CRITICAL, logger="intranet.web.errors"):
        page = client.post("/preferences", data={"cadence": "weekly", "channels": ["email"], "working_days": ["0", "1"],
                                                 "csrf_token": client.csrf})
        api = client.api("PUT", "/api/v1/me/preferences", json={"cadence": "weekly"})
    assert page.status_code == 500 and b"Something went wrong on our side" in page.data
    assert b"Digest" in page.data  # the navigation: the signed-in person was read after the rollback
    assert api_error(api, 500)["code"] == "internal"
    assert security_headers_present(page) and security_headers_present(api)


# --------------------------------------------------------------------------------------------
# Audience bounds
# --------------------------------------------------------------------------------------------


def test_audience_with_too_many_segments_is_a_clear_422(client_for, comms):
    """51 segments, 201 values in a dimension or 1,001 values in all are each refused with advice."""
    client = client_for(comms)
    cases = [
        ({"segments": [{"level_min": 1}] * 51}, "at most 50 segments"),
        ({"all": True, "exclude": [{"level_min": 1}] * 51}, "at most 50 exclusions"),
        ({"segments": [{"departments": [f"D{i}" for i in range(201)]}]}, "at most 200 departments"),
        ({"segments": [{"offices": [f"O{i}" for i in range(150)]}] * 7}, "at most 1,000 values"),
        ({"segments": [{"groups": ["g" * 256]}]}, "longer than 255"),
    ]
    for audience, phrase in cases:
        for method, url, body in (("POST", "/api/v1/audiences/preview", {"audience": audience}),
                                  ("POST", "/api/v1/posts", {"title": "T", "audience": audience})):
            error = api_error(client.api(method, url, json=body), 422)
            assert phrase in error["message"], (url, error["message"])


def test_desk_form_with_too_many_segments_is_a_clear_422(client_for, comms):
    """The audience builder's form is bounded the same way, and the page says so."""
    client = client_for(comms)
    form = {"title": "T", "csrf_token": client.csrf, **{f"inc-{i}-level_min": "2" for i in range(60)}}
    response = client.post("/publish/new", data=form)
    assert response.status_code == 422 and b"at most 50 segments" in response.data


def _oversized_must_read(db, clock, segments: int = 1100) -> Post:  # type: ignore[no-untyped-def]
    """A published must-read stored before audiences were bounded (validation bypassed)."""
    post = Post(title="Huge audience", summary="", body_html="<p>x</p>", body_text="x", topic="News", must_read=True,
                status="published", publish_at=clock.now - dt.timedelta(minutes=5),
                published_at=clock.now - dt.timedelta(minutes=5))
    db.add(post)
    db.flush()
    raw = {"segments": [{"departments": [f"Dept {i}"]} for i in range(segments)]}
    targeting.store_audience(db, post, targeting.Audience.model_validate(raw))
    db.commit()
    return post


def test_one_unevaluable_post_does_not_stop_the_alerts_scan(app, db, make_employee, make_post, clock, caplog):
    """The scan logs and skips a post whose audience the database cannot evaluate; others go out."""
    reader = make_employee()
    choose(db, reader, cadence="off")
    bad = _oversized_must_read(db, clock)
    good = make_post(title="Policy", must_read=True, published_at=clock.now)
    with caplog.at_level(logging.ERROR, logger="intranet.delivery.alerts"):
        alerts.scan(db, clock.now)
    db.commit()
    assert good.id in {i.post_id for i in db.exec(select(DigestItem)).scalars()}
    if db.get_bind().dialect.name == "sqlite":  # PostgreSQL evaluates even this audience
        assert f"skipped post {bad.id}" in caplog.text


def test_digests_run_carries_on_past_an_unevaluable_post(app, db, config, smtp, make_employee, make_post, clock):
    """`digests run` delivers everyone else's must-read although one stored post cannot be evaluated."""
    reader = make_employee(email="cli@example.com")
    choose(db, reader, cadence="off")
    _oversized_must_read(db, clock)
    make_post(title="Read me", must_read=True, published_at=clock.now)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["intranet", "digests", "run"]).exit_code == 0
    clock.advance(minutes=15)
    result = runner.invoke(args=["intranet", "digests", "run"])
    assert result.exit_code == 0, result.output
    assert smtp.recipients() == ["cli@example.com"]


def test_desk_page_of_an_oversized_stored_audience_still_opens(client_for, comms, db, clock):
    """The desk page of a post stored before the bounds opens (without a headcount)."""
    post = _oversized_must_read(db, clock)
    response = client_for(comms).get(f"/publish/posts/{post.id}")
    assert response.status_code == 200 and b"Huge audience" in response.data



def test_events_nested_exactly_to_the_limit_pass_and_one_more_is_refused(client_for, make_employee):
    """32 levels of JSON are read (an unknown field is simply ignored), 33 are a 400: the depth walk counts exactly."""
    client = client_for(make_employee())

    def body(levels: int) -> bytes:  # {"events": [], "extra": [[...]]}: 1 + (levels - 1) levels
        inner = levels - 1
        return b'{"events": [], "extra": ' + b"[" * inner + b"]" * inner + b"}"

    assert client.api("POST", "/api/v1/events", data=body(32), content_type="application/json").status_code == 200
    response = client.api("POST", "/api/v1/events", data=body(33), content_type="application/json")
    assert "32 levels" in api_error(response, 400)["message"]
