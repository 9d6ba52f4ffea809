"""``create_app()``: Beacon as a standalone application (configuration from config/ and env)."""
from __future__ import annotations

import datetime as dt
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response, redirect, request, url_for
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from intranet.extension import Intranet
from intranet.settings import from_environ
from intranet.web import blueprints, errors, refuse_if_unsafe, request_log, security, template_context
from intranet.web.sessions import DatabaseSessionInterface

ROOT = Path(__file__).resolve().parent.parent
CONFIG_FILE = ROOT / "config" / "beacon.toml"
#: Where the standalone app's defaults differ from an embedded Beacon's (config/ and env override them).
STANDALONE_DEFAULTS: dict[str, Any] = {
    "INTRANET_RUN_SCHEDULER": True,  # one machine: `flask intranet serve` runs web and scheduler together
}


def load_config_file(path: Path) -> dict[str, Any]:
    """Read the ``[beacon]`` table of a TOML file (missing file = no overrides)."""
    if not path.exists():
        return {}
    with path.open("rb") as fh:
        return dict(tomllib.load(fh).get("beacon", {}))


def create_app(overrides: Mapping[str, Any] | None = None, *, engine: Engine | None = None,
               clock: Callable[[], dt.datetime] | None = None) -> Flask:
    """Build the standalone Beacon app: config/beacon.toml, then INTRANET_* env vars, then *overrides*.

    :param engine: use this engine instead of one built from ``INTRANET_DATABASE_URL``.
    :param clock: returns the current aware UTC time (default: the system clock).
    :raise ConfigurationError: a setting cannot be used; the message names it.
    """
    app = Flask("intranet", instance_path=str(ROOT / "instance"))
    app.config.update(STANDALONE_DEFAULTS)
    app.config.update(load_config_file(Path(os.environ.get("INTRANET_CONFIG_FILE", CONFIG_FILE))))
    app.config.update(from_environ(os.environ))
    app.config.update(overrides or {})
    Intranet().init_app(app, engine=engine, clock=clock)
    _own_the_app(app)
    site = app.extensions["intranet"].settings.site
    proxies = site.trusted_proxies
    if proxies:
        # Behind a TLS-terminating proxy the app must see https, or Secure cookies and CSRF's
        # referrer check would fail; trust exactly as many X-Forwarded-* hops as configured.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)  # type: ignore[method-assign]

    if not site.url_prefix:
        return app

    @app.get("/")
    def root():  # type: ignore[no-untyped-def]
        return redirect(url_for("intranet_feed.index"))

    return app


def _own_the_app(app: Flask) -> None:
    """App-wide settings, which the extension leaves to a host: standalone, Beacon is the host.

    Beacon's server-side sessions, its cookie flags, headers, error pages and template context on
    every path (unknown URLs and the root redirect included), and its key as the app's key.
    """
    state = app.extensions["intranet"]
    app.config.update(
        SECRET_KEY=state.secret_key or None,
        SESSION_COOKIE_SECURE=state.cookie_secure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.session_interface = DatabaseSessionInterface()  # reads SESSION_COOKIE_SECURE, as set above
    # Beacon's blueprints run these two hooks themselves; app-wide they cover the other paths
    # (unknown URLs, the root redirect, health checks), so no request runs either twice.
    own = frozenset(bp.name for bp, _ in blueprints())

    def refuse_if_unsafe_elsewhere() -> Any:
        return None if request.blueprint in own else refuse_if_unsafe()

    def headers_elsewhere(response: Response) -> Response:
        return response if request.blueprint in own else security.headers(response)

    app.before_request(refuse_if_unsafe_elsewhere)
    app.after_request(headers_elsewhere)
    app.context_processor(template_context)
    errors.init_app(app)
    app.register_error_handler(404, errors.not_found_anywhere)
    request_log.init_app(app)
