"""The access-control matrix (SECURITY.md C1-C3, C7): every route, as every kind of caller, for every
state of the post its URL names, answers as ``tests/access_policies.py`` declares.
"""
from __future__ import annotations

from typing import Any

import pytest
from flask import url_for

from intranet import create_app
from tests.access_policies import ACTORS, POLICIES, UNSAFE, World, answer_of, headers_of
from tests.pages import without_csrf_token


def _rules(app: Any) -> list[tuple[str, str, str]]:
    """(endpoint, method, rule) for every route of the app."""
    return sorted((rule.endpoint, method, rule.rule) for rule in app.url_map.iter_rules()
                  for method in sorted(rule.methods - {"HEAD", "OPTIONS"}))


def test_every_route_has_a_declared_policy():
    """Every route of url_map is declared in POLICIES (and nothing declared is gone)."""
    app = create_app({"INTRANET_ENV": "production", "INTRANET_DATABASE_URL": "sqlite://",
                      "INTRANET_SECRET_KEY": "x" * 64, "INTRANET_DEV_LOGIN": True})
    endpoints = {endpoint for endpoint, _, _ in _rules(app)}
    assert sorted(endpoints - set(POLICIES)) == [], "declare these routes in POLICIES of tests/access_policies.py"
    assert sorted(set(POLICIES) - endpoints) == []


@pytest.fixture
def world(make_app, db, clock, tmp_path) -> World:  # type: ignore[no-untyped-def]
    app = make_app(INTRANET_UPLOAD_DIR=str(tmp_path / "uploads"))
    return World(app, db, clock.now)


def check_route(world: World, clients: dict[str, Any], endpoint: str, method: str) -> list[str]:
    """Call *endpoint* with *method* as every caller on a fresh object in every state; what went wrong."""
    policy = POLICIES[endpoint]
    calls = [(actor, state, policy.expected(actor, state)) for actor in ACTORS for state in policy.states()]
    urls = {}
    with world.app.test_request_context(base_url="https://localhost"):
        for actor, state, _ in calls:
            urls[actor, state] = url_for(endpoint, **world.args(policy, actor, state)) + policy.query
    world.delete_posts()

    def call(actor: str, state: str) -> Any:
        client, token = clients[actor]
        headers = {"X-CSRFToken": token} if method in UNSAFE else {}
        url = urls[actor, state]
        if "/api/" in url and method in UNSAFE:
            response = client.open(url, method=method, json=dict(policy.body), headers=headers,
                                   base_url="https://localhost")
        else:
            response = client.open(url, method=method, data=dict(policy.body) if method in UNSAFE else None,
                                   headers=headers, base_url="https://localhost")
        response.get_data()
        response.close()  # file responses hold their file open until closed
        return response

    problems: list[str] = []
    answers: dict[tuple[str, str], Any] = {}
    before = world.row_counts()
    for actor, state, expected in calls:  # the refused calls first, to count rows around them
        if expected != "ok":
            answers[actor, state] = call(actor, state)
    after = world.row_counts()
    if after != before:
        problems.append("refused calls wrote rows: " + ", ".join(
            f"{name} {before[name]} -> {after[name]}" for name in before if before[name] != after[name]))
    for actor, state, expected in calls:
        if expected == "ok":
            answers[actor, state] = call(actor, state)
    for actor, state, expected in calls:
        got = answer_of(answers[actor, state])
        if got != expected:
            problems.append(f"{actor:12} {state:10} expected {expected:9} got {got} ({answers[actor, state].status_code})")
    if "deleted" in policy.states():
        for actor, state, expected in calls:
            response, reference = answers[actor, state], answers[actor, "deleted"]
            if expected == "missing" and state != "deleted" and reference.status_code == 404 and (
                    without_csrf_token(response.data) != without_csrf_token(reference.data)
                    or headers_of(response) != headers_of(reference)):
                problems.append(f"{actor:12} {state:10} 404 differs from the deleted post's")
    return problems


def test_every_route_answers_as_declared(world):
    """Each route, for each caller and each state of the object its URL names, gives the declared
    answer; refusals write nothing; a refused post is the same 404 as a deleted one.

    One test for all routes: the organisation and its signed-in callers are made once, and each
    call gets a fresh object, so the matrix costs a few requests per cell.
    """
    clients = {actor: world.client(actor) for actor in ACTORS}
    failures = []
    for endpoint, method, rule in _rules(world.app):
        if endpoint not in POLICIES:
            continue  # test_every_route_has_a_declared_policy names it
        problems = check_route(world, clients, endpoint, method)
        failures += [f"{method} {rule}: {problem}" for problem in problems]
        if endpoint.startswith(("intranet_auth.", "intranet_entra.")):
            clients = {actor: world.client(actor) for actor in ACTORS}  # signed in or out again
    assert failures == [], "\n".join(failures)
