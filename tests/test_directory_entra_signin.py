"""Sign-in with Entra ID through msal against the HTTPS fake: (tid, oid) accounts, refusals, browser."""
from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from typing import Any

import pytest
import requests
import responses

from intranet import create_app
from intranet.directory import graph
from tests.fakes.entra_graph import FakeEntraServer, follow_sign_in


@pytest.fixture
def app(make_app, entra_server, request):  # type: ignore[no-untyped-def]
    """Beacon signing in through the fake Entra ID (settings are read once, when the app is built)."""
    marker = request.node.get_closest_marker("settings")
    return make_app(**entra_server.config(), **(marker.kwargs if marker else {}))


@pytest.fixture
def adele(entra_server, make_employee):  # type: ignore[no-untyped-def]
    oid = entra_server.fake.add_user(displayName="Adele Vance", employeeId="E0002")
    return make_employee(display_name="Adele Vance", employee_id="E0002", entra_tenant_id=entra_server.fake.tenant_id,
                         entra_object_id=oid)


def entra_response(app: Any, entra_server: FakeEntraServer, oid: str | None, next_url: str = "/") -> tuple[Any, dict]:
    """Start a sign-in in a test client and play the person at the fake authorize page."""
    client = app.test_client()
    started = client.get("/auth/entra/start", query_string={"next": next_url})
    assert started.status_code == 302
    assert started.location.startswith(entra_server.authority)
    browser = requests.Session()
    form = follow_sign_in(started.location, browser, user_id=oid)
    assert form.action.endswith("/auth/entra/callback")
    return client, form.fields


def complete(client: Any, fields: dict) -> Any:
    hop = client.post("/auth/entra/callback", data=fields)
    assert hop.status_code == 200 and "Set-Cookie" not in hop.headers  # no session touched cross-site
    assert 'action="/auth/entra/complete"' in hop.get_data(as_text=True)
    return client.post("/auth/entra/complete", data=fields)


def session_cookie(client: Any) -> str | None:
    cookie = client.get_cookie("__Host-beacon") or client.get_cookie("beacon_session")
    return cookie.value if cookie else None


def test_sign_in_links_the_directory_employee_by_tid_oid(app, entra_server, adele):
    """The full flow signs in the employee whose (tid, oid) matches, with a fresh session id."""
    client, fields = entra_response(app, entra_server, adele.entra_object_id, next_url="/groups")
    before = session_cookie(client)
    response = complete(client, fields)
    assert response.status_code == 302 and response.location == "/groups"
    assert session_cookie(client) not in (None, before)  # rotated
    assert "Adele Vance" in client.get("/").get_data(as_text=True)


def test_replayed_callback_is_refused(app, entra_server, adele):
    """The same callback fields a second time find no pending flow: refused, no second session."""
    client, fields = entra_response(app, entra_server, adele.entra_object_id)
    assert complete(client, fields).status_code == 302
    again = client.post("/auth/entra/complete", data=fields)
    assert again.status_code == 400 and "already used" in again.get_data(as_text=True)


def test_tampered_state_is_refused(app, entra_server, adele):
    """A callback whose state does not belong to this browser's flow is refused with a clear message."""
    client, fields = entra_response(app, entra_server, adele.entra_object_id)
    response = complete(client, {**fields, "state": "forged"})
    assert response.status_code == 400 and "could not be verified" in response.get_data(as_text=True)
    assert client.get("/").status_code != 200  # not signed in


@pytest.mark.parametrize("override", [{"tid": str(uuid.uuid4())}, {"nonce": None}])
def test_wrong_tenant_or_missing_nonce_is_refused(app, entra_server, adele, override):
    """An ID token for another tenant, or without the nonce, is refused."""
    entra_server.fake.id_token_overrides = override
    client, fields = entra_response(app, entra_server, adele.entra_object_id)
    response = complete(client, fields)
    assert response.status_code == 400 and "Sign-in was refused" in response.get_data(as_text=True)


def _bad_claims(tenant_id: str, authority: str) -> dict[str, dict[str, Any]]:
    now = int(time.time())
    host = authority.rsplit("/", 1)[0]
    return {
        "aud of another app": {"aud": str(uuid.uuid4())},
        "no aud": {"aud": None},
        "iss of another tenant": {"iss": f"{host}/{uuid.uuid4()}/v2.0"},
        "iss of another host": {"iss": f"https://evil.example/{tenant_id}/v2.0"},
        "v1.0 iss": {"iss": f"https://sts.windows.net/{tenant_id}/"},
        "exp an hour past": {"exp": now - 3600, "iat": now - 7200, "nbf": now - 7200},
        "no exp": {"exp": None},
        "exp not a number": {"exp": str(now + 3600)},
        "nbf an hour ahead": {"nbf": now + 3600},
        "iat an hour ahead": {"iat": now + 3600},
        "wrong nonce": {"nonce": hashlib.sha256(b"another flow").hexdigest()},
    }


@pytest.mark.parametrize("bad", list(_bad_claims("tenant", "https://host/tenant")))
def test_id_token_with_a_bad_claim_is_refused(app, entra_server, adele, bad, caplog):
    """A wrong audience, issuer, lifetime or nonce: a sign-in error page (400), logged, nobody signed in."""
    entra_server.fake.id_token_overrides = _bad_claims(entra_server.fake.tenant_id, entra_server.authority)[bad]
    client, fields = entra_response(app, entra_server, adele.entra_object_id)
    with caplog.at_level(logging.WARNING, logger="intranet.web.entra_auth"):
        response = complete(client, fields)
    assert response.status_code == 400 and "Sign-in was refused" in response.get_data(as_text=True)
    assert any("Entra sign-in refused" in r.getMessage() and "ID token" in r.getMessage() for r in caplog.records)
    assert client.get("/api/v1/feed").status_code == 401


@pytest.mark.parametrize("override", [{}, {"exp": "now-60", "iat": "now-3660", "nbf": "now-3660"},
                                      {"iat": "now+60", "nbf": "now+60"}])
def test_id_token_within_the_clock_skew_signs_in(app, entra_server, adele, override):
    """A good token signs in, also when the clocks differ by a minute (less than the allowed skew)."""
    now = int(time.time())
    entra_server.fake.id_token_overrides = {key: now + int(value[3:]) for key, value in override.items()}
    client, fields = entra_response(app, entra_server, adele.entra_object_id, next_url="/groups")
    response = complete(client, fields)
    assert response.status_code == 302 and response.location == "/groups"
    assert client.get("/api/v1/feed").status_code == 200


def test_beacon_checks_the_nonce_itself():
    """The nonce is checked by Beacon too, not left to msal: a token without the flow's nonce hash is refused."""
    settings = graph.GraphSettings(tenant_id=str(uuid.uuid4()), client_id="app", client_secret="s")
    now = time.time()
    claims = {"aud": "app", "iss": graph.expected_issuer(settings), "tid": settings.tenant_id,
              "exp": now + 3600, "iat": now, "nbf": now, "nonce": hashlib.sha256(b"n0nce").hexdigest()}
    graph.check_id_token(claims, settings, nonce="n0nce", now=now)
    for nonce, token_nonce in (("n0nce", "n0nce"), ("other", claims["nonce"]), (None, claims["nonce"])):
        with pytest.raises(graph.SignInRefused, match="nonce"):
            graph.check_id_token({**claims, "nonce": token_nonce}, settings, nonce=nonce, now=now)


INSTANCE_DISCOVERY = "https://login.microsoftonline.com/common/discovery/instance"
UNKNOWN_INSTANCE = {"error": "invalid_instance", "error_description": "AADSTS50049: Unknown or invalid instance."}


@pytest.mark.parametrize("microsoft_answers", ["invalid_instance", "unreachable"])
def test_unknown_authority_host_error_names_the_setting(microsoft_answers):
    """An authority msal does not know fails with an error that says to set INTRANET_ENTRA_INSTANCE_DISCOVERY=false."""
    settings = graph.GraphSettings(tenant_id=str(uuid.uuid4()), client_id="app", client_secret="s",
                                   authority="https://login.contoso-proxy.example/tenant")
    graph.clear_app_cache()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        if microsoft_answers == "invalid_instance":
            mock.get(re.compile(re.escape(INSTANCE_DISCOVERY) + ".*"), json=UNKNOWN_INSTANCE, status=400)
        with pytest.raises(graph.GraphAuthError) as caught:
            graph.confidential_client(settings)
    assert "login.contoso-proxy.example is not a Microsoft sign-in host" in str(caught.value)
    assert "set INTRANET_ENTRA_INSTANCE_DISCOVERY=false" in str(caught.value)


@pytest.mark.parametrize("authority", ["https://login.contoso-proxy.example/tenant", None])
def test_no_discovery_hint_where_it_would_not_help(authority):
    """With discovery already off, or at Microsoft's own host, an unreachable authority gets no such hint."""
    settings = graph.GraphSettings(tenant_id=str(uuid.uuid4()), client_id="app", client_secret="s",
                                   authority=authority or "", instance_discovery=False if authority else None)
    graph.clear_app_cache()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        with pytest.raises(graph.GraphAuthError) as caught:
            graph.confidential_client(settings)
        assert not [c for c in mock.calls if c.request.url.startswith(INSTANCE_DISCOVERY)]
    assert "INSTANCE_DISCOVERY" not in str(caught.value)


@pytest.mark.parametrize("setting", ["false", None])
def test_instance_discovery_setting_from_the_environment(app, entra_server, monkeypatch, caplog, setting):
    """INTRANET_ENTRA_INSTANCE_DISCOVERY=false in the environment lets sign-in start at a non-Microsoft host;
    without it, the sign-in is unavailable and the log names the setting."""
    config = {key: value for key, value in entra_server.config().items() if key != "INTRANET_ENTRA_INSTANCE_DISCOVERY"}
    monkeypatch.delenv("INTRANET_ENTRA_INSTANCE_DISCOVERY", raising=False)
    if setting is not None:
        monkeypatch.setenv("INTRANET_ENTRA_INSTANCE_DISCOVERY", setting)
    env_app = create_app({"TESTING": True, "INTRANET_SECRET_KEY": app.config["INTRANET_SECRET_KEY"],
                          "PREFERRED_URL_SCHEME": "https", **config}, engine=app.extensions["intranet"].engine)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru(entra_server.url)
        mock.get(re.compile(re.escape(INSTANCE_DISCOVERY) + ".*"), json=UNKNOWN_INSTANCE, status=400)
        with caplog.at_level(logging.ERROR, logger="intranet.web.entra_auth"):
            started = env_app.test_client().get("/auth/entra/start")
    if setting == "false":
        assert started.status_code == 302 and started.location.startswith(entra_server.authority)
    else:
        assert started.status_code == 503 and "unavailable" in started.get_data(as_text=True)
        assert "set INTRANET_ENTRA_INSTANCE_DISCOVERY=false" in caplog.text


def test_person_not_in_directory_gets_a_clear_page(app, entra_server, adele):
    """Someone Entra knows but the directory does not: a 403 page explaining why, not a crash."""
    stranger = entra_server.fake.add_user(displayName="New Hire")
    client, fields = entra_response(app, entra_server, stranger)
    response = complete(client, fields)
    assert response.status_code == 403 and "not in the directory yet" in response.get_data(as_text=True)


def test_deactivated_employee_cannot_sign_in(app, entra_server, adele, db):
    """A deactivated employee is refused even with a valid Entra sign-in."""
    adele.active = False
    db.add(adele)
    db.commit()
    client, fields = entra_response(app, entra_server, adele.entra_object_id)
    assert complete(client, fields).status_code == 403


# next= values as an attacker writes them into the start URL (percent-encoded once).
HOSTILE_NEXT = [
    "https://evil.example/",
    "//evil.example",
    "/\\evil.example",
    "/%5C/evil",
    "/%09/evil.example/phish",  # browsers drop the tab: //evil.example/phish
    "/%0a/x",  # was a 500 (newline in the Location header)
    "/%0d%0aSet-Cookie:%20a=b",
    "/%2509/evil.example",
    "/%2e%2e//evil.example",
    "javascript:alert(1)",
]


@pytest.mark.parametrize("raw_next", HOSTILE_NEXT)
def test_next_cannot_redirect_off_site(app, entra_server, adele, raw_next):
    """A hostile next= on /auth/entra/start ends on the feed once signed in, never elsewhere."""
    client = app.test_client()
    started = client.get(f"/auth/entra/start?next={raw_next}")
    assert started.status_code == 302 and started.location.startswith(entra_server.authority)
    form = follow_sign_in(started.location, requests.Session(), user_id=adele.entra_object_id)
    response = complete(client, form.fields)
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_a_nul_in_next_is_refused_before_the_authority_is_asked(app, entra_server):
    """/auth/entra/start with a NUL in next= is a 400: no flow starts, no Location is sent."""
    started = app.test_client().get("/auth/entra/start?next=/%00/evil.example")
    assert started.status_code == 400 and "Location" not in started.headers


@pytest.mark.settings(INTRANET_DEV_LOGIN=False)
def test_sign_in_page_offers_entra(app, entra_server, adele):
    """With INTRANET_ENTRA_* configured the sign-in page offers 'Sign in with your work account'."""
    page = app.test_client().get("/auth/sign-in?next=/groups").get_data(as_text=True)
    assert "/auth/entra/start?next=/groups" in page and "work account" in page


@pytest.mark.browser
@pytest.mark.settings(INTRANET_DEV_LOGIN=False)
def test_browser_sign_in_through_fake_authorize_page(app, entra_server, adele, live_server, _browser):
    """In Chromium: sign-in page -> fake Entra picker -> form_post -> same-site hop -> the feed, signed in."""
    context = _browser.new_context(ignore_https_errors=True)  # the fake's certificate comes from a test CA
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{live_server}/auth/sign-in")
        page.click("text=Sign in with your work account")
        page.wait_for_url(re.compile(re.escape(entra_server.url)))
        page.check(f"input[value='{adele.entra_object_id}']")
        page.click("button[type=submit]")
        page.click("text=Continue")  # the fake's form_post page has no script
        page.wait_for_url(f"{live_server}/")
        assert "Adele Vance" in page.content()
    finally:
        context.close()
