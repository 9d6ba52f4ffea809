"""Beacon's web edge: blueprints, registered under ``INTRANET_URL_PREFIX``.

Handlers here are thin: load, check access, act (through a service), commit, render.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask

ROOT = Path(__file__).resolve().parent.parent.parent

# Templates and static files live at the repository's top level (templates/intranet/...,
# static/intranet/...), namespaced so a host app can override any template by path.
assets = Blueprint("intranet", __name__, template_folder=str(ROOT / "templates"),
                   static_folder=str(ROOT / "static"), static_url_path="/_beacon/static")


def init_app(app: Flask) -> None:
    from intranet.web import api, auth, errors, feed

    prefix = app.config["INTRANET_URL_PREFIX"] or None
    app.register_blueprint(assets, url_prefix=prefix)
    for bp in (auth.bp, feed.bp):
        app.register_blueprint(bp, url_prefix=prefix)
    app.register_blueprint(api.bp, url_prefix=f"{prefix or ''}/api/v1")
    errors.init_app(app)
