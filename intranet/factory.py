"""``create_app()``: Beacon as a standalone application (configuration from config/ and env)."""
from __future__ import annotations

import datetime as dt
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import Flask, redirect, url_for
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from intranet.extension import Intranet
from intranet.settings import from_environ
from intranet.web.errors import not_found_anywhere

ROOT = Path(__file__).resolve().parent.parent
CONFIG_FILE = ROOT / "config" / "beacon.toml"


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
    app.config.update(load_config_file(Path(os.environ.get("INTRANET_CONFIG_FILE", CONFIG_FILE))))
    app.config.update(from_environ(os.environ))
    app.config.update(overrides or {})
    Intranet().init_app(app, engine=engine, clock=clock)
    app.register_error_handler(404, not_found_anywhere)
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
