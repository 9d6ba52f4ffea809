"""The benchmarks' hand-written SQL is the product's targeting rule, relative rules and journey steps included.

bench.platform_bench and bench.digest_compose time the product against raw SQL and require the
same answers; a raw baseline that ignored "reports to", "hired in the last N days" or journey
releases would be faster for doing less, and disagree with the product once audiences use them.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Session, select

from bench.platform_bench import Raw, raw_count, raw_feed
from intranet import targeting
from intranet.models import Journey, JourneyEnrolment, JourneyRelease, JourneyStep, Post


def _org(make_employee: Any, clock: Any) -> list[Any]:
    """A chain CEO <- VP <- lead <- two reports, hired at different times, and one outsider."""
    today = clock.now.date()
    ceo = make_employee(employee_id="C1", hire_date=dt.date(2015, 1, 1), level=9)
    vp = make_employee(employee_id="V1", manager_id="C1", hire_date=today - dt.timedelta(days=400), level=7)
    lead = make_employee(employee_id="L1", manager_id="V1", hire_date=today - dt.timedelta(days=40), level=5)
    new = make_employee(employee_id="N1", manager_id="L1", hire_date=today - dt.timedelta(days=3), level=2)
    old = make_employee(employee_id="O1", manager_id="L1", hire_date=today - dt.timedelta(days=90), level=2)
    outsider = make_employee(employee_id="X1", hire_date=None, level=3)
    future = make_employee(employee_id="F1", manager_id="V1", hire_date=today + dt.timedelta(days=10), level=1)
    return [ceo, vp, lead, new, old, outsider, future]



def _journey(db: Session, person: Any, steps: dict[str, tuple[Post, str]], released_ago: dt.timedelta,
             now: dt.datetime) -> None:
    """Enrol *person* in a hire journey whose steps (key -> (post, release status)) were due and, if
    released, released *released_ago* before *now*."""
    journey = Journey(name="Welcome", trigger="hire")
    db.add(journey)
    db.flush()
    enrolment = JourneyEnrolment(journey_id=journey.id, employee_pk=person.id, event_key="hire",  # type: ignore[arg-type]
                                 event_date=person.hire_date)
    db.add(enrolment)
    for key, (post, status) in steps.items():
        step = JourneyStep(journey_id=journey.id, key=key, post_id=post.id)  # type: ignore[arg-type]
        db.add(step)
        db.flush()
        db.add(JourneyRelease(enrolment_id=enrolment.id, step_id=step.id, employee_pk=person.id,  # type: ignore[arg-type]
                              post_id=post.id, due_at=now - released_ago - dt.timedelta(hours=1),  # type: ignore[arg-type]
                              status=status, released_at=now - released_ago if status == "released" else None))
    db.commit()

AUDIENCES = [
    {"segments": [{"reports_to": ["V1"]}]},
    {"segments": [{"reports_to": ["L1"], "level_max": 3}]},
    {"segments": [{"hired_within_days": 30}]},
    {"segments": [{"hired_within_days": 100, "reports_to": ["C1"]}]},
    {"all": True, "exclude": [{"reports_to": ["V1"]}]},
    {"all": True, "exclude": [{"hired_within_days": 7}]},
    {"segments": [{"level_min": 5}, {"hired_within_days": 0}]},
]


def test_raw_counts_match_the_product_for_relative_audiences(db: Session, make_employee: Any, clock: Any) -> None:
    _org(make_employee, clock)
    raw = Raw(db, db.get_bind().dialect.name)
    for raw_audience in AUDIENCES:
        audience = targeting.parse_audience(raw_audience)
        assert raw_count(raw, audience, now=clock.now) == targeting.count_audience(db, audience, now=clock.now), \
            raw_audience


def test_raw_feed_matches_the_product_for_relative_audiences_and_journey_steps(
        db: Session, make_employee: Any, make_post: Any, clock: Any) -> None:
    people = _org(make_employee, clock)
    for n, audience in enumerate(AUDIENCES):
        make_post(audience, title=f"Post {n}")
    # A journey step released to the newcomer, one still pending for them, and none for anyone else.
    newcomer = people[3]
    _journey(db, newcomer, {key: (make_post(title=f"Step {key}", journey_only=True), status)
                            for key, status in (("welcome", "released"), ("tools", "pending"))},
             dt.timedelta(hours=1), clock.now)

    raw = Raw(db, db.get_bind().dialect.name)
    for person in people:
        visible = set(db.exec(select(Post.id).where(targeting.visible_posts_filter(
            person, targeting.group_keys_of(db, person.id), clock.now))).all())
        assert {post_id for post_id, _ in raw_feed(raw, person, clock.now, limit=100)} == visible, person.employee_id
    assert any(p.journey_only for p in db.exec(select(Post)).all()
               if p.id in {i for i, _ in raw_feed(raw, newcomer, clock.now, limit=100)})


def test_raw_feed_orders_a_journey_step_by_its_release_as_the_product_does(
        db: Session, make_employee: Any, make_post: Any, clock: Any) -> None:
    """A must-read step published long ago but released today is pinned above last week's must-read."""
    from intranet import feed

    newcomer = make_employee(hire_date=clock.now.date())
    make_post(title="Last week's must-read", must_read=True, published_at=clock.now - dt.timedelta(days=7))
    step_post = make_post(title="Welcome", must_read=True, journey_only=True,
                          published_at=clock.now - dt.timedelta(days=200))
    _journey(db, newcomer, {"welcome": (step_post, "released")}, dt.timedelta(hours=1), clock.now)

    raw = Raw(db, db.get_bind().dialect.name)
    pinned = [post_id for post_id, is_pinned in raw_feed(raw, newcomer, clock.now) if is_pinned]
    product = [item.post.id for item in feed.feed_page(db, newcomer, now=clock.now, limit=20).items if item.pinned]
    assert pinned == product and pinned[0] == step_post.id


def test_raw_digest_candidates_count_a_journey_step_from_its_release(
        db: Session, make_employee: Any, make_post: Any, clock: Any) -> None:
    """A step published months ago but released yesterday is new to the person, as the digest composer says."""
    from bench.digest_compose import raw_candidates

    newcomer = make_employee(hire_date=clock.now.date())
    steps = {key: make_post(title=key, journey_only=True, published_at=clock.now - dt.timedelta(days=200))
             for key in ("welcome", "tools")}
    _journey(db, newcomer, {"welcome": (steps["welcome"], "released"), "tools": (steps["tools"], "pending")},
             dt.timedelta(days=1), clock.now)

    raw = Raw(db, db.get_bind().dialect.name)
    assert [row[0] for row in raw_candidates(raw, newcomer, clock.now)] == [steps["welcome"].id]
