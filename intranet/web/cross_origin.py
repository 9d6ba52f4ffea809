"""What a page on another origin may do with Beacon: frame its embed pages, call the widget's API.

Nothing, unless a view says so (the way Redash's ``embed`` decorator marks its embed routes), and
then only for the origins in ``INTRANET_EMBED_ORIGINS``:

* :func:`frameable` views (the iframe page) send ``frame-ancestors`` with those origins instead of
  ``'none'``, and no ``X-Frame-Options``; every other response keeps ``frame-ancestors 'none'``.
* :func:`cross_origin` views (the API calls the script widget makes) answer CORS requests and
  preflights from those origins, with credentials, and ``Vary: Origin`` always; other origins get
  no CORS headers, so their browsers keep the answer from them. These views also accept an embed
  token (:mod:`intranet.embed_tokens`) in ``Authorization: Bearer``: such a request is not
  authenticated by cookies at all, so it needs no CSRF token; cookie-authenticated calls still do.

An identity that came from an embed token (the bearer header, or the iframe session it was
exchanged for) is good on these views only: a host's token never opens Beacon's other pages.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Response, current_app, request

from intranet import embed_tokens
from intranet.models import Employee
from intranet.web.context import now, session, settings, state
from intranet.web.sessions import EMBED_SESSION_KEY  # a session made from an embed token

F = TypeVar("F", bound=Callable[..., Any])

#: A JWT (three base64url parts); other bearer credentials are not embed tokens and are left alone.
_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
#: Headers the widget sends on cross-origin calls (preflights ask for them).
ALLOWED_HEADERS = "Authorization, Content-Type, X-CSRFToken"
#: Answers the widget reads from cross-origin responses.
EXPOSED_HEADERS = "Retry-After"
PREFLIGHT_MAX_AGE = "600"


def frameable(view: F) -> F:
    """Let the origins in ``INTRANET_EMBED_ORIGINS`` frame this page (the iframe fallback)."""
    view.intranet_frameable = True  # type: ignore[attr-defined]
    return view


def cross_origin(view: F) -> F:
    """Let the origins in ``INTRANET_EMBED_ORIGINS`` call this API view from script, with an embed token or cookies."""
    view.intranet_cross_origin = True  # type: ignore[attr-defined]
    return view


def _view_has(mark: str) -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, mark, False))


def is_embed_view() -> bool:
    """Whether this request's view is one an embedding page may use (framed or called)."""
    return _view_has("intranet_frameable") or _view_has("intranet_cross_origin")


def origin_allowed(origin: str | None) -> bool:
    """Whether *origin* (``scheme://host[:port]``) is in ``INTRANET_EMBED_ORIGINS``."""
    return bool(origin) and origin.lower() in settings().embed.origins  # type: ignore[union-attr]


def referrer_allowed(url: str | None) -> bool:
    """Whether *url* (a Referer) is a page of an allowed origin."""
    if not url:
        return False
    parts = urlsplit(url)
    return origin_allowed(f"{parts.scheme}://{parts.netloc}")


def bearer_token() -> str | None:
    """The embed token this request carries in ``Authorization: Bearer``, on views that take one."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not _JWT.fullmatch(value) or not _view_has("intranet_cross_origin"):
        return None
    return value


def keys() -> embed_tokens.Keys:
    """The keys this app checks embed tokens with."""
    return embed_tokens.Keys.of(settings().embed, state().secret_key)


def employee_from_token(token: str) -> Employee:
    """The person *token* names, once the token checks out.

    :raise embed_tokens.TokenRefused: (401) tampered, expired, wrong audience, unknown person, ...
    """
    claims = embed_tokens.verify(token, keys(), now=now())
    return embed_tokens.employee_for(session(), claims, settings().embed.token_subject)


def frame_ancestors() -> str:
    """The ``frame-ancestors`` sources of this response: the allowlist on frameable views, else ``'none'``."""
    origins = settings().embed.origins
    if origins and _view_has("intranet_frameable"):
        return " ".join(origins)
    return "'none'"


def headers(response: Response) -> Response:
    """CORS for :func:`cross_origin` views (runs after every Beacon blueprint's requests)."""
    if not _view_has("intranet_cross_origin"):
        return response
    response.vary.add("Origin")
    origin = request.headers.get("Origin")
    if not origin_allowed(origin):
        return response
    response.headers["Access-Control-Allow-Origin"] = origin  # type: ignore[assignment]
    response.headers["Access-Control-Allow-Credentials"] = "true"
    if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
        response.headers["Access-Control-Allow-Methods"] = response.headers.get("Allow", "GET")
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    else:
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    return response
