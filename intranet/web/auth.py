"""Signing in and out. Entra ID sign-in plugs in here; the development sign-in is for demos/tests."""
from __future__ import annotations

import logging

from flask import Blueprint, abort, current_app, redirect, render_template, request, session as flask_session, url_for
from sqlalchemy import case
from sqlmodel import select

from intranet import people
from intranet.errors import IntranetError
from intranet.models import Employee
from intranet.web.context import current_employee_or_none, public, session

logger = logging.getLogger(__name__)
bp = Blueprint("intranet_auth", __name__)


def safe_next(target: str | None) -> str:
    """A local path to continue to after sign-in; anything that could leave the site becomes the feed."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or "\\" in target:
        return url_for("intranet_feed.index")
    return target


def sign_in(employee: Employee) -> None:
    """Start a fresh session for *employee*: the old session id dies (no fixation)."""
    flask_session.clear()
    flask_session.rotate()  # type: ignore[attr-defined]
    flask_session["employee_pk"] = employee.id
    logger.info("Signed in employee %s", employee.employee_id)


@bp.get("/auth/sign-in")
@public
def sign_in_page():  # type: ignore[no-untyped-def]
    if current_app.config["INTRANET_DEV_LOGIN"]:
        return redirect(url_for("intranet_auth.dev_login_page", next=request.args.get("next")))
    target = safe_next(request.args.get("next"))
    entra = "intranet_entra.start" in current_app.view_functions and current_app.config.get("INTRANET_ENTRA_CLIENT_ID")
    return render_template("intranet/auth/sign_in.html", next=target,
                           sign_in_url=url_for("intranet_entra.start", next=target) if entra else None)


def _dev_login_enabled() -> None:
    if not current_app.config["INTRANET_DEV_LOGIN"]:
        abort(404)


@bp.get("/auth/dev-login")
@public
def dev_login_page():  # type: ignore[no-untyped-def]
    _dev_login_enabled()
    rank = case((Employee.is_admin.is_(True), 0), (Employee.is_comms.is_(True), 1),
                (Employee.is_contributor.is_(True), 2), else_=3)
    suggested = session().exec(
        select(Employee).where(Employee.active.is_(True), Employee.email.is_not(None))
        .order_by(rank, Employee.employee_id).limit(12)
    ).all()
    return render_template("intranet/auth/dev_login.html", people=suggested,
                           next=safe_next(request.args.get("next")), error=None)


@bp.post("/auth/dev-login")
@public
def dev_login():  # type: ignore[no-untyped-def]
    _dev_login_enabled()
    email = request.form.get("email", "")
    try:
        employee = people.find_by_email(session(), email)
        if not employee.active:
            raise IntranetError("This person is no longer active and cannot sign in.")
    except IntranetError as exc:
        return render_template("intranet/auth/dev_login.html", people=[], next=safe_next(request.form.get("next")),
                               error=exc.message), 403
    sign_in(employee)
    return redirect(safe_next(request.form.get("next")))


@bp.post("/auth/logout")
@public
def logout():  # type: ignore[no-untyped-def]
    employee = current_employee_or_none()
    flask_session.clear()
    if employee is not None:
        logger.info("Signed out employee %s", employee.employee_id)
    return redirect(url_for("intranet_auth.sign_in_page"))
