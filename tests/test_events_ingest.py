"""The event ingest's insert path: one multi-row insert that skips duplicates, and the per-batch targeting check."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from pydantic import ValidationError
from sqlalchemy import func, select

from intranet import db as core
from intranet import targeting
from intranet.engagement import events
from intranet.models import EngagementEvent

AT = dt.datetime(2026, 11, 24, 8, 59, tzinfo=dt.timezone.utc)


def event(eid: str, post_id: int | None, kind: str = "read", at: dt.datetime = AT, **extra):  # type: ignore[no-untyped-def]
    return {"id": eid, "post_id": post_id, "kind": kind, "occurred_at": at.isoformat(), "dwell_ms": 1200, **extra}


def count(db, **where) -> int:  # type: ignore[no-untyped-def]
    query = select(func.count()).select_from(EngagementEvent)
    for name, value in where.items():
        query = query.where(getattr(EngagementEvent, name) == value)
    return db.execute(query).scalar_one()


def post_events(client, batch):  # type: ignore[no-untyped-def]
    r = client.api("POST", "/api/v1/events", {"events": batch})
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def test_a_full_batch_with_repeats_stores_each_event_once(client_for, make_employee, make_post, db):
    """500 events, 100 of them repeats inside the batch; then a batch overlapping it by half."""
    person = make_employee()
    post = make_post()
    client = client_for(person)
    first = [event(f"e{i}", post.id) for i in range(400)] + [event(f"e{i}", post.id) for i in range(100)]
    assert post_events(client, first) == {"accepted": 400, "duplicates": 100, "rejected": []}
    second = [event(f"e{i}", post.id, "open") for i in range(200, 600)]
    assert post_events(client, second) == {"accepted": 200, "duplicates": 200, "rejected": []}
    assert count(db) == 600
    assert count(db, kind="open") == 200  # a duplicate never overwrites the stored event


def test_every_field_is_stored_as_sent(client_for, make_employee, make_post, db):
    """The lean insert stores what the ORM would: instants (with and without microseconds) compare in SQL."""
    person = make_employee(timezone="America/New_York")
    post = make_post()
    exact = AT.replace(second=0, microsecond=0)
    fine = AT.replace(second=7, microsecond=250_001)
    body = post_events(client_for(person), [
        event("exact", post.id, at=exact, surface="feed", position=3),
        event("fine", post.id, "open", at=fine, channel="email", delivery_id=77, dwell_ms=None)])
    assert body["accepted"] == 2
    db.expire_all()
    rows = {e.client_id: e for e in db.execute(select(EngagementEvent)).scalars()}
    assert (rows["exact"].occurred_at, rows["fine"].occurred_at) == (exact, fine)
    assert (rows["exact"].local_hour, rows["exact"].local_weekday) == (3, 1)  # 03:59 Tuesday in New York
    assert (rows["exact"].surface, rows["exact"].position, rows["exact"].dwell_ms) == ("feed", 3, 1200)
    assert (rows["fine"].channel, rows["fine"].delivery_id, rows["fine"].dwell_ms) == ("email", 77, None)
    assert rows["exact"].received_at == rows["fine"].received_at
    assert {(e.employee_pk, e.source) for e in rows.values()} == {(person.id, "client")}
    # Range queries (digests, charts) compare stored instants with bound ones, to the microsecond.
    assert count(db, occurred_at=exact) == 1
    at_or_after = select(EngagementEvent.client_id).where(EngagementEvent.occurred_at >= exact)
    assert sorted(db.execute(at_or_after).scalars()) == ["exact", "fine"]
    after = select(EngagementEvent.client_id).where(EngagementEvent.occurred_at > fine - dt.timedelta(microseconds=1))
    assert list(db.execute(after).scalars()) == ["fine"]


def test_an_audience_change_applies_to_the_next_batch(client_for, make_employee, make_post, db, clock):
    """Audiences are parsed once and reused, yet a retargeted post is judged by its new audience: a widened
    one at once (refusals are never remembered), a narrowed one once the person's "may see" (kept
    INTRANET_EVENTS_VISIBILITY_CACHE_SECONDS, 5 s) has lapsed."""
    person = make_employee(department="Sales")
    post = make_post({"segments": [{"departments": ["Finance"]}]})
    client = client_for(person)
    assert post_events(client, [event("before", post.id)])["rejected"] == [{"id": "before", "code": "not_found"}]
    targeting.store_audience(db, post, targeting.parse_audience({"segments": [{"departments": ["Sales"]}]}))
    db.commit()
    assert post_events(client, [event("widened", post.id)])["accepted"] == 1
    targeting.store_audience(db, post, targeting.parse_audience({"segments": [{"departments": ["Finance"]}]}))
    db.commit()
    assert post_events(client, [event("moments-later", post.id)])["accepted"] == 1
    clock.advance(seconds=5)
    assert post_events(client, [event("narrowed", post.id)])["rejected"] == [{"id": "narrowed", "code": "not_found"}]
    assert count(db) == 2


@pytest.mark.settings(INTRANET_EVENTS_VISIBILITY_CACHE_SECONDS=0)
def test_without_the_visibility_cache_every_batch_is_checked(client_for, make_employee, make_post, db):
    """INTRANET_EVENTS_VISIBILITY_CACHE_SECONDS=0: a narrowed audience refuses the very next batch."""
    person = make_employee(department="Sales")
    post = make_post({"segments": [{"departments": ["Sales"]}]})
    client = client_for(person)
    assert post_events(client, [event("before", post.id)])["accepted"] == 1
    targeting.store_audience(db, post, targeting.parse_audience({"segments": [{"departments": ["Finance"]}]}))
    db.commit()
    assert post_events(client, [event("after", post.id)])["rejected"] == [{"id": "after", "code": "not_found"}]


def test_a_remembered_post_is_refused_once_it_expires(client_for, make_employee, make_post, db, clock):
    """A "may see" is never kept past the post's expiry, however recent."""
    person = make_employee()
    post = make_post(expires_at=clock.now + dt.timedelta(seconds=2))
    client = client_for(person)
    assert post_events(client, [event("live", post.id)])["accepted"] == 1
    clock.advance(seconds=2)
    assert post_events(client, [event("expired", post.id)])["rejected"] == [{"id": "expired", "code": "not_found"}]


def test_posts_that_are_not_live_are_refused(client_for, make_employee, make_post, clock, db):
    """Drafts, expired and not-yet-published posts are refused like missing ones; live ones in the same batch pass."""
    person = make_employee()
    live = make_post()
    draft = make_post(status="draft", published_at=None)
    expired = make_post(expires_at=clock.now - dt.timedelta(minutes=1))
    future = make_post(published_at=clock.now + dt.timedelta(hours=1))
    body = post_events(client_for(person), [event("live", live.id), event("draft", draft.id),
                                            event("expired", expired.id), event("future", future.id)])
    assert body["accepted"] == 1
    assert sorted(r["id"] for r in body["rejected"]) == ["draft", "expired", "future"]
    assert {r["code"] for r in body["rejected"]} == {"not_found"}


def test_group_audiences_follow_the_persons_groups(client_for, make_employee, make_post, make_group, db):
    """A group segment admits members only; a group exclusion keeps members out of an all-staff post."""
    member, outsider = make_employee(), make_employee()
    make_group("night-shift", members=(member,))
    for_group = make_post({"segments": [{"groups": ["night-shift"]}]})
    not_for_group = make_post({"all": True, "exclude": [{"groups": ["night-shift"]}]})
    everyone = make_post()
    batch = [event("g", for_group.id), event("x", not_for_group.id), event("a", everyone.id)]
    member_body = post_events(client_for(member), batch)
    outsider_body = post_events(client_for(outsider), batch)
    assert (member_body["accepted"], member_body["rejected"]) == (2, [{"id": "x", "code": "not_found"}])
    assert (outsider_body["accepted"], outsider_body["rejected"]) == (2, [{"id": "g", "code": "not_found"}])


def test_batches_naming_many_posts_judge_each_post(make_employee, make_post, clock, db):
    """1, 8, 9 and 40 distinct posts a batch: each visible post is accepted, each hidden or missing one refused."""
    person = make_employee(department="Sales")
    seen = [make_post() for _ in range(20)]
    hidden = [make_post({"segments": [{"departments": ["Finance"]}]}) for _ in range(19)]
    for n, size in enumerate((1, 8, 9, 40)):
        posts = (seen + hidden)[:size - 1] + [seen[0]] if size > 1 else [hidden[0]]
        batch = [event(f"b{n}-{i}", post.id) for i, post in enumerate(posts)]
        batch.append(event(f"b{n}-missing", 10_000_000))
        result = events.ingest(db, person, batch, now=clock.now)
        db.commit()
        refused = {r["id"] for r in result.rejected if r["code"] == "not_found"}
        expected = {f"b{n}-{i}" for i, post in enumerate(posts) if post in hidden} | {f"b{n}-missing"}
        assert refused == expected
        assert result.accepted == len(batch) - len(expected)


def test_batches_larger_than_one_statement_count_exactly(make_employee, make_post, clock, db, monkeypatch):
    """Rows are sent in statements of BULK_ROWS; duplicates across statement boundaries are still counted."""
    monkeypatch.setattr(core, "BULK_ROWS", 7)
    person = make_employee()
    post = make_post()
    first = events.ingest(db, person, [event(f"c{i}", post.id) for i in range(20)], now=clock.now)
    db.commit()
    assert (first.accepted, first.duplicates) == (20, 0)
    again = events.ingest(db, person, [event(f"c{i}", post.id) for i in range(15, 40)], now=clock.now)
    db.commit()
    assert (again.accepted, again.duplicates) == (20, 5)
    assert count(db) == 40


def test_insert_ignoring_duplicates_counts_only_new_rows(make_employee, clock, db):
    """The helper skips rows clashing with stored rows or with each other, and says how many were new."""
    person = make_employee()

    def row(client_id: str) -> dict:
        return {"employee_pk": person.id, "client_id": client_id, "kind": "session", "post_id": None,
                "occurred_at": AT, "received_at": clock.now, "local_hour": 9, "local_weekday": 1,
                "source": "client"}

    table = EngagementEvent.__table__  # type: ignore[attr-defined]
    key = events.event_key(db)  # on PostgreSQL's partitioned table the key holds occurred_at too
    assert core.insert_ignoring_duplicates(db, table, [row("a"), row("b"), row("a")], key) == 2
    assert core.insert_ignoring_duplicates(db, table, [row("b"), row("c")], key) == 1
    assert core.insert_ignoring_duplicates(db, table, [], key) == 0
    db.commit()
    assert sorted(db.execute(select(EngagementEvent.client_id)).scalars()) == ["a", "b", "c"]


def test_sqlite_timestamps_are_written_as_sqlalchemy_writes_them():
    """The fast SQLite bind of UTCDateTime gives the exact text of SQLAlchemy's DATETIME (what range queries compare)."""
    from sqlalchemy import DateTime
    from sqlalchemy.dialects import sqlite
    from zoneinfo import ZoneInfo

    dialect = sqlite.dialect()
    fast = core.UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    reference = DateTime().dialect_impl(dialect).bind_processor(dialect)
    for value in (AT, AT.replace(microsecond=1), dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc),
                  dt.datetime(2999, 12, 31, 23, 59, 59, 999_999, tzinfo=ZoneInfo("Pacific/Kiritimati")),
                  dt.datetime(2026, 3, 29, 2, 30, tzinfo=ZoneInfo("Europe/Berlin"))):
        assert fast(value) == reference(value.astimezone(dt.timezone.utc).replace(tzinfo=None)), value
    assert fast(None) is None


def test_instants_sent_with_any_offset_compare_as_utc(client_for, make_employee, make_post, clock, db):
    """Events sent at one instant in three offsets are stored as that one UTC instant, on each database."""
    person = make_employee()
    post = make_post()
    instant = AT.replace(microsecond=0)
    sent = [event(f"o{i}", post.id, at=instant.astimezone(dt.timezone(dt.timedelta(minutes=m))))
            for i, m in enumerate((0, 14 * 60, -(9 * 60 + 30)))]
    assert post_events(client_for(person), sent)["accepted"] == 3
    assert count(db, occurred_at=instant) == 3


#: Events at the edges of what a batch may hold: times in every spelling parse_instant meets, each bound.
EDGE_EVENTS = [
    {"id": "canonical", "kind": "open", "post_id": 0, "occurred_at": "2026-11-24T08:59:00.000Z"},
    {"id": "offset", "kind": "read", "post_id": 0, "occurred_at": "2026-11-24T09:59:00.5+01:00", "dwell_ms": 5},
    {"id": "lower-z", "kind": "open", "post_id": 0, "occurred_at": "2026-11-24T08:59:00z"},
    {"id": "spaces", "kind": "open", "post_id": 0, "occurred_at": " 2026-11-24T08:59:00Z "},
    {"id": "space-separator", "kind": "open", "post_id": 0, "occurred_at": "2026-11-24 08:59:00+00:00"},
    {"id": "basic-format", "kind": "open", "post_id": 0, "occurred_at": "20261124T085900Z"},
    {"id": "minutes-only", "kind": "open", "post_id": 0, "occurred_at": "2026-11-24T08:59Z"},
    {"id": "nanoseconds", "kind": "open", "post_id": 0, "occurred_at": "2026-11-24T08:59:00.123456789Z"},
    {"id": "no-offset", "kind": "open", "post_id": 0, "occurred_at": "2026-11-24T08:59:00"},
    {"id": "date-only", "kind": "open", "post_id": 0, "occurred_at": "2026-11-24"},
    {"id": "empty-time", "kind": "open", "post_id": 0, "occurred_at": ""},
    {"id": "year-one", "kind": "open", "post_id": 0, "occurred_at": "0001-01-01T00:00:00+14:00"},
    {"id": "year-3001", "kind": "open", "post_id": 0, "occurred_at": "3001-01-01T00:00:00Z"},
    {"id": "last-week", "kind": "open", "post_id": 0, "occurred_at": "2026-11-17T08:59:00Z"},
    {"id": "tomorrow", "kind": "open", "post_id": 0, "occurred_at": "2026-11-25T08:59:00Z"},
    {"id": "session-with-post", "kind": "session", "post_id": 0, "occurred_at": "2026-11-24T08:59:00Z"},
    {"id": "session", "kind": "session", "post_id": None, "occurred_at": "2026-11-24T08:59:00Z", "surface": "feed"},
    {"id": "open-without-post", "kind": "open", "occurred_at": "2026-11-24T08:59:00Z"},
    {"id": "all-fields", "kind": "digest_click", "post_id": 0, "occurred_at": "2026-11-24T08:59:00Z", "dwell_ms": 0,
     "delivery_id": 7, "channel": "email", "surface": "s" * 16, "position": 10_000},
    {"id": "long-surface", "kind": "open", "post_id": 0, "occurred_at": "2026-11-24T08:59:00Z", "surface": "s" * 17},
    {"id": "bad-channel", "kind": "open", "post_id": 0, "occurred_at": "2026-11-24T08:59:00Z", "channel": "fax"},
    {"id": "true-post", "kind": "open", "post_id": True, "occurred_at": "2026-11-24T08:59:00Z"},
    {"id": "float-dwell", "kind": "read", "post_id": 0, "occurred_at": "2026-11-24T08:59:00Z", "dwell_ms": 3.0},
    {"id": "bad id!", "kind": "open", "post_id": 0, "occurred_at": "2026-11-24T08:59:00Z"},
    {"id": "server-kind", "kind": "acknowledge", "post_id": 0, "occurred_at": "2026-11-24T08:59:00Z"},
    {"id": "unknown-field", "kind": "open", "post_id": 0, "occurred_at": "2026-11-24T08:59:00Z", "colour": "red"},
    {"id": "canonical", "kind": "read", "post_id": 0, "occurred_at": "2026-11-24T08:58:00Z"},
]


@pytest.mark.parametrize("edge", EDGE_EVENTS, ids=lambda e: e["id"])
def test_a_batch_read_whole_is_judged_as_event_by_event(edge, make_employee, make_post, db):
    """Whenever the compiled batch schema (events.BATCH) admits a batch, its fast reading gives the very
    answer and rows of reading each event with EventIn; anything it refuses goes the event-by-event way."""
    person = make_employee()
    post = make_post()
    now = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.timezone.utc)
    batch = [{**e, "post_id": post.id} if e.get("post_id") == 0 else e for e in (EDGE_EVENTS[0], edge)]

    def answer(items, checked):  # type: ignore[no-untyped-def]
        queued: list = []
        result = events.ingest(db, person, items, now=now, checked=checked,
                               buffer=lambda rows: queued.append(rows) or True)
        return result.model_dump(), queued

    one_by_one = answer(batch, checked=False)
    try:
        whole = events.BATCH.validate_json(json.dumps({"events": batch}))
    except ValidationError:
        return  # read event by event (the answer above) in production too
    assert answer(whole["events"], checked=True) == one_by_one
