"""Composing a batch of digests at once says exactly what composing each one alone says.

The sender composes its whole batch with :func:`intranet.delivery.content.compose_many` (a few
set-based queries, the targeting rule's Python form); :func:`intranet.delivery.content.compose`
is the one-person reference. An organisation with every kind of audience, read and acknowledged
states, ratings, digest history and the weekly budget must get the same items, in the same order,
with the same counts, from both.
"""
from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import select

from intranet import preferences, ratings
from intranet.delivery import content
from intranet.models import Digest, DigestItem, Employee, OutboxMessage, PostState
from tests.delivery_support import make_digest

HOUR = dt.timedelta(hours=1)
TOPICS = ("News", "Product", "Events", "IT", "HR", "Compliance")
AUDIENCES = (
    {"all": True},
    {"all": True, "exclude": [{"level_max": 2}]},
    {"segments": [{"departments": ["Sales"]}]},
    {"segments": [{"departments": ["Sales", "Engineering"], "regions": ["EMEA"]}]},
    {"segments": [{"departments": ["Engineering"], "level_min": 4}]},
    {"segments": [{"level_min": 5}]},
    {"segments": [{"groups": ["runners"]}]},
    {"segments": [{"countries": ["ES"]}, {"offices": ["Berlin"]}], "exclude": [{"groups": ["runners"]}]},
    {"segments": [{"reports_to": ["T000001"]}]},
    {"segments": [{"hired_within_days": 30}]},
    {"segments": [{"departments": ["Finance"]}]},
)


def organisation(db, make_employee, make_post, make_group, clock, rng: random.Random):  # type: ignore[no-untyped-def]
    """People in several departments, places and levels (one of them everyone's manager), posts for
    every kind of audience over ten days, reads, acknowledgements and ratings."""
    boss = make_employee(department="Engineering", level=9)
    people = [boss]
    for i in range(23):
        people.append(make_employee(
            department=rng.choice(("Sales", "Engineering", "Finance")), region=rng.choice(("EMEA", "AMER")),
            country=rng.choice(("DE", "ES", "US")), office=rng.choice(("Berlin", "Madrid", "Austin")),
            level=rng.choice((None, 1, 3, 5, 7)), manager_id=boss.employee_id if i % 3 == 0 else None,
            hire_date=(clock.now - dt.timedelta(days=rng.choice((5, 90)))).date(), active=i != 7))
    make_group("runners", members=tuple(rng.sample(people, 8)))
    posts = []
    for i in range(40):
        posts.append(make_post(rng.choice(AUDIENCES), topic=rng.choice(TOPICS), must_read=i % 9 == 0,
                               published_at=clock.now - dt.timedelta(hours=rng.uniform(1, 240)),
                               rating_style=rng.choice(("stars", "thumbs"))))
    for person in people:
        if not person.active:
            continue
        for post in rng.sample(posts, 6):
            db.add(PostState(employee_pk=person.id, post_id=post.id, read_at=clock.now - HOUR,
                             acknowledged_at=clock.now - HOUR if post.must_read and rng.random() < 0.5 else None))
    db.commit()
    for person in rng.sample([p for p in people if p.active], 10):
        for post in rng.sample(posts, 3):
            value = {"stars": rng.randint(1, 5)} if post.rating_style == "stars" else {"thumb": rng.choice(("up", "down"))}
            ratings.rate(db, employee=person, post=post, rating=ratings.RatingIn(**value), now=clock.now)
    db.commit()
    return people, posts


def test_a_batch_composes_what_each_slot_composes_alone(db, make_employee, make_post, make_group, clock):
    """Every person's digest from the batch (cap, budget, mutes, history, a reminder, an alert)
    equals the one composed for them alone."""
    rng = random.Random(7)
    people, posts = organisation(db, make_employee, make_post, make_group, clock, rng)
    muted = people[2]
    preferences.update(db, muted, preferences.PreferencesIn(muted_topics=["News", "Product"]), now=clock.now)
    alert_person = people[3]
    preferences.update(db, alert_person, preferences.PreferencesIn(cadence="as_it_happens"), now=clock.now)
    db.commit()
    # Some digest history: an earlier digest sets "since", and what it carried uses the budget.
    earlier = make_digest(db, people[4], clock.now - dt.timedelta(days=3), ordinal=1)
    db.add(OutboxMessage(digest_id=earlier.id, employee_pk=people[4].id, channel="email", status="sent",
                         expires_at=clock.now, message_id="<x@y>", sent_at=clock.now - dt.timedelta(days=3),
                         post_ids=[p.id for p in posts[:5]], next_attempt_at=clock.now))
    db.commit()
    requests = []
    for person in people:
        slot = make_digest(db, person, clock.now)
        requests.append(content.Request(person, slot, must_reads_only=person is people[5]))
    alert = Digest(employee_pk=alert_person.id, local_date=clock.now.date(), ordinal=100, due_at=clock.now,
                   expires_at=clock.now + 12 * HOUR, timezone="UTC", local_hour=clock.now.hour, kind="alert")
    db.add(alert)
    db.flush()
    db.add_all(DigestItem(employee_pk=alert_person.id, post_id=p.id, round=int(p.must_read), digest_id=alert.id)
               for p in posts[:6])
    db.commit()
    requests.append(content.Request(alert_person, alert))
    for limit, budget in ((10, 0), (4, 0), (10, 3)):
        together = content.compose_many(db, requests, clock.now, limit=limit, weekly_budget=budget)
        alone = [content.compose(db, r.employee, r.slot, clock.now, limit=limit, weekly_budget=budget,
                                 must_reads_only=r.must_reads_only) for r in requests]
        assert together == alone
    assert sum(bool(c.items) for c in alone) >= 15, "the organisation gives most people something to read"
    assert any(c.held_back for c in alone) and any(len(c.items) >= 4 for c in alone)


def test_a_batch_of_people_who_left_composes_nothing(db, make_employee, make_post, clock):
    """Deactivated people get empty content, in their place in the batch."""
    make_post()
    here, gone = make_employee(), make_employee(active=False)
    requests = [content.Request(gone, make_digest(db, gone, clock.now)),
                content.Request(here, make_digest(db, here, clock.now))]
    got = content.compose_many(db, requests, clock.now)
    assert [c.empty for c in got] == [True, False]
    assert db.execute(select(Employee.id)).first() is not None
