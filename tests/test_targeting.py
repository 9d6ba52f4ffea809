"""The one targeting rule: predicate, SQL over employees and SQL over posts always agree."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, event
from sqlmodel import select

from intranet import feed, targeting
from intranet.errors import InvalidInput
from intranet.models import AudienceSegment, Employee, Group, GroupMember, Post

DEPARTMENTS = ["Sales", "Finance", "R&D"]
REGIONS = ["EMEA", "AMER", "APAC"]
COUNTRIES = ["DE", "US", "JP"]
GROUP_KEYS = ["runners", "parents"]


def audience(**segment) -> targeting.Audience:  # type: ignore[no-untyped-def]
    return targeting.parse_audience({"segments": [segment]})


def test_all_staff_counts_only_active_people(db, make_employee):
    """{"all": true} is every active employee, nobody inactive."""
    make_employee()
    make_employee()
    make_employee(active=False)
    assert targeting.count_audience(db, targeting.parse_audience({"all": True})) == 2


def test_dimensions_are_anded_and_values_ored(db, make_employee):
    """Inside a segment: department OR department, AND region."""
    make_employee(department="Sales", region="EMEA")
    make_employee(department="Finance", region="EMEA")
    make_employee(department="Sales", region="AMER")
    make_employee(department="Legal", region="EMEA")
    assert targeting.count_audience(db, audience(departments=["Sales", "Finance"], regions=["EMEA"])) == 2


def test_level_bounds_are_inclusive_and_skip_unknown_levels(db, make_employee):
    """level_min/max include their ends; a person without a level never matches a bound."""
    for level in (2, 3, 6, 7, None):
        make_employee(level=level)
    assert targeting.count_audience(db, audience(level_min=3, level_max=6)) == 2


def test_exclusion_with_level_bound_never_removes_unknown_levels(db, make_employee):
    """An exclusion on level keeps people whose level is unknown."""
    make_employee(level=None)
    make_employee(level=9)
    make_employee(level=2)
    aud = targeting.parse_audience({"all": True, "exclude": [{"level_min": 8}]})
    assert targeting.count_audience(db, aud) == 2


def test_exclusions_subtract(db, make_employee):
    """Segments minus exclusions."""
    make_employee(department="Sales", country="US")
    make_employee(department="Sales", country="DE")
    aud = targeting.parse_audience({"segments": [{"departments": ["Sales"]}], "exclude": [{"countries": ["US"]}]})
    assert targeting.count_audience(db, aud) == 1


@pytest.mark.parametrize("raw", [{}, {"segments": []}, {"segments": [{}]}, {"all": False}, None, [],
                                 {"segments": [{"level_min": 5, "level_max": 2}]},
                                 {"segments": [{"departmentz": ["Sales"]}]}])
def test_empty_or_malformed_audience_is_an_error(raw):
    """An audience without criteria is an error, never "everyone"."""
    with pytest.raises(InvalidInput):
        targeting.parse_audience(raw)


def test_unknown_value_names_the_closest_known_ones(db, make_employee):
    """A misspelled department is a 422 that suggests the real one."""
    make_employee(department="Sales")
    with pytest.raises(InvalidInput) as info:
        targeting.check_known_values(db, audience(departments=["Salse"]))
    assert "Salse" in info.value.message and "Sales" in info.value.message
    assert info.value.details[0]["suggestions"] == ["Sales"]


def test_preview_api_breaks_down_exact_headcounts(make_employee, client_for):
    """Comms managers get count and breakdowns by department, region and level."""
    manager = make_employee(is_comms=True, department="Communications", level=5)
    make_employee(department="Sales", region="EMEA", level=3)
    make_employee(department="Sales", region="AMER", level=None)
    body = client_for(manager).api("POST", "/api/v1/audiences/preview",
                                   json={"audience": {"segments": [{"departments": ["Sales"]}]}}).get_json()
    assert body == {"count": 2, "by_department": {"Sales": 2}, "by_region": {"AMER": 1, "EMEA": 1},
                    "by_level": {"3": 1, "unknown": 1}}


def test_preview_is_for_people_who_write_posts(make_employee, client_for):
    """An employee who may not write posts gets a 403 from the audience preview."""
    response = client_for(make_employee()).api("POST", "/api/v1/audiences/preview", json={"audience": {"all": True}})
    assert response.status_code == 403


def test_preview_refuses_misspelled_value(make_employee, client_for):
    """The preview API answers 422 naming the unknown value."""
    manager = make_employee(is_comms=True)
    response = client_for(manager).api("POST", "/api/v1/audiences/preview",
                                       json={"audience": {"segments": [{"departments": ["Salse"]}]}})
    assert response.status_code == 422
    assert "Salse" in response.get_json()["error"]["message"]


# -------------------------------------------------------------------------------------------------
# Property: the three forms of the rule agree on random people and audiences
# -------------------------------------------------------------------------------------------------

maybe = lambda values: st.one_of(st.none(), st.sampled_from(values))  # noqa: E731
people_strategy = st.lists(st.fixed_dictionaries({
    "department": maybe(DEPARTMENTS), "region": maybe(REGIONS), "country": maybe(COUNTRIES),
    "level": st.one_of(st.none(), st.integers(1, 10)), "active": st.booleans(),
    "groups": st.sets(st.sampled_from(GROUP_KEYS)),
    # Days since hire (negative: starts later) and the index of the manager (any one: cycles too).
    "hired_days_ago": st.one_of(st.none(), st.integers(-3, 40)),
    "manager": st.one_of(st.none(), st.integers(0, 7)),
}), min_size=1, max_size=8)
PERSON_IDS = [f"P{n}" for n in range(8)]
segment_strategy = st.fixed_dictionaries({}, optional={
    "departments": st.lists(st.sampled_from(DEPARTMENTS), min_size=1, max_size=2),
    "regions": st.lists(st.sampled_from(REGIONS), min_size=1, max_size=2),
    "countries": st.lists(st.sampled_from(COUNTRIES), min_size=1, max_size=2),
    "groups": st.lists(st.sampled_from(GROUP_KEYS), min_size=1, max_size=2),
    "level_min": st.integers(1, 10),
    "level_max": st.integers(1, 10),
    "reports_to": st.lists(st.sampled_from(PERSON_IDS), min_size=1, max_size=2),
    "hired_within_days": st.integers(0, 30),
}).filter(lambda s: s and s.get("level_min", 0) <= s.get("level_max", 10))
audience_strategy = st.one_of(
    st.fixed_dictionaries({"segments": st.lists(segment_strategy, min_size=1, max_size=3)},
                          optional={"exclude": st.lists(segment_strategy, max_size=2)}),
    st.fixed_dictionaries({"all": st.just(True)}, optional={"exclude": st.lists(segment_strategy, max_size=2)}),
)


relative_segment_strategy = st.fixed_dictionaries({}, optional={
    "reports_to": st.lists(st.sampled_from(PERSON_IDS), min_size=1, max_size=2),
    "hired_within_days": st.integers(0, 30),
    "departments": st.lists(st.sampled_from(DEPARTMENTS), min_size=1, max_size=2),
}).filter(bool)
relative_audience_strategy = st.fixed_dictionaries(
    {"segments": st.lists(relative_segment_strategy, min_size=1, max_size=2)},
    optional={"exclude": st.lists(relative_segment_strategy, max_size=1)})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(people=people_strategy, raw_audience=audience_strategy)
def test_sql_filters_and_predicate_agree(db, clock, people, raw_audience):
    """For any people and audience: employee SQL == post SQL == Python predicate."""
    check_rule_forms_agree(db, clock, people, raw_audience)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(people=people_strategy, raw_audience=relative_audience_strategy)
def test_relative_rules_agree_in_sql_and_python(db, clock, people, raw_audience):
    """"Reports to" (any chain, cycles too) and "hired in the last N days": the three forms agree."""
    check_rule_forms_agree(db, clock, people, raw_audience)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(people=people_strategy,
       raw_audiences=st.lists(st.one_of(audience_strategy, relative_audience_strategy), min_size=1, max_size=4))
def test_audiences_counted_together_equal_each_counted_alone(db, clock, people, raw_audiences):
    """One statement counting several audiences (the dashboard's must-reads) gives each one's own count."""
    try:
        _make_people(db, clock, people)
        parsed = [targeting.parse_audience(raw) for raw in raw_audiences]
        posts = []
        for audience in parsed:
            post = Post(title="t", status="published", published_at=clock.now, publish_at=clock.now)
            db.add(post)
            db.flush()
            targeting.store_audience(db, post, audience)
            posts.append((post, audience))
        alone = [targeting.count_audience(db, a, now=clock.now) for a in parsed]
        for together_from in (1, targeting.COUNT_TOGETHER_FROM):  # counted together, and each alone (few)
            assert targeting.count_post_audiences(db, posts + posts[:1], now=clock.now,
                                                  together_from=together_from) == alone + alone[:1]
    finally:
        db.rollback()
        for model in (AudienceSegment, Post, GroupMember, Group, Employee):
            db.exec(delete(model))
        db.commit()


def test_column_audiences_are_counted_in_one_pass(db, database, clock):
    """Must-reads aimed at departments, regions, offices and levels cost one statement together, not one each."""
    for n, (department, region, level) in enumerate([("Sales", "EMEA", 3), ("Sales", "AMER", 7), ("R&D", "EMEA", None),
                                                      ("Finance", None, 5)]):
        db.add(Employee(employee_id=f"C{n}", email=f"c{n}@x.test", department=department, region=region, level=level))
    db.add(Employee(employee_id="C9", email="c9@x.test", department="Sales", active=False))
    raws = [{"segments": [{"departments": ["Sales"]}]}, {"segments": [{"regions": ["EMEA"], "level_max": 5}]},
            {"all": True, "exclude": [{"departments": ["Sales"], "level_min": 5}]}, {"segments": [{"level_min": 1}]}]
    posts = []
    for raw in raws:
        post = Post(title="t", status="published", published_at=clock.now, publish_at=clock.now)
        db.add(post)
        db.flush()
        targeting.store_audience(db, post, targeting.parse_audience(raw))
        posts.append((post, targeting.parse_audience(raw)))
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(database, "before_cursor_execute", count)
    try:
        counts = targeting.count_post_audiences(db, posts, now=clock.now, together_from=1)
    finally:
        event.remove(database, "before_cursor_execute", count)
    assert counts == [2, 1, 3, 3]
    assert len(statements) == 1, statements


def _make_people(db, clock, people):  # type: ignore[no-untyped-def]
    groups = {key: Group(key=key, name=key) for key in GROUP_KEYS}
    db.add_all(groups.values())
    db.flush()
    employees = []
    for n, spec in enumerate(people):
        hired = spec["hired_days_ago"]
        manager = spec["manager"]
        employee = Employee(employee_id=f"P{n}", email=f"p{n}@x.test", department=spec["department"],
                            region=spec["region"], country=spec["country"], level=spec["level"],
                            active=spec["active"],
                            hire_date=None if hired is None else clock.now.date() - dt.timedelta(days=hired),
                            manager_id=None if manager is None or manager >= len(people) else f"P{manager}")
        db.add(employee)
        db.flush()
        db.add_all(GroupMember(group_id=groups[k].id, employee_pk=employee.id) for k in spec["groups"])
        employees.append((employee, spec["groups"]))
    return employees


def check_rule_forms_agree(db, clock, people, raw_audience):  # type: ignore[no-untyped-def]
    try:
        employees = _make_people(db, clock, people)
        parsed = targeting.parse_audience(raw_audience)
        post = Post(title="t", status="published", published_at=clock.now, publish_at=clock.now)
        db.add(post)
        db.flush()
        targeting.store_audience(db, post, parsed)

        by_sql = set(db.exec(select(Employee.id).where(targeting.employee_filter(parsed, now=clock.now))).all())
        for employee, keys in employees:
            managers = targeting.managers_of(db, employee)
            predicate = targeting.employee_matches(parsed, employee, keys, managers=managers, now=clock.now)
            post_side = db.exec(select(Post.id).where(
                targeting.visible_posts_filter(employee, keys, clock.now), Post.id == post.id)).first() is not None
            assert predicate == (employee.id in by_sql) == post_side, (raw_audience, people)
            assert targeting.may_see(db, employee, post, clock.now) == predicate
            # The feed runs one statement per shape of person with each one's values: the same rule.
            assert (post.id in feed.ranked_ids(db, employee, now=clock.now)[0]) == predicate, (raw_audience, people)
    finally:
        db.rollback()
        for model in (AudienceSegment, Post, GroupMember, Group, Employee):
            db.exec(delete(model))
        db.commit()


def test_everyone_and_filtered_breakdowns_agree(db, make_employee):
    """The everyone shortcut and the general path give the same headcounts, unknowns included."""
    make_employee(department="Sales", region="EMEA", level=3)
    make_employee(department=None, region="AMER", level=None)
    make_employee(department="Sales", region=None, level=7)
    make_employee(department="Legal", active=False)
    everyone = targeting.audience_breakdown(db, targeting.parse_audience({"all": True}))
    general = targeting.audience_breakdown(db, targeting.parse_audience(
        {"segments": [{"level_min": 1}, {"regions": ["AMER"]}, {"departments": ["Sales"]}]}))
    assert everyone == general
    assert everyone["count"] == 3 and everyone["by_department"] == {"Sales": 2, "unknown": 1}


def test_breakdowns_by_language_come_from_the_same_count(db, make_employee):
    """Asked for, the split by language tag sits beside the others (unknowns too), whichever path counts it."""
    make_employee(department="Sales", region="EMEA", level=3, language="es")
    make_employee(department="Sales", region="AMER", level=None, language="es")
    make_employee(department="Legal", region=None, level=7, language=None)
    make_employee(department="Legal", language="ca", active=False)
    everyone = targeting.audience_breakdown(db, targeting.parse_audience({"all": True}), by_language=True)
    general = targeting.audience_breakdown(db, targeting.parse_audience(
        {"segments": [{"level_min": 1}, {"regions": ["AMER"]}, {"departments": ["Legal"]}]}), by_language=True)
    assert everyone == general and everyone["by_language"] == {"es": 2, "unknown": 1}
    sales = targeting.audience_breakdown(db, targeting.parse_audience({"segments": [{"departments": ["Sales"]}]}),
                                         by_language=True)
    assert sales["by_language"] == {"es": 2} and sales["by_region"] == {"AMER": 1, "EMEA": 1}
    assert "by_language" not in targeting.audience_breakdown(db, targeting.parse_audience({"all": True}))


# -------------------------------------------------------------------------------------------------
# Relative rules: hired in the last N days, reports to (directly or indirectly)
# -------------------------------------------------------------------------------------------------


def test_hired_within_days_counts_from_today_inclusive(db, make_employee, clock):
    """"Hired in the last 7 days": hire dates from 7 days ago to today; not later starters, not unknowns."""
    today = clock.now.date()
    for days_ago in (0, 7, 8, -1):
        make_employee(hire_date=today - dt.timedelta(days=days_ago))
    make_employee(hire_date=None)
    assert targeting.count_audience(db, audience(hired_within_days=7), now=clock.now) == 2


def test_hired_within_days_moves_with_the_clock(db, make_employee, make_post, clock):
    """A new joiner's post stops being theirs once the window has passed, without editing the audience."""
    joiner = make_employee(hire_date=clock.now.date())
    post = make_post({"segments": [{"hired_within_days": 3}]})
    assert targeting.may_see(db, joiner, post, clock.now)
    later = clock.now + dt.timedelta(days=4)
    assert not targeting.may_see(db, joiner, post, later)
    assert db.exec(select(Post.id).where(targeting.visible_posts_filter(joiner, (), later))).first() is None


def test_reports_to_includes_the_whole_chain_below(db, make_employee):
    """"Reports to X" is X's direct and indirect reports, not X, not X's peers."""
    boss = make_employee(employee_id="B")
    lead = make_employee(employee_id="L", manager_id="B")
    make_employee(employee_id="M", manager_id="L")
    make_employee(employee_id="N", manager_id="M")
    make_employee(employee_id="PEER")
    assert {boss.employee_id, lead.employee_id}
    chosen = set(db.exec(select(Employee.employee_id).where(
        targeting.employee_filter(audience(reports_to=["B"])))).all())
    assert chosen == {"L", "M", "N"}
    assert targeting.managers_of(db, db.exec(select(Employee).where(Employee.employee_id == "N")).one()) == \
        {"M", "L", "B"}


def test_reports_to_survives_a_cycle_in_the_directory(db, make_employee):
    """A manager cycle (A -> B -> A) ends the walk instead of looping."""
    a = make_employee(employee_id="A", manager_id="C")
    make_employee(employee_id="C", manager_id="A")
    assert targeting.managers_of(db, a) == {"C", "A"}
    assert targeting.count_audience(db, audience(reports_to=["A"])) == 2


def test_reports_to_rule_hides_posts_from_other_teams_on_every_route(db, make_employee, make_post, client_for, clock):
    """A post for "reports to X" is in X's team's feed and page, and a 404 for anyone else."""
    make_employee(employee_id="BOSS")
    member = make_employee(employee_id="MEMBER", manager_id="BOSS")
    outsider = make_employee(employee_id="OUT")
    post = make_post({"segments": [{"reports_to": ["BOSS"]}]}, title="Team offsite")
    assert client_for(member).get(f"/posts/{post.id}").status_code == 200
    assert client_for(outsider).get(f"/posts/{post.id}").status_code == 404
    assert client_for(outsider).api("GET", f"/api/v1/posts/{post.id}").status_code == 404
    def feed_titles(person):  # type: ignore[no-untyped-def]
        return [item["title"] for item in client_for(person).get("/api/v1/feed").get_json()["items"]]

    assert "Team offsite" not in feed_titles(outsider)
    assert "Team offsite" in feed_titles(member)
    assert "Team offsite" not in client_for(outsider).get("/search?q=offsite").get_data(as_text=True)
    assert "Team offsite" in client_for(member).get("/search?q=offsite").get_data(as_text=True)


def test_known_values_are_looked_up_by_name_with_the_same_answer(db, make_employee, make_group):
    """known_among (the values named) agrees with known_values (all of them) on every dimension:
    an inactive person's department still counts, an inactive manager does not."""
    make_employee(department="Sales", region="EMEA", country="DE", office="Berlin", division="Ops",
                  employee_id="BOSS")
    make_employee(department="Legal", active=False, employee_id="GONE")
    make_group("runners")
    asked = {"department": {"Sales", "Legal", "Salse"}, "region": {"EMEA", "APAC"}, "country": {"DE", "FR"},
             "office": {"Berlin", "Paris"}, "division": {"Ops", "Dev"}, "group": {"runners", "walkers"},
             "reports_to": {"BOSS", "GONE", "NOBODY"}}
    for dimension, values in asked.items():
        assert targeting.known_among(db, dimension, values) == values & targeting.known_values(db, dimension), dimension
    assert targeting.known_among(db, "department", {"Sales", "Legal", "Salse"}) == {"Sales", "Legal"}
    assert targeting.known_among(db, "reports_to", {"BOSS", "GONE"}) == {"BOSS"}
    targeting.check_known_values(db, audience(departments=["Legal"]))  # known: no error


def test_viewer_scope_is_the_groups_and_the_manager_chain_in_one_query(db, make_employee, make_group):
    """viewer_scope (one statement, as visible_post_or_404 reads it) answers what group_keys_of and
    managers_of answer apart, for someone with a chain and groups and someone with neither."""
    top = make_employee(employee_id="TOP")
    middle = make_employee(employee_id="MID", manager_id="TOP")
    person = make_employee(employee_id="LOW", manager_id="MID")
    loner = make_employee(employee_id="SOLO")
    make_group("runners", members=(person, middle))
    make_group("readers", members=(person,))
    for who in (person, middle, top, loner):
        assert targeting.viewer_scope(db, who) == (targeting.group_keys_of(db, who.id),
                                                   targeting.managers_of(db, who)), who.employee_id
    assert targeting.viewer_scope(db, person) == ({"runners", "readers"}, {"MID", "TOP"})
    assert targeting.viewer_scope(db, loner) == (set(), set())


def test_reports_to_names_only_known_people(db, make_employee):
    """An unknown manager id is refused like a misspelled department."""
    make_employee(employee_id="BOSS")
    with pytest.raises(InvalidInput) as info:
        targeting.check_known_values(db, audience(reports_to=["B0SS"]))
    assert "B0SS" in info.value.message


def test_preview_counts_relative_rules(make_employee, client_for, clock):
    """The audience preview API counts "hired in the last N days" and "reports to"."""
    manager = make_employee(is_comms=True, employee_id="BOSS")
    make_employee(manager_id="BOSS", hire_date=clock.now.date())
    make_employee(manager_id="BOSS", hire_date=clock.now.date() - dt.timedelta(days=90))
    body = client_for(manager).api("POST", "/api/v1/audiences/preview", json={"audience": {"segments": [
        {"reports_to": ["BOSS"], "hired_within_days": 30}]}}).get_json()
    assert body["count"] == 1
