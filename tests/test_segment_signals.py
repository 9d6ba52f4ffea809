"""A post's reception for comms managers: the segments where it landed notably worse, judged on
exposure with an empirical-Bayes test, groups under five never shown."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from intranet import segment_signals
from intranet.models import EngagementEvent

ENGAGED_MS, GLANCE_MS = 60_000, 1_000


@pytest.fixture
def read(db, clock):  # type: ignore[no-untyped-def]
    """Record that *people* were shown *post*, the first *engaged* of them reading it properly."""
    counter = iter(range(1, 1_000_000))

    def record(post, people, engaged: int) -> None:  # type: ignore[no-untyped-def]
        for i, person in enumerate(people):
            n = next(counter)
            at = clock.now - dt.timedelta(minutes=30)
            common = {"employee_pk": person.id, "post_id": post.id, "occurred_at": at, "received_at": at,
                      "local_hour": 9, "local_weekday": 1}
            db.add(EngagementEvent(client_id=f"i{n}", kind="impression", **common))
            db.add(EngagementEvent(client_id=f"r{n}", kind="read",
                                   dwell_ms=ENGAGED_MS if i < engaged else GLANCE_MS, **common))
        db.commit()

    return record


@pytest.fixture
def org(make_employee):  # type: ignore[no-untyped-def]
    """30 people in Sales, 30 in Operations (both EMEA), 4 in Legal (APAC), a comms manager and an author."""
    return {"Sales": [make_employee(department="Sales") for _ in range(30)],
            "Operations": [make_employee(department="Operations") for _ in range(30)],
            "Legal": [make_employee(department="Legal", region="APAC", level=7) for _ in range(4)],
            "comms": make_employee(display_name="Cora Comms", is_comms=True, department="Comms"),
            "author": make_employee(display_name="Ada Author", is_contributor=True, department="Comms")}


def by_segment(signals) -> dict[tuple[str, str], segment_signals.SegmentSignalPublic]:  # type: ignore[no-untyped-def]
    return {(s.dimension, s.value): s for s in signals.segments}


def test_beta_tail_matches_numerical_integration():
    """The regularized incomplete beta agrees with integrating the density."""
    from math import lgamma
    for a, b, x in [(2, 3, 0.4), (20.5, 3.2, 0.7), (300, 700, 0.28), (5, 50, 0.2)]:
        t = np.linspace(0, x, 400_001)[1:]
        density = np.exp((a - 1) * np.log(t) + (b - 1) * np.log1p(-t) + lgamma(a + b) - lgamma(a) - lgamma(b))
        assert segment_signals.beta_cdf(x, a, b) == pytest.approx(np.trapezoid(density, t), abs=1e-4)


def test_the_beta_binomial_tail_matches_summing_its_probabilities():
    """P(Y <= y) of a beta-binomial equals the sum of its pmf, written out with the beta function."""
    from math import comb, exp, lgamma

    def log_beta(a: float, b: float) -> float:
        return lgamma(a) + lgamma(b) - lgamma(a + b)

    for y, n, a, b in [(0, 40, 6.0, 44.0), (3, 10, 2.5, 4.0), (17, 60, 30.0, 90.0), (9, 10, 1.0, 1.0)]:
        direct = sum(comb(n, k) * exp(log_beta(k + a, n - k + b) - log_beta(a, b)) for k in range(y + 1))
        assert segment_signals.beta_binomial_cdf(y, n, a, b) == pytest.approx(direct, rel=1e-9)
    assert segment_signals.beta_binomial_cdf(10, 10, 2.0, 3.0) == 1.0


def test_benjamini_hochberg_q_values():
    """q-values are the step-up adjusted p-values, in the original order, never above 1."""
    q = segment_signals.false_discovery_q(np.array([0.04, 0.001, 0.03, 0.5]))
    assert q == pytest.approx([0.04 * 4 / 3, 0.004, 0.04 * 4 / 3, 0.5])  # 0.03 * 4 / 2 is above the step after it
    assert segment_signals.false_discovery_q(np.array([0.9, 0.8])) == pytest.approx([0.9, 0.9])


def test_the_spread_is_measured_from_history_by_the_method_of_moments():
    """Binomial counts around their expectation give a very tight spread; rates that really vary give κ near the truth."""
    rng = np.random.default_rng(3)
    n = np.full((400, 20), 60.0)
    e = rng.uniform(0.1, 0.6, (400, 20))
    binomial = rng.binomial(60, e).astype(float)
    assert segment_signals.concentration(n, binomial, e) >= 500
    theta = rng.beta(30 * e, 30 * (1 - e))
    spread = rng.binomial(60, theta).astype(float)
    assert 22 <= segment_signals.concentration(n, spread, e) <= 40
    assert segment_signals.concentration(n[:1, :5], spread[:1, :5], e[:1, :5]) == segment_signals.DEFAULT_CONCENTRATION


def test_no_segment_under_five_is_ever_tested_or_flagged():
    """However bad a group of fewer than five looks (or a group with fewer than five beside it), it gets p = 1 and no flag."""
    rng = np.random.default_rng(11)
    for _ in range(300):
        n = rng.integers(0, 12, rng.integers(2, 8)).astype(float)
        y = np.floor(n * rng.random(len(n)) * (rng.random(len(n)) < 0.7))
        keep, _expected, p_value = segment_signals.judge(n, y, total=(n.sum(), y.sum()))
        small = (n < 5) | (n.sum() - n < 5)
        assert not keep[small].any() and (p_value[small] == 1.0).all()
        q_value = np.ones(len(n))
        q_value[keep] = segment_signals.false_discovery_q(p_value[keep])
        assert not ((q_value <= segment_signals.FALSE_DISCOVERY_RATE) & small).any()


def test_a_department_that_read_none_of_a_post_is_flagged_where_six_reads_were_expected(
        db, make_employee, make_post, read, clock):
    """Planted problem: 0 engaged reads of 40 in Operations against 15 % in Sales.

    The old test (a Beta posterior of 20 pseudo-people, flagged above 0.99) gave it 0.98 and missed
    it; about six good reads were expected and none came, which is 0.25 % likely by chance.
    """
    sales = [make_employee(department="Sales") for _ in range(40)]
    operations = [make_employee(department="Operations") for _ in range(40)]
    post = make_post()
    read(post, sales, engaged=6)
    read(post, operations, engaged=0)
    segments = by_segment(segment_signals.for_post(db, post, now=clock.now))
    assert segments[("department", "Operations")].flagged
    assert not segments[("department", "Sales")].flagged


def test_a_segment_that_read_much_less_is_flagged(db, org, make_post, read, clock):
    """Operations, exposed like Sales but reading a tenth as often, is flagged; Sales is not."""
    post = make_post(author_pk=org["author"].id)
    read(post, org["Sales"], engaged=24)
    read(post, org["Operations"], engaged=3)
    signals = segment_signals.for_post(db, post, now=clock.now)
    segments = by_segment(signals)
    assert segments[("department", "Operations")].flagged
    assert segments[("department", "Operations")].q_value <= segment_signals.FALSE_DISCOVERY_RATE
    assert not segments[("department", "Sales")].flagged
    assert [(s.dimension, s.value) for s in signals.flagged] == [("department", "Operations")]


def test_groups_under_five_are_never_shown(db, org, make_post, read, clock):
    """Legal (4 people, none of whom read) appears in no segment, even though its raw rate is 0 %."""
    post = make_post(author_pk=org["author"].id)
    read(post, org["Sales"], engaged=24)
    read(post, org["Operations"], engaged=20)
    read(post, org["Legal"], engaged=0)
    signals = segment_signals.for_post(db, post, now=clock.now)
    shown = {s.value for s in signals.segments}
    assert "Legal" not in shown and "APAC" not in shown and "7" not in shown
    # Legal; APAC and EMEA (60 people beside only 4: showing it would reveal APAC); levels 7 and 3 alike.
    assert signals.hidden == 5
    assert {s.dimension for s in signals.segments} == {"department"}
    assert signals.exposed == 64


def test_a_small_group_with_a_bad_raw_average_is_not_flagged(db, org, make_post, read, make_employee, clock):
    """Five people with one good read against a rest at 80 %: shrinkage says too little evidence."""
    post = make_post(author_pk=org["author"].id)
    read(post, org["Sales"], engaged=24)
    read(post, org["Operations"], engaged=24)
    read(post, [make_employee(department="Facilities") for _ in range(5)], engaged=1)
    facilities = by_segment(segment_signals.for_post(db, post, now=clock.now))[("department", "Facilities")]
    assert facilities.rate == 0.2 and not facilities.flagged


def test_a_segment_that_always_reads_the_topic_less_is_not_flagged_for_it(db, org, make_post, read, clock):
    """Case mix: when Operations reads this topic this little on earlier posts too, this post is not the problem."""
    for days in (3, 10):
        earlier = make_post(topic="Finance", published_at=clock.now - dt.timedelta(days=days))
        read(earlier, org["Sales"], engaged=24)
        read(earlier, org["Operations"], engaged=4)
    post = make_post(topic="Finance", author_pk=org["author"].id)
    read(post, org["Sales"], engaged=24)
    read(post, org["Operations"], engaged=3)
    assert not by_segment(segment_signals.for_post(db, post, now=clock.now))[("department", "Operations")].flagged
    other = make_post(topic="Sport", author_pk=org["author"].id)
    read(other, org["Sales"], engaged=24)
    read(other, org["Operations"], engaged=3)
    assert by_segment(segment_signals.for_post(db, other, now=clock.now))[("department", "Operations")].flagged


def test_comms_managers_see_the_reception_on_the_management_page(org, make_post, read, client_for):
    """The post's management page shows comms managers the distribution, the flagged segment and comments."""
    post = make_post(author_pk=org["author"].id)
    read(post, org["Sales"], engaged=24)
    read(post, org["Operations"], engaged=3)
    rater = client_for(org["Operations"][0])
    assert rater.api("PUT", f"/api/v1/posts/{post.id}/rating", json={"stars": 1, "comment": "Not for us"}).status_code == 200
    page = client_for(org["comms"]).get(f"/publish/posts/{post.id}").get_data(as_text=True)
    section = page[page.index('id="reception"'):]
    assert "Department Operations" in section and "Not for us" in section and "Unsigned" in section
    assert "Legal" not in section
    assert org["Operations"][0].display_name not in section


def test_the_reception_api_is_for_comms_managers_only(org, make_post, read, client_for):
    """GET /posts/<id>/reception: comms managers get it; the author is refused; a missing post is a 404."""
    post = make_post(author_pk=org["author"].id)
    read(post, org["Sales"], engaged=24)
    read(post, org["Operations"], engaged=3)
    read(post, org["Legal"], engaged=0)
    comms = client_for(org["comms"])
    data = comms.get(f"/api/v1/posts/{post.id}/reception").get_json()
    assert [(s["dimension"], s["value"]) for s in data["segments"] if s["flagged"]] == [("department", "Operations")]
    assert data["min_group"] == 5 and all(s["exposed"] >= 5 for s in data["segments"])
    assert "Legal" not in str(data)
    assert comms.get("/api/v1/posts/999999/reception").status_code == 404
    assert client_for(org["author"]).get(f"/api/v1/posts/{post.id}/reception").status_code == 403
    assert "Reception" not in client_for(org["author"]).get(f"/publish/posts/{post.id}").get_data(as_text=True)
