"""Groups pages: join and leave open groups; admins create groups; owners set managed members."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlmodel import select

from intranet import groups, people
from intranet.errors import Forbidden, IntranetError, NotFound
from intranet.models import Employee, Group
from intranet.web.context import current_employee, now, require_role, session
from intranet.web.i18n import _, error_message, ngettext

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
        flash(getattr(exc, "message", None) or _("Check the key and name."), "error")
        return redirect(url_for("intranet_groups.index"))
    session().commit()
    flash(_("Group %(name)s created.", name=data.name), "ok")
    return redirect(url_for("intranet_groups.index"))


def _managed_group(key: str) -> Group:
    group = groups.get_group(session(), key)
    employee = current_employee()
    if not (employee.is_admin or groups.is_owner(session(), group, employee)):
        raise Forbidden(_("Only the group's owners or an admin can see and change its members."))
    return group


@bp.get("/groups/<key>/members")
@require_role("employee")
def members(key: str):  # type: ignore[no-untyped-def]
    group = _managed_group(key)
    query = request.args.get("q", "").strip()[:100]
    listed = groups.members_of(session(), group)
    found = people.search(session(), query) if query else []
    return render_template("intranet/groups/members.html", employee=current_employee(), group=group,
                           members=listed, member_pks={m.id for m in listed}, query=query, found=found)


def _person(employee_id: str) -> Employee:
    person = session().exec(select(Employee).where(Employee.employee_id == employee_id)).first()
    if person is None:
        raise NotFound(_("Nobody has that employee number."))
    return person


@bp.post("/groups/<key>/members/add")
@require_role("employee")
def add_member(key: str):  # type: ignore[no-untyped-def]
    group = _managed_group(key)
    person = _person(request.form.get("employee_id", "").strip())
    try:
        groups.add_member(session(), group, current_employee(), person, now=now())
    except IntranetError as exc:
        session().rollback()
        flash(error_message(exc), "error")
    else:
        session().commit()
        flash(_("%(name)s added to %(group)s.", name=person.display_name, group=group.name), "ok")
    return redirect(url_for("intranet_groups.members", key=key, q=request.form.get("q") or None))


@bp.post("/groups/<key>/members/remove")
@require_role("employee")
def remove_member(key: str):  # type: ignore[no-untyped-def]
    group = _managed_group(key)
    person = _person(request.form.get("employee_id", "").strip())
    groups.remove_member(session(), group, current_employee(), person)
    session().commit()
    flash(_("%(name)s removed from %(group)s.", name=person.display_name, group=group.name), "ok")
    return redirect(url_for("intranet_groups.members", key=key, q=request.form.get("q") or None))


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
        flash(error_message(exc), "error")
        return redirect(url_for("intranet_groups.members", key=key))
    session().commit()
    flash(ngettext("%(group)s now has %(num)d member.", "%(group)s now has %(num)d members.", count, group=group.name), "ok")
    return redirect(url_for("intranet_groups.members", key=key))
