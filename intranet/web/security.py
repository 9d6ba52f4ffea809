"""Security headers on the responses Beacon serves: CSP without inline scripts, and friends.

:func:`headers` runs after every request to Beacon's own blueprints (registered per blueprint
in :mod:`intranet.web`), so a host app's pages keep their own policy; the standalone app, where
Beacon owns every path, also applies it app-wide (``create_app``).
"""
from __future__ import annotations

from flask import Response, g, make_response, request, session

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: https:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
#: Beacon's static files: the same for everyone, so caches may keep them (mounted or not).
STATIC_ENDPOINT = "intranet.static"
#: The dashboards' policy: the same, except that inline styles are allowed (plotly.js sets ``style``
#: attributes to place tooltips, legends and drag layers). Scripts stay at ``'self'``.
CHART_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")


def with_chart_styles(response: Response) -> Response:
    """*response* with the dashboards' policy (call it only for pages that draw plotly charts)."""
    response = make_response(response)
    response.headers["Content-Security-Policy"] = CHART_CONTENT_SECURITY_POLICY
    return response


def _signed_in() -> bool:
    # The person the request ran as (Beacon's sign-in, the host's employee_loader, an API key's
    # named employee), an API key acting for nobody (analytics), or a Beacon session that belongs to someone.
    return (g.get("intranet_employee") is not None or g.get("intranet_api_client") is not None
            or session.get("employee_pk") is not None)


def headers(response: Response) -> Response:
    """Add Beacon's security headers to *response*, keeping any a view set itself.

    Only the embed views marked :func:`~intranet.web.cross_origin.frameable` may be framed, and
    only by ``INTRANET_EMBED_ORIGINS`` (``frame-ancestors``); every other response denies framing.
    """
    from intranet.web import cross_origin

    headers = response.headers
    ancestors = cross_origin.frame_ancestors()
    headers.setdefault("Content-Security-Policy",
                       CONTENT_SECURITY_POLICY.replace("frame-ancestors 'none'", f"frame-ancestors {ancestors}"))
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if ancestors == "'none'":  # X-Frame-Options cannot name origins; frame-ancestors says it for embeds
        headers.setdefault("X-Frame-Options", "DENY")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    if request.endpoint != STATIC_ENDPOINT and _signed_in():
        headers["Cache-Control"] = "no-store"
    return response
