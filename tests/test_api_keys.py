"""API keys: scoped, stored hashed, shown once, revocable at once, rate-limited, never logged."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import select

from intranet import api_keys
from intranet.models import ApiKey, Employee

ALL = list(api_keys.SCOPES)
ON_BEHALF = api_keys.ON_BEHALF_HEADER

#: Which scope opens which operation to API keys (None: people signed in to Beacon only). Written
#: out, so that opening an endpoint to keys is a visible change of this table.
EXPECTED_SCOPES = {
    ("get", "/me"): "feed:read",
    ("get", "/feed"): "feed:read",
    ("get", "/search"): "feed:read",
    ("get", "/posts/{post_id}"): "feed:read",
    ("post", "/audiences/preview"): "posts:publish",
    ("post", "/posts"): "posts:publish",
    ("patch", "/posts/{post_id}"): "posts:publish",
    ("delete", "/posts/{post_id}"): "posts:publish",
    ("post", "/posts/{post_id}/submit"): "posts:publish",
    ("post", "/posts/{post_id}/approve"): "posts:publish",
    ("post", "/posts/{post_id}/request-changes"): "posts:publish",
    ("post", "/posts/{post_id}/publish"): "posts:publish",
    ("post", "/posts/{post_id}/unpublish"): "posts:publish",
    ("get", "/manage/posts"): "posts:publish",
    ("get", "/manage/posts/{post_id}"): "posts:publish",
    ("post", "/posts/{post_id}/attachments"): "posts:publish",
    ("delete", "/posts/{post_id}/attachments/{attachment_id}"): "posts:publish",
    ("put", "/posts/{post_id}/versions/{language}"): "posts:publish",
    ("delete", "/posts/{post_id}/versions/{language}"): "posts:publish",
    ("get", "/analytics/posts/{post_id}"): "analytics:read",
    ("get", "/analytics/reading-hours"): "analytics:read",
}


@pytest.fixture
def make_key(app, db, make_employee, clock):  # type: ignore[no-untyped-def]
    """Create (and commit) an API key through the service; returns (row, the key's text)."""
    creator: list[Employee] = []

    def make(*scopes: str, name: str = "Integration", expires_at: dt.datetime | None = None) -> tuple[ApiKey, str]:
        if not creator:
            creator.append(make_employee(display_name="Ada Admin", is_admin=True))
        data = api_keys.ApiKeyCreate(name=name, scopes=list(scopes or ALL), expires_at=expires_at)
        key, secret = api_keys.create(db, data, by=creator[0], now=clock.now)
        db.commit()
        return key, secret

    return make


def bearer(key_text: str, employee: Employee | str | None = None, **headers: str) -> dict[str, str]:
    out = {"Authorization": f"Bearer {key_text}", **headers}
    if employee is not None:
        out[ON_BEHALF] = employee if isinstance(employee, str) else employee.email
    return out


def fresh(db, key: ApiKey) -> ApiKey:  # type: ignore[no-untyped-def]
    db.expire_all()
    return db.get(ApiKey, key.id)


def run(app, *args: str):  # type: ignore[no-untyped-def]
    """``flask intranet ARGS`` through Click's runner (``.stdout`` and ``.stderr`` apart)."""
    return app.test_cli_runner().invoke(args=["intranet", *args])


# ------------------------------------------------------------------------------------------------
# Storage: hashed, shown once
# ------------------------------------------------------------------------------------------------


def test_the_database_holds_only_the_prefix_and_the_hash_of_the_secret(db, make_key, database):
    """No column of the key's row holds the secret or the key; the stored hash is SHA-256 of the secret."""
    key, key_text = make_key("feed:read")
    prefix, secret = re.fullmatch(r"bcn_([0-9a-f]{12})_(.{43})", key_text).groups()  # type: ignore[union-attr]
    assert key.prefix == prefix
    assert key.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    with database.connect() as conn:
        rows = conn.execute(text("SELECT * FROM intranet_api_key")).all()
    stored = " ".join(str(v) for row in rows for v in row)
    assert secret not in stored and key_text not in stored and secret[:16] not in stored


def test_each_key_is_different_and_high_entropy(make_key):
    """Two keys share neither prefix nor secret; the secret carries 256 random bits."""
    (_, one), (_, two) = make_key("feed:read"), make_key("feed:read")
    assert one != two and one.split("_")[1] != two.split("_")[1]
    assert len(one.split("_", 2)[2]) == 43  # base64url of 32 bytes


def test_the_key_is_shown_once_on_the_admin_page(app, client_for, make_employee, db):
    """The POST that creates a key shows it; the page never shows it again (only its prefix)."""
    admin = make_employee(is_admin=True)
    client = client_for(admin)
    created = client.post("/admin/api-keys", data={"name": "CMS sync", "scopes": ["posts:publish", "feed:read"],
                                                   "csrf_token": client.csrf})
    assert created.status_code == 200
    key_text = re.search(r'value="(bcn_[^"]+)"', created.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    assert "shown this once" in created.get_data(as_text=True)
    again = client.get("/admin/api-keys").get_data(as_text=True)
    key = db.exec(select(ApiKey)).one()
    assert key_text not in again and key_text.split("_", 2)[2] not in again
    assert f"bcn_{key.prefix}_" in again and "CMS sync" in again
    assert key.scopes == "feed:read posts:publish" and key.created_by_pk == admin.id


def test_the_key_works_as_created_on_the_admin_page(app, client_for, make_employee, make_post):
    """The key the page shows is accepted by the API at once."""
    admin = make_employee(is_admin=True)
    make_post(title="Hello")
    client = client_for(admin)
    page = client.post("/admin/api-keys", data={"name": "Portal", "scopes": ["feed:read"],
                                                "csrf_token": client.csrf}).get_data(as_text=True)
    key_text = re.search(r'value="(bcn_[^"]+)"', page).group(1)  # type: ignore[union-attr]
    answer = app.test_client().get("/api/v1/feed", headers=bearer(key_text, admin))
    assert answer.status_code == 200 and [i["title"] for i in answer.get_json()["items"]] == ["Hello"]


# ------------------------------------------------------------------------------------------------
# Scopes
# ------------------------------------------------------------------------------------------------


def test_openapi_declares_the_bearer_scheme_and_each_operations_scope(app):
    """The document has the bearer scheme; each operation open to keys lists its scope, the rest only the session."""
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    assert doc["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    found = {}
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            if op.get("security") == []:
                continue
            scope = op.get("x-beacon-scope")
            found[(method, path)] = scope
            if scope is None:
                assert op.get("security", doc["security"]) == [{"session": []}], (method, path)
            else:
                assert op["security"] == [{"session": []}, {"apiKey": [scope]}], (method, path)
                assert "429" in op["responses"] and "Retry-After" in op["responses"]["429"]["headers"]
                named = any(p["name"] == ON_BEHALF for p in op.get("parameters", ()))
                assert named == api_keys.SCOPES[scope].on_behalf, (method, path)
    assert {k: v for k, v in found.items() if v} == EXPECTED_SCOPES


def _operations(app) -> list[tuple[str, str, str | None]]:  # type: ignore[no-untyped-def]
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    return [(method, path, op.get("x-beacon-scope")) for path, methods in sorted(doc["paths"].items())
            for method, op in sorted(methods.items()) if op.get("security") != []]


@pytest.mark.parametrize("held", ALL)
def test_scope_matrix_each_scope_opens_its_endpoints_and_no_others(app, make_key, make_employee, make_post,
                                                                   make_group, held):
    """With a key holding one scope, every operation of that scope gets past authentication and
    authorization, and every other operation is a 403 naming the scope it needs."""
    boss = make_employee(is_admin=True, is_comms=True, department="Comms")
    post = make_post(title="Everyone")
    make_group("team", kind="managed", members=(boss,))
    _, key_text = make_key(held)
    client = app.test_client()
    for method, path, scope in _operations(app):
        url = "/api/v1" + path.replace("{post_id}", str(post.id)).replace("{attachment_id}", "1") \
            .replace("{key}", "team").replace("{feedback_id}", "1").replace("{language}", "es")
        answer = client.open(url, method=method.upper(), headers=bearer(key_text, boss), json={})
        body = answer.get_json(silent=True) or {}
        code = body.get("error", {}).get("code")
        if scope == held:
            assert answer.status_code not in (401, 403, 429), (method, path, answer.status_code, body)
        else:
            assert (answer.status_code, code) == (403, "insufficient_scope"), (method, path, answer.status_code)
            assert body["error"]["details"] == {"needed_scope": scope}
            assert "insufficient_scope" in answer.headers["WWW-Authenticate"]


def test_a_key_with_every_scope_still_cannot_call_person_only_endpoints(app, make_key, make_employee):
    """Rating, acknowledging, groups and preferences are for people signed in; a key gets 403."""
    person = make_employee()
    _, key_text = make_key(*ALL)
    answer = app.test_client().get("/api/v1/me/preferences", headers=bearer(key_text, person))
    assert answer.status_code == 403 and answer.get_json()["error"]["code"] == "insufficient_scope"


# ------------------------------------------------------------------------------------------------
# feed:read acts for the named employee, and sees only what is theirs
# ------------------------------------------------------------------------------------------------


def test_feed_read_sees_only_what_is_targeted_at_the_named_employee(app, make_key, make_employee, make_post,
                                                                    client_for):
    """The same feed as the person's own, through the same service: a Sales post stays out of Finance's."""
    sales, finance = make_employee(department="Sales"), make_employee(department="Finance")
    everyone = make_post(title="Everyone")
    sales_only = make_post({"segments": [{"departments": ["Sales"]}]}, title="Sales only")
    _, key_text = make_key("feed:read")
    client = app.test_client()

    def titles(person: Employee) -> list[str]:
        return sorted(i["title"] for i in client.get("/api/v1/feed", headers=bearer(key_text, person)).get_json()["items"])

    assert titles(sales) == ["Everyone", "Sales only"]
    assert titles(finance) == ["Everyone"]
    own = client_for(finance).get("/api/v1/feed").get_json()["items"]
    assert sorted(i["title"] for i in own) == titles(finance)
    assert client.get(f"/api/v1/posts/{sales_only.id}", headers=bearer(key_text, finance)).status_code == 404
    assert client.get(f"/api/v1/posts/{everyone.id}", headers=bearer(key_text, finance)).status_code == 200
    me = client.get("/api/v1/me", headers=bearer(key_text, finance.employee_id)).get_json()
    assert me["employee_id"] == finance.employee_id


@pytest.mark.parametrize("named", ["", "nobody@example.test", "NO-SUCH-ID", "inactive"])
def test_feed_read_must_name_an_active_employee(app, make_key, make_employee, named):
    """Naming nobody, an unknown person or a deactivated one is a 422 about the header."""
    gone = make_employee(active=False, email="gone@example.test")
    _, key_text = make_key("feed:read")
    headers = bearer(key_text)
    if named:
        headers[ON_BEHALF] = gone.email if named == "inactive" else named
    answer = app.test_client().get("/api/v1/feed", headers=headers)
    assert answer.status_code == 422 and answer.get_json()["error"]["details"] == {"header": ON_BEHALF}


def test_the_named_employee_is_found_by_email_in_any_case(app, make_key, make_employee):
    person = make_employee(email="Mixed.Case@Example.test")
    _, key_text = make_key("feed:read")
    answer = app.test_client().get("/api/v1/me", headers=bearer(key_text, "mixed.case@example.TEST"))
    assert answer.status_code == 200 and answer.get_json()["employee_id"] == person.employee_id


# ------------------------------------------------------------------------------------------------
# posts:publish goes through the publishing rules, with the named person's roles
# ------------------------------------------------------------------------------------------------


def test_posts_publish_drafts_as_a_contributor_and_publishes_only_as_a_comms_manager(app, make_key, make_employee,
                                                                                     db):
    """A contributor's draft is theirs and they cannot publish it; a comms manager can."""
    writer = make_employee(is_contributor=True)
    comms = make_employee(is_comms=True)
    _, key_text = make_key("posts:publish")
    client = app.test_client()
    draft = client.post("/api/v1/posts", headers=bearer(key_text, writer),
                        json={"title": "Launch", "body_html": "<p>Hi<script>x()</script></p>", "audience": {"all": True}})
    assert draft.status_code == 201, draft.get_json()
    body = draft.get_json()
    assert body["status"] == "draft" and body["author"]["employee_id"] == writer.employee_id
    post_id = body["id"]
    refused = client.post(f"/api/v1/posts/{post_id}/publish", headers=bearer(key_text, writer), json={})
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
    published = client.post(f"/api/v1/posts/{post_id}/publish", headers=bearer(key_text, comms), json={})
    assert published.status_code == 200 and published.get_json()["status"] == "published"
    invalid = client.post("/api/v1/posts", headers=bearer(key_text, comms), json={"title": ""})
    assert invalid.status_code == 422


def test_a_key_request_needs_no_csrf_token_but_a_cookie_request_still_does(app, make_key, make_employee, client_for):
    """CSRF protects cookies; a key request carries no cookie identity, so it needs no token."""
    comms = make_employee(is_comms=True)
    _, key_text = make_key("posts:publish")
    with_key = app.test_client().post("/api/v1/posts", headers=bearer(key_text, comms), json={"title": "By key"})
    assert with_key.status_code == 201
    cookie = client_for(comms)
    without_token = cookie.post("/api/v1/posts", json={"title": "By cookie"})
    assert without_token.status_code == 400 and without_token.get_json()["error"]["code"] == "csrf"


def test_a_cookie_sent_with_a_key_lends_the_request_nothing(app, make_key, make_employee, client_for):
    """A bad key with a valid admin session cookie is a 401: the cookie is not a fallback."""
    admin = make_employee(is_admin=True, is_comms=True)
    client = client_for(admin)
    assert client.api("GET", "/api/v1/analytics/reading-hours").status_code == 200
    answer = client.api("GET", "/api/v1/analytics/reading-hours", headers={"Authorization": "Bearer nonsense"})
    assert answer.status_code == 401
    _, feed_key = make_key("feed:read")
    answer = client.api("GET", "/api/v1/analytics/reading-hours", headers=bearer(feed_key, admin))
    assert answer.status_code == 403


# ------------------------------------------------------------------------------------------------
# analytics:read acts for nobody
# ------------------------------------------------------------------------------------------------


def test_analytics_read_answers_without_naming_anyone(app, make_key, make_post):
    """Aggregates only: no person is named, and the answer is the same privacy-guarded one."""
    post = make_post()
    _, key_text = make_key("analytics:read")
    client = app.test_client()
    hours = client.get("/api/v1/analytics/reading-hours?zone=UTC", headers=bearer(key_text))
    assert hours.status_code == 200 and hours.headers["Cache-Control"] == "no-store"
    assert client.get(f"/api/v1/analytics/posts/{post.id}", headers=bearer(key_text)).status_code == 200


# ------------------------------------------------------------------------------------------------
# Refusals: 401 with a clear JSON error
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["basic", "empty", "malformed", "unknown prefix", "wrong secret", "revoked",
                                  "expired"])
def test_refused_keys_are_401_with_a_clear_json_error(app, db, make_key, make_employee, clock, case):
    """Each way a key can be wrong is a 401 whose error says which, with WWW-Authenticate."""
    person = make_employee()
    key, key_text = make_key("feed:read", expires_at=clock.now + dt.timedelta(days=1))
    prefix = key_text[: len("bcn_") + 12]
    sent, reason = {
        "basic": ("Basic dXNlcjpwYXNz", "malformed"),
        "empty": ("Bearer ", "malformed"),
        "malformed": ("Bearer sk-not-ours", "malformed"),
        "unknown prefix": (f"Bearer bcn_{'0' * 12}_{key_text[-43:]}", "unknown"),
        "wrong secret": (f"Bearer {prefix}_{'A' * 43}", "unknown"),
        "revoked": (f"Bearer {key_text}", "revoked"),
        "expired": (f"Bearer {key_text}", "expired"),
    }[case]
    if case == "revoked":
        api_keys.revoke(db, key, by=None, now=clock.now)
        db.commit()
    if case == "expired":
        clock.advance(days=1)
    answer = app.test_client().get("/api/v1/feed", headers={"Authorization": sent, ON_BEHALF: person.email})
    assert answer.status_code == 401
    error = answer.get_json()["error"]
    assert error["code"] == "invalid_api_key" and error["details"] == {"reason": reason} and error["message"]
    assert answer.headers["WWW-Authenticate"].startswith("Bearer ")


def test_expiry_is_checked_on_every_request(app, make_key, make_employee, clock):
    """A key works until its expiry instant and not from then on."""
    person = make_employee()
    _, key_text = make_key("feed:read", expires_at=clock.now + dt.timedelta(hours=1))
    client = app.test_client()
    clock.advance(minutes=59)
    assert client.get("/api/v1/feed", headers=bearer(key_text, person)).status_code == 200
    clock.advance(minutes=1)
    assert client.get("/api/v1/feed", headers=bearer(key_text, person)).status_code == 401


def test_an_expiry_in_the_past_is_refused_at_creation(db, make_employee, clock):
    data = api_keys.ApiKeyCreate(name="Late", scopes=["feed:read"], expires_at=clock.now)
    with pytest.raises(api_keys.InvalidInput):
        api_keys.create(db, data, by=None, now=clock.now)


def test_revoking_on_one_instance_refuses_the_key_on_another_at_once(make_app, db, make_key, make_employee,
                                                                     client_for, app):
    """Two instances share the database and nothing else: a revocation on one holds on the other's next request."""
    admin = make_employee(is_admin=True)
    key, key_text = make_key("feed:read")
    other = make_app().test_client()
    assert other.get("/api/v1/feed", headers=bearer(key_text, admin)).status_code == 200
    console = client_for(admin)
    answer = console.post(f"/admin/api-keys/{key.id}/revoke", data={"csrf_token": console.csrf})
    assert answer.status_code in (302, 303)
    refused = other.get("/api/v1/feed", headers=bearer(key_text, admin))
    assert refused.status_code == 401 and refused.get_json()["error"]["details"] == {"reason": "revoked"}
    row = fresh(db, key)
    assert row.revoked_at is not None and row.revoked_by_pk == admin.id


# ------------------------------------------------------------------------------------------------
# Last used, rate limit, logs
# ------------------------------------------------------------------------------------------------


def test_last_used_is_written_at_most_once_a_minute(app, db, make_key, make_employee, clock):
    """The first use records the time; uses within the next minute leave it; a later one moves it."""
    person = make_employee()
    key, key_text = make_key("feed:read")
    client = app.test_client()
    assert fresh(db, key).last_used_at is None
    first = clock.now
    client.get("/api/v1/me", headers=bearer(key_text, person))
    assert fresh(db, key).last_used_at == first
    clock.advance(seconds=59)
    client.get("/api/v1/me", headers=bearer(key_text, person))
    assert fresh(db, key).last_used_at == first
    clock.advance(seconds=1)
    client.get("/api/v1/me", headers=bearer(key_text, person))
    assert fresh(db, key).last_used_at == clock.now


def test_touch_writes_once_when_two_instances_race(db, make_key, clock):
    """Two instances holding the same stale row: only one of their updates writes."""
    key, _ = make_key("feed:read")
    from intranet.db import session_factory

    with session_factory(db.get_bind())() as one, session_factory(db.get_bind())() as two:
        a, b = one.get(ApiKey, key.id), two.get(ApiKey, key.id)
        assert api_keys.touch(one, a, now=clock.now) is True
        one.commit()
        assert api_keys.touch(two, b, now=clock.now) is False
        two.commit()


@pytest.mark.settings(INTRANET_API_KEY_REQUESTS_PER_MINUTE=2)
def test_each_key_is_rate_limited_across_instances(make_app, app, make_key, make_employee, clock, caplog):
    """Two requests a minute per key, counted in the database: the third, on another instance, is a 429
    with Retry-After, logged as a security event naming the key's prefix but never the key."""
    person = make_employee()
    key, key_text = make_key("feed:read")
    _, other_key = make_key("feed:read")
    clock.now = clock.now.replace(second=30, microsecond=0)
    one, two = app.test_client(), make_app(INTRANET_API_KEY_REQUESTS_PER_MINUTE=2).test_client()
    assert one.get("/api/v1/me", headers=bearer(key_text, person)).status_code == 200
    assert two.get("/api/v1/me", headers=bearer(key_text, person)).status_code == 200
    with caplog.at_level(logging.WARNING, logger="intranet.security"):
        limited = two.get("/api/v1/me", headers=bearer(key_text, person))
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "30"
    assert limited.get_json()["error"]["code"] == "too_many_requests"
    assert one.get("/api/v1/me", headers=bearer(other_key, person)).status_code == 200  # per key
    events = [r.security_event for r in caplog.records if hasattr(r, "security_event")]
    assert [(e["event"], e["api_key"], e["status"]) for e in events] == [("rate_limited", key.prefix, 429)]
    clock.advance(seconds=30)
    assert one.get("/api/v1/me", headers=bearer(key_text, person)).status_code == 200


def test_refused_keys_are_security_events_without_the_key(app, make_key, make_employee, db, clock, caplog):
    """A revoked key's use is logged with its public prefix and the reason; its secret appears nowhere."""
    person = make_employee()
    key, key_text = make_key("feed:read")
    api_keys.revoke(db, key, by=None, now=clock.now)
    db.commit()
    with caplog.at_level(logging.DEBUG):
        app.test_client().get("/api/v1/feed", headers=bearer(key_text, person))
    events = [r.security_event for r in caplog.records if hasattr(r, "security_event")]
    assert [(e["event"], e["reason"], e["api_key"]) for e in events] == [("api_key_rejected", "revoked", key.prefix)]
    assert key_text.split("_", 2)[2] not in caplog.text


def test_a_key_never_reaches_the_logs(app, make_employee, make_post, caplog):
    """Created on the command line, used, refused for scope, revoked, used again: no log line holds the secret."""
    admin = make_employee(is_admin=True, email="admin@example.test")
    make_post()
    with caplog.at_level(logging.DEBUG):
        created = run(app, "api-keys", "create", "--name", "Portal", "--scope", "feed:read", "--by", admin.email)
        key_text = created.stdout.strip()
        client = app.test_client()
        assert client.get("/api/v1/feed", headers=bearer(key_text, admin)).status_code == 200
        assert client.get("/api/v1/analytics/reading-hours", headers=bearer(key_text)).status_code == 403
        assert client.get("/api/v1/feed", headers=bearer(key_text + "x", admin)).status_code == 401
        assert run(app, "api-keys", "revoke", key_text.split("_")[1]).exit_code == 0
        assert client.get("/api/v1/feed", headers=bearer(key_text, admin)).status_code == 401
    secret = key_text.split("_", 2)[2]
    assert caplog.records
    for record in caplog.records:
        assert secret not in record.getMessage(), record.name
        assert secret not in json.dumps(getattr(record, "security_event", {}))


# ------------------------------------------------------------------------------------------------
# Only admins manage keys
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["employee", "contributor", "comms"])
def test_only_admins_reach_the_api_keys_page(app, make_employee, make_key, client_for, role, db):
    """Everyone but admins gets a 403 from the page, the create form and the revoke button."""
    person = make_employee(is_contributor=role == "contributor", is_comms=role == "comms")
    key, _ = make_key("feed:read")
    client = client_for(person)
    assert client.get("/admin/api-keys").status_code == 403
    assert client.post("/admin/api-keys", data={"name": "Mine", "scopes": ["feed:read"],
                                                "csrf_token": client.csrf}).status_code == 403
    assert client.post(f"/admin/api-keys/{key.id}/revoke", data={"csrf_token": client.csrf}).status_code == 403
    assert len(db.exec(select(ApiKey)).all()) == 1 and fresh(db, key).revoked_at is None


def test_admins_find_api_keys_in_the_navigation(make_employee, client_for):
    admin, comms = make_employee(is_admin=True), make_employee(is_comms=True)
    assert "/admin/api-keys" in client_for(admin).get("/").get_data(as_text=True)
    assert "/admin/api-keys" not in client_for(comms).get("/").get_data(as_text=True)


def test_the_admin_page_refuses_a_key_without_scopes_or_name(app, make_employee, client_for, db):
    admin = make_employee(is_admin=True)
    client = client_for(admin)
    no_scope = client.post("/admin/api-keys", data={"name": "X", "csrf_token": client.csrf})
    assert no_scope.status_code == 422 and "scopes" in no_scope.get_data(as_text=True)
    no_name = client.post("/admin/api-keys", data={"name": "  ", "scopes": ["feed:read"], "csrf_token": client.csrf})
    assert no_name.status_code == 422
    past = client.post("/admin/api-keys", data={"name": "Old", "scopes": ["feed:read"], "expires": "2020-01-01",
                                                "csrf_token": client.csrf})
    assert past.status_code == 422 and "future" in past.get_data(as_text=True)
    assert db.exec(select(ApiKey)).all() == []


def test_the_admin_page_lists_keys_with_their_life(app, make_employee, make_key, client_for, clock):
    """Name, prefix, scopes, creator, last use, expiry and status, revoked ones included."""
    admin = make_employee(is_admin=True, display_name="Ada Admin")
    active, _ = make_key("feed:read", "analytics:read", name="Portal", expires_at=clock.now + dt.timedelta(days=30))
    gone, _ = make_key("posts:publish", name="Old CMS")
    client = client_for(admin)
    client.post(f"/admin/api-keys/{gone.id}/revoke", data={"csrf_token": client.csrf})
    page = client.get("/admin/api-keys").get_data(as_text=True)
    assert "Portal" in page and f"bcn_{active.prefix}_" in page and "analytics:read" in page
    assert "Ada Admin" in page and "2026-12-24 09:00 UTC" in page and "never" in page
    assert "revoked" in page and page.count(">Revoke<") == 1


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------


def test_cli_creates_a_key_and_prints_it_once_on_stdout(app, db, make_employee, make_post):
    """`api-keys create` prints only the key on stdout; it works; `list` never shows it."""
    admin = make_employee(is_admin=True)
    make_post()
    result = run(app, "api-keys", "create", "--name", "BI", "--scope", "analytics:read", "--scope", "feed:read",
                 "--expires-in-days", "30", "--by", admin.email)
    assert result.exit_code == 0, result.output
    key_text = result.stdout.strip()
    assert re.fullmatch(r"bcn_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", key_text)
    key = db.exec(select(ApiKey)).one()
    assert key.scopes == "feed:read analytics:read" and key.created_by_pk == admin.id and key.expires_at
    assert app.test_client().get("/api/v1/analytics/reading-hours", headers=bearer(key_text)).status_code == 200
    listed = run(app, "api-keys", "list")
    assert listed.exit_code == 0 and key.prefix in listed.stdout and "BI" in listed.stdout
    assert key_text not in listed.stdout and key_text.split("_", 2)[2] not in listed.output
    as_json = json.loads(run(app, "api-keys", "list", "--json").stdout)
    assert as_json[0]["prefix"] == key.prefix and as_json[0]["status"] == "active"
    assert as_json[0]["last_used_at"] is not None


def test_cli_revokes_by_id_or_prefix(app, db, make_key):
    key, key_text = make_key("feed:read")
    other, _ = make_key("feed:read")
    assert run(app, "api-keys", "revoke", str(key.id)).exit_code == 0
    result = run(app, "api-keys", "revoke", other.prefix)
    assert result.exit_code == 0 and "Revoked" in result.stdout
    assert fresh(db, key).revoked_at is not None and fresh(db, other).revoked_at is not None
    again = run(app, "api-keys", "revoke", other.prefix)
    assert again.exit_code == 0 and "already revoked" in again.stdout
    missing = run(app, "api-keys", "revoke", "ffffffffffff")
    assert missing.exit_code == 1
    listed = json.loads(run(app, "api-keys", "list", "--json").stdout)
    assert {k["status"] for k in listed} == {"revoked"}


def test_cli_records_keys_only_against_admins(app, db, make_employee):
    """`--by` must name an active admin; an unknown scope is refused by the option itself."""
    comms = make_employee(is_comms=True)
    refused = run(app, "api-keys", "create", "--name", "X", "--scope", "feed:read", "--by", comms.email)
    assert refused.exit_code == 1 and "not an active admin" in refused.stderr
    bad_scope = run(app, "api-keys", "create", "--name", "X", "--scope", "everything")
    assert bad_scope.exit_code == 2
    assert db.exec(select(ApiKey)).all() == []


def test_a_key_in_any_log_message_is_redacted_to_its_prefix():
    """Should a key ever reach a message (a client's error pasted into a log), only its prefix is written."""
    from intranet.web.request_log import redact

    key_text = "bcn_0123456789ab_" + "Zz9-_" * 8 + "abc"
    assert redact(f"client sent {key_text} twice") == "client sent bcn_0123456789ab_[redacted] twice"
    assert "Zz9" not in redact(f"Authorization: Bearer {key_text}")
