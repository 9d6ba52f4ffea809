"""Server-side sessions: secure cookies, rotation, real logout, timeouts, deactivation."""
from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from flask import session as flask_session
from sqlalchemy import event, update
from sqlmodel import select

from intranet import people
from intranet.models import AuthSession, Employee
from intranet.web.auth import local_target
from intranet.web.context import current_employee, require_role
from tests.conftest import SignedInClient


def session_cookie(client) -> str | None:  # type: ignore[no-untyped-def]
    cookie = client.get_cookie("__Host-beacon")
    return cookie.value if cookie else None


def test_cookie_flags_are_strict(app, make_employee):
    """The session cookie is __Host-, Secure, HttpOnly, SameSite=Lax, Path=/ with no Domain."""
    employee = make_employee()
    client = app.test_client()
    client.get("/auth/dev-login")
    token = client.get("/auth/dev-login").get_data(as_text=True).split('name="csrf-token" content="')[1].split('"')[0]
    response = client.post("/auth/dev-login", data={"email": employee.email, "csrf_token": token},
                           headers={"Referer": "https://localhost/"})
    header = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("__Host-beacon=")][-1]
    for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert flag in header
    assert "Domain" not in header


def test_session_id_rotates_at_sign_in(app, make_employee, db):
    """The pre-sign-in session id dies when the person signs in."""
    employee = make_employee()
    client = app.test_client()
    page = client.get("/auth/dev-login").get_data(as_text=True)
    before = session_cookie(client)
    token = page.split('name="csrf-token" content="')[1].split('"')[0]
    client.post("/auth/dev-login", data={"email": employee.email, "csrf_token": token},
                headers={"Referer": "https://localhost/"})
    after = session_cookie(client)
    assert before and after and before != after
    replay = app.test_client()
    replay.set_cookie("__Host-beacon", before)
    assert replay.get("/api/v1/feed").status_code == 401


def test_logout_ends_the_session_on_the_server(make_employee, client_for, app):
    """A cookie captured before sign-out is useless afterwards."""
    client = client_for(make_employee())
    captured = session_cookie(client)
    client.post("/auth/logout", data={"csrf_token": client.csrf})
    replay = app.test_client()
    replay.set_cookie("__Host-beacon", captured)
    assert replay.get("/api/v1/feed").status_code == 401


def test_idle_timeout(make_employee, client_for, clock):
    """After the idle timeout the session no longer works."""
    client = client_for(make_employee())
    assert client.get("/api/v1/feed").status_code == 200
    clock.advance(minutes=31)
    assert client.get("/api/v1/feed").status_code == 401


def test_absolute_timeout(make_employee, client_for, clock):
    """Even an active session ends after the absolute timeout."""
    client = client_for(make_employee())
    for _ in range(25):
        clock.advance(minutes=25)
        client.get("/api/v1/feed")
    assert client.get("/api/v1/feed").status_code == 401


def test_deactivation_ends_every_session(make_employee, client_for, db, clock):
    """Deactivating a person ends all their sessions, on every instance."""
    employee = make_employee()
    first, second = client_for(employee), client_for(employee)
    people.deactivate(db, employee, clock.now)
    db.commit()
    assert db.exec(select(AuthSession).where(AuthSession.employee_pk == employee.id)).all() == []
    assert first.get("/api/v1/feed").status_code == 401
    assert second.get("/api/v1/feed").status_code == 401


def test_inactive_employee_cannot_sign_in(app, make_employee):
    """The development sign-in refuses inactive people."""
    employee = make_employee(active=False)
    client = app.test_client()
    token = client.get("/auth/dev-login").get_data(as_text=True).split('name="csrf-token" content="')[1].split('"')[0]
    response = client.post("/auth/dev-login", data={"email": employee.email, "csrf_token": token},
                           headers={"Referer": "https://localhost/"})
    assert response.status_code == 403
    assert client.get("/api/v1/feed").status_code == 401


@pytest.mark.settings(INTRANET_DEV_LOGIN=False)
def test_dev_login_is_refused_when_disabled(app, make_employee):
    """Without INTRANET_DEV_LOGIN the development sign-in does not exist."""
    assert app.test_client().get("/auth/dev-login").status_code == 404


def test_dev_login_lists_roles_then_one_person_per_level(app, make_employee):
    """The development sign-in shows each person's level: role holders, then the first person at each level."""
    make_employee(display_name="Ada Admin", is_admin=True, level=9)
    make_employee(display_name="Carl Contributor", is_contributor=True, level=4)
    make_employee(display_name="Lena Two", level=2)
    make_employee(display_name="Lars Two", level=2)
    make_employee(display_name="Sam Seven", level=7, level_label="Director")
    make_employee(display_name="Nora None", level=None)
    page = app.test_client().get("/auth/dev-login").get_data(as_text=True)
    listed = [(name, " ".join(details.split())) for name, details in re.findall(
        r'class="link">([^<]+)</button>\s*</form>\s*<span class="muted">([^<]+)</span>', page)]
    assert listed == [
        ("Ada Admin", "Sales · EMEA · level 9 · admin"),
        ("Carl Contributor", "Sales · EMEA · level 4 · contributor"),
        ("Lena Two", "Sales · EMEA · level 2"),
        ("Sam Seven", "Sales · EMEA · level 7 (Director)"),
        ("Nora None", "Sales · EMEA · no level"),
    ]


# next= values as an attacker writes them into a URL or form body (percent-encoded once).
HOSTILE_NEXT = [
    "https://evil.example",
    "https:evil.example",
    "//evil.example",
    "/\\evil.example",
    "/%5Cevil.example",
    "/%5C/evil",
    "/%09/evil.example/phish",  # browsers drop the tab: //evil.example/phish
    "/%0a/x",  # was a 500 (newline in the Location header)
    "/%0d%0aSet-Cookie:%20a=b",
    "/%2509/evil.example",  # encoded twice
    "/%2e%2e//evil.example",  # dot segments resolve to //evil.example
    "%2F%2Fevil.example",
    "%20//evil.example",
    "javascript:alert(1)",
]


def dev_sign_in(app, email: str, raw_next: str):  # type: ignore[no-untyped-def]
    """POST the development sign-in with a raw, already URL-encoded next= value."""
    client = app.test_client()
    token = client.get("/auth/dev-login").get_data(as_text=True).split('name="csrf-token" content="')[1].split('"')[0]
    body = urlencode({"email": email, "csrf_token": token}) + "&next=" + raw_next
    return client.post("/auth/dev-login", data=body, content_type="application/x-www-form-urlencoded",
                       headers={"Referer": "https://localhost/"})


@pytest.mark.parametrize("raw_next", HOSTILE_NEXT)
def test_sign_in_never_redirects_off_site(app, make_employee, raw_next):
    """A hostile next= lands on the feed after the development sign-in, never elsewhere and never a 500."""
    response = dev_sign_in(app, make_employee().email, raw_next)
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_a_nul_in_next_is_refused_before_any_redirect(app, make_employee):
    """A NUL anywhere in the input is a 400 (as on every Beacon route), so no Location is sent at all."""
    for response in (dev_sign_in(app, make_employee().email, "/%00/evil.example"),
                     app.test_client().get("/auth/sign-in?next=/%00/evil.example"),
                     app.test_client().get("/auth/dev-login?next=/%00/evil.example")):
        assert response.status_code == 400 and "Location" not in response.headers


@pytest.mark.parametrize("raw_next", HOSTILE_NEXT)
def test_sign_in_pages_never_offer_an_off_site_next(app, raw_next):
    """The sign-in pages carry only a local next= into their forms and links."""
    hop = app.test_client().get(f"/auth/sign-in?next={raw_next}")
    assert hop.status_code == 302 and hop.headers["Location"] == "/auth/dev-login?next=/"
    page = app.test_client().get(f"/auth/dev-login?next={raw_next}")
    assert page.status_code == 200 and 'name="next" value="/"' in page.get_data(as_text=True)


@pytest.mark.parametrize(("raw_next", "location"), [
    ("/groups?tab=mine", "/groups?tab=mine"),
    ("/search%3Fq%3Da%2520b", "/search?q=a%20b"),
    ("/groups/../preferences", "/preferences"),
])
def test_sign_in_keeps_a_local_next(app, make_employee, raw_next, location):
    """A path of this app survives sign-in, with dot segments resolved as a browser would."""
    response = dev_sign_in(app, make_employee().email, raw_next)
    assert response.status_code == 302 and response.headers["Location"] == location


@pytest.mark.parametrize(("target", "expected"), [
    ("/news", "/news"),
    ("/news/groups?x=1", "/news/groups?x=1"),
    ("/newsletter", None),
    ("/admin", None),
    ("/news/../admin", None),
    ("/news/%2e%2e/admin", None),
])
def test_next_must_lie_under_the_url_prefix(target, expected):
    """Mounted under INTRANET_URL_PREFIX, only paths beneath the prefix count as this app's."""
    assert local_target(target, "/news") == expected


def test_anonymous_page_visit_goes_to_sign_in(app):
    """An anonymous visitor to the feed page is sent to sign in, then back."""
    response = app.test_client().get("/")
    assert response.status_code == 302
    assert "/auth/sign-in" in response.headers["Location"]


@pytest.mark.settings(INTRANET_DEV_LOGIN=False)
def test_anonymous_page_views_keep_no_session(app, db):
    """The sign-in page, a 404 and a redirect seen by someone not signed in write no session row and set no cookie."""
    client = app.test_client()
    for url, status in (("/auth/sign-in", 200), ("/no/such/page", 404), ("/", 302)):
        response = client.get(url)
        assert response.status_code == status
        assert "Set-Cookie" not in response.headers, url
    assert db.exec(select(AuthSession)).all() == []


def test_a_form_for_anonymous_visitors_still_gets_its_token(app, make_employee, db):
    """The development sign-in form, which must be posted, keeps its CSRF token in a session."""
    employee = make_employee()
    client = app.test_client()
    page = client.get("/auth/dev-login").get_data(as_text=True)
    token = page.split('name="csrf-token" content="')[1].split('"')[0]
    assert len(db.exec(select(AuthSession)).all()) == 1
    response = client.post("/auth/dev-login", data={"email": employee.email, "csrf_token": token},
                           headers={"Referer": "https://localhost/"})
    assert response.status_code == 302


def test_a_signed_in_request_checks_out_one_connection(make_employee, client_for, app):
    """The session lookup and the view share the request's connection: one pool checkout per request."""
    client = client_for(make_employee())
    engine = app.extensions["intranet"].engine
    checkouts = []
    listener = lambda *_args: checkouts.append(1)  # noqa: E731
    event.listen(engine, "checkout", listener)
    try:
        assert client.get("/api/v1/me/preferences").status_code == 200
        assert client.api("POST", "/api/v1/events", json={"events": []}).status_code == 200
    finally:
        event.remove(engine, "checkout", listener)
    assert len(checkouts) == 2


def test_deactivation_without_ending_sessions_still_signs_out(make_employee, client_for, db):
    """A person marked inactive by any means is refused on their next request, session row or not."""
    employee = make_employee()
    client = client_for(employee)
    assert client.get("/api/v1/me/preferences").status_code == 200
    db.execute(update(Employee).where(Employee.id == employee.id).values(active=False))
    db.commit()
    assert db.exec(select(AuthSession).where(AuthSession.employee_pk == employee.id)).all() != []
    assert client.get("/api/v1/me/preferences").status_code == 401


def test_saving_the_session_never_commits_what_a_view_left_uncommitted(make_app, make_employee, db):
    """Writing the session row at the end of a request does not commit the view's uncommitted changes."""
    app = make_app()

    @require_role("employee")
    def touch():  # type: ignore[no-untyped-def]
        current_employee().display_name = "Changed, never committed"
        flask_session["touched"] = True  # the session row must be written after this view
        return "ok"

    app.add_url_rule("/test-touch", view_func=touch)
    employee = make_employee(display_name="Original")
    client = SignedInClient(app, employee)
    assert client.get("/test-touch").status_code == 200
    db.expire_all()
    assert db.get(Employee, employee.id).display_name == "Original"
    stored = db.exec(select(AuthSession).where(AuthSession.employee_pk == employee.id)).one()
    assert stored.data["touched"] is True
