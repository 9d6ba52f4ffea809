"""The Flask extension: ``Intranet().init_app(app)`` plugs Beacon into any Flask application."""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from intranet.db import make_engine, session_factory, utcnow
from intranet.errors import ConfigurationError
from intranet.settings import DEFAULTS, Settings, SiteSettings

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
    clock: Callable[[], dt.datetime] = utcnow
    #: Why this app must not serve requests (weak production settings), or None when it may.
    unsafe: str | None = None
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def build(cls, engine: Engine, settings: Settings, *, clock: Callable[[], dt.datetime] | None = None,
              unsafe: str | None = None) -> State:
        return cls(engine=engine, settings=settings, sessions=session_factory(engine), clock=clock or utcnow,
                   unsafe=unsafe)


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


def check_safe_to_start(app: Flask, site: SiteSettings) -> None:
    """Refuse to run in production with a weak secret key or with debug on.

    :raise ConfigurationError: saying which setting to fix.
    """
    if site.env == "development":
        return
    key = app.config.get("SECRET_KEY")
    if key in INSECURE_SECRET_KEYS or len(str(key)) < MIN_SECRET_KEY_LENGTH:
        raise ConfigurationError(
            "Beacon refuses to start in production without a strong secret key: set INTRANET_SECRET_KEY to "
            f"{MIN_SECRET_KEY_LENGTH}+ random characters (python -c 'import secrets; print(secrets.token_hex(32))'), "
            "or set INTRANET_ENV=development on a developer machine."
        )
    if app.debug:
        raise ConfigurationError("Beacon refuses to start in production with debug on: unset FLASK_DEBUG.")


def _refuse_to_serve() -> tuple[str, int, dict[str, str]]:
    # Plain text on purpose: page templates need the very secret key that is missing.
    from flask import current_app

    reason = current_app.extensions["intranet"].unsafe
    logger.error("Refusing a request: %s", reason)
    return f"Beacon is not configured safely and will not serve requests. {reason}\n", 503, {
        "Content-Type": "text/plain; charset=utf-8"}


class Intranet:
    """Beacon as a Flask extension.

    ``Intranet(app)`` or ``intranet = Intranet(); intranet.init_app(app)``. Per-app state lives in
    ``app.extensions["intranet"]``, so one extension object can serve several apps.
    """

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, *, engine: Engine | None = None,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        """Plug Beacon into *app*: settings parsed once, the database, the web edge and the CLI.

        :param engine: use this engine instead of one built from ``INTRANET_DATABASE_URL``.
        :param clock: returns the current aware UTC time (default: the system clock).
        :raise ConfigurationError: a setting cannot be used (the message names it), or production
            settings are unsafe outside the command line.
        """
        if "intranet" in app.extensions:
            raise RuntimeError(
                "Beacon is already initialized on this app. Import and reuse that Intranet instance."
            )
        from intranet import cli, web
        from intranet.web import security
        from intranet.web.context import close_session
        from intranet.web.sessions import DatabaseSessionInterface

        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        settings = Settings.from_config(app.config)
        # Code reading app.config directly sees the parsed values too ("false" is False).
        app.config.update(settings.as_config())
        if settings.site.secret_key:
            app.config["SECRET_KEY"] = settings.site.secret_key
        elif settings.site.env == "development" and not app.config.get("SECRET_KEY"):
            app.config["SECRET_KEY"] = development_secret_key(app)
        unsafe = None
        try:
            check_safe_to_start(app, settings.site)
        except ConfigurationError as exc:
            # Administrative commands (init-db, imports, role grants) need no secret key, so the
            # command line may load the app; serving it stays refused (serve, scheduler, requests).
            if click.get_current_context(silent=True) is None:
                raise
            unsafe = str(exc)
        secure = settings.sessions.cookie_secure
        if secure is None:
            secure = settings.site.env != "development"
        app.config.update(
            SESSION_COOKIE_SECURE=secure,
            SESSION_COOKIE_HTTPONLY=True,
            SESSION_COOKIE_SAMESITE="Lax",
            WTF_CSRF_TIME_LIMIT=None,  # tokens live as long as the server-side session
        )

        app.extensions["intranet"] = State.build(engine or make_engine(database_url(app, settings.site)), settings, clock=clock,
                                                 unsafe=unsafe)
        if unsafe:
            app.before_request(_refuse_to_serve)
        app.session_interface = DatabaseSessionInterface()
        if "csrf" not in app.extensions:
            CSRFProtect(app)
        app.teardown_appcontext(close_session)
        security.init_app(app)
        web.init_app(app)
        app.cli.add_command(cli.intranet_group)
        if settings.sessions.dev_login and settings.site.env != "development":
            logger.warning("INTRANET_DEV_LOGIN is on outside development: anyone can sign in as anyone.")
