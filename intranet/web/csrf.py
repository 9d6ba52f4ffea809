"""CSRF protection for Beacon's own routes, and only those.

Every Beacon blueprint checks the token before its state-changing views run (a ``before_request``
hook per blueprint, as Redash scopes Flask-WTF's check), so a host app's forms keep whatever
protection the host chose. The token is Flask-WTF's, signed with Beacon's secret key (not the
host's) and kept in the session under Beacon's own name, so it never meets a host's Flask-WTF
token. Views that carry their own proof (OAuth ``state``, a signed link, the event beacon that
checks the token itself) are marked with :func:`exempt`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import current_app, g, request
from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf
from wtforms.validators import ValidationError

from intranet.web.context import state

F = TypeVar("F", bound=Callable[..., Any])

#: Where the raw token lives in the session (Flask-WTF's default, ``csrf_token``, is left to the host).
SESSION_KEY = "intranet_csrf_token"
#: The form field and the headers a token may arrive in.
FORM_FIELD = "csrf_token"
HEADERS = ("X-CSRFToken", "X-CSRF-Token")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def token() -> str:
    """This session's signed CSRF token (the ``csrf_token()`` of Beacon's templates)."""
    return generate_csrf(secret_key=state().secret_key, token_key=SESSION_KEY)  # type: ignore[no-any-return]


def validate(value: str | None) -> None:
    """Check a signed token against this session's.

    Tokens live as long as the session that holds them, at most the absolute session lifetime.

    :raise CSRFError: (400) when the token is missing, forged, expired or another session's.
    """
    limit = int(state().settings.sessions.absolute.total_seconds())
    try:
        validate_csrf(value, secret_key=state().secret_key, time_limit=limit, token_key=SESSION_KEY)
    except ValidationError as exc:
        raise CSRFError(exc.args[0]) from None


def exempt(view: F) -> F:
    """Mark *view* as checking its request's origin itself (say how, next to the view)."""
    view.intranet_csrf_exempt = True  # type: ignore[attr-defined]
    return view


def _sent_token() -> str | None:
    sent = request.form.get(FORM_FIELD)
    if sent:
        return sent
    for header in HEADERS:
        sent = request.headers.get(header)
        if sent:
            return sent
    return None


def _same_origin(url: str, host: str) -> bool:
    sent, ours = urlsplit(url), urlsplit(f"https://{host}/")
    return (sent.scheme, sent.hostname, sent.port) == (ours.scheme, ours.hostname, ours.port)


def protect() -> None:
    """``before_request`` of every Beacon blueprint: refuse a state-changing request without a valid token.

    Over HTTPS the Referer must also be this host (Flask-WTF's strict SSL check), since a token
    alone does not stop a man-in-the-middle on a plain-HTTP subdomain from planting cookies.

    :raise CSRFError: answered by Beacon's error handlers with a 400.
    """
    from intranet.web import cross_origin

    if request.method not in UNSAFE_METHODS:
        return
    if g.get("intranet_api_client") is not None:
        # An API key authenticated this request (intranet.web.api_auth) and it runs without any
        # cookie's identity: a forged cross-site request cannot carry the key, so there is nothing to forge.
        return
    if getattr(current_app.view_functions.get(request.endpoint or ""), "intranet_csrf_exempt", False):
        return
    if cross_origin.bearer_token() is not None:
        return  # authenticated by the embed token in the header, never by cookies: nothing to forge
    validate(_sent_token())
    if request.is_secure:
        if not request.referrer:
            raise CSRFError("The referrer header is missing.")
        # The script widget's cookie-authenticated calls come from a page of an allowed host origin.
        if not _same_origin(request.referrer, request.host) and not (
                cross_origin.is_embed_view() and cross_origin.referrer_allowed(request.referrer)):
            raise CSRFError("The referrer does not match the host.")
