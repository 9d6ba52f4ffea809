"""Beacon's web edge: blueprints, registered under ``INTRANET_URL_PREFIX``.

Handlers here are thin: load, check access, act (through a service), commit, render.
"""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask

ROOT = Path(__file__).resolve().parent.parent.parent

# Templates and static files live at the repository's top level (templates/intranet/...,
# static/intranet/...), namespaced so a host app can override any template by path.
assets = Blueprint("intranet", __name__, template_folder=str(ROOT / "templates"),
                   static_folder=str(ROOT / "static"), static_url_path="/_beacon/static")

# The URL table: each module's ``bp``, and whether it lives under /api/v1.
BLUEPRINTS: tuple[tuple[str, bool], ...] = (
    ("intranet.web.auth", False),
    ("intranet.web.feed", False),
    ("intranet.web.search", False),
    ("intranet.web.groups", False),
    ("intranet.web.directory_admin", False),
    ("intranet.web.admin", False),
    ("intranet.web.entra_auth", False),
    ("intranet.web.api", True),
    ("intranet.web.publish", False),
    ("intranet.web.posts_api", True),
    ("intranet.web.ratings_api", True),
    ("intranet.web.ratings", False),
    ("intranet.web.acknowledgements", False),
    ("intranet.web.my_data", False),
)


@dataclasses.dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: str
    role: str = "employee"
    #: The endpoints where this item is the current page; by default, every page of its blueprint.
    endpoints: tuple[str, ...] = ()


NAV: tuple[NavItem, ...] = (
    NavItem("intranet_feed.index", "My feed"),
    NavItem("intranet_groups.index", "Groups"),
    NavItem("intranet_publish.index", "Publishing", "contributor"),
    NavItem("intranet_delivery.preferences_page", "Digest"),
    NavItem("intranet_admin.digest_defaults", "Organisation", "comms", ("intranet_admin.digest_defaults",)),
    NavItem("intranet_admin.roles_page", "People", "admin", ("intranet_admin.roles_page",)),
    NavItem("intranet_directory_admin.index", "Directory", "admin"),
)


def _nav_context() -> dict[str, Any]:
    from flask import current_app

    from intranet.web.context import current_employee_or_none

    employee = current_employee_or_none()
    if employee is None:
        return {"beacon_nav": [], "beacon_viewer": None}
    endpoints = current_app.view_functions
    # beacon_viewer lets base.html keep the navigation on pages rendered without `employee` (errors).
    return {"beacon_nav": [item for item in NAV if item.endpoint in endpoints and employee.has_role(item.role)],
            "beacon_viewer": employee}


def init_app(app: Flask) -> None:
    from intranet.web import errors, limits, times

    limits.init_app(app)  # body size and id bounds for Beacon's routes (the host's keep their own)

    prefix = app.extensions["intranet"].settings.site.url_prefix
    app.register_blueprint(assets, url_prefix=prefix or None)
    for module_name, is_api in BLUEPRINTS:
        bp = importlib.import_module(module_name).bp
        app.register_blueprint(bp, url_prefix=f"{prefix}/api/v1" if is_api else (prefix or None))
    importlib.import_module("intranet.web.delivery").init_app(app, prefix or None)  # two blueprints, CSRF exemptions
    app.context_processor(_nav_context)
    times.init_app(app)
    errors.init_app(app)
