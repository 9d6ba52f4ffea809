"""The web edge's defences, checked over every route (SECURITY.md B1, E1, E2, E4, E5).

Routes come from ``app.url_map``, and the objects their URLs name from the access matrix's
:class:`~tests.test_access_matrix.World`, so a route added later is covered without editing this file.
"""
from __future__ import annotations

from typing import Any

import pytest
from flask import url_for

from tests.access_policies import POLICIES, UNSAFE, World

#: State-changing views that skip Beacon's CSRF hook, and the proof each carries instead.
CSRF_EXEMPT = {
    "intranet_entra.callback": "the OAuth state bound to the session (MSAL checks it in complete)",
    "intranet_entra.complete": "the OAuth state bound to the session",
    "intranet_delivery.unsubscribe": "RFC 8058 one-click: the signed token in the URL, no session",
    "intranet_delivery_api.post_events": "checks the same token itself (sendBeacon cannot set headers)",
    "intranet_embed_api.start_session": "the embed token in the Authorization header, which no cross-site form sends",
}
#: Exempt from the hook, yet still refusing a request without a token (the view checks it).
CHECKS_ITS_OWN_TOKEN = {"intranet_delivery_api.post_events"}
CSRF_MESSAGE = b"The security token is missing or expired"


def _unsafe_routes(app: Any) -> list[tuple[str, str, str]]:
    return sorted((rule.endpoint, method, rule.rule) for rule in app.url_map.iter_rules()
                  for method in rule.methods & UNSAFE)


@pytest.fixture
def world(make_app, db, clock, tmp_path) -> World:  # type: ignore[no-untyped-def]
    return World(make_app(INTRANET_UPLOAD_DIR=str(tmp_path / "uploads")), db, clock.now)


def _urls(world: World, routes: list[tuple[str, str, str]]) -> dict[tuple[str, str], str]:
    """A URL for each route, naming an object the admin may act on."""
    urls = {}
    with world.app.test_request_context(base_url="https://localhost"):
        for endpoint, method, _ in routes:
            policy = POLICIES[endpoint]
            urls[endpoint, method] = url_for(endpoint, **world.args(policy, "admin", policy.states()[0])) + policy.query
    world.delete_posts()
    return urls


def test_csrf_exemptions_are_the_declared_ones(app):
    """Only the views listed in CSRF_EXEMPT skip the CSRF hook (each with its reason)."""
    exempt = {endpoint for endpoint, view in app.view_functions.items() if getattr(view, "intranet_csrf_exempt", False)}
    assert exempt == set(CSRF_EXEMPT)


@pytest.mark.parametrize("token", ["none", "forged", "another session's"])
def test_every_state_changing_route_refuses_a_request_without_a_valid_token(world, token):
    """A signed-in admin's cookie alone changes nothing: every POST/PUT/PATCH/DELETE answers 400
    and writes no row, with no token, a forged one or another session's."""
    routes = [r for r in _unsafe_routes(world.app) if r[0] not in set(CSRF_EXEMPT) - CHECKS_ITS_OWN_TOKEN]
    urls = _urls(world, routes)
    client, _ = world.client("admin")
    _, other = world.client("comms")
    headers = {"none": {}, "forged": {"X-CSRFToken": "IjAwMDAwMDAwIg.aaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbb"},
               "another session's": {"X-CSRFToken": other}}[token]
    before = world.row_counts()
    wrong = []
    for endpoint, method, rule in routes:
        for body in ({"data": {"csrf_token": headers["X-CSRFToken"]}} if headers else {"data": {}}, {"json": {}}):
            response = client.open(urls[endpoint, method], method=method, headers=headers,
                                   base_url="https://localhost", **body)
            if "data" in body and endpoint in CHECKS_ITS_OWN_TOKEN and 400 <= response.status_code < 500:
                continue  # reads JSON only: a form is refused before the token is looked at
            if response.status_code != 400 or CSRF_MESSAGE not in response.data:
                wrong.append(f"{method} {rule}: {response.status_code}")
    assert wrong == []
    assert world.row_counts() == before


def test_a_valid_token_from_another_site_is_refused(world):
    """Over HTTPS the Referer must be this site: a token replayed from another origin is a 400."""
    client, token = world.client("targeted")
    response = client.put("/api/v1/me/preferences", json={"cadence": "weekly"}, base_url="https://localhost",
                          headers={"X-CSRFToken": token, "Referer": "https://evil.example/"})
    assert response.status_code == 400 and CSRF_MESSAGE in response.data
    allowed = client.put("/api/v1/me/preferences", json={"cadence": "weekly"}, base_url="https://localhost",
                         headers={"X-CSRFToken": token})
    assert allowed.status_code == 200


def test_event_beacon_refuses_another_origin(world):
    """The event beacon, which checks its token itself, refuses a cross-origin request even with the token."""
    client, token = world.client("targeted")
    response = client.post("/api/v1/events", json={"events": [], "csrf_token": token}, base_url="https://localhost",
                           headers={"Origin": "https://evil.example"})
    assert response.status_code == 400
