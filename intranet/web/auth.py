"""Signing in and out. Entra ID sign-in plugs in here; the development sign-in is for demos/tests."""
from __future__ import annotations

import logging
import re
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

from flask import Blueprint, abort, current_app, redirect, render_template, request, session as flask_session, url_for
from sqlalchemy import case, func, not_, or_
from sqlmodel import select
from werkzeug.urls import iri_to_uri

from intranet import people
from intranet.errors import IntranetError
from intranet.languages import N_
from intranet.models import Employee
from intranet.web.context import NotSignedIn, current_employee_or_none, public, session, settings, state
from intranet.web.i18n import error_message

logger = logging.getLogger(__name__)
bp = Blueprint("intranet_auth", __name__)


# Characters a browser drops or rewrites while parsing a URL: it deletes tab, CR and LF anywhere
# and reads a backslash as "/", so "/<tab>/evil.example" or "/\evil.example" becomes
# "//evil.example", a link to another site. A target holding any of them (or another control
# character) is refused, not cleaned: there is no honest reason for one in a sign-in redirect.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")
# Percent-decodings examined. Every layer is checked, because a proxy or a second redirect may
# decode once more; a target still changing after this many rounds is refused.
_DECODE_ROUNDS = 3


def local_target(target: str | None, prefix: str = "") -> str | None:
    """Return *target* as a path of this app, or ``None`` when it could lead anywhere else.

    The target is checked the way a browser will read it: every percent-decoding of its path
    must be free of control characters and backslashes and must not start with ``//`` (a
    scheme-relative URL), dot segments (also ``%2e%2e``) are resolved before the path is
    compared with *prefix*, and the result is returned percent-encoded, ready for a
    ``Location`` header.

    :param target: A ``next`` value as received (already decoded once by the form/query parser).
    :param prefix: ``INTRANET_URL_PREFIX``; the path must be it or lie beneath it.
    """
    if not target or _UNSAFE.search(target) or not target.startswith("/"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    layer = parts.path
    for _ in range(_DECODE_ROUNDS):
        if _UNSAFE.search(layer) or not layer.startswith("/") or layer.startswith("//"):
            return None
        decoded = unquote(layer)
        if decoded == layer:
            break
        layer = decoded
    else:
        return None
    path = _remove_dot_segments(parts.path)
    prefix = prefix.rstrip("/")
    if path.startswith("//") or (prefix and path != prefix and not path.startswith(prefix + "/")):
        return None
    return iri_to_uri(urlunsplit(("", "", path, parts.query, parts.fragment)))


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 5.2.4, as browsers apply it (which also treat %2e as a dot): "/news/../x" is "/x".
    output: list[str] = []
    segments = path.split("/")[1:]
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        dots = unquote(segment)
        if dots == "..":
            if output:
                output.pop()
            if last:
                output.append("")
        elif dots == ".":
            if last:
                output.append("")
        else:
            output.append(segment)
    return "/" + "/".join(output)


def safe_next(target: str | None) -> str:
    """Where to continue after sign-in: *target* if it is a path of this app, else the feed.

    Every redirect after sign-in (development and Entra) goes through here; see :func:`local_target`.
    """
    return local_target(target, settings().site.url_prefix) or url_for("intranet_feed.index")


def sign_in(employee: Employee) -> None:
    """Start a fresh session for *employee*: the old session id dies (no fixation)."""
    flask_session.clear()
    flask_session.rotate()  # type: ignore[attr-defined]
    flask_session["employee_pk"] = employee.id
    logger.info("Signed in employee %s", employee.employee_id)


def _host_signs_in() -> bool:
    """Whether the host app signs people in (an ``employee_loader``): Beacon's own sign-in is off."""
    return state().employee_loader is not None


@bp.get("/auth/sign-in")
@public
def sign_in_page():  # type: ignore[no-untyped-def]
    if _host_signs_in():
        host_url = settings().sessions.sign_in_url
        if not host_url:
            raise NotSignedIn()
        separator = "&" if "?" in host_url else "?"
        return redirect(f"{host_url}{separator}{urlencode({'next': safe_next(request.args.get('next'))})}")
    if settings().sessions.dev_login:
        return redirect(url_for("intranet_auth.dev_login_page", next=safe_next(request.args.get("next"))))
    target = safe_next(request.args.get("next"))
    entra = "intranet_entra.start" in current_app.view_functions and settings().entra.client_id
    return render_template("intranet/auth/sign_in.html", next=target,
                           sign_in_url=url_for("intranet_entra.start", next=target) if entra else None)


def _dev_login_enabled() -> None:
    if not settings().sessions.dev_login or _host_signs_in():
        abort(404)


@bp.get("/auth/dev-login")
@public
def dev_login_page():  # type: ignore[no-untyped-def]
    _dev_login_enabled()
    return render_template("intranet/auth/dev_login.html", people=_demo_people(),
                           next=safe_next(request.args.get("next")), error=None)


def _demo_people(role_holders: int = 8) -> list[Employee]:
    # The people with a role first, then the first ordinary employee at each level, so that a
    # demo can sign in as someone inside or outside a level-based audience.
    signable = (Employee.active.is_(True), Employee.email.is_not(None))
    has_role = or_(Employee.is_admin.is_(True), Employee.is_comms.is_(True), Employee.is_contributor.is_(True))
    rank = case((Employee.is_admin.is_(True), 0), (Employee.is_comms.is_(True), 1), else_=2)
    roles = session().exec(
        select(Employee).where(*signable, has_role).order_by(rank, Employee.employee_id).limit(role_holders)
    ).all()
    first = (
        select(Employee.id, func.row_number().over(partition_by=Employee.level,
                                                   order_by=Employee.employee_id).label("n"))
        .where(*signable, not_(has_role)).subquery()
    )
    per_level = session().exec(
        select(Employee).join(first, first.c.id == Employee.id).where(first.c.n == 1)
        .order_by(Employee.level.is_(None), Employee.level)
    ).all()
    return [*roles, *per_level]


@bp.post("/auth/dev-login")
@public
def dev_login():  # type: ignore[no-untyped-def]
    _dev_login_enabled()
    email = request.form.get("email", "")
    try:
        employee = people.find_by_email(session(), email)
        if not employee.active:
            raise IntranetError(N_("This person is no longer active and cannot sign in."))
    except IntranetError as exc:
        return render_template("intranet/auth/dev_login.html", people=[], next=safe_next(request.form.get("next")),
                               error=error_message(exc)), 403
    sign_in(employee)
    return redirect(safe_next(request.form.get("next")))


@bp.post("/auth/logout")
@public
def logout():  # type: ignore[no-untyped-def]
    if _host_signs_in():
        abort(404)  # signing out is the host's: its session is not Beacon's to clear
    employee = current_employee_or_none()
    flask_session.clear()
    if employee is not None:
        logger.info("Signed out employee %s", employee.employee_id)
    return redirect(url_for("intranet_auth.sign_in_page"))
