"""Server-side sessions: secure cookies, rotation, real logout, timeouts, deactivation."""
from __future__ import annotations

from sqlmodel import select

from intranet import people
from intranet.models import AuthSession


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


def test_dev_login_is_refused_when_disabled(app, make_employee):
    """Without INTRANET_DEV_LOGIN the development sign-in does not exist."""
    app.config["INTRANET_DEV_LOGIN"] = False
    assert app.test_client().get("/auth/dev-login").status_code == 404


def test_sign_in_never_redirects_off_site(app, make_employee):
    """next= pointing elsewhere lands on the feed instead."""
    employee = make_employee()
    for target in ("https://evil.example", "//evil.example", "/\\evil.example", "javascript:alert(1)"):
        client = app.test_client()
        token = client.get("/auth/dev-login").get_data(as_text=True).split(
            'name="csrf-token" content="')[1].split('"')[0]
        response = client.post("/auth/dev-login", data={"email": employee.email, "csrf_token": token,
                                                        "next": target}, headers={"Referer": "https://localhost/"})
        assert response.headers["Location"] == "/"


def test_anonymous_page_visit_goes_to_sign_in(app):
    """An anonymous visitor to the feed page is sent to sign in, then back."""
    response = app.test_client().get("/")
    assert response.status_code == 302
    assert "/auth/sign-in" in response.headers["Location"]
