"""Beacon inside a host Flask app: a good guest on the host's routes, as strict as ever on its own."""
from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
from flask import Flask, request, session
from sqlalchemy import select

from intranet import Intranet
from intranet.models import AuthSession

HOST_KEY = "host-" + secrets.token_hex(24)
BEACON_KEY = secrets.token_hex(32)
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
STATIC = "/news/_beacon/static/intranet/css/beacon.css"


@pytest.fixture
def make_host(database: Any, clock: Any, tmp_path: Any):  # type: ignore[no-untyped-def]
    """A host intranet with its own session settings, pages and form, and Beacon under /news."""

    def make(loader: Any = None, template_folder: str = "templates", **config: Any) -> Flask:
        host = Flask("host", instance_path=str(tmp_path / "instance"), template_folder=template_folder)
        host.config.update({"SECRET_KEY": HOST_KEY, "SESSION_COOKIE_NAME": "host_session",
                            "SESSION_COOKIE_SAMESITE": "Strict", "PREFERRED_URL_SCHEME": "https",
                            "INTRANET_SECRET_KEY": BEACON_KEY, "INTRANET_URL_PREFIX": "/news", "INTRANET_DEV_LOGIN": True,
                            **config})

        @host.get("/")
        def home():  # type: ignore[no-untyped-def]
            return "host home"

        @host.get("/remember")
        def remember():  # type: ignore[no-untyped-def]
            session["colour"] = request.args["colour"]
            return "ok"

        @host.get("/recall")
        def recall():  # type: ignore[no-untyped-def]
            return session.get("colour", "nothing")

        @host.post("/notes")
        def notes():  # type: ignore[no-untyped-def]
            return {"note": request.form["text"]}

        extension = Intranet()
        if loader is not None:
            extension.employee_loader(loader)
        extension.init_app(host, engine=database, clock=clock)
        return host

    return make


def _client(host: Flask) -> Any:
    client = host.test_client()
    client.environ_base.update(HTTP_REFERER="https://localhost/")
    return client


def _token(client: Any, url: str) -> str:
    match = CSRF_META.search(client.get(url, follow_redirects=True).get_data(as_text=True))
    assert match, f"no csrf meta on {url}"
    return match.group(1)


def _dev_sign_in(client: Any, email: str) -> None:
    token = _token(client, "/news/auth/dev-login")
    response = client.post("/news/auth/dev-login", data={"email": email, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]


# -- the host keeps what is its own --------------------------------------------------------------


def test_host_routes_keep_the_hosts_session(make_host, db):
    """A host route's session is the host's signed cookie; Beacon writes no session row for it."""
    client = _client(make_host())
    client.get("/remember?colour=teal")
    assert client.get_cookie("host_session") is not None and client.get_cookie("__Host-beacon") is None
    assert client.get("/recall").get_data(as_text=True) == "teal"
    assert db.exec(select(AuthSession)).all() == []


def test_host_forms_post_without_beacon_csrf_token(make_host):
    """CSRF protection is Beacon's for Beacon's routes: a host form without a token still posts."""
    response = _client(make_host()).post("/notes", data={"text": "hello"})
    assert response.status_code == 200 and response.get_json() == {"note": "hello"}


def test_host_pages_get_none_of_beacons_headers(make_host):
    """Beacon's CSP, frame denial and cache rules stay off the host's pages."""
    headers = _client(make_host()).get("/").headers
    for name in ("Content-Security-Policy", "X-Frame-Options", "Cross-Origin-Opener-Policy", "Cache-Control"):
        assert name not in headers, name


def test_init_app_leaves_the_hosts_settings_alone(make_host):
    """The host's secret key and cookie settings are the host's; Beacon signs with its own key."""
    host = make_host()
    assert host.config["SECRET_KEY"] == HOST_KEY
    assert host.config["SESSION_COOKIE_SAMESITE"] == "Strict" and host.config["SESSION_COOKIE_SECURE"] is False
    assert host.config["SESSION_COOKIE_NAME"] == "host_session"
    assert "WTF_CSRF_TIME_LIMIT" not in host.config


def test_static_files_under_the_prefix_are_cacheable(make_host, make_employee):
    """Mounted under a prefix, Beacon's static files are not sent no-store, even to a signed-in person."""
    client = _client(make_host())
    _dev_sign_in(client, make_employee().email)
    with client.get(STATIC) as response:
        assert response.status_code == 200
        assert "no-store" not in response.headers.get("Cache-Control", "")


# -- Beacon's own routes stay strict -------------------------------------------------------------


def test_beacon_pages_in_a_host_keep_beacons_headers(make_host, make_employee):
    """Signed in under the prefix, Beacon's pages and API carry the strict CSP and no-store."""
    client = _client(make_host())
    _dev_sign_in(client, make_employee().email)
    assert client.get_cookie("__Host-beacon") is not None
    for url in ("/news/", "/news/api/v1/feed"):
        headers = client.get(url).headers
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY" and headers["Cache-Control"] == "no-store"


def test_beacon_routes_in_a_host_still_need_the_csrf_token(make_host, make_employee):
    """A state-changing Beacon route refuses a request without Beacon's token, and accepts it with one."""
    client = _client(make_host())
    _dev_sign_in(client, make_employee().email)
    assert client.post("/news/auth/logout").status_code == 400
    token = _token(client, "/news/")
    assert client.post("/news/auth/logout", data={"csrf_token": token}).status_code == 302


def test_a_token_signed_with_the_hosts_key_is_refused(make_host, make_employee):
    """Beacon's CSRF tokens are signed with INTRANET_SECRET_KEY, not the host's key."""
    from itsdangerous import URLSafeTimedSerializer

    client = _client(make_host())
    _dev_sign_in(client, make_employee().email)
    token = _token(client, "/news/")
    raw = URLSafeTimedSerializer(BEACON_KEY, salt="wtf-csrf-token").loads(token)
    forged = URLSafeTimedSerializer(HOST_KEY, salt="wtf-csrf-token").dumps(raw)
    assert client.post("/news/auth/logout", data={"csrf_token": forged}).status_code == 400
    assert client.post("/news/auth/logout", data={"csrf_token": token}).status_code == 302


def test_a_hosts_own_csrf_protection_keeps_guarding_its_forms(make_host, make_employee, database, clock, tmp_path):
    """With the host's Flask-WTF set up first, the host's forms need the host's token, Beacon's routes Beacon's."""
    from flask_wtf.csrf import CSRFProtect

    host = Flask("guarded", instance_path=str(tmp_path / "guarded"))
    host.config.update(SECRET_KEY=HOST_KEY, PREFERRED_URL_SCHEME="https", INTRANET_SECRET_KEY=BEACON_KEY,
                       INTRANET_URL_PREFIX="/news", INTRANET_DEV_LOGIN=True)
    host.add_url_rule("/notes", "notes", lambda: "saved", methods=["POST"])
    CSRFProtect(host)
    Intranet().init_app(host, engine=database, clock=clock)
    client = _client(host)
    assert client.post("/notes").status_code == 400
    _dev_sign_in(client, make_employee().email)
    assert client.post("/news/auth/logout", data={"csrf_token": _token(client, "/news/")}).status_code == 302


def test_a_hosts_error_handler_still_answers_its_routes(make_host, database, clock, tmp_path):
    """Beacon's error pages are registered on its blueprints: the host's catch-all keeps the host's routes."""
    host = Flask("careful", instance_path=str(tmp_path / "careful"))
    host.config.update(SECRET_KEY=HOST_KEY, INTRANET_SECRET_KEY=BEACON_KEY, INTRANET_URL_PREFIX="/news")
    host.register_error_handler(Exception, lambda exc: ("host oops", 500))

    @host.get("/broken")
    def broken():  # type: ignore[no-untyped-def]
        raise ValueError("host bug")

    Intranet().init_app(host, engine=database, clock=clock)
    client = host.test_client()
    assert client.get("/broken").get_data(as_text=True) == "host oops"
    assert client.get("/news/api/v1/feed").get_json()["error"]["code"] == "unauthenticated"


# -- the host says who is signed in ---------------------------------------------------------------


def _host_user() -> str | None:
    return session.get("user")


@pytest.fixture
def loader_host(make_host):  # type: ignore[no-untyped-def]
    """A host with its own sign-in (/login?as=email) telling Beacon who is signed in."""
    host = make_host(loader=_host_user, INTRANET_SIGN_IN_URL="/login")

    @host.get("/login")
    def login():  # type: ignore[no-untyped-def]
        session["user"] = request.args["as"]
        return "signed in"

    return host


def test_the_hosts_sign_in_is_beacons_sign_in(loader_host, make_employee, db):
    """Signed in to the host, a person uses Beacon with no second sign-in and no Beacon session."""
    me = make_employee(email="Ada@Example.test")
    client = _client(loader_host)
    client.get("/login?as=ada@example.test")
    response = client.get("/news/api/v1/feed")
    assert response.status_code == 200
    page = client.get("/news/")
    assert page.status_code == 200 and me.display_name in page.get_data(as_text=True)
    assert "Sign out" not in page.get_data(as_text=True)  # signing out is the host's
    assert client.get_cookie("__Host-beacon") is None and db.exec(select(AuthSession)).all() == []


def test_nobody_signed_in_to_the_host_is_sent_to_the_hosts_sign_in(loader_host):
    """Pages redirect to INTRANET_SIGN_IN_URL with next=; the API answers 401."""
    client = _client(loader_host)
    assert client.get("/news/api/v1/feed").status_code == 401
    response = client.get("/news/")
    assert response.status_code == 302
    assert client.get(response.location).location == "/login?next=%2Fnews%2F"


@pytest.mark.parametrize("email", ["stranger@example.test", "gone@example.test", ""])
def test_the_host_naming_nobody_beacon_knows_signs_nobody_in(loader_host, make_employee, email):
    """An unknown or deactivated person, or an empty name, is not signed in to Beacon."""
    make_employee(email="gone@example.test", active=False)
    client = _client(loader_host)
    client.get(f"/login?as={email}")
    assert client.get("/news/api/v1/feed").status_code == 401


def test_beacons_roles_still_decide_in_a_host(loader_host, make_employee):
    """The host signs people in; what they may do is still read from Beacon's database."""
    make_employee(email="staff@example.test")
    make_employee(email="boss@example.test", is_admin=True)
    client = _client(loader_host)
    client.get("/login?as=staff@example.test")
    assert client.get("/news/admin/people").status_code == 403
    client.get("/login?as=boss@example.test")
    assert client.get("/news/admin/people").status_code == 200


def test_beacons_writes_need_its_csrf_token_when_the_host_signs_in(loader_host, make_employee, make_post):
    """The token lives in the host's session and is signed with Beacon's key; without it, a write is refused."""
    make_employee(email="ada@example.test")
    post = make_post()
    client = _client(loader_host)
    client.get("/login?as=ada@example.test")
    url = f"/news/api/v1/posts/{post.id}/rating"
    assert client.put(url, json={"stars": 4}).status_code == 400
    token = _token(client, "/news/")
    assert client.put(url, json={"stars": 4}, headers={"X-CSRFToken": token}).status_code == 200


def test_beacons_own_sign_in_is_off_when_the_host_signs_in(loader_host, make_employee):
    """Development sign-in and sign-out answer 404: they would act on the host's session."""
    make_employee(email="ada@example.test")
    client = _client(loader_host)
    client.get("/login?as=ada@example.test")
    token = _token(client, "/news/")
    assert client.get("/news/auth/dev-login").status_code == 404
    assert client.post("/news/auth/logout", data={"csrf_token": token}).status_code == 404
    assert client.get("/news/api/v1/feed").status_code == 200


# -- tables, templates, the scheduler -------------------------------------------------------------


def test_creating_beacons_tables_leaves_the_hosts_alone(tmp_path):
    """`flask intranet init-db` on the host's database adds intranet_* tables and touches none of the host's."""
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'host.db'}"
    host_metadata = sa.MetaData()
    pages = sa.Table("pages", host_metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("title", sa.Text))
    versions = sa.Table("alembic_version", host_metadata, sa.Column("version_num", sa.String(32), primary_key=True))
    engine = sa.create_engine(url)
    host_metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(pages.insert().values(id=1, title="Canteen menu"))
        conn.execute(versions.insert().values(version_num="host0042"))

    host = Flask("tables", instance_path=str(tmp_path / "instance"))
    host.config.update(SECRET_KEY=HOST_KEY, INTRANET_SECRET_KEY=BEACON_KEY, INTRANET_DATABASE_URL=url)
    Intranet(host)
    result = host.test_cli_runner().invoke(args=["intranet", "init-db"])
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        assert conn.execute(sa.select(pages.c.title)).scalars().all() == ["Canteen menu"]
        assert conn.execute(sa.select(versions.c.version_num)).scalars().all() == ["host0042"]
    tables = set(sa.inspect(engine).get_table_names())
    assert {"pages", "alembic_version", "intranet_employee", "intranet_alembic_version"} <= tables
    assert all(name.startswith("intranet_") for name in tables - {"pages", "alembic_version"})
    host.extensions["intranet"].engine.dispose()
    engine.dispose()


def test_a_host_overrides_a_beacon_template_by_path(make_host, make_employee, tmp_path):
    """templates/intranet/... in the host's own template folder wins over Beacon's."""
    folder = tmp_path / "host_templates" / "intranet" / "feed"
    folder.mkdir(parents=True)
    (folder / "index.html").write_text("Our news, the host's way, for {{ employee.display_name }}")
    host = make_host(loader=_host_user, template_folder=str(tmp_path / "host_templates"))
    host.add_url_rule("/login", "login", lambda: session.update(user=request.args["as"]) or "ok")
    make_employee(email="ada@example.test", display_name="Ada")
    client = _client(host)
    client.get("/login?as=ada@example.test")
    assert client.get("/news/").get_data(as_text=True) == "Our news, the host's way, for Ada"


def test_the_scheduler_is_off_when_embedded_and_on_standalone(make_host):
    """Embedded, `flask intranet serve` runs no scheduler unless INTRANET_RUN_SCHEDULER says so."""
    from intranet import create_app

    assert not make_host().extensions["intranet"].settings.scheduler.run_in_server
    assert make_host(INTRANET_RUN_SCHEDULER=True).extensions["intranet"].settings.scheduler.run_in_server
    standalone = create_app({"INTRANET_SECRET_KEY": BEACON_KEY, "INTRANET_DATABASE_URL": "sqlite://"})
    assert standalone.extensions["intranet"].settings.scheduler.run_in_server is True


def test_templates_ask_for_beacons_csrf_token_by_its_prefixed_name():
    """Templates call beacon_csrf_token(): in a host, csrf_token() is the host's Flask-WTF token (or nothing)."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "templates" / "intranet"
    offenders = [str(path.relative_to(root)) for path in root.rglob("*.html")
                 if re.search(r"(?<!beacon_)csrf_token\(\)", re.sub(r"{#.*?#}", "", path.read_text(), flags=re.S))]
    assert offenders == []


def test_without_a_sign_in_url_a_stranger_gets_a_401_page_not_a_loop(make_host):
    """A host with an employee_loader but no INTRANET_SIGN_IN_URL: Beacon's pages answer 401."""
    client = _client(make_host(loader=_host_user))
    response = client.get("/news/", follow_redirects=True)
    assert response.status_code == 401 and "Sign in to continue" in response.get_data(as_text=True)
    assert client.get("/news/auth/sign-in").status_code == 401


def test_mounted_at_the_root_beacon_still_keeps_to_its_own_routes(make_host, make_employee, db):
    """With no prefix, Beacon's sessions serve the URLs Beacon routes, the host's session the rest."""
    host = make_host(INTRANET_URL_PREFIX="")
    client = _client(host)
    token = _token(client, "/auth/dev-login")
    assert client.post("/auth/dev-login", data={"email": make_employee().email, "csrf_token": token}).status_code == 302
    assert client.get_cookie("__Host-beacon") is not None and client.get("/api/v1/feed").status_code == 200
    client.get("/remember?colour=plum")
    assert client.get_cookie("host_session") is not None and client.get("/recall").get_data(as_text=True) == "plum"
    assert len(db.exec(select(AuthSession)).all()) == 1


def test_unsafe_settings_refuse_beacons_routes_not_the_hosts(database, clock, tmp_path):
    """Loaded by a CLI command with a weak key, Beacon answers 503 on its routes; the host's still serve."""
    import click

    host = Flask("weak", instance_path=str(tmp_path / "weak"))
    host.config.update(SECRET_KEY="short", INTRANET_URL_PREFIX="/news")
    host.add_url_rule("/", "home", lambda: "host home")
    with click.Context(click.Command("run")):
        Intranet().init_app(host, engine=database, clock=clock)
    client = host.test_client()
    assert client.get("/").get_data(as_text=True) == "host home"
    refused = client.get("/news/api/v1/feed")
    assert refused.status_code == 503 and "INTRANET_SECRET_KEY" in refused.get_data(as_text=True)


def test_the_loader_may_name_people_by_their_hr_number(make_host, make_employee):
    """INTRANET_EMPLOYEE_LOADER_FIELD=employee_id matches the loader's value against the HR number, not the email."""
    make_employee(employee_id="HR-7", email="ada@example.test")
    host = make_host(loader=_host_user, INTRANET_EMPLOYEE_LOADER_FIELD="employee_id")
    host.add_url_rule("/login", "login", lambda: session.update(user=request.args["as"]) or "ok")
    client = _client(host)
    client.get("/login?as=ada@example.test")
    assert client.get("/news/api/v1/feed").status_code == 401
    client.get("/login?as=HR-7")
    assert client.get("/news/api/v1/feed").status_code == 200


def test_the_api_document_names_the_hosts_cookie_when_the_host_signs_in(loader_host):
    """The OpenAPI session scheme names the cookie that really carries the session."""
    doc = loader_host.test_client().get("/news/api/v1/openapi.json").get_json()
    assert doc["components"]["securitySchemes"]["session"]["name"] == "host_session"
