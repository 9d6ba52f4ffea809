"""Every API v1 response keeps its recorded shape: the same keys, each with the same JSON type.

The shapes are a contract with clients (and with ``shared/contract/check.py``), so they are
recorded in ``tests/data/api_shapes.json`` and compared key by key. A deliberate change to a
shape re-records the file: ``BEACON_RECORD_SHAPES=1 pytest tests/test_api_shapes.py``, and the
diff of that file is the change clients will see.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import os
from pathlib import Path
import re
from typing import Any, NamedTuple

import pytest

from intranet import api_keys
from intranet.models import Digest, OutboxMessage

SHAPES = Path(__file__).parent / "data" / "api_shapes.json"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def shape(value: Any) -> Any:
    """The JSON type of *value*: objects by key, arrays by the shapes their items take."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        kinds = []
        for item in map(shape, value):
            if item not in kinds:
                kinds.append(item)
        return ["array", *kinds]
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string"}[type(value)]


def test_shape_tells_types_and_keys_apart():
    """The comparison sees a renamed key, a changed type and a new kind of item."""
    assert shape({"a": 1, "b": [True, None]}) == {"a": "integer", "b": ["array", "boolean", "null"]}
    assert shape({"a": 1}) != shape({"a": "1"}) and shape({"a": 1}) != shape({"b": 1})
    assert shape([1.5]) != shape([1])


class Answer(NamedTuple):
    method: str
    path: str
    status: int
    body: Any


@pytest.fixture
def responses(db, make_employee, make_group, make_post, client_for, clock) -> dict[str, Answer]:
    """Each API operation, called once on a small organisation, answered as {name: Answer}."""
    comms = make_employee(employee_id="E100", display_name="Carla Comms", department="Comms", is_comms=True,
                          is_admin=True, level=6)
    writer = make_employee(employee_id="E200", display_name="Walt Writer", department="Sales", is_contributor=True)
    reader = make_employee(employee_id="E300", display_name="Rita Reader", department="Sales", region="AMER",
                           level=2)
    make_employee(employee_id="E400", department="Finance", region=None, level=None)
    make_group("sales-team", kind="managed", members=(reader, writer))
    make_group("runners", members=(reader,))
    must = make_post({"segments": [{"departments": ["Sales"]}]}, title="Must read", must_read=True,
                     ack_deadline=clock.now + dt.timedelta(days=2), expires_at=clock.now + dt.timedelta(days=30))
    plain = make_post(title="For everyone", published_at=clock.now - dt.timedelta(days=2))
    digest = Digest(employee_pk=reader.id, local_date=clock.now.date(), ordinal=0, due_at=clock.now,
                    expires_at=clock.now + dt.timedelta(days=1), timezone="Europe/Berlin", local_hour=9,
                    status="queued")
    db.add(digest)
    db.flush()
    db.add(OutboxMessage(digest_id=digest.id, employee_pk=reader.id, channel="in_app", status="sent",
                         next_attempt_at=clock.now, expires_at=clock.now + dt.timedelta(days=1),
                         message_id="m1", post_ids=[must.id, plain.id], sent_at=clock.now))
    db.commit()

    out: dict[str, Answer] = {}

    def call(name: str, client: Any, method: str, url: str, body: Any = None, **kwargs: Any) -> Any:
        response = client.api(method, "/api/v1" + url, json=body, **kwargs)
        out[name] = Answer(method, url, response.status_code, response.get_json(silent=True))
        return out[name].body

    boss, author, person = client_for(comms), client_for(writer), client_for(reader)
    call("me", boss, "GET", "/me")
    call("latest digest", person, "GET", "/me/digests/latest")
    call("latest digest, none yet", author, "GET", "/me/digests/latest")
    call("feed", person, "GET", "/feed")
    call("post", person, "GET", f"/posts/{must.id}")
    call("read", person, "POST", f"/posts/{plain.id}/read")
    call("acknowledge", person, "POST", f"/posts/{must.id}/acknowledge")
    call("post, read and acknowledged", person, "GET", f"/posts/{must.id}")
    call("rating saved", person, "PUT", f"/posts/{plain.id}/rating", {"stars": 4, "comment": "Useful", "signed": True})
    inbox = call("feedback inbox", boss, "GET", "/feedback")
    feedback_id = inbox["items"][0]["id"]
    call("feedback replied", boss, "POST", f"/feedback/{feedback_id}/replies", {"body": "Thanks!"})
    call("feedback", boss, "GET", f"/feedback/{feedback_id}")
    call("feedback answered", boss, "POST", f"/feedback/{feedback_id}/answered")
    call("my feedback", person, "GET", "/me/feedback")
    call("my feedback seen", person, "POST", "/me/feedback/seen")
    call("post reception", boss, "GET", f"/posts/{plain.id}/reception")
    call("rating replaced", person, "PUT", f"/posts/{plain.id}/rating", {"stars": 5})
    call("post with my rating", person, "GET", f"/posts/{plain.id}")
    call("rating withdrawn", person, "DELETE", f"/posts/{plain.id}/rating")
    call("error: rating of the wrong style", person, "PUT", f"/posts/{plain.id}/rating", {"thumb": "up"})
    call("audience preview", author, "POST", "/audiences/preview",
         {"audience": {"segments": [{"departments": ["Sales", "Finance"]}], "exclude": [{"level_max": 1}]}})
    call("groups", person, "GET", "/groups")
    call("search", person, "GET", "/search", query_string={"q": "everyone"})
    call("group created", boss, "POST", "/groups", {"key": "choir", "name": "Choir", "kind": "open"})
    call("group joined", person, "POST", "/groups/choir/join")
    call("group left", person, "POST", "/groups/choir/leave")
    call("group members set", boss, "PUT", "/groups/sales-team/members", {"employee_ids": ["E200", "E300"]})
    draft = call("post created", author, "POST", "/posts", {
        "title": "Quarterly results", "summary": "How we did", "body_html": "<p>Up <b>12%</b></p>",
        "topic": "Finance", "must_read": True, "ack_deadline": (clock.now + dt.timedelta(days=3)).isoformat(),
        "audience": {"segments": [{"departments": ["Sales"], "level_min": 2}]}})
    post_id = draft["id"]
    call("post updated", author, "PATCH", f"/posts/{post_id}", {"summary": "How we did this quarter"})
    call("attachment stored", author, "POST", f"/posts/{post_id}/attachments",
         data={"file": (io.BytesIO(PNG), "chart.png")}, content_type="multipart/form-data")
    call("submitted", author, "POST", f"/posts/{post_id}/submit", {"comment": "Ready"})
    call("changes requested", boss, "POST", f"/posts/{post_id}/request-changes", {"comment": "Add a chart"})
    call("resubmitted", author, "POST", f"/posts/{post_id}/submit")
    call("approved", boss, "POST", f"/posts/{post_id}/approve",
         {"publish_at": (clock.now + dt.timedelta(hours=2)).isoformat()})
    call("published", boss, "POST", f"/posts/{post_id}/publish")
    call("edited after publishing", boss, "PATCH", f"/posts/{post_id}", {"title": "Quarterly results (final)"})
    call("version saved", boss, "PUT", f"/posts/{post_id}/versions/es",
         {"title": "Resultados trimestrales", "summary": "Cómo nos fue", "body_html": "<p>Arriba</p>"})
    call("error: version in an unknown language", boss, "PUT", f"/posts/{post_id}/versions/de", {"title": "Q"})
    call("version removed", boss, "DELETE", f"/posts/{post_id}/versions/es")
    call("managed post", boss, "GET", f"/manage/posts/{post_id}")
    call("managed posts", boss, "GET", "/manage/posts", query_string={"limit": 1})
    call("unpublished", boss, "POST", f"/posts/{post_id}/unpublish", {"comment": "Superseded"})
    call("deleted after publishing", boss, "DELETE", f"/posts/{post_id}")
    other = call("another draft", author, "POST", "/posts", {"title": "Short note", "audience": {"all": True}})
    attachment = call("attachment for removal", author, "POST", f"/posts/{other['id']}/attachments",
                      data={"file": (io.BytesIO(b"minutes"), "notes.txt")}, content_type="multipart/form-data")
    call("attachment removed", author, "DELETE", f"/posts/{other['id']}/attachments/{attachment['id']}")
    call("draft deleted", author, "DELETE", f"/posts/{other['id']}")
    call("events", person, "POST", "/events", {"events": [
        {"id": "ev-1", "post_id": plain.id, "kind": "open", "occurred_at": clock.now.isoformat()},
        {"id": "ev-1", "post_id": plain.id, "kind": "open", "occurred_at": clock.now.isoformat()},
        {"id": "ev-2", "post_id": plain.id, "kind": "no-such-kind", "occurred_at": clock.now.isoformat()}]})
    call("preferences", person, "GET", "/me/preferences")
    call("preferences saved", person, "PUT", "/me/preferences",
         {"cadence": "weekly", "weekly_day": 1, "followed_topics": ["Finance"], "channels": ["email", "in_app"]})
    call("digest schedule", person, "GET", "/me/digest-schedule")
    call("org defaults", boss, "GET", "/org/digest-defaults")
    call("org defaults saved", boss, "PUT", "/org/digest-defaults", {"quiet_start": 21})
    call("post analytics", boss, "GET", f"/analytics/posts/{must.id}")
    call("reading hours", boss, "GET", "/analytics/reading-hours", query_string={"zone": "UTC"})
    call("embed feed", person, "GET", "/embed/feed")
    call("error: embed token refused", client_for(None), "POST", "/embed/session",
         headers={"Authorization": "Bearer e30.e30.c2ln"})
    call("error: not found", person, "GET", "/posts/999999")
    call("error: invalid", author, "POST", "/posts", {"title": ""})
    call("error: forbidden", person, "POST", "/groups", {"key": "x", "name": "X"})
    call("error: not signed in", client_for(None), "GET", "/feed")
    keys = api_keys.ApiKeyCreate(name="Portal", scopes=["feed:read", "analytics:read"])
    key, key_text = api_keys.create(db, keys, by=comms, now=clock.now)
    db.commit()
    portal = client_for(None)
    as_reader = {"Authorization": f"Bearer {key_text}", api_keys.ON_BEHALF_HEADER: reader.email}
    call("feed with an API key", portal, "GET", "/feed", headers=as_reader)
    call("reading hours with an API key", portal, "GET", "/analytics/reading-hours",
         headers={"Authorization": f"Bearer {key_text}"})
    call("error: API key without the scope", portal, "POST", "/posts", {"title": "No"}, headers=as_reader)
    call("error: API key naming nobody", portal, "GET", "/me", headers={"Authorization": f"Bearer {key_text}"})
    api_keys.revoke(db, key, by=comms, now=clock.now)
    db.commit()
    call("error: API key revoked", portal, "GET", "/feed", headers=as_reader)
    return out


def test_every_api_response_keeps_its_recorded_shape(responses):
    """Each operation answers with the status and the keys and JSON types recorded for it."""
    shapes = {name: [answer.status, shape(answer.body)] for name, answer in responses.items()}
    if os.environ.get("BEACON_RECORD_SHAPES"):
        SHAPES.write_text(json.dumps(shapes, indent=1, sort_keys=True) + "\n")
    recorded = json.loads(SHAPES.read_text())
    assert sorted(shapes) == sorted(recorded)
    for name, expected in recorded.items():
        assert shapes[name] == expected, name


def test_every_api_response_fits_its_documented_schema(app, responses):
    """Each answer validates against the schema /api/v1/openapi.json gives for its operation and status."""
    jsonschema_rs = pytest.importorskip("jsonschema_rs", reason="installed with schemathesis (`make install`)")
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    templates = {re.compile(re.sub(r"{\w+}", "[^/]+", path) + "$"): path for path in doc["paths"]}
    for name, answer in responses.items():
        path = next(p for pattern, p in templates.items() if pattern.match(answer.path.split("?")[0]))
        documented = doc["paths"][path][answer.method.lower()]["responses"]
        assert str(answer.status) in documented, name
        schema = documented[str(answer.status)].get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            assert answer.body is None, name
            continue
        validator = jsonschema_rs.Draft202012Validator({**schema, "components": doc["components"]})
        assert [e.message for e in validator.iter_errors(answer.body)] == [], name
