"""Fixtures: every database test runs on SQLite and on PostgreSQL.

* ``app`` – Beacon on a migrated database (parametrized: ``sqlite`` and ``postgresql``), tables
  emptied after each test, a controllable clock.
* ``db`` – a database session on the same engine.
* ``make_employee`` / ``make_post`` / ``make_group`` – factories with sensible defaults.
* ``client_for(employee)`` – a test client signed in as *employee*, whose ``api()`` sends the CSRF header.
* ``live_server`` / ``page`` – Beacon served on a free port and a headless Chromium page (Playwright).

PostgreSQL comes from ``INTRANET_TEST_DATABASE_URL`` (default: the local ``test`` database). Each
pytest process works in its own schema, so parallel runs never see each other's rows. When
PostgreSQL is unreachable its tests are skipped, except under ``CI=true`` where that is a failure.
"""
from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import secrets
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from hypothesis import settings
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from intranet import create_app, jobs, migrate, targeting
from intranet.db import make_engine, metadata, session_factory
from intranet.delivery.rendering import Renderer
from intranet.directory import graph
from intranet.models import Employee, Group, GroupMember, Post
from intranet.settings import Settings
from tests.fakes.entra_graph import FakeEntraServer
from tests.fakes.smtp import Recorder

# CI explores a fixed set of examples (a red run must mean a change broke something); local runs
# keep exploring new ones, and print a reproduction blob when they find a failure.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "dev")

PG_URL = os.environ.get("INTRANET_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"
NOW = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.timezone.utc)
SECRET = secrets.token_hex(32)


class Clock:
    """A settable clock shared by the app and the tests."""

    def __init__(self, now: dt.datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip the other database's run of a ``postgres_only`` or ``sqlite_only`` test at collection,
    before any fixture is built."""
    for item in items:
        database = getattr(item, "callspec", None) and item.callspec.params.get("database")
        if item.get_closest_marker("postgres_only") and database == "sqlite":
            item.add_marker(pytest.mark.skip(reason="PostgreSQL only: row locks and several connections"))
        if item.get_closest_marker("sqlite_only") and database == "postgresql":
            item.add_marker(pytest.mark.skip(reason="the page is under test, not the database: SQLite run only"))


SCHEMAS: dict[int, str] = {}  # id(engine) -> the PostgreSQL schema it works in


def _postgres_engine() -> Engine:
    schema = f"beacon_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = make_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        admin.dispose()
        message = f"PostgreSQL is unreachable at {PG_URL}: {exc.orig}"
        if IN_CI:
            pytest.fail(message + " (CI=true: PostgreSQL tests must run)")
        pytest.skip(message)
    admin.dispose()
    engine = make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    SCHEMAS[id(engine)] = schema
    return engine


@pytest.fixture(scope="session")
def _engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    engines: dict[str, Any] = {}
    yield engines
    for name, engine in engines.items():
        schema = SCHEMAS.get(id(engine))
        engine.dispose()
        if schema:
            admin = make_engine(PG_URL)
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, _engines: dict[str, Any],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A migrated engine for the backend under test; every table is emptied afterwards."""
    name = request.param
    if name not in _engines:
        if name == "sqlite":
            path = tmp_path_factory.mktemp("sqlite") / "beacon.db"
            engine = make_engine(f"sqlite:///{path}")
        else:
            engine = _postgres_engine()
        migrate.upgrade(engine)
        _engines[name] = engine
    engine = _engines[name]
    yield engine
    _empty(engine)


def _empty(engine: Engine) -> None:
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))
            if conn.execute(text("SELECT 1 FROM sqlite_master WHERE name='sqlite_sequence'")).first():
                conn.execute(text("DELETE FROM sqlite_sequence"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_app(database: Engine, clock: Clock, tmp_path: Any):  # type: ignore[no-untyped-def]
    """Build Beacon on the database under test, as production would run it (Secure cookies, CSRF on).

    Keyword arguments are settings (``INTRANET_*`` keys) or ``clock=``; settings are read once, when
    the app is built, as in production.
    """

    def make(clock: Any = clock, **settings: Any) -> Any:
        application = create_app({
            "TESTING": True,
            "INTRANET_ENV": "production",
            "INTRANET_SECRET_KEY": SECRET,
            "INTRANET_DEV_LOGIN": True,
            "PREFERRED_URL_SCHEME": "https",
            "SERVER_NAME": None,
            # Every test client signs in and posts from 127.0.0.1; tests of the limits set their own.
            "INTRANET_RATELIMIT_SIGN_IN": "10000/minute",
            "INTRANET_RATELIMIT_EVENTS": "10000/minute",
            "INTRANET_RATELIMIT_AUDIENCE_PREVIEW": "10000/minute",
            **settings,
        }, engine=database, clock=clock)
        application.instance_path = str(tmp_path / "instance")
        return application

    return make


@pytest.fixture
def app(make_app: Any, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Beacon on the database under test; ``@pytest.mark.settings(KEY=value)`` sets settings, and a
    test that asks for ``config`` gets its mail delivered to the loopback SMTP server."""
    marker = request.node.get_closest_marker("settings")
    settings = dict(marker.kwargs) if marker else {}
    if "config" in request.fixturenames:
        smtp_server = request.getfixturevalue("smtp")
        settings = {"INTRANET_SMTP_HOST": "127.0.0.1", "INTRANET_SMTP_PORT": smtp_server.port,
                    "INTRANET_MAIL_RATE_PER_MINUTE": 0, "INTRANET_BASE_URL": "https://news.example.com",
                    "INTRANET_MAIL_FROM": "Beacon <news@example.com>", **settings}
    return make_app(**settings)


@pytest.fixture
def db(database: Engine) -> Iterator[Session]:
    with session_factory(database)() as session:
        yield session


@pytest.fixture
def make_employee(db: Session):  # type: ignore[no-untyped-def]
    """Create (and commit) an employee; any attribute can be given.

    Numbering restarts in every test, so hash-based choices (exploration, holdouts) do not depend
    on which tests ran before.
    """
    ids = itertools.count(1)

    def make(**attrs: Any) -> Employee:
        n = next(ids)
        values = {"employee_id": f"T{n:06d}", "email": f"person{n}@example.test", "display_name": f"Person {n}",
                  "department": "Sales", "region": "EMEA", "country": "DE", "office": "Berlin", "level": 3,
                  "timezone": "Europe/Berlin", "language": "en", "created_at": NOW, "updated_at": NOW}
        values.update(attrs)
        employee = Employee(**values)
        db.add(employee)
        db.commit()
        return employee

    return make


@pytest.fixture
def make_group(db: Session):  # type: ignore[no-untyped-def]
    def make(key: str, *, kind: str = "open", members: tuple[Employee, ...] = ()) -> Group:
        group = Group(key=key, name=key.title(), kind=kind)
        db.add(group)
        db.flush()
        db.add_all(GroupMember(group_id=group.id, employee_pk=m.id) for m in members)
        db.commit()
        return group

    return make


@pytest.fixture
def make_post(db: Session, clock: Clock):  # type: ignore[no-untyped-def]
    """Create (and commit) a live post for *audience* (all staff by default)."""

    def make(audience: dict | None = None, **attrs: Any) -> Post:
        published = attrs.pop("published_at", clock.now - dt.timedelta(hours=1))
        values = {"title": "A post", "summary": "Summary", "body_html": "<p>Body</p>", "body_text": "Body",
                  "topic": "News", "status": "published", "publish_at": published, "published_at": published}
        values.update(attrs)
        post = Post(**values)
        db.add(post)
        db.flush()
        targeting.store_audience(db, post, targeting.parse_audience(audience or {"all": True}))
        db.commit()
        return post

    return make


CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


class SignedInClient:
    """A Flask test client signed in through the development sign-in, sending the CSRF header."""

    def __init__(self, app: Any, employee: Employee | None) -> None:
        self.client = app.test_client()
        self.client.environ_base.update(HTTP_REFERER="https://localhost/")
        self.csrf = self.refresh_csrf("/auth/dev-login")
        if employee is not None:
            response = self.client.post("/auth/dev-login", data={"email": employee.email, "csrf_token": self.csrf})
            assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
            self.csrf = self.refresh_csrf("/")

    def refresh_csrf(self, url: str) -> str:
        page = self.client.get(url, follow_redirects=True).get_data(as_text=True)
        match = CSRF_META.search(page)
        assert match, f"no csrf meta on {url}"
        return match.group(1)

    def api(self, method: str, url: str, json: Any = None, **kwargs: Any) -> Any:
        headers = {"X-CSRFToken": self.csrf, **kwargs.pop("headers", {})}
        return self.client.open(url, method=method, json=json, headers=headers, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.fixture
def client_for(app: Any):  # type: ignore[no-untyped-def]
    def make(employee: Employee | None) -> SignedInClient:
        return SignedInClient(app, employee)

    return make


# ------------------------------------------------------------------------------------------------
# Mail: a real SMTP server on loopback
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[Recorder]:
    """A real SMTP server on 127.0.0.1, recording what it receives."""
    handler = Recorder()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    handler.port = controller.port  # type: ignore[attr-defined]
    yield handler
    controller.stop()


@pytest.fixture
def config(app: Any, smtp: Recorder) -> Settings:
    """The app's settings, delivering mail to the loopback SMTP server (the ``app`` fixture sets it up)."""
    return app.extensions["intranet"].settings


@pytest.fixture
def renderer(app: Any) -> Renderer:
    """Renders messages as the sender job does: the app's templates, its secret key and site settings."""
    return jobs.renderer_for(app)


# ------------------------------------------------------------------------------------------------
# Browser: Beacon on a real port, driven by Playwright in Debian's Chromium
# ------------------------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_server(app: Any) -> Iterator[str]:
    """Serve *app* over HTTP on 127.0.0.1 (cookies without Secure, as in local development)."""
    from werkzeug.serving import make_server

    app.config["SESSION_COOKIE_SECURE"] = False
    app.config["PREFERRED_URL_SCHEME"] = "http"
    port = _free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture(scope="session")
def _browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing; `make test` installs Debian's chromium package"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(_browser: Any) -> Iterator[Any]:
    context = _browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def sign_in_browser(page: Any, live_server: str):  # type: ignore[no-untyped-def]
    """Sign *employee* in through the development sign-in page, in the browser."""

    def sign_in(employee: Employee) -> Any:
        page.goto(f"{live_server}/auth/dev-login")
        page.fill("#email", employee.email)
        page.click("form.stack button[type=submit]")
        page.wait_for_url(f"{live_server}/")
        return page

    return sign_in


@pytest.fixture
def entra_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEntraServer]:
    """The HTTPS fake of Entra ID and Microsoft Graph (token, discovery, sign-in, users delta), with
    requests and msal trusting its test CA."""
    with FakeEntraServer() as srv:
        # requests lets these variables override verify= (and these machines export them).
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", srv.ca_bundle_path)
        monkeypatch.setenv("CURL_CA_BUNDLE", srv.ca_bundle_path)
        graph.clear_app_cache()
        yield srv
    graph.clear_app_cache()
