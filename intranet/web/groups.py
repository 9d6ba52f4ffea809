"""Groups pages: join and leave open groups; admins create groups; owners set managed members."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlmodel import select

from intranet import groups
from intranet.errors import Forbidden, IntranetError
from intranet.models import Employee, GroupMember
from intranet.web.context import current_employee, now, require_role, session

bp = Blueprint("intranet_groups", __name__)


@bp.get("/groups")
@require_role("employee")
def index():  # type: ignore[no-untyped-def]
    employee = current_employee()
    listed = groups.groups_for(session(), employee)
    owned = groups.owned_group_keys(session(), employee)
    return render_template("intranet/groups/index.html", employee=employee, groups=listed,
                           owned={g.id for g, _ in listed if g.key in owned})


@bp.post("/groups/<key>/join")
@require_role("employee")
def join(key: str):  # type: ignore[no-untyped-def]
    groups.join(session(), groups.get_group(session(), key), current_employee(), now=now())
    session().commit()
    return redirect(url_for("intranet_groups.index"))


@bp.post("/groups/<key>/leave")
@require_role("employee")
def leave(key: str):  # type: ignore[no-untyped-def]
    groups.leave(session(), groups.get_group(session(), key), current_employee())
    session().commit()
    return redirect(url_for("intranet_groups.index"))


@bp.post("/groups")
@require_role("admin")
def create():  # type: ignore[no-untyped-def]
    owners = [o.strip() for o in request.form.get("owner_ids", "").split(",") if o.strip()]
    try:
        data = groups.GroupIn(key=request.form.get("key", "").strip(), name=request.form.get("name", "").strip(),
                              description=request.form.get("description", ""),
                              kind=request.form.get("kind", "open"), owner_ids=owners)
        groups.create_group(session(), data)
    except (IntranetError, ValueError) as exc:
        session().rollback()
        flash(getattr(exc, "message", None) or "Check the key and name.", "error")
        return redirect(url_for("intranet_groups.index"))
    session().commit()
    flash(f"Group {data.name} created.", "ok")
    return redirect(url_for("intranet_groups.index"))


@bp.get("/groups/<key>/members")
@require_role("employee")
def members(key: str):  # type: ignore[no-untyped-def]
    employee = current_employee()
    group = groups.get_group(session(), key)
    if not (employee.is_admin or groups.is_owner(session(), group, employee)):
        raise Forbidden("Only the group's owners or an admin can see and set its members.")
    ids = session().exec(select(Employee.employee_id).join(GroupMember, GroupMember.employee_pk == Employee.id)
                         .where(GroupMember.group_id == group.id).order_by(Employee.employee_id)).all()
    return render_template("intranet/groups/members.html", employee=employee, group=group, member_ids=ids)


@bp.post("/groups/<key>/members")
@require_role("employee")
def set_members(key: str):  # type: ignore[no-untyped-def]
    group = groups.get_group(session(), key)
    ids = [i.strip() for i in request.form.get("employee_ids", "").replace("\n", ",").split(",") if i.strip()]
    try:
        count = groups.set_members(session(), group, current_employee(), ids)
    except IntranetError as exc:
        if isinstance(exc, Forbidden):
            raise
        session().rollback()
        flash(exc.message, "error")
        return redirect(url_for("intranet_groups.members", key=key))
    session().commit()
    flash(f"{group.name} now has {count} members.", "ok")
    return redirect(url_for("intranet_groups.members", key=key))
