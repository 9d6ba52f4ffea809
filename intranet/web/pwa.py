"""Beacon as an installable app on a phone: the web app manifest, the service worker, and the page
it shows when there is no network.

The worker is served from the root of Beacon's URL space (not from ``/_beacon/static``) because a
service worker controls only the paths below its own; that makes the feed, at the prefix's root,
its to keep.
"""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template, send_from_directory, url_for

from intranet.web import ROOT
from intranet.web.context import public, settings

bp = Blueprint("intranet_pwa", __name__)

THEME_COLOR = "#2454d6"


@bp.get("/manifest.webmanifest")
@public
def manifest():  # type: ignore[no-untyped-def]
    def icon(name: str, size: int, purpose: str = "any") -> dict[str, str]:
        return {"src": url_for("intranet.static", filename=f"intranet/icons/{name}.png"),
                "sizes": f"{size}x{size}", "type": "image/png", "purpose": purpose}

    name = settings().site.org_name
    response = jsonify({
        "name": name, "short_name": name[:12], "description": "The news meant for you, when you read.",
        "start_url": url_for("intranet_feed.index"), "scope": url_for("intranet_feed.index"),
        "display": "standalone", "background_color": "#ffffff", "theme_color": THEME_COLOR,
        "icons": [icon("icon-192", 192), icon("icon-512", 512), icon("icon-maskable-512", 512, "maskable")],
    })
    response.mimetype = "application/manifest+json"
    return response


@bp.get("/service-worker.js")
@public
def service_worker() -> Response:
    response = send_from_directory(ROOT / "static" / "intranet" / "js", "service-worker.js", max_age=0)
    # Browsers check for a new worker on every navigation; never let a cache hold an old one.
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/offline")
@public
def offline() -> str:
    return render_template("intranet/offline.html")
