"""The event buffer: accepted events queued in a Redis stream (202), stored and folded by one flusher.

Every test uses the real Redis at 127.0.0.1:6379 under a stream key of its own, on SQLite and PostgreSQL.
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from intranet.engagement import buffer
from intranet.models import AnalyticsPostDay, EngagementEvent
from tests.redis_support import REDIS_URL, reachable_redis

#: Nothing listens on port 1: Redis "dies" at once.
DEAD_REDIS = "redis://127.0.0.1:1/0"
AT = dt.datetime(2026, 11, 24, 8, 59, tzinfo=dt.timezone.utc)


@pytest.fixture
def stream():  # type: ignore[no-untyped-def]
    """A stream key of this test's own (deleted afterwards, with its dead letters) and a client to look at it."""
    client = reachable_redis()
    key = f"beacon-test:events:{uuid.uuid4().hex}"
    yield key, client
    client.delete(key, f"{key}:dead")
    client.close()


@pytest.fixture
def app(make_app, stream, request):  # type: ignore[no-untyped-def]
    """Beacon with its events buffered in the test's stream; ``@pytest.mark.settings`` adds (or overrides) settings."""
    marker = request.node.get_closest_marker("settings")
    return make_app(**{"INTRANET_EVENTS_BUFFER_URL": REDIS_URL, "INTRANET_EVENTS_BUFFER_STREAM": stream[0],
                       **(marker.kwargs if marker else {})})


def event(eid: str, post_id: int | None, kind: str = "read", at: dt.datetime = AT, **extra: Any) -> dict[str, Any]:
    return {"id": eid, "post_id": post_id, "kind": kind, "occurred_at": at.isoformat(), "dwell_ms": 1200, **extra}


def count(db, **where: Any) -> int:  # type: ignore[no-untyped-def]
    db.expire_all()
    query = select(func.count()).select_from(EngagementEvent)
    for name, value in where.items():
        query = query.where(getattr(EngagementEvent, name) == value)
    return db.execute(query).scalar_one()


def reads_folded(db, post_id: int) -> int:  # type: ignore[no-untyped-def]
    db.expire_all()
    return db.execute(select(func.coalesce(func.sum(AnalyticsPostDay.reads), 0))
                      .where(AnalyticsPostDay.post_id == post_id)).scalar_one()


def flush(app: Any) -> str:
    result = app.test_cli_runner().invoke(args=["intranet", "events", "flush"])
    assert result.exit_code == 0, result.output
    return result.output


def test_accepted_events_are_queued_answered_202_and_stored_by_the_flush_command(app, client_for, make_employee,
                                                                                 make_post, db, stream):
    """The request queues its accepted events (202, nothing stored yet); the flusher stores them with local
    times and folds them into the rollups, then empties the stream."""
    person = make_employee(timezone="Asia/Tokyo")
    post = make_post()
    r = client_for(person).api("POST", "/api/v1/events", {"events": [event("a1", post.id), event("a2", None, "session"),
                                                                      event("a3", post.id, "open")]})
    assert r.status_code == 202, r.get_data(as_text=True)
    assert r.get_json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    assert count(db) == 0
    assert stream[1].xlen(stream[0]) == 1
    assert "Stored 3 events from 1 queued batches" in flush(app)
    rows = {e.client_id: e for e in db.execute(select(EngagementEvent)).scalars()}
    assert {(c, e.local_hour, e.local_weekday, e.device, e.source) for c, e in rows.items()} == {
        ("a1", 17, 1, "desktop", "client"), ("a2", 17, 1, "desktop", "client"), ("a3", 17, 1, "desktop", "client")}
    assert rows["a1"].occurred_at == AT and rows["a1"].dwell_ms == 1200
    assert reads_folded(db, post.id) == 2
    assert stream[1].xlen(stream[0]) == 0


# A key prefix of this module's own: its counts (expiring within a minute) never meet another run's.
@pytest.mark.settings(INTRANET_RATELIMIT_STORAGE_URI=REDIS_URL, INTRANET_RATELIMIT_KEY_PREFIX=f"beacon-test-{uuid.uuid4().hex}")
def test_a_queued_batch_costs_two_redis_round_trips(app, client_for, make_employee, make_post, stream, monkeypatch):
    """Production shape (the limits counted in the same Redis): one round trip counts the person's limit, one
    queues the batch (appended and the stream's length read in one command); the posts' visibility, once
    checked, is remembered in the worker."""
    import redis.connection

    client = client_for(make_employee())
    post = make_post()
    assert client.api("POST", "/api/v1/events", {"events": [event("warm", post.id)]}).status_code == 202
    sent: list[Any] = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counted(connection: Any, command: Any, check_health: bool = True) -> Any:
        sent.append(command)
        return original(connection, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    batch = [event(f"r{i}", post.id) for i in range(50)]
    assert client.api("POST", "/api/v1/events", {"events": batch}).status_code == 202
    assert len(sent) == 2
    assert stream[1].xlen(stream[0]) == 2


def test_refusals_are_answered_by_the_request_and_never_queued(app, client_for, make_employee, make_post, db,
                                                               clock):
    """A post the person may not see, a missing post, a time out of range and a malformed event are refused at
    once, exactly as without the buffer; repeats inside the batch are duplicates."""
    person = make_employee(department="Sales")
    visible, hidden = make_post(), make_post({"segments": [{"departments": ["Finance"]}]})
    batch = [event("ok", visible.id), event("ok", visible.id), event("hidden", hidden.id), event("missing", 999999),
             event("future", visible.id, at=clock.now + dt.timedelta(hours=2)), event("bad", visible.id, kind="explode")]
    body = client_for(person).api("POST", "/api/v1/events", {"events": batch}).get_json()
    assert (body["accepted"], body["duplicates"]) == (1, 1)
    assert sorted((x["id"], x["code"]) for x in body["rejected"]) == [
        ("bad", "invalid"), ("future", "out_of_range"), ("hidden", "not_found"), ("missing", "not_found")]
    assert "Stored 1 events" in flush(app)
    assert count(db) == 1


def test_a_batch_with_nothing_accepted_is_answered_200_and_queues_nothing(app, client_for, make_employee, stream):
    """Nothing to store later: the answer is final (200) and the stream stays empty."""
    r = client_for(make_employee()).api("POST", "/api/v1/events", {"events": [event("m", 999999)]})
    assert r.status_code == 200
    assert stream[1].xlen(stream[0]) == 0


def test_retried_and_already_stored_events_are_stored_once(app, make_app, client_for, make_employee, make_post,
                                                          db):
    """A batch sent twice, and an event a direct write stored before, are each stored (and folded) once."""
    from tests.conftest import SignedInClient  # the conftest's client (not a test module)

    person = make_employee()
    post = make_post()
    direct = make_app()
    assert SignedInClient(direct, person).api("POST", "/api/v1/events",
                                              {"events": [event("r0", post.id)]}).status_code == 200
    client = client_for(person)
    batch = {"events": [event("r0", post.id), event("r1", post.id), event("r2", post.id, "impression")]}
    assert client.api("POST", "/api/v1/events", batch).status_code == 202
    assert client.api("POST", "/api/v1/events", batch).status_code == 202
    assert "Stored 2 events from 2 queued batches (4 repeats absorbed" in flush(app)
    assert count(db) == 3
    from intranet.analytics import rollups

    with direct.extensions["intranet"].sessions() as session:
        rollups.fold_pending(session)  # the direct write's queued fold
        session.commit()
    assert reads_folded(db, post.id) == 2


def test_many_batches_are_stored_in_one_bulk_write_per_round(app, client_for, make_employee, make_post, db):
    """Twelve batches of 50 (600 events: COPY on PostgreSQL) are stored and folded by one flush."""
    person = make_employee()
    post = make_post()
    client = client_for(person)
    for b in range(12):
        batch = [event(f"b{b}-{i}", post.id, "read" if i % 2 else "impression") for i in range(50)]
        assert client.api("POST", "/api/v1/events", {"events": batch}).status_code == 202
    assert "Stored 600 events from 12 queued batches" in flush(app)
    assert count(db) == 600
    assert reads_folded(db, post.id) == 300


@pytest.mark.settings(INTRANET_EVENTS_BUFFER_CLAIM_IDLE_SECONDS=0)
def test_a_flusher_that_dies_after_storing_but_before_acknowledging_changes_nothing_when_redelivered(
        app, client_for, make_employee, make_post, db, stream, monkeypatch):
    """The next flusher claims the pending entries; the events it stores again are absorbed: no duplicate
    rows, no count folded twice."""
    person = make_employee()
    post = make_post()
    batch = [event(f"c{i}", post.id) for i in range(5)]
    assert client_for(person).api("POST", "/api/v1/events", {"events": batch}).status_code == 202
    state = app.extensions["intranet"]
    crashed = buffer.flusher_for(state.event_buffer, state.sessions)

    def die(*args: Any, **kwargs: Any) -> Any:
        raise SystemExit("killed between commit and XACK")

    monkeypatch.setattr(crashed.client, "pipeline", die)
    with pytest.raises(SystemExit):
        crashed.flush()
    assert count(db) == 5 and reads_folded(db, post.id) == 5
    assert stream[1].xpending(stream[0], buffer.GROUP)["pending"] == 1
    assert "Stored 0 events from 1 queued batches (5 repeats absorbed" in flush(app)
    assert count(db) == 5 and reads_folded(db, post.id) == 5
    assert stream[1].xpending(stream[0], buffer.GROUP)["pending"] == 0
    assert stream[1].xlen(stream[0]) == 0


@pytest.mark.settings(INTRANET_EVENTS_BUFFER_CLAIM_IDLE_SECONDS=0)
def test_a_flusher_that_dies_before_storing_loses_nothing(app, client_for, make_employee, make_post, db, stream,
                                                          monkeypatch):
    """Entries read by a flusher whose store failed stay pending and are stored by the next one."""
    person = make_employee()
    post = make_post()
    assert client_for(person).api("POST", "/api/v1/events", {"events": [event("d1", post.id)]}).status_code == 202
    state = app.extensions["intranet"]

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database went away")

    crashed = buffer.Flusher(state.event_buffer, state.sessions, fail)
    with pytest.raises(RuntimeError):
        crashed.flush()
    assert count(db) == 0
    assert "Stored 1 events from 1 queued batches" in flush(app)
    assert count(db) == 1


@pytest.mark.settings(INTRANET_EVENTS_BUFFER_URL=DEAD_REDIS)
def test_redis_down_stores_directly_with_one_warning(app, client_for, make_employee, make_post, db, caplog):
    """With Redis unreachable the request stores its events itself (200), logs one warning, and keeps
    storing directly without waiting for Redis again at every request."""
    person = make_employee()
    post = make_post()
    client = client_for(person)
    with caplog.at_level(logging.WARNING, logger="intranet.engagement.buffer"):
        for i in range(3):
            r = client.api("POST", "/api/v1/events", {"events": [event(f"down{i}", post.id)]})
            assert r.status_code == 200 and r.get_json()["accepted"] == 1
    assert count(db) == 3
    warnings = [r for r in caplog.records if r.name == "intranet.engagement.buffer"]
    assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()
    assert app.extensions["intranet"].event_buffer is not None


@pytest.mark.settings(INTRANET_EVENTS_BUFFER_MAX_ENTRIES=1)
def test_a_full_buffer_sends_the_next_batches_direct(app, client_for, make_employee, make_post, db, stream, caplog):
    """Beyond INTRANET_EVENTS_BUFFER_MAX_ENTRIES queued batches (no flusher running) the batch that found it full is
    still queued, and the next ones are stored directly: Redis memory stays bounded, no event is refused."""
    person = make_employee()
    post = make_post()
    client = client_for(person)
    with caplog.at_level(logging.WARNING, logger="intranet.engagement.buffer"):
        codes = [client.api("POST", "/api/v1/events", {"events": [event(f"f{i}", post.id)]}).status_code
                 for i in range(3)]
    assert codes == [202, 202, 200]
    assert "INTRANET_EVENTS_BUFFER_MAX_ENTRIES" in caplog.text
    assert count(db) == 1
    assert "Stored 2 events" in flush(app)
    assert count(db) == 3


@pytest.mark.settings(INTRANET_EVENTS_BUFFER_FLUSH_SECONDS=60)
def test_stopping_the_flusher_thread_drains_the_stream(app, client_for, make_employee, make_post, db, stream):
    """The scheduler's flusher, stopped (SIGTERM, lease lost), stores everything queued before it ends."""
    person = make_employee()
    post = make_post()
    client = client_for(person)
    state = app.extensions["intranet"]
    thread = buffer.FlusherThread(buffer.flusher_for(state.event_buffer, state.sessions)).start()
    for b in range(4):
        client.api("POST", "/api/v1/events", {"events": [event(f"s{b}-{i}", post.id) for i in range(10)]})
    thread.stop()
    assert not thread.thread.is_alive()
    assert count(db) == 40
    assert stream[1].xlen(stream[0]) == 0


def test_unreadable_entries_are_set_aside_not_lost(app, db, stream):
    """An entry no flusher can read goes to the dead-letter stream (with the reason); the rest are stored."""
    stream[1].xadd(stream[0], {"v": "99", "events": "[]"})
    assert "1 unreadable batches set aside" in flush(app)
    dead = stream[1].xrange(f"{stream[0]}:dead")
    assert len(dead) == 1 and b"unknown entry format" in dead[0][1][b"error"]


def test_events_of_people_deleted_while_queued_are_dropped(app, client_for, make_employee, make_post, db):
    """A person erased (or a post deleted) while their events waited: the events go with them."""
    person, other = make_employee(), make_employee()
    post = make_post()
    client_for(person).api("POST", "/api/v1/events", {"events": [event("gone", post.id)]})
    client_for(other).api("POST", "/api/v1/events", {"events": [event("kept", post.id)]})
    db.delete(db.get(type(person), person.id))
    db.commit()
    assert "Stored 1 events from 2 queued batches (0 repeats absorbed, 1 about people or posts deleted" in flush(app)
    assert count(db) == 1


@pytest.mark.settings(INTRANET_EVENTS_BUFFER_URL="")
def test_flush_command_without_a_buffer_says_so(app):
    """Nothing to flush when no buffer is configured: the command fails and names the setting."""
    result = app.test_cli_runner().invoke(args=["intranet", "events", "flush"])
    assert result.exit_code == 1
    assert "INTRANET_EVENTS_BUFFER_URL" in result.output


def test_encoded_rows_come_back_as_stored():
    """An entry holds exactly what the request validated: instants to the microsecond, every field."""
    received = dt.datetime(2026, 11, 24, 9, 0, 1, 5, tzinfo=dt.timezone.utc)
    rows = [{"employee_pk": 7, "client_id": "x", "kind": "open", "post_id": 3, "occurred_at": AT.replace(microsecond=1),
             "received_at": received, "local_hour": 9, "local_weekday": 1, "dwell_ms": None, "delivery_id": 77,
             "channel": "email", "surface": "feed", "position": 4, "device": "phone", "source": "client"}]
    fields = {k.encode(): v if isinstance(v, bytes) else str(v).encode() for k, v in buffer.encode(rows).items()}
    assert buffer.decode(fields) == rows


def test_the_scheduler_holding_the_lease_runs_the_flusher(app, client_for, make_employee, make_post, db, stream):
    """`flask intranet scheduler` stores buffered events while it holds the lease, and drains them when stopped."""
    import threading
    import time

    from intranet import jobs

    person = make_employee()
    post = make_post()
    runner = jobs.LeasedScheduler(app, "flushing")
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while runner.flusher is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert runner.flusher is not None
    assert client_for(person).api("POST", "/api/v1/events", {"events": [event("sched", post.id)]}).status_code == 202
    while count(db) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count(db) == 1
    assert client_for(person).api("POST", "/api/v1/events", {"events": [event("last", post.id)]}).status_code == 202
    runner.stop()
    thread.join(20)
    assert runner.flusher is None
    assert count(db) == 2 and stream[1].xlen(stream[0]) == 0


def test_repeats_in_one_bulk_copy_and_of_stored_events_are_stored_once(app, client_for, make_employee, make_post, db):
    """Twelve batches sent twice (1,200 events, one COPY on PostgreSQL): 600 stored, 600 absorbed, folded once."""
    person = make_employee()
    post = make_post()
    client = client_for(person)
    assert client.api("POST", "/api/v1/events", {"events": [event("b0-1", post.id)]}).status_code == 202
    assert "Stored 1 events" in flush(app)
    batches = [[event(f"b{b}-{i}", post.id, "read" if i % 2 else "impression") for i in range(50)] for b in range(12)]
    for batch in batches + batches:
        assert client.api("POST", "/api/v1/events", {"events": batch}).status_code == 202
    assert "Stored 599 events from 24 queued batches (601 repeats absorbed" in flush(app)
    assert count(db) == 600
    assert reads_folded(db, post.id) == 300
