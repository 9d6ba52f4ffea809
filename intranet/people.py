"""People in the directory: finding them, their roles, ending their access."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pydantic import BaseModel
from sqlalchemy import delete, func, or_
from sqlmodel import Session, select

from intranet import zones
from intranet.errors import InvalidInput, NotFound
from intranet.languages import N_
from intranet.models import ROLES, AuthSession, Employee, EmployeeDirectory

ROLE_COLUMNS = {"contributor": "is_contributor", "comms": "is_comms", "admin": "is_admin"}


class MePublic(BaseModel):
    """Who you are, as the directory knows you, and the roles you hold."""

    employee_id: str
    display_name: str
    email: str | None
    department: str | None
    region: str | None
    level: int | None
    timezone: str | None
    language: str | None
    roles: list[str]

    @classmethod
    def of(cls, employee: Employee) -> MePublic:
        return cls(employee_id=employee.employee_id, display_name=employee.display_name, email=employee.email,
                   department=employee.department, region=employee.region, level=employee.level,
                   timezone=employee.timezone, language=employee.language,
                   roles=[r for r in ROLES if employee.has_role(r)])


def normalize_email(email: str) -> str:
    return email.strip().lower()


def find_by_email(session: Session, email: str) -> Employee:
    """The one employee with *email* (case-insensitive).

    :raise NotFound: when nobody has it.
    :raise InvalidInput: when several people share it (fix the directory first).
    """
    matches = session.exec(select(Employee).where(func.lower(Employee.email) == normalize_email(email))).all()
    if not matches:
        raise NotFound(N_("No employee has the email %(email)s."), email=repr(email))
    if len(matches) > 1:
        ids = ", ".join(sorted(e.employee_id for e in matches))
        raise InvalidInput(N_("%(count)s employees share the email %(email)s (%(ids)s); fix the directory first."),
                           count=len(matches), email=repr(email), ids=ids)
    return matches[0]


def search(session: Session, query: str, *, limit: int = 20) -> list[Employee]:
    """Active people whose name, email or employee number contains *query* (case-insensitive), by name."""
    words = query.strip().lower().split()[:5]
    if not words:
        return []
    statement = select(Employee).where(Employee.active.is_(True))
    for word in words:
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        statement = statement.where(or_(func.lower(Employee.display_name).like(pattern, escape="\\"),
                                        func.lower(Employee.email).like(pattern, escape="\\"),
                                        func.lower(Employee.employee_id).like(pattern, escape="\\")))
    return list(session.exec(statement.order_by(Employee.display_name, Employee.employee_id).limit(limit)).all())


def set_role(session: Session, employee: Employee, role: str, granted: bool) -> None:
    """Grant or revoke *role* (one of ``contributor``, ``comms``, ``admin``) on *employee*."""
    if role not in ROLES:
        raise InvalidInput(N_("Unknown role %(role)s; use one of: %(roles)s."), role=repr(role), roles=", ".join(ROLES))
    setattr(employee, ROLE_COLUMNS[role], granted)
    session.add(employee)
    session.flush()


def chose_own_zone(session: Session, employee: Employee) -> bool:
    """Whether *employee* picked their time zone themselves (directory syncs then leave it alone)."""
    row = session.get(EmployeeDirectory, employee.id)
    return bool(row and (row.sources or {}).get("timezone") == "user")


def set_own_zone(session: Session, employee: Employee, zone: str | None, *, now: dt.datetime) -> None:
    """Give *employee* the time zone they chose, or (*zone* None) let the directory decide it again.

    A chosen zone is marked as the person's own in the directory record, so syncs keep it.

    :raise InvalidInput: when *zone* is not one people may choose (:func:`intranet.zones.parse_zone`).
    """
    row = session.get(EmployeeDirectory, employee.id)
    sources = dict(row.sources or {}) if row else {}
    if zone is None:
        if sources.get("timezone") == "user" and row is not None:
            del sources["timezone"]  # the next sync sets it from HR, the office or the country again
            row.sources, row.updated_at = sources, now
            session.add(row)
        return
    employee.timezone = zones.parse_zone(zone)
    row = row or EmployeeDirectory(employee_pk=employee.id)
    row.sources, row.updated_at = {**sources, "timezone": "user"}, now
    session.add_all([employee, row])
    session.flush()


def set_roles(session: Session, employee: Employee, roles: Iterable[str], *, actor: Employee) -> None:
    """Give *employee* exactly *roles* (a subset of ``contributor``, ``comms``, ``admin``).

    :raise InvalidInput: for an unknown role, or when *actor* would take away their own admin
        role (someone must always be able to manage roles; another admin can do it).
    """
    wanted = set(roles)
    unknown = wanted - set(ROLES)
    if unknown:
        raise InvalidInput(N_("Unknown role %(role)s; use one of: %(roles)s."), role=repr(sorted(unknown)[0]), roles=", ".join(ROLES))
    if employee.id == actor.id and employee.is_admin and "admin" not in wanted:
        raise InvalidInput(N_("You cannot take away your own admin role; ask another admin to do it."))
    for role in ROLES:
        set_role(session, employee, role, role in wanted)


def with_roles(session: Session) -> list[Employee]:
    """Everyone holding a role (contributors, comms managers, admins), by name."""
    return list(session.exec(select(Employee).where(or_(Employee.is_contributor.is_(True), Employee.is_comms.is_(True),
                                                        Employee.is_admin.is_(True)))
                             .order_by(Employee.display_name, Employee.employee_id)).all())


def end_sessions(session: Session, employee_pk: int) -> int:
    """End every session of one person on every instance; returns how many were ended."""
    result = session.exec(delete(AuthSession).where(AuthSession.employee_pk == employee_pk))
    return result.rowcount or 0


def deactivate(session: Session, employee: Employee, now: dt.datetime) -> None:
    """Mark *employee* inactive (restorable) and end their sessions everywhere."""
    if employee.active:
        employee.active = False
        employee.deactivated_at = now
        employee.updated_at = now
        session.add(employee)
    end_sessions(session, employee.id)
    session.flush()
