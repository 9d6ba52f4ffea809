"""Per-request access to Beacon's state: the database session, the clock, the signed-in person."""
from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, session as flask_session
from sqlalchemy import func, select
from sqlmodel import Session

from intranet.db import attach_loaded
from intranet.errors import Forbidden, IntranetError
from intranet.models import Employee
from intranet.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger(__name__)


class NotSignedIn(IntranetError):
    code = "unauthenticated"
    status = 401

    def __init__(self) -> None:
        from intranet.web.i18n import gettext  # here: i18n reads the signed-in person through this module

        super().__init__(gettext("Sign in to continue."))


def state() -> Any:
    """Beacon's per-app state (see :class:`intranet.extension.State`)."""
    return current_app.extensions["intranet"]


def settings() -> Settings:
    """This app's settings, parsed once at ``init_app`` (read these, not ``current_app.config``)."""
    return state().settings  # type: ignore[no-any-return]


def session() -> Session:
    """The database session of this app context, opened on first use and closed on teardown."""
    if "intranet_db" not in g:
        g.intranet_db = state().sessions()
    return g.intranet_db


def close_session(_exc: BaseException | None = None) -> None:
    db = g.pop("intranet_db", None)
    if db is not None:
        db.close()


def now() -> dt.datetime:
    """The current UTC time (tests may replace the clock on the app's state)."""
    return state().clock()


def _host_employee(loader: Callable[[], str | None]) -> Employee | None:
    """The employee the host says is signed in: *loader*'s value matched against the configured column."""
    value = loader()
    if value is None or value == "":
        return None
    field = settings().sessions.employee_loader_field
    if field == "email":
        where = func.lower(Employee.email) == str(value).strip().lower()
    else:
        where = getattr(Employee, field) == str(value)
    matches = session().execute(select(Employee).where(where).limit(2)).scalars().all()
    if len(matches) != 1:  # nobody, or an email two people share: nobody is signed in
        if matches:
            logger.warning("The host's signed-in %s matches several employees; refusing it", field)
        return None
    return matches[0]


def current_employee_or_none() -> Employee | None:
    """The signed-in, active employee, or None.

    On the embed views, an embed token in the ``Authorization`` header says who that is
    (:mod:`intranet.web.cross_origin`); inside a host that registered an ``employee_loader``, the
    host does; otherwise Beacon's own session does.

    :raise intranet.embed_tokens.TokenRefused: (401) the request's embed token is not acceptable.
    """
    from intranet.web import cross_origin  # it reads this module's per-request state

    if "intranet_employee" in g:
        return g.intranet_employee
    employee = None
    loader = state().employee_loader
    token = cross_origin.bearer_token()
    if token is not None:
        # The embed token alone says who this is: cookies (and a host's loader) are not consulted.
        employee = cross_origin.employee_from_token(token)
    elif loader is not None:
        employee = _host_employee(loader)
    elif flask_session.get(cross_origin.EMBED_SESSION_KEY) and not cross_origin.is_embed_view():
        employee = None  # a session made from an embed token serves the embed views only
    elif (employee_pk := flask_session.get("employee_pk")) is not None:
        # The session lookup read the person's row with the session row (one query, on this
        # request's connection, so deactivation is seen on every request); a session changed
        # during this request (a sign-in) falls back to loading the person by key.
        values = getattr(flask_session, "employee_values", None)
        if values is not None and values["id"] == employee_pk:
            employee = attach_loaded(session(), Employee, values)
        else:
            employee = session().get(Employee, employee_pk)
    if employee is not None and not employee.active:
        employee = None
    g.intranet_employee = employee
    return employee


def current_employee() -> Employee:
    """The signed-in, active employee.

    :raise NotSignedIn: when nobody (or a deactivated person) is signed in.
    """
    employee = current_employee_or_none()
    if employee is None:
        raise NotSignedIn()
    return employee


def require_role(role: str) -> Callable[[F], F]:
    """Decorate a view so only people holding *role* (read from the database) may call it.

    ``require_role("employee")`` means any signed-in, active person. Every Beacon view declares
    its policy this way (or with :func:`public`); a test fails for a view that does not.

    An API key request (:mod:`intranet.web.api_auth`) acting for a named employee is held to
    that person's roles here like anyone; one acting for nobody (``analytics:read``) was let in
    by its scope, which the route's operation names and which was checked before any view ran.
    """

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            client = g.get("intranet_api_client")
            if client is not None and client.employee is None:
                return view(*args, **kwargs)
            if not current_employee().has_role(role):
                from intranet.web.i18n import gettext  # here: i18n reads the signed-in person through this module

                raise Forbidden(gettext("You do not have permission to do this."))

            return view(*args, **kwargs)

        wrapped.intranet_role = role  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorator


def public(view: F) -> F:
    """Mark a view as reachable without signing in (sign-in pages, the OpenAPI document)."""
    view.intranet_role = None  # type: ignore[attr-defined]
    return view
