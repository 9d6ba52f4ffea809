"""Engagement analytics: rollups kept by ingest, import and delivery, checked against hand-computed
figures; the analytics API's shapes, roles and the minimum-group rule."""
from __future__ import annotations

import dataclasses
import datetime as dt
import io
import threading
from typing import Any

import pytest
from sqlalchemy import select, text

from intranet import feed
from intranet.analytics import queries, rollups
from intranet.db import session_factory
from intranet.engagement import events
from intranet.models import AnalyticsDeliveryDay, AnalyticsHourReaders, AnalyticsPostDay, EngagementEvent
from tests.conftest import NOW

UTC = dt.timezone.utc


def _event(event_id: str, kind: str, post_id: int | None, at: dt.datetime, **extra: Any) -> dict[str, Any]:
    return {"id": event_id, "kind": kind, "post_id": post_id, "occurred_at": at.isoformat(), **extra}


@pytest.fixture
def org(make_employee):  # type: ignore[no-untyped-def]
    """Six in Sales (EMEA, level 3), five in Finance (APAC, level 5), one in Legal (EMEA, level 7)."""
    sales = [make_employee(department="Sales", region="EMEA", level=3, timezone="Europe/Berlin") for _ in range(6)]
    finance = [make_employee(department="Finance", region="APAC", level=5, timezone="Asia/Tokyo") for _ in range(5)]
    legal = [make_employee(department="Legal", region="EMEA", level=7, timezone="UTC")]
    return {"Sales": sales, "Finance": finance, "Legal": legal}


def settle(db) -> None:  # type: ignore[no-untyped-def]
    """Fold queued live batches (the fold job's work) and commit."""
    rollups.fold_pending(db)
    db.commit()


def _post_json(db, post, k: int = 5) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return queries.post_analytics(db, post, k=k).model_dump(mode="json", by_alias=True)


def test_post_figures_match_hand_counts(db, org, make_post, clock):
    """Reads, impressions and acknowledgements, repeated, count each person once per stage."""
    post = make_post(must_read=True)
    at = clock.now - dt.timedelta(hours=2)
    for i, person in enumerate(org["Sales"]):          # 6 read (twice each), 4 of them acknowledge
        events.ingest(db, person, [_event(f"o{i}", "open", post.id, at), _event(f"r{i}", "read", post.id, at)],
                      now=clock.now)
        if i < 4:
            feed.acknowledge(db, person, post, now=clock.now)
    for i, person in enumerate(org["Finance"][:3]):     # 3 only see it in the feed
        events.ingest(db, person, [_event(f"i{i}", "impression", post.id, at)], now=clock.now)
    events.ingest(db, org["Finance"][3], [_event("click", "digest_click", post.id, at)], now=clock.now)
    settle(db)
    body = _post_json(db, post)
    assert (body["audience"], body["reached"], body["read"], body["acknowledged"]) == (12, 9, 6, 4)
    # Legal (1 person) is hidden, and Finance with it, so the total minus Sales reveals no small group.
    assert body["by"]["department"] == [{"value": "Sales", "audience": 6, "reached": 6, "read": 6}]
    assert body["by"]["level"] == [{"value": 3, "audience": 6, "reached": 6, "read": 6}]
    assert queries.post_analytics(db, post, k=1).model_dump(mode="json", by_alias=True)["by"]["department"] == [
        {"value": "Sales", "audience": 6, "reached": 6, "read": 6},
        {"value": "Finance", "audience": 5, "reached": 3, "read": 0},
        {"value": "Legal", "audience": 1, "reached": 0, "read": 0}]
    # EMEA has 7 people, APAC 5: both shown, nothing small to hide.
    assert [(r["value"], r["audience"], r["read"]) for r in body["by"]["region"]] == [("EMEA", 7, 6), ("APAC", 5, 0)]


def test_a_small_group_is_hidden_with_the_next_smallest(db, org, make_post, clock):
    """With k=6, Legal (1) is hidden, so Finance (5) is too: Sales minus total reveals neither."""
    post = make_post()
    events.ingest(db, org["Legal"][0], [_event("a", "open", post.id, clock.now - dt.timedelta(minutes=5))],
                  now=clock.now)
    settle(db)
    body = _post_json(db, post, k=6)
    assert body["read"] == 1
    assert [r["value"] for r in body["by"]["department"]] == ["Sales"]
    assert body["by"]["level"] == [{"value": 3, "audience": 6, "reached": 0, "read": 0}]


def test_a_retried_batch_counts_once(db, org, make_post, clock):
    """The same events sent twice (and a batch half old, half new) add only what is new."""
    post = make_post()
    person = org["Sales"][0]
    at = clock.now - dt.timedelta(minutes=30)
    batch = [_event("x1", "open", post.id, at), _event("x2", "read", post.id, at + dt.timedelta(minutes=1))]
    events.ingest(db, person, batch, now=clock.now)
    events.ingest(db, person, batch, now=clock.now)
    result = events.ingest(db, person, batch + [_event("x3", "read", post.id, at + dt.timedelta(minutes=2))],
                           now=clock.now)
    settle(db)
    assert (result.accepted, result.duplicates) == (1, 2)
    day = db.get(AnalyticsPostDay, (post.id, at.date()))
    assert (day.reads, day.readers, day.reached) == (3, 1, 1)
    assert _post_json(db, post, k=2)["read"] == 1


def test_import_keeps_rollups_and_a_reimport_changes_nothing(db, org, make_post, clock):
    """Imported reads count like live ones; importing the file again counts nothing twice."""
    post = make_post()
    day = dt.datetime(2026, 11, 10, 8, 0, tzinfo=UTC)
    lines = ["employee_id,post_id,kind,occurred_at,dwell_ms"] + [
        f"{p.employee_id},{post.id},read,{(day + dt.timedelta(minutes=i)).isoformat()},1000"
        for i, p in enumerate(org["Sales"] + org["Finance"])] + [
        f"{org['Sales'][0].employee_id},{post.id},acknowledge,{day.isoformat()},"]
    for _ in range(2):
        events.import_csv(db, io.StringIO("\n".join(lines) + "\n"), now=clock.now)
    settle(db)
    body = _post_json(db, post)
    assert (body["reached"], body["read"], body["acknowledged"]) == (11, 11, 1)
    assert db.get(AnalyticsPostDay, (post.id, day.date())).reads == 11


def test_reading_hours_count_reads_and_distinct_readers_in_local_time(db, org, make_post, clock):
    """Berlin readers at 07:30 UTC read at 08 local; Tokyo readers at 16 local; one person twice is one reader."""
    post = make_post()
    at = dt.datetime(2026, 11, 23, 7, 30, tzinfo=UTC)   # a Monday
    for i, person in enumerate(org["Sales"]):
        events.ingest(db, person, [_event(f"s{i}", "read", post.id, at)], now=clock.now)
    events.ingest(db, org["Sales"][0], [_event("again", "open", post.id, at + dt.timedelta(minutes=10))],
                  now=clock.now)
    for i, person in enumerate(org["Finance"]):
        events.ingest(db, person, [_event(f"f{i}", "read", post.id, at)], now=clock.now)
    settle(db)
    start, end = dt.date(2026, 11, 1), dt.date(2026, 11, 24)
    local = queries.reading_hours(db, zone="local", start=start, end=end, k=5).model_dump(mode="json", by_alias=True)
    assert local["cells"] == [{"weekday": 0, "hour": 8, "reads": 7, "readers": 6},
                              {"weekday": 0, "hour": 16, "reads": 5, "readers": 5}]
    utc = queries.reading_hours(db, zone="UTC", start=start, end=end, k=5).model_dump(mode="json", by_alias=True)
    assert utc["cells"] == [{"weekday": 0, "hour": 7, "reads": 12, "readers": 11}]
    assert queries.reading_hours(db, zone="UTC", start=start, end=end, k=12).cells == []


def test_distinct_readers_over_a_window_count_each_person_once_whatever_the_order(db, org, make_post, clock):
    """Reads on days 1, 3 and (arriving last) 2 in one cell: one reader in any window holding any of them."""
    post = make_post()
    person = org["Legal"][0]
    days = [dt.datetime(2026, 11, d, 9, 0, tzinfo=UTC) for d in (2, 16, 9)]    # Mondays, UTC zone person
    lines = ["employee_id,post_id,kind,occurred_at,dwell_ms"]
    for at in days:
        events.import_csv(db, io.StringIO("\n".join(lines + [f"{person.employee_id},{post.id},read,{at.isoformat()},"])
                                          + "\n"), now=clock.now)
    settle(db)
    pairs = [(d, p) for d, p in db.execute(select(AnalyticsHourReaders.day, AnalyticsHourReaders.prev_day).where(
        AnalyticsHourReaders.zone == "UTC", AnalyticsHourReaders.readers == 1))]
    assert sorted(pairs) == [(dt.date(2026, 11, 2), rollups.NO_DAY), (dt.date(2026, 11, 9), dt.date(2026, 11, 2)),
                             (dt.date(2026, 11, 16), dt.date(2026, 11, 9))]
    for start, end, expected in ((dt.date(2026, 11, 1), dt.date(2026, 11, 30), 1),
                                 (dt.date(2026, 11, 3), dt.date(2026, 11, 10), 1),
                                 (dt.date(2026, 11, 10), dt.date(2026, 11, 15), 0),
                                 (dt.date(2026, 11, 9), dt.date(2026, 11, 16), 1)):
        cells = queries.reading_hours(db, zone="UTC", start=start, end=end, k=1).cells
        assert sum(c.readers for c in cells) == expected, (start, end)


def test_reading_hours_in_an_untracked_zone_agree_with_a_tracked_one(db, org, make_post, clock):
    """Asia/Kolkata (not tracked) is computed from events: 07:30 UTC is Monday 13:00 there."""
    post = make_post()
    at = dt.datetime(2026, 11, 23, 7, 30, tzinfo=UTC)
    for i, person in enumerate(org["Sales"]):
        events.ingest(db, person, [_event(f"s{i}", "read", post.id, at)], now=clock.now)
    settle(db)
    cells = queries.reading_hours(db, zone="Asia/Kolkata", start=dt.date(2026, 11, 1), end=dt.date(2026, 11, 24),
                                  k=5).model_dump(mode="json", by_alias=True)["cells"]
    assert cells == [{"weekday": 0, "hour": 13, "reads": 6, "readers": 6}]


# --------------------------------------------------------------------------------------------
# The API
# --------------------------------------------------------------------------------------------


def test_the_post_api_answers_comms_managers_and_admins_only(app, db, org, make_employee, make_post, client_for):
    """Comms managers and admins get figures; employees and contributors a 403; a missing post a 404."""
    post = make_post()
    comms = make_employee(is_comms=True, department="Sales")
    admin = make_employee(is_admin=True, department="Sales")
    contributor = make_employee(is_contributor=True, department="Sales")
    for person in (comms, admin):
        response = client_for(person).get(f"/api/v1/analytics/posts/{post.id}")
        assert response.status_code == 200
        assert set(response.get_json()) == {"post_id", "audience", "reached", "read", "acknowledged", "by"}
    for person in (org["Sales"][0], contributor):
        assert client_for(person).get(f"/api/v1/analytics/posts/{post.id}").status_code == 403
    assert client_for(comms).get("/api/v1/analytics/posts/999999").status_code == 404


def test_the_api_counts_live_reads_and_hides_small_groups(app, db, org, make_employee, make_post, client_for, clock):
    """Reads sent through POST /api/v1/events show up; Legal's one person never appears as a row."""
    post = make_post()
    comms = make_employee(is_comms=True, department="Sales", region="EMEA", level=3)
    reader = client_for(org["Legal"][0])
    assert reader.api("POST", "/api/v1/events", json={"events": [
        _event("e1", "open", post.id, clock.now - dt.timedelta(minutes=1))]}).status_code == 200
    body = client_for(comms).get(f"/api/v1/analytics/posts/{post.id}").get_json()
    assert body["audience"] == 13 and body["read"] == 1
    departments = [r["value"] for r in body["by"]["department"]]
    assert "Legal" not in departments and departments == ["Sales"]   # Finance (5) goes with Legal (1)


def test_the_reading_hours_api_defaults_to_local_time_and_the_last_28_days(app, db, org, make_employee, client_for):
    """No parameters: zone local, to = today (UTC), from = 27 days before; a bad zone or date is a 422."""
    comms = client_for(make_employee(is_comms=True))
    body = comms.get("/api/v1/analytics/reading-hours").get_json()
    assert body == {"zone": "local", "from": (NOW.date() - dt.timedelta(days=27)).isoformat(),
                    "to": NOW.date().isoformat(), "cells": []}
    assert comms.get("/api/v1/analytics/reading-hours?zone=Europe/Berlin&from=2026-11-01&to=2026-11-02"
                     ).get_json()["zone"] == "Europe/Berlin"
    for query in ("zone=Mars/Olympus", "from=yesterday", "from=2026-11-05&to=2026-11-01"):
        assert comms.get(f"/api/v1/analytics/reading-hours?{query}").status_code == 422
    assert client_for(org["Sales"][0]).get("/api/v1/analytics/reading-hours").status_code == 403


def test_a_delivered_digest_reaches_the_posts_it_carried(db, org, make_post, clock):
    """A sent message's posts count as reached for its recipient (the event recorded at sending)."""
    from intranet.models import Digest, DigestItem, OutboxMessage

    post = make_post()
    person = org["Sales"][0]
    digest = Digest(employee_pk=person.id, local_date=clock.now.date(), ordinal=0, due_at=clock.now,
                    expires_at=clock.now + dt.timedelta(hours=12), timezone="UTC", local_hour=9, basis="control")
    db.add(digest)
    db.flush()
    db.add(DigestItem(employee_pk=person.id, post_id=post.id, round=0, digest_id=digest.id))
    message = OutboxMessage(digest_id=digest.id, employee_pk=person.id, channel="email", status="sent",
                            next_attempt_at=clock.now, expires_at=clock.now, message_id="<m@x>", post_ids=[post.id])
    db.add(message)
    db.flush()
    events.record(db, person, "digest_sent", at=clock.now, client_id=f"outbox-{message.id}", delivery_id=message.id,
                  channel="email")
    events.ingest(db, person, [_event("d1", "read", post.id, clock.now + dt.timedelta(hours=1))],
                  now=clock.now + dt.timedelta(hours=1))
    settle(db)
    body = _post_json(db, post, k=1)
    assert (body["reached"], body["read"]) == (1, 1)
    assert db.scalar(select(EngagementEvent.id).where(EngagementEvent.kind == "digest_sent")) is not None


def test_erasing_a_person_deletes_their_markers_and_keeps_the_counts(db, org, make_post, clock):
    """After erasure nothing says what the person read, and the post's figures are unchanged."""
    from intranet.directory import lifecycle
    from intranet.models import AnalyticsPostPerson, AnalyticsReaderCell

    post = make_post()
    person = org["Sales"][0]
    events.ingest(db, person, [_event("z", "read", post.id, clock.now - dt.timedelta(minutes=3))], now=clock.now)
    settle(db)
    before = _post_json(db, post, k=1)
    lifecycle.erase(db, person, clock.now)
    settle(db)
    assert db.scalar(select(AnalyticsPostPerson.post_id).where(AnalyticsPostPerson.employee_pk == person.id)) is None
    assert db.scalar(select(AnalyticsReaderCell.day).where(AnalyticsReaderCell.employee_pk == person.id)) is None
    after = _post_json(db, post, k=1)
    assert (after["reached"], after["read"]) == (before["reached"], before["read"]) == (1, 1)


# --------------------------------------------------------------------------------------------
# Organisation charts
# --------------------------------------------------------------------------------------------


def _send(db, person, posts, *, at, basis="personal", channel="email", kind="digest",  # type: ignore[no-untyped-def]
          ordinal=0):
    """A sent message carrying *posts* to *person*, recorded as the sender records it."""
    from intranet.models import Digest, DigestItem, OutboxMessage

    digest = Digest(employee_pk=person.id, local_date=at.date(), ordinal=ordinal if kind == "digest" else 100,
                    due_at=at, expires_at=at + dt.timedelta(hours=12), timezone="UTC", local_hour=at.hour,
                    basis=basis, kind=kind)
    db.add(digest)
    db.flush()
    db.add_all(DigestItem(employee_pk=person.id, post_id=p.id, round=0, digest_id=digest.id) for p in posts)
    message = OutboxMessage(digest_id=digest.id, employee_pk=person.id, channel=channel, status="sent",
                            next_attempt_at=at, expires_at=at, message_id=f"<{digest.id}@x>",
                            post_ids=[p.id for p in posts], sent_at=at)
    db.add(message)
    db.flush()
    events.record(db, person, "digest_sent", at=at, client_id=f"outbox-{message.id}", delivery_id=message.id,
                  channel=channel)
    return message


def test_read_rate_by_department_sums_people_per_post_and_week(db, org, make_post, clock):
    """Two posts in one week: Sales reached 6+6 and read 4+6; Finance reached 5, read none."""
    first, second = make_post(), make_post()
    at = clock.now - dt.timedelta(minutes=20)
    for i, person in enumerate(org["Sales"]):
        batch = [_event(f"b{i}", "open", second.id, at)]
        batch.append(_event(f"a{i}", "read" if i < 4 else "impression", first.id, at))
        events.ingest(db, person, batch, now=clock.now)
    for i, person in enumerate(org["Finance"]):
        events.ingest(db, person, [_event(f"f{i}", "impression", first.id, at)], now=clock.now)
    settle(db)
    window = queries.Filters(start=clock.now.date() - dt.timedelta(days=7), end=clock.now.date())
    series = queries.read_rate_by_group(db, dimension="department", filters=window, k=5).to_json()
    week = (clock.now.date() - dt.timedelta(days=clock.now.weekday())).isoformat()
    assert series == {"rows": [{"period": week, "value": "Sales", "reached": 12, "read": 10, "rate": 0.8333},
                               {"period": week, "value": "Finance", "reached": 5, "read": 0, "rate": 0.0}],
                      "hidden_rows": 0}
    assert queries.read_rate_by_group(db, dimension="department", filters=window, k=6).to_json()["rows"] == []
    narrowed = dataclasses.replace(window, department="Finance")
    assert queries.read_rate_by_group(db, dimension="department", filters=narrowed, k=6).to_json() == {
        "hidden": True, "hidden_people": 5, "min_group": 6}
    elsewhere = dataclasses.replace(window, topic="Elsewhere")
    assert queries.read_rate_by_group(db, dimension="department", filters=elsewhere, k=5).rows == []


def _rates(db, window, dimension: str = "department") -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return queries.read_rate_by_group(db, dimension=dimension, filters=window, k=1).to_json()["rows"]


def _group_days(db) -> list[tuple]:  # type: ignore[no-untyped-def]
    from intranet.models import AnalyticsGroupDay, AnalyticsPostFiled

    return [sorted(tuple(r) for r in db.execute(select(*m.__table__.c)).all())
            for m in (AnalyticsGroupDay, AnalyticsPostFiled)]


def test_read_rates_from_group_days_equal_the_per_post_sums(db, org, make_post, clock):
    """Per publishing day and group rows give what summing each matching post's group rows gives."""
    monday = clock.now - dt.timedelta(days=clock.now.weekday() + 7)
    posts = [make_post(published_at=monday + dt.timedelta(days=d, hours=h)) for d, h in ((0, 1), (0, 5), (3, 2), (7, -8))]
    people = org["Sales"] + org["Finance"] + org["Legal"]
    for i, person in enumerate(people):
        batch = [_event(f"r{i}-{j}", ("read", "impression", "open")[(i + j) % 3], post.id, clock.now - dt.timedelta(
            minutes=i + j)) for j, post in enumerate(posts) if (i * 7 + j) % 4]
        events.ingest(db, person, batch, now=clock.now)
    settle(db)
    window = queries.Filters(start=monday.date() - dt.timedelta(days=1), end=clock.now.date())
    # A topic every post has takes the per-post path; no topic takes the group days.
    per_post = dataclasses.replace(window, topic="News")
    for dimension in ("department", "region", "level"):
        assert _rates(db, window, dimension) == _rates(db, per_post, dimension) != []
    assert {r["period"] for r in _rates(db, window)} == {monday.date().isoformat(),
                                                         (monday.date() + dt.timedelta(days=7)).isoformat()}
    # The minimum-group sizes agree too: the largest post's reach in a group decides, on both paths.
    for k in (2, 4, 6):
        assert (queries.read_rate_by_group(db, dimension="department", filters=window, k=k).to_json()
                == queries.read_rate_by_group(db, dimension="department", filters=per_post, k=k).to_json())


def test_a_post_published_again_moves_its_rates_to_the_new_week(db, org, make_post, clock):
    """Unpublished and published again a week later: its group rows leave the old week, as a rebuild gives."""
    earlier = clock.now - dt.timedelta(days=clock.now.weekday() + 7)
    moving, staying = make_post(published_at=earlier), make_post(published_at=earlier + dt.timedelta(hours=2))
    for i, person in enumerate(org["Sales"]):
        events.ingest(db, person, [_event(f"m{i}", "read", moving.id, clock.now - dt.timedelta(minutes=5)),
                                   _event(f"s{i}", "impression", staying.id, clock.now - dt.timedelta(minutes=5))],
                      now=clock.now)
    settle(db)
    window = queries.Filters(start=earlier.date(), end=clock.now.date())
    assert _rates(db, window) == [{"period": earlier.date().isoformat(), "value": "Sales", "reached": 12, "read": 6,
                                   "rate": 0.5}]
    moving.published_at = clock.now - dt.timedelta(minutes=30)
    db.add(moving)
    db.commit()
    this_week = (clock.now.date() - dt.timedelta(days=clock.now.weekday())).isoformat()
    assert _rates(db, window) == [
        {"period": earlier.date().isoformat(), "value": "Sales", "reached": 6, "read": 0, "rate": 0.0},
        {"period": this_week, "value": "Sales", "reached": 6, "read": 6, "rate": 1.0}]
    # Later reads of the moved post count under its new day; a rebuild agrees with all of it.
    events.ingest(db, org["Finance"][0], [_event("late", "read", moving.id, clock.now)], now=clock.now)
    settle(db)
    db.commit()
    refiled = _group_days(db)
    rollups.rebuild(db)
    db.commit()
    assert _group_days(db) == refiled
    # Unpublished, it leaves every week.
    moving.published_at = None
    db.add(moving)
    db.commit()
    assert [r["period"] for r in _rates(db, window)] == [earlier.date().isoformat()]


def test_topic_engagement_and_the_post_timeline(db, org, make_post, clock):
    """Topic rows sum posts; a post's timeline counts first readers per day and a running total."""
    news, people_post = make_post(topic="News"), make_post(topic="People")
    day1 = clock.now - dt.timedelta(days=1, hours=1)
    for i, person in enumerate(org["Sales"]):
        at = day1 if i < 3 else clock.now - dt.timedelta(minutes=5)
        events.ingest(db, person, [_event(f"n{i}", "read", news.id, at), _event(f"m{i}", "read", news.id, at)],
                      now=clock.now)
    events.ingest(db, org["Legal"][0], [_event("p", "read", people_post.id, day1)], now=clock.now)
    settle(db)
    window = queries.Filters(start=clock.now.date() - dt.timedelta(days=3), end=clock.now.date())
    topics = queries.topic_engagement(db, filters=window, k=5).to_json()
    assert topics == {"rows": [{"topic": "News", "posts": 1, "reached": 6, "read": 6, "reads": 12, "rate": 1.0}],
                      "hidden_rows": 1}
    timeline = queries.post_timeline(db, news, k=5).to_json()
    assert timeline["rows"] == [{"day": day1.date().isoformat(), "reads": 6, "new_readers": 3, "readers": 3},
                                {"day": clock.now.date().isoformat(), "reads": 6, "new_readers": 3, "readers": 6}]
    assert queries.post_timeline(db, people_post, k=5).to_json() == {"hidden": True, "hidden_people": 1,
                                                                      "min_group": 5}


def test_digest_performance_and_the_learned_timing_lift(db, org, make_post, clock):
    """Six personalised and five control emails: opened, read within 2 h and 24 h, counted per arm."""
    post = make_post()
    sent_at = clock.now - dt.timedelta(hours=30)
    people = org["Sales"] + org["Finance"]
    messages = [_send(db, p, [post], at=sent_at, basis="personal" if i < 6 else "control")
                for i, p in enumerate(people)]
    # Personalised: 4 read within 1 h, 1 at 5 h, 1 at 26 h (too late); control: 1 within 1 h, 1 at 5 h.
    delays = [1, 1, 1, 1, 5, 26, 1, 5, None, None, None]
    lines = ["employee_id,post_id,kind,occurred_at,dwell_ms"]
    for person, delay in zip(people, delays):
        if delay is not None:
            lines.append(f"{person.employee_id},{post.id},read,{(sent_at + dt.timedelta(hours=delay)).isoformat()},")
    events.import_csv(db, io.StringIO("\n".join(lines) + "\n"), now=clock.now)
    for person, message in zip(people[:3], messages[:3]):
        events.record(db, person, "digest_open", at=sent_at + dt.timedelta(minutes=30), client_id=f"open-{message.id}",
                      delivery_id=message.id, channel="email")
    settle(db)
    day = sent_at.date()
    perf = queries.digest_performance(db, start=day, end=day, k=5).to_json()
    assert perf == {"rows": [{"channel": "email", "sent": 11, "opened": 3, "read_2h": 5, "read_24h": 7}],
                    "hidden_rows": 0}
    lift = queries.learned_timing_lift(db, start=day, end=day, k=5).to_json()
    assert lift["personalised"] == {"sent": 6, "read_24h": 5} and lift["control"] == {"sent": 5, "read_24h": 2}
    assert lift["difference"] == pytest.approx(5 / 6 - 2 / 5, abs=1e-6)
    low, high = lift["ci95"]
    assert low < lift["difference"] < high
    assert queries.learned_timing_lift(db, start=day, end=day, k=6).to_json()["hidden"] is True


def test_digest_figures_count_people_not_messages(db, org, make_post, clock):
    """Teams carried twelve messages but to two people only (six each, three days running): its row and
    the lift stay hidden at k=5, however many messages there were; a second fold counts nobody twice."""
    posts = [make_post() for _ in range(6)]  # each digest carries its own post, as digests do
    post = posts[0]
    first_day = clock.now - dt.timedelta(days=3)
    two = org["Sales"][:2]
    for day in range(3):
        for hour in (8, 17):
            for person in two:
                _send(db, person, [posts[2 * day + (hour == 17)]], at=first_day + dt.timedelta(days=day, hours=hour - first_day.hour),
                      channel="teams", basis="personal" if person is two[0] else "control", ordinal=hour)
    for person in org["Sales"][2:] + org["Finance"]:  # email: nine people, one message each
        _send(db, person, [post], at=first_day, channel="email")
    settle(db)
    settle(db)
    window = {"start": first_day.date(), "end": clock.now.date()}
    perf = queries.digest_performance(db, **window, k=5).to_json()
    assert [row["channel"] for row in perf["rows"]] == ["email"] and perf["hidden_rows"] == 1
    assert queries.learned_timing_lift(db, **window, k=5, channel="teams").to_json()["hidden"] is True
    assert queries.digest_performance(db, **window, k=1).to_json()["hidden_rows"] == 0
    recipients = db.execute(select(AnalyticsDeliveryDay.recipients)
                            .where(AnalyticsDeliveryDay.channel == "teams")).scalars().all()
    assert sorted(recipients) == [1] * 6  # one personalised and one control person each of three days


def test_acknowledgement_progress_lists_must_reads_with_audience_and_acknowledged(db, org, make_post, clock):
    """A must-read for everyone (12) with 3 acknowledgements; a must-read for Legal (1) is left out."""
    everyone = make_post(must_read=True, title="Policy")
    legal = make_post(must_read=True, title="Legal only", audience={"segments": [{"departments": ["Legal"]}]})
    make_post(title="Not a must-read")
    for person in org["Sales"][:3]:
        feed.acknowledge(db, person, everyone, now=clock.now)
    feed.acknowledge(db, org["Legal"][0], legal, now=clock.now)
    settle(db)
    window = queries.Filters(start=clock.now.date() - dt.timedelta(days=1), end=clock.now.date())
    progress = queries.acknowledgement_progress(db, filters=window, k=5).to_json()
    assert progress == {"rows": [{"post_id": everyone.id, "title": "Policy", "audience": 12, "acknowledged": 3,
                                  "ack_deadline": None}], "hidden_rows": 1, "offset": 0, "total": 2}


def test_acknowledgement_progress_answers_a_page_of_must_reads_newest_first(db, org, make_post, clock):
    """Three must-reads, two a page: the newest two, then the oldest; each page says where it lies among all three."""
    posts = [make_post(must_read=True, title=f"Policy {n}", published_at=clock.now - dt.timedelta(hours=3 - n))
             for n in range(3)]
    feed.acknowledge(db, org["Sales"][0], posts[0], now=clock.now)
    settle(db)
    window = queries.Filters(start=clock.now.date() - dt.timedelta(days=1), end=clock.now.date())
    first = queries.acknowledgement_progress(db, filters=window, k=5, limit=2)
    assert [r.title for r in first.rows] == ["Policy 2", "Policy 1"] and (first.offset, first.total) == (0, 3)
    second = queries.acknowledgement_progress(db, filters=window, k=5, limit=2, offset=2)
    assert [(r.title, r.audience, r.acknowledged) for r in second.rows] == [("Policy 0", 12, 1)]
    assert (second.offset, second.total) == (2, 3)
    everything = queries.acknowledgement_progress(db, filters=window, k=5)
    assert everything.rows == first.rows + second.rows and everything.total == 3


def test_folding_a_queue_twice_counts_once(db, org, make_post, clock):
    """A second fold finds nothing queued: the first claimed every batch."""
    post = make_post()
    events.ingest(db, org["Sales"][0], [_event("q", "read", post.id, clock.now - dt.timedelta(minutes=1))],
                  now=clock.now)
    assert rollups.fold_pending(db) == 1
    assert rollups.fold_pending(db) == 0
    db.commit()
    assert _post_json(db, post, k=1)["read"] == 1


@pytest.mark.parametrize("org_timezone", ["UTC", "America/New_York"])
def test_a_rebuild_from_events_gives_the_incremental_counts(db, org, make_post, clock, org_timezone):
    """Live, imported, server-recorded and late events, folded as they came, equal a rebuild in SQL."""
    from intranet.models import (AnalyticsGroupDay, AnalyticsHourReaders, AnalyticsHourReads, AnalyticsPostFiled,
                                 AnalyticsPostGroup, AnalyticsPostPerson, AnalyticsReaderCell)

    first, second = make_post(must_read=True), make_post()
    at = clock.now - dt.timedelta(hours=5)
    for i, person in enumerate(org["Sales"] + org["Finance"]):
        events.ingest(db, person, [_event(f"a{i}", "impression", first.id, at),
                                   _event(f"b{i}", "open" if i % 2 else "read", second.id, at + dt.timedelta(hours=i)),
                                   _event(f"c{i}", "read", first.id, at + dt.timedelta(minutes=7 * i))],
                      now=clock.now, org_timezone=org_timezone)
    feed.acknowledge(db, org["Sales"][0], first, now=clock.now)
    _send(db, org["Legal"][0], [first, second], at=clock.now - dt.timedelta(days=2))
    old = clock.now - dt.timedelta(days=9)
    lines = ["employee_id,post_id,kind,occurred_at,dwell_ms"] + [
        f"{p.employee_id},{second.id},read,{(old + dt.timedelta(days=d)).isoformat()}," for d in (0, 3)
        for p in org["Sales"]]
    events.import_csv(db, io.StringIO("\n".join(lines) + "\n"), now=clock.now, org_timezone=org_timezone)
    rollups.fold_pending(db, org_timezone=org_timezone)
    db.commit()
    tables = (AnalyticsPostPerson, AnalyticsPostGroup, AnalyticsGroupDay, AnalyticsPostFiled, AnalyticsPostDay,
              AnalyticsHourReads, AnalyticsReaderCell, AnalyticsHourReaders)

    def snapshot() -> dict[str, list[tuple]]:
        out = {}
        for model in tables:
            table = model.__table__
            rows = db.execute(select(*table.c)).all()
            out[table.name] = sorted(tuple(r) for r in rows if not (model is AnalyticsHourReaders and r.readers == 0))
        return out

    incremental = snapshot()
    rollups.rebuild(db, org_timezone=org_timezone)
    db.commit()
    assert snapshot() == incremental
    assert {z for (z, *_rest) in incremental["intranet_analytics_hour_reads"]} == set(rollups.tracked_zones(org_timezone))


def test_the_fold_and_rebuild_commands(app, db, org, make_post, clock):
    """'analytics fold' folds what live ingest queued; 'analytics rebuild' recounts to the same figures."""
    post = make_post()
    for i, person in enumerate(org["Sales"]):
        events.ingest(db, person, [_event(f"v{i}", "read", post.id, clock.now - dt.timedelta(minutes=9))],
                      now=clock.now)
    db.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["intranet", "analytics", "fold"], catch_exceptions=False)
    assert result.exit_code == 0 and "Folded 6 events." in result.output
    db.expire_all()
    assert _post_json(db, post)["read"] == 6
    result = runner.invoke(args=["intranet", "analytics", "rebuild"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    db.expire_all()
    assert _post_json(db, post)["read"] == 6


@pytest.mark.postgres_only
def test_two_folders_never_deadlock_on_the_queue(database, db, org, make_post, clock, monkeypatch):
    """A dashboard's fold and the fold job at once, one of them in its second round, fold every batch once.

    Reproduces a load run's deadlock: a batch stored by a transaction that commits late (X) has a
    lower id than one already claimed by folder A; folder B claims the late batch and then waited
    for A's, while A's next round waited for the late batch B held.
    """
    post = make_post()
    at = clock.now - dt.timedelta(minutes=1)
    factory = session_factory(database)
    late, early, a, b = factory(), factory(), factory(), factory()
    a_claimed, a_go, b_started = threading.Event(), threading.Event(), threading.Event()
    b_pid: list[int] = []
    errors: list[BaseException] = []
    real_fold = rollups.fold

    def fold(session, *args, **kwargs):  # type: ignore[no-untyped-def]
        if session is a and not a_claimed.is_set():   # A holds its first round's batch until B has tried to claim
            a_claimed.set()
            a_go.wait()
        return real_fold(session, *args, **kwargs)

    def folder(session, started=None) -> None:  # type: ignore[no-untyped-def]
        try:
            if started is not None:
                b_pid.append(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
                started.set()
            rollups.fold_pending(session)
            session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            session.rollback()
            errors.append(exc)

    monkeypatch.setattr(rollups, "fold", fold)
    try:
        events.ingest(late, org["Sales"][0], [_event("late", "read", post.id, at)], now=clock.now)  # queued, id 1
        events.ingest(early, org["Sales"][1], [_event("early", "read", post.id, at)], now=clock.now)  # id 2
        early.commit()
        first = threading.Thread(target=folder, args=(a,))
        first.start()
        a_claimed.wait()                                  # A has claimed batch 2 (batch 1 is not committed yet)
        late.commit()
        second = threading.Thread(target=folder, args=(b, b_started))
        second.start()
        b_started.wait()
        # Until B waits for A's batch or has folded what it could.
        while second.is_alive() and not db.execute(text("SELECT cardinality(pg_blocking_pids(:pid))"),
                                                   {"pid": b_pid[0]}).scalar_one():
            db.rollback()
            second.join(0.01)
        db.rollback()
        a_go.set()
        first.join()
        second.join()
    finally:
        a_go.set()
        for session in (late, early, a, b):
            session.close()
    assert errors == []
    assert rollups.fold_pending(db) == 0                  # nothing left queued
    db.commit()
    assert _post_json(db, post, k=1)["read"] == 2         # each batch counted once
