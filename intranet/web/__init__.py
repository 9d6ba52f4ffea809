"""Beacon's web edge: blueprints, registered under ``INTRANET_URL_PREFIX``.

Handlers here are thin: load, check access, act (through a service), commit, render.

Everything Beacon does around a request is attached to its own blueprints, not to the app:
CSRF checks, security headers, template context and error pages (:func:`blueprints`). A host
app's routes never see them; the standalone app (``create_app``) adds the app-wide parts itself.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask

from intranet.languages import N_

ROOT = Path(__file__).resolve().parent.parent.parent
logger = logging.getLogger(__name__)

# Templates and static files live at the repository's top level (templates/intranet/...,
# static/intranet/...), namespaced so a host app can override any template by path.
assets = Blueprint("intranet", __name__, template_folder=str(ROOT / "templates"),
                   static_folder=str(ROOT / "static"), static_url_path="/_beacon/static")

# The URL table: each module's blueprint (``bp`` unless named), and whether it lives under /api/v1.
BLUEPRINTS: tuple[tuple[str, bool], ...] = (
    ("intranet.web.auth", False),
    ("intranet.web.feed", False),
    ("intranet.web.search", False),
    ("intranet.web.pwa", False),
    ("intranet.web.groups", False),
    ("intranet.web.directory_admin", False),
    ("intranet.web.admin", False),
    ("intranet.web.webhooks_admin", False),
    ("intranet.web.api_keys_admin", False),
    ("intranet.web.entra_auth", False),
    ("intranet.web.api", True),
    ("intranet.web.publish", False),
    ("intranet.web.posts_api", True),
    ("intranet.web.ratings_api", True),
    ("intranet.web.ratings", False),
    ("intranet.web.acknowledgements", False),
    ("intranet.web.my_data", False),
    ("intranet.web.delivery:api", True),
    ("intranet.web.delivery:pages", False),
    ("intranet.web.analytics_api", True),
    ("intranet.web.dashboards", False),
    ("intranet.web.feedback", False),
    ("intranet.web.feedback_api", True),
    ("intranet.web.embed:pages", False),
    ("intranet.web.embed:api", True),
    ("intranet.web.journeys", False),
)


@dataclasses.dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: str
    role: str = "employee"
    #: The endpoints where this item is the current page; by default, every page of its blueprint.
    endpoints: tuple[str, ...] = ()


# Labels are marked for translation (N_) and translated where base.html shows them.
NAV: tuple[NavItem, ...] = (
    NavItem("intranet_feed.index", N_("My feed")),
    NavItem("intranet_groups.index", N_("Groups")),
    NavItem("intranet_publish.index", N_("Publishing"), "contributor"),
    NavItem("intranet_feedback.inbox", N_("Feedback"), "contributor", ("intranet_feedback.inbox", "intranet_feedback.thread")),
    NavItem("intranet_delivery.preferences_page", N_("Digest")),
    NavItem("intranet_dashboards.organisation", N_("Dashboards"), "comms"),
    NavItem("intranet_journeys.index", N_("Journeys"), "comms"),
    NavItem("intranet_admin.digest_defaults", N_("Organisation"), "comms", ("intranet_admin.digest_defaults",)),
    NavItem("intranet_admin.roles_page", N_("People"), "admin", ("intranet_admin.roles_page",)),
    NavItem("intranet_directory_admin.index", N_("Directory"), "admin"),
    NavItem("intranet_webhooks_admin.index", N_("Webhooks"), "admin"),
    NavItem("intranet_api_keys_admin.index", N_("API keys"), "admin"),
)


def template_context() -> dict[str, Any]:
    """What Beacon's pages expect besides globals: the navigation, the viewer, who signs people in."""
    from flask import current_app

    from intranet.web import i18n
    from intranet.web.context import current_employee_or_none, state

    context: dict[str, Any] = {"beacon_signs_in": state().employee_loader is None, **i18n.template_context()}
    employee = current_employee_or_none()
    if employee is None:
        return {**context, "beacon_nav": [], "beacon_viewer": None}
    endpoints = current_app.view_functions
    # beacon_viewer lets base.html keep the navigation on pages rendered without `employee` (errors).
    return {**context, "beacon_viewer": employee,
            "beacon_nav": [item for item in NAV if item.endpoint in endpoints and employee.has_role(item.role)]}


def refuse_if_unsafe() -> Any:
    """Answer 503 while the settings are unsafe for serving (they were accepted for the command line)."""
    from flask import current_app

    reason = current_app.extensions["intranet"].unsafe
    if reason is None:
        return None
    # Plain text on purpose: page templates need the very secret key that is missing.
    logger.error("Refusing a request: %s", reason)
    return f"Beacon is not configured safely and will not serve requests. {reason}\n", 503, {
        "Content-Type": "text/plain; charset=utf-8"}


@functools.cache
def blueprints() -> tuple[tuple[Blueprint, bool], ...]:
    """Every Beacon blueprint (static files first) and whether it lives under /api/v1.

    Each gets Beacon's request hooks here, once per process (a blueprint object is shared by
    every app it is registered on, and cannot take hooks after its first registration).
    """
    from intranet.web import api_auth, cross_origin, csrf, errors, security

    found = [(assets, False)]
    for entry, is_api in BLUEPRINTS:
        module_name, _, attribute = entry.partition(":")
        found.append((getattr(importlib.import_module(module_name), attribute or "bp"), is_api))
    for bp, is_api in found:
        bp.before_request(errors.refuse_while_database_away)
        bp.before_request(refuse_if_unsafe)
        if is_api:  # before CSRF: a request with an API key is judged by its key, not by a cookie
            bp.before_request(api_auth.authenticate)
        bp.before_request(csrf.protect)
        bp.after_request(security.headers)
        bp.after_request(cross_origin.headers)
        bp.context_processor(template_context)
        errors.register(bp)
    return tuple(found)


def init_app(app: Flask) -> None:
    from intranet.web import csrf, health, i18n, limits, rate_limits, times, urls

    limits.init_app(app)  # body size and id bounds for Beacon's routes (the host's keep their own)

    prefix = app.extensions["intranet"].settings.site.url_prefix
    for bp, is_api in blueprints():
        app.register_blueprint(bp, url_prefix=f"{prefix}/api/v1" if is_api else (prefix or None))
    # Health checks stay outside blueprints(): no sign-in, session, CSRF or "unsafe settings" refusal
    # (liveness must not depend on them; readiness reports unsafe settings itself).
    app.register_blueprint(health.bp, url_prefix=prefix or None)
    state = app.extensions["intranet"]
    state.extras["limiter"] = rate_limits.init_app(app, state.settings.rate_limits)  # after the views exist
    times.init_app(app)
    i18n.init_app(app)
    # A global, so macros imported without context see it; prefixed, since it lands in the host's
    # Jinja environment (where ``csrf_token`` may be the host's own Flask-WTF token).
    app.add_template_global(csrf.token, "beacon_csrf_token")
    urls.init_app(app)
