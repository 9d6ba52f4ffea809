"""The Flask extension: ``Intranet().init_app(app)`` plugs Beacon into any Flask application."""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from flask import Flask
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from intranet.db import add_search_functions, make_engine, session_factory, utcnow
from intranet.errors import ConfigurationError
from intranet.settings import DEFAULTS, Settings, SiteSettings

if TYPE_CHECKING:
    from intranet.engagement.buffer import EventBuffer
    from intranet.engagement.events import RecentlyVisible

logger = logging.getLogger(__name__)

INSECURE_SECRET_KEYS = {None, "", "dev", "change-me", "development-only-secret-key"}
MIN_SECRET_KEY_LENGTH = 32


@dataclasses.dataclass
class State:
    """Beacon's per-app state, kept in ``app.extensions["intranet"]``; built once, at ``init_app``."""

    engine: Engine
    #: Every ``INTRANET_*`` setting, parsed and validated, one typed group per subsystem.
    settings: Settings
    #: Opens a database session on :attr:`engine`; every session Beacon opens comes from here.
    sessions: sessionmaker[Session]
    #: Signs Beacon's CSRF tokens, unsubscribe and rating links (never the host's session).
    secret_key: str = ""
    #: Whether Beacon's own session cookie is Secure.
    cookie_secure: bool = True
    clock: Callable[[], dt.datetime] = utcnow
    #: Why this app must not serve requests (weak production settings), or None when it may.
    unsafe: str | None = None
    #: The extension object, which holds the host's ``employee_loader`` (registered before or after ``init_app``).
    extension: Intranet | None = None
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: Where accepted reading events wait for the flusher (``INTRANET_EVENTS_BUFFER_URL``), or None:
    #: each request stores its own.
    event_buffer: EventBuffer | None = None
    #: Posts people were just found allowed to see, for their next event batches.
    recently_visible: RecentlyVisible | None = None

    @classmethod
    def build(cls, engine: Engine, settings: Settings, *, clock: Callable[[], dt.datetime] | None = None,
              unsafe: str | None = None, secret_key: str = "", cookie_secure: bool = True,
              extension: Intranet | None = None) -> State:
        from intranet.engagement.buffer import EventBuffer
        from intranet.engagement.events import RecentlyVisible

        return cls(engine=engine, settings=settings, sessions=session_factory(engine), clock=clock or utcnow,
                   unsafe=unsafe, secret_key=secret_key, cookie_secure=cookie_secure, extension=extension,
                   event_buffer=EventBuffer.from_settings(settings.events),
                   recently_visible=RecentlyVisible(settings.events.visibility_cache_seconds))

    @property
    def employee_loader(self) -> Callable[[], str | None] | None:
        """The host's function naming the signed-in employee, or None when Beacon signs people in."""
        return None if self.extension is None else self.extension.loader


def database_url(app: Flask, site: SiteSettings) -> str:
    """The configured database URL, defaulting to SQLite in the app's instance folder."""
    if site.database_url:
        return site.database_url
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(app.instance_path) / 'beacon.db'}"


def development_secret_key(app: Flask) -> str:
    """A random key kept in the instance folder, so a developer's sessions survive restarts."""
    path = Path(app.instance_path) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def secret_key_for(app: Flask, site: SiteSettings) -> str | None:
    """The key Beacon signs with: ``INTRANET_SECRET_KEY``, else the host's ``SECRET_KEY``, else (in
    development only) a random key kept in the instance folder."""
    if site.secret_key:
        return site.secret_key
    if app.config.get("SECRET_KEY"):
        return str(app.config["SECRET_KEY"])
    if site.env == "development":
        return development_secret_key(app)
    return None


def check_safe_to_start(app: Flask, site: SiteSettings, key: str | None) -> None:
    """Refuse to run in production with a weak secret key or with debug on.

    :param key: the key Beacon signs with (:func:`secret_key_for`).
    :raise ConfigurationError: saying which setting to fix.
    """
    if site.env == "development":
        return
    if key in INSECURE_SECRET_KEYS or len(str(key)) < MIN_SECRET_KEY_LENGTH:
        raise ConfigurationError(
            "Beacon refuses to start in production without a strong secret key: set INTRANET_SECRET_KEY to "
            f"{MIN_SECRET_KEY_LENGTH}+ random characters (python -c 'import secrets; print(secrets.token_hex(32))'), "
            "or set INTRANET_ENV=development on a developer machine."
        )
    if app.debug:
        raise ConfigurationError("Beacon refuses to start in production with debug on: unset FLASK_DEBUG.")


class Intranet:
    """Beacon as a Flask extension.

    ``Intranet(app)`` or ``intranet = Intranet(); intranet.init_app(app)``. Per-app state lives in
    ``app.extensions["intranet"]``, so one extension object can serve several apps. Everything
    Beacon adds to a request is scoped to its own blueprints (under ``INTRANET_URL_PREFIX``): the
    host's routes keep their own session, CSRF handling, headers and error pages, and the host's
    secret key and cookie settings are left alone.

    A host that signs people in itself tells Beacon who is signed in with :meth:`employee_loader`.
    """

    def __init__(self, app: Flask | None = None) -> None:
        #: The host's employee loader (see :meth:`employee_loader`), or None.
        self.loader: Callable[[], str | None] | None = None
        if app is not None:
            self.init_app(app)

    def employee_loader(self, loader: Callable[[], str | None]) -> Callable[[], str | None]:
        """Register the function that says who is signed in to the host (a decorator).

        Called, in a request to Beacon's routes, with no arguments; it returns the signed-in
        person's email (or, with ``INTRANET_EMPLOYEE_LOADER_FIELD``, their ``employee_id`` or
        ``entra_object_id``), or None when nobody is signed in. Beacon then keeps no sessions of
        its own and shows no sign-in or sign-out; roles still come from Beacon's database::

            @intranet.employee_loader
            def current_email():
                return current_user.email if current_user.is_authenticated else None
        """
        self.loader = loader
        return loader

    def init_app(self, app: Flask, *, engine: Engine | None = None,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        """Plug Beacon into *app*: settings parsed once, the database, the web edge and the CLI.

        :param engine: use this engine instead of one built from ``INTRANET_DATABASE_URL``.
        :param clock: returns the current aware UTC time (default: the system clock).
        :raise ConfigurationError: a setting cannot be used (the message names it), or production
            settings are unsafe outside the command line.
        :raise RuntimeError: Beacon is already initialized on *app*.
        """
        if "intranet" in app.extensions:
            raise RuntimeError(
                "Beacon is already initialized on this app. Import and reuse that Intranet instance "
                "(one Intranet object may serve several apps; each app is initialized once)."
            )
        from intranet import cli, web
        from intranet.web.context import close_session
        from intranet.web.sessions import DatabaseSessionInterface, ScopedSessionInterface

        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        settings = Settings.from_config(app.config)
        # Code reading app.config directly sees the parsed values too ("false" is False).
        app.config.update(settings.as_config())
        key = secret_key_for(app, settings.site)
        unsafe = None
        try:
            check_safe_to_start(app, settings.site, key)
        except ConfigurationError as exc:
            # Administrative commands (init-db, imports, role grants) need no secret key, so the
            # command line may load the app; serving it stays refused (serve, scheduler, requests).
            if click.get_current_context(silent=True) is None:
                raise
            unsafe = str(exc)
        if engine is not None:
            add_search_functions(engine)  # a host's SQLite engine: the search index's triggers need them
        secure = settings.sessions.cookie_secure
        if secure is None:
            secure = settings.site.env != "development"

        app.extensions["intranet"] = State.build(
            engine or make_engine(database_url(app, settings.site), pool=settings.database), settings, clock=clock, unsafe=unsafe,
            secret_key=key or "", cookie_secure=secure, extension=self)
        # Beacon's server-side sessions answer Beacon's routes only; the host's interface the rest.
        app.session_interface = ScopedSessionInterface(app.session_interface, DatabaseSessionInterface(secure))
        app.teardown_appcontext(close_session)
        web.init_app(app)
        host_csrf = app.extensions.get("csrf")
        if host_csrf is not None:
            # The host's Flask-WTF checks its own token; Beacon's routes carry Beacon's.
            for bp, _ in web.blueprints():
                host_csrf.exempt(bp)
        app.cli.add_command(cli.intranet_group)
        if settings.sessions.dev_login and settings.site.env != "development":
            logger.warning("INTRANET_DEV_LOGIN is on outside development: anyone can sign in as anyone.")
