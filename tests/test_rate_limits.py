"""Rate limits shared by every instance (Flask-Limiter on Redis): sign-in, reading events, audience
previews; a 429 with Retry-After and a security event; open, per process, when Redis is down."""
from __future__ import annotations

import datetime as dt
import json
import logging
import uuid

import pytest

from intranet.settings import Settings
from tests.redis_support import REDIS_URL, reachable_redis

#: Nothing listens on port 1: Redis "dies" at once.
DEAD_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def shared_redis():  # type: ignore[no-untyped-def]
    """Settings for an app counting in the local Redis under a key prefix of this test's own (parallel
    runs never share counts); the prefix's keys are deleted afterwards."""
    client = reachable_redis()
    prefix = f"beacon-test-{uuid.uuid4().hex}"
    yield {"INTRANET_RATELIMIT_STORAGE_URI": REDIS_URL, "INTRANET_RATELIMIT_KEY_PREFIX": prefix}
    keys = list(client.scan_iter(f"*{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def _batch(n: int, now: dt.datetime) -> dict:  # type: ignore[type-arg]
    return {"events": [{"id": f"{uuid.uuid4().hex}", "kind": "session", "post_id": None,
                        "occurred_at": now.isoformat()} for _ in range(n)]}


def _security_events(caplog: pytest.LogCaptureFixture) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "intranet.security"]


def test_event_limit_is_shared_by_two_instances_through_redis(make_app, make_employee, shared_redis, clock, caplog):
    """Two instances on one Redis share a person's budget: the 4th batch in the minute, on either, is a
    429 with Retry-After and a security event; a colleague still has a full budget."""
    limits = {**shared_redis, "INTRANET_RATELIMIT_EVENTS": "3/minute"}
    one, two = make_app(**limits), make_app(**limits)
    from tests.conftest import SignedInClient  # the conftest's client (not a test module)

    person, colleague = make_employee(), make_employee()
    here, there = SignedInClient(one, person), SignedInClient(two, person)
    assert here.api("POST", "/api/v1/events", _batch(1, clock.now)).status_code == 200
    assert there.api("POST", "/api/v1/events", _batch(1, clock.now)).status_code == 200
    assert here.api("POST", "/api/v1/events", _batch(1, clock.now)).status_code == 200
    with caplog.at_level(logging.WARNING, logger="intranet.security"):
        refused = there.api("POST", "/api/v1/events", _batch(1, clock.now), headers={"X-Request-ID": "req-429"})
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.get_json()["error"]["code"] == "too_many_requests"
    [event] = _security_events(caplog)
    assert event["event"] == "rate_limited" and event["request_id"] == "req-429"
    assert event["path"] == "/api/v1/events" and "@" not in json.dumps(event)
    assert SignedInClient(one, colleague).api("POST", "/api/v1/events", _batch(1, clock.now)).status_code == 200


def test_memory_storage_counts_per_instance(make_app, make_employee, clock):
    """memory:// (single process) does not share: the reason production names Redis."""
    limits = {"INTRANET_RATELIMIT_STORAGE_URI": "memory://", "INTRANET_RATELIMIT_EVENTS": "1/minute"}
    one, two = make_app(**limits), make_app(**limits)
    from tests.conftest import SignedInClient

    person = make_employee()
    assert SignedInClient(one, person).api("POST", "/api/v1/events", _batch(1, clock.now)).status_code == 200
    assert SignedInClient(two, person).api("POST", "/api/v1/events", _batch(1, clock.now)).status_code == 200


def test_sign_in_is_limited_per_address_across_instances(make_app, make_employee, shared_redis, caplog):
    """The development sign-in from one address: the 3rd attempt in a minute, on any instance, is a 429 page."""
    limits = {**shared_redis, "INTRANET_RATELIMIT_SIGN_IN": "2/minute"}
    person = make_employee()
    answers = []
    for app in (make_app(**limits), make_app(**limits), make_app(**limits)):
        client = app.test_client()
        page = client.get("/auth/dev-login").get_data(as_text=True)
        token = page.split('name="csrf-token" content="')[1].split('"')[0]
        with caplog.at_level(logging.WARNING, logger="intranet.security"):
            answers.append(client.post("/auth/dev-login", data={"email": person.email, "csrf_token": token},
                                       headers={"Referer": "https://localhost/"}))
    assert [a.status_code for a in answers[:2]] == [302, 302]
    assert answers[2].status_code == 429 and "Retry-After" in answers[2].headers
    assert b"Too many requests" in answers[2].data  # Beacon's page, not Flask-Limiter's
    assert [e["event"] for e in _security_events(caplog)] == ["rate_limited"]


def test_audience_preview_is_limited_per_person(make_app, make_employee, shared_redis):
    """The third preview in a minute is refused; previews stay counted per person."""
    from tests.conftest import SignedInClient

    app = make_app(**shared_redis, INTRANET_RATELIMIT_AUDIENCE_PREVIEW="2/minute")
    author = make_employee(is_comms=True)
    client = SignedInClient(app, author)
    body = {"audience": {"segments": [{"departments": ["Sales"]}]}}
    statuses = [client.api("POST", "/api/v1/audiences/preview", body).status_code for _ in range(3)]
    assert statuses[:2] != [429, 429] and statuses[2] == 429


def test_when_redis_is_down_limits_fail_open_per_process(make_app, make_employee, clock, caplog):
    """A dead Redis refuses nobody outright: requests go through, counted in this process instead
    (so the limit still holds per worker), and the fallback is logged."""
    from tests.conftest import SignedInClient

    app = make_app(INTRANET_RATELIMIT_STORAGE_URI=DEAD_REDIS, INTRANET_RATELIMIT_EVENTS="2/minute")
    client = SignedInClient(app, make_employee())
    with caplog.at_level(logging.WARNING):
        statuses = [client.api("POST", "/api/v1/events", _batch(1, clock.now)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert "falling back to in-memory storage" in caplog.text


def test_a_rate_that_cannot_be_read_stops_the_start():
    """INTRANET_RATELIMIT_* must be a rate such as '30/minute'."""
    from intranet.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="INTRANET_RATELIMIT_EVENTS"):
        Settings.from_config({"INTRANET_RATELIMIT_EVENTS": "lots"})


def test_each_request_is_checked_once(make_app, make_employee, clock):
    """A limited view's request is looked at by the limiter once (its view's limit), and a request to a
    view without a limit not at all: no second, app-wide pass over every request."""
    from tests.conftest import SignedInClient

    app = make_app()
    checks: list[str | None] = []

    @app.extensions["intranet"].extras["limiter"].request_filter
    def count() -> bool:
        from flask import request

        checks.append(request.endpoint)
        return False

    client = SignedInClient(app, make_employee())
    checks.clear()  # the sign-in's own (limited) requests
    assert client.api("POST", "/api/v1/events", _batch(3, clock.now)).status_code == 200
    assert checks == ["intranet_delivery_api.post_events"]
    checks.clear()
    assert client.client.get("/api/v1/feed").status_code == 200
    assert checks == []
