"""Errors: JSON ``{"error": {"code", "message", "details"}}`` for the API, a page for people."""
from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, make_response, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from pydantic import BaseModel
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from sqlalchemy.exc import DBAPIError

from intranet.db import is_unavailable
from intranet.errors import IntranetError, TooManyRequests, Unavailable
from intranet import languages
from intranet.languages import N_
from intranet.web import i18n, rate_limits, security_events
from intranet.web.rate_limits import RateLimitExceeded
from intranet.web.context import NotSignedIn

logger = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    """What went wrong: ``code`` is stable (for programs), ``message`` is for people."""

    code: str
    message: str
    #: Which fields were wrong and why, the limit that was passed, ... (depends on the error).
    details: Any = None


class ErrorPublic(BaseModel):
    """Every API error's body."""

    error: ErrorDetail


def _(message: str, /, **values: Any) -> str:
    """*message* in the language of an error (which must not fail where finding the reader failed)."""
    return languages.translate(i18n.error_locale(), message, **values)


def _is_api() -> bool:
    if request.blueprint is None:  # no route matched: judge by the path
        return "/api/" in request.path
    return request.blueprint.endswith("api")


def error_response(status: int, code: str, message: str, details: object = None) -> Response | tuple:
    if _is_api():
        body = ErrorPublic(error=ErrorDetail(code=code, message=message, details=details))
        response = jsonify(body.model_dump(mode="json"))
        response.status_code = status
        return response
    return render_template("intranet/error.html", status=status, message=message), status


def _has_sign_in_page() -> bool:
    # A host that signs people in itself may name its sign-in page; without one, a 401 page it is.
    state = current_app.extensions["intranet"]
    return state.employee_loader is None or bool(state.settings.sessions.sign_in_url)


def _intranet_error(exc: IntranetError):  # type: ignore[no-untyped-def]
    if isinstance(exc, NotSignedIn) and not _is_api() and _has_sign_in_page():
        return redirect(url_for("intranet_auth.sign_in_page", next=request.full_path.rstrip("?")))
    response = error_response(exc.status, exc.code, i18n.error_message(exc), exc.details)
    extra = getattr(exc, "headers", None)  # e.g. WWW-Authenticate on an API key's 401 and 403
    if extra:
        response = make_response(response)
        response.headers.update(extra)
    if isinstance(exc, TooManyRequests):
        # Every refusal by a rate limit is a security event (a burst may be an attack or a runaway script).
        security_events.record("rate_limited", status=429, endpoint=request.endpoint, retry_after=exc.retry_after)
    if isinstance(exc, (TooManyRequests, Unavailable)):
        response = make_response(response)
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


#: What a request refused while the database is away says (the client retries after Retry-After).
DATABASE_AWAY = N_("Beacon cannot reach its database just now; nothing was changed. Try again in a few seconds.")


def _database_error(exc: DBAPIError):  # type: ignore[no-untyped-def]
    """A database that went away (restart, failover) answers 503 with Retry-After, not a 500: the
    request changed nothing (its transaction is rolled back) and a retry will work once it is back.
    Pooled connections it broke are invalidated, and pre-ping replaces them on the next checkout."""
    if not is_unavailable(exc):
        return _unexpected(exc)
    logger.warning("Database unavailable on %s %s: %s", request.method, request.path,
                   str(getattr(exc, "orig", exc)).splitlines()[0] if str(exc) else exc.__class__.__name__)
    g.intranet_db_unavailable = True  # the session cookie is not written back either
    _rollback()
    return _intranet_error(Unavailable(DATABASE_AWAY))


def refuse_while_database_away() -> None:
    """Before a request: refuse it when the session lookup already found the database away."""
    if g.get("intranet_db_unavailable"):
        raise Unavailable(DATABASE_AWAY)


def _rate_limited(exc: RateLimitExceeded):  # type: ignore[no-untyped-def]
    # Flask-Limiter's refusal becomes Beacon's: the same JSON or page, Retry-After and security event.
    return _intranet_error(rate_limits.refusal(exc))


def _csrf_error(exc: CSRFError):  # type: ignore[no-untyped-def]
    logger.warning("CSRF check failed on %s %s: %s", request.method, request.path, exc.description)
    return error_response(400, "csrf", _("The security token is missing or expired; reload the page and try again."))


def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
    if isinstance(exc, RequestEntityTooLarge):
        limit = request.max_content_length
        message = (_("The request is too large: Beacon accepts at most %(size)s MB.", size=f"{limit / (1024 * 1024):.3g}")
                   if limit and limit >= 1024 * 1024 else
                   _("The request is too large: Beacon accepts at most %(size)s bytes.", size=limit))
        return error_response(413, "too_large", message, {"limit": limit})
    code = (exc.name or "error").lower().replace(" ", "_")
    # Werkzeug's own descriptions are English (and kept for English readers); the common ones are
    # worded in other readers' languages.
    words = (HTTP_WORDS.get(exc.code or 500) if exc.description == type(exc).description
             and i18n.error_locale() != languages.DEFAULT else None)
    return error_response(exc.code or 500, code, _(words) if words else exc.description or exc.name)


#: Beacon's words for the HTTP errors Werkzeug raises itself (a route's ``abort(404)``, a wrong method).
HTTP_WORDS: dict[int, str] = {
    404: N_("There is nothing at this address."),
    405: N_("This address does not answer that kind of request."),
    400: N_("Beacon could not read this request."),
}


def _rollback() -> None:
    # A failed flush leaves the request's session unusable until it is rolled back, and the error
    # page itself reads from it (the signed-in person, for the navigation).
    db = g.get("intranet_db")
    if db is not None:
        try:
            db.rollback()
        except Exception:  # the connection itself may be gone; the page can do without it
            logger.warning("Rolling back after an error failed", exc_info=True)
            g.pop("intranet_db", None)
            g.pop("intranet_employee", None)  # bound to the session just dropped
            db.close()


def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    # The request id is the correlation id: the person quotes it, and every log line of the
    # request (the traceback included) carries it. No exception text reaches the page.
    incident = security_events.request_id()
    logger.exception("Unhandled error (incident %s)", incident)
    _rollback()
    return error_response(500, "internal", _("Something went wrong on our side (incident %(incident)s).", incident=incident),
                          {"correlation_id": incident})


def _ours() -> bool:
    return (request.blueprint or "").startswith("intranet")


def _only_ours(handler):  # type: ignore[no-untyped-def]
    """Wrap *handler* so a host app's own routes keep their own error handling."""

    def handle(exc: Exception):  # type: ignore[no-untyped-def]
        if _ours() or isinstance(exc, IntranetError):
            return handler(exc)
        if isinstance(exc, HTTPException):
            return exc
        raise exc

    return handle


def not_found_anywhere(exc: HTTPException):  # type: ignore[no-untyped-def]
    """Beacon's 404 for any unknown URL; for standalone apps, where Beacon owns every path."""
    return error_response(404, "not_found", _("There is nothing at this address."))


def register(bp: Blueprint) -> None:
    """Answer errors on *bp*'s routes Beacon's way (JSON for the API, a page otherwise).

    On the blueprint, not the app: a host's own handlers for the same exceptions stay in charge
    of the host's routes.
    """
    bp.register_error_handler(IntranetError, _intranet_error)
    bp.register_error_handler(RateLimitExceeded, _rate_limited)
    bp.register_error_handler(CSRFError, _csrf_error)
    bp.register_error_handler(DBAPIError, _database_error)
    bp.register_error_handler(HTTPException, _http_error)
    bp.register_error_handler(Exception, _unexpected)


def init_app(app: Flask) -> None:
    """Standalone app: Beacon's errors everywhere it answers, including before a route matched."""
    app.register_error_handler(IntranetError, _intranet_error)
    app.register_error_handler(RateLimitExceeded, _only_ours(_rate_limited))
    app.register_error_handler(CSRFError, _only_ours(_csrf_error))
    app.register_error_handler(DBAPIError, _only_ours(_database_error))
    app.register_error_handler(HTTPException, _only_ours(_http_error))
    app.register_error_handler(Exception, _only_ours(_unexpected))
