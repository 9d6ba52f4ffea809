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


# --- E2: security headers on every response ------------------------------------------------------

#: Pages that draw plotly charts: plotly.js positions with style attributes, so these (and only
#: these) allow inline styles (README, "Dashboards"). Scripts stay 'self' everywhere.
INLINE_STYLES = {"intranet_dashboards.organisation", "intranet_dashboards.post"}
#: The one view that may be framed (by INTRANET_EMBED_ORIGINS only; tests/test_embed.py).
FRAMEABLE = {"intranet_embed.feed_page"}


def _directives(policy: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in policy.split(";") if part.strip())}


def _header_problems(endpoint: str, response: Any) -> list[str]:
    headers, problems = response.headers, []
    csp = _directives(headers.get("Content-Security-Policy", ""))
    scripts = csp.get("script-src", csp.get("default-src"))
    if scripts is None or {"'unsafe-inline'", "'unsafe-eval'", "*", "data:"} & set(scripts):
        problems.append(f"script-src {scripts}")
    styles = csp.get("style-src", csp.get("default-src", []))
    if "'unsafe-inline'" in styles and endpoint not in INLINE_STYLES:
        problems.append("style-src allows inline styles")
    if csp.get("object-src", csp.get("default-src")) != ["'none'"]:
        problems.append(f"object-src {csp.get('object-src')}")
    if "base-uri" not in csp:
        problems.append("no base-uri")
    if endpoint not in FRAMEABLE and (csp.get("frame-ancestors") != ["'none'"]
                                      or headers.get("X-Frame-Options") != "DENY"):
        problems.append(f"framing allowed: {csp.get('frame-ancestors')} / {headers.get('X-Frame-Options')}")
    hsts = headers.get("Strict-Transport-Security", "")
    if not hsts.startswith("max-age=") or int(hsts.split(";")[0].split("=")[1]) < 31536000:
        problems.append(f"HSTS {hsts!r}")
    if headers.get("X-Content-Type-Options") != "nosniff":
        problems.append("no nosniff")
    if headers.get("Referrer-Policy") not in ("no-referrer", "same-origin", "strict-origin",
                                               "strict-origin-when-cross-origin"):
        problems.append(f"Referrer-Policy {headers.get('Referrer-Policy')!r}")
    for cookie in headers.getlist("Set-Cookie"):
        flags = {flag.strip().split("=")[0].lower(): flag.strip() for flag in cookie.split(";")[1:]}
        if not ({"secure", "httponly"} <= set(flags) and flags.get("samesite") == "SameSite=Lax"
                and "domain" not in flags and cookie.startswith("__Host-")):
            problems.append(f"cookie {cookie.split('=')[0]} with {sorted(flags)}")
    return problems


def test_production_cookie_settings_are_explicit(make_app):
    """Flask's defaults are not secure (SECURE=False, SAMESITE=None): production sets them (B1)."""
    config = make_app().config
    assert (config["SESSION_COOKIE_SECURE"], config["SESSION_COOKIE_HTTPONLY"], config["SESSION_COOKIE_SAMESITE"]) == (
        True, True, "Lax")


def test_every_get_route_sends_the_security_headers(world):
    """Every GET route, signed in or not, found or not (HTML, JSON, CSV, files, 401/403/404), over
    HTTPS: a CSP with no inline or eval script, object-src 'none', base-uri and frame-ancestors
    'none'; HSTS for a year; nosniff; a Referrer-Policy; inline styles on the dashboards only; any
    cookie set is __Host-, Secure, HttpOnly and SameSite=Lax."""
    routes = sorted({(r.endpoint, r.rule) for r in world.app.url_map.iter_rules() if "GET" in r.methods})
    urls = _urls(world, [(endpoint, "GET", rule) for endpoint, rule in routes])
    clients = {actor: world.client(actor)[0] for actor in ("anonymous", "targeted", "admin")}
    wrong = []
    for endpoint, rule in routes:
        for actor, client in clients.items():
            response = client.get(urls[endpoint, "GET"], base_url="https://localhost")
            response.close()
            wrong += [f"{rule} as {actor} ({response.status_code}): {p}" for p in _header_problems(endpoint, response)]
    for path in ("/no/such/page", "/api/v1/no-such-thing"):
        response = clients["targeted"].get(path, base_url="https://localhost")
        wrong += [f"{path}: {p}" for p in _header_problems("", response)]
    assert wrong == []


def test_security_headers_are_added_once_per_response(world, monkeypatch):
    """Beacon's pages, its API, an unknown URL and the health check each get the headers from one
    pass of the hook (the standalone app's app-wide copy skips what Beacon's blueprints cover)."""
    from intranet.web import cross_origin

    passes: list[str] = []
    frame_ancestors = cross_origin.frame_ancestors

    def counted() -> str:
        passes.append("headers")
        return frame_ancestors()

    monkeypatch.setattr(cross_origin, "frame_ancestors", counted)
    client = world.client("targeted")[0]
    for path in ("/", "/api/v1/feed", "/no/such/page", "/healthz"):
        passes.clear()
        response = client.get(path, base_url="https://localhost")
        assert "Content-Security-Policy" in response.headers, path
        assert passes == ["headers"], path


def test_dashboards_are_the_only_pages_with_inline_styles(world):
    """The dashboards do send style-src 'unsafe-inline' (plotly.js needs it), and still no inline script."""
    client, _ = world.client("comms")
    csp = _directives(client.get("/analytics", base_url="https://localhost").headers["Content-Security-Policy"])
    assert "'unsafe-inline'" in csp["style-src"] and csp["script-src"] == ["'self'"]
