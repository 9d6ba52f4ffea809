"""Audience groups: open ones people join themselves, managed ones whose owners set members."""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from pydantic import BaseModel, Field
from sqlalchemy import delete
from sqlmodel import Session, select

from intranet.db import insert_new
from intranet.errors import Conflict, Forbidden, InvalidInput, NotFound
from intranet.languages import N_
from intranet.models import GROUP_KINDS, Employee, Group, GroupMember, GroupOwner

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{1,63}$")


class GroupIn(BaseModel):
    key: str = Field(min_length=2, max_length=64)
    name: str = Field(min_length=1, max_length=255)
    description: str = Field(default="", max_length=1000)
    kind: str = "open"
    owner_ids: list[str] = Field(default_factory=list)


class MembersIn(BaseModel):
    """``PUT /api/v1/groups/<key>/members``: the group's members from now on, by employee number."""

    employee_ids: list[str] = Field(examples=[["E001", "E002"]])


class GroupPublic(BaseModel):
    """A group, and whether you belong to it."""

    key: str
    name: str
    description: str
    kind: str = Field(description='"open" (anyone may join) or "managed" (its owners choose)')
    member: bool


class GroupListPublic(BaseModel):
    """The groups, and whether you belong to each."""

    items: list[GroupPublic]


class GroupCreatedPublic(BaseModel):
    """The group, created."""

    key: str
    name: str
    kind: str


class MembershipPublic(BaseModel):
    """Whether you belong to the group now."""

    member: bool


class MembersSetPublic(BaseModel):
    """How many members the group has now."""

    members: int


def get_group(session: Session, key: str) -> Group:
    """:raise NotFound: when no group has *key*."""
    group = session.exec(select(Group).where(Group.key == key)).first()
    if group is None:
        raise NotFound(N_("No group has the key %(key)s."), key=repr(key))
    return group


def create_group(session: Session, data: GroupIn) -> Group:
    """Create a group (admins only; checked by the caller).

    :raise InvalidInput: for a malformed key or kind, or unknown owners.
    :raise Conflict: when the key is taken.
    """
    if not KEY_PATTERN.match(data.key):
        raise InvalidInput(N_("A group key is 2–64 lowercase letters, digits, '-' or '_'."), details={"field": "key"})
    if data.kind not in GROUP_KINDS:
        raise InvalidInput(N_("A group is 'open' or 'managed', not %(kind)s."), kind=repr(data.kind), details={"field": "kind"})
    if session.exec(select(Group.id).where(Group.key == data.key)).first() is not None:
        raise Conflict(N_("The group key %(key)s is taken."), key=repr(data.key))
    group = Group(key=data.key, name=data.name, description=data.description, kind=data.kind)
    session.add(group)
    session.flush()
    owners = _employees_by_id(session, data.owner_ids)
    session.add_all(GroupOwner(group_id=group.id, employee_pk=o.id) for o in owners)
    session.flush()
    return group


def _employees_by_id(session: Session, employee_ids: Iterable[str]) -> list[Employee]:
    wanted = set(employee_ids)
    found = session.exec(select(Employee).where(Employee.employee_id.in_(wanted))).all() if wanted else []
    missing = wanted - {e.employee_id for e in found}
    if missing:
        raise InvalidInput(N_("Unknown employee ids: %(ids)s."), ids=", ".join(sorted(missing)), details=sorted(missing))
    return list(found)


def owned_group_keys(session: Session, employee: Employee) -> set[str]:
    """The keys of the groups *employee* owns."""
    query = select(Group.key).join(GroupOwner, GroupOwner.group_id == Group.id).where(
        GroupOwner.employee_pk == employee.id)
    return set(session.exec(query).all())


def is_owner(session: Session, group: Group, employee: Employee) -> bool:
    return session.get(GroupOwner, (group.id, employee.id)) is not None


def join(session: Session, group: Group, employee: Employee, *, now: dt.datetime) -> None:
    """Join an open group (idempotent).

    :raise Forbidden: for a managed group.
    """
    if group.kind != "open":
        raise Forbidden(N_("This group is managed by its owners; ask them to add you."))
    insert_new(session, GroupMember.__table__, [{"group_id": group.id, "employee_pk": employee.id,  # type: ignore[attr-defined]
                                                  "joined_at": now}], ("group_id", "employee_pk"), ("group_id",))


def leave(session: Session, group: Group, employee: Employee) -> None:
    """Leave an open group (idempotent).

    :raise Forbidden: for a managed group.
    """
    if group.kind != "open":
        raise Forbidden(N_("This group is managed by its owners; ask them to remove you."))
    session.exec(delete(GroupMember).where(GroupMember.group_id == group.id, GroupMember.employee_pk == employee.id))


def set_members(session: Session, group: Group, actor: Employee, employee_ids: Iterable[str]) -> int:
    """Replace a group's members (owners and admins only); returns the new member count.

    :raise Forbidden: when *actor* neither owns the group nor is an admin.
    """
    if not (actor.is_admin or is_owner(session, group, actor)):
        raise Forbidden(N_("Only the group's owners or an admin can set its members."))
    members = _employees_by_id(session, employee_ids)
    session.exec(delete(GroupMember).where(GroupMember.group_id == group.id))
    session.add_all(GroupMember(group_id=group.id, employee_pk=m.id) for m in members)
    session.flush()
    return len(members)


def _check_manager(session: Session, group: Group, actor: Employee) -> None:
    if not (actor.is_admin or is_owner(session, group, actor)):
        raise Forbidden(N_("Only the group's owners or an admin can change its members."))


def members_of(session: Session, group: Group) -> list[Employee]:
    """The group's members, by name."""
    return list(session.exec(select(Employee).join(GroupMember, GroupMember.employee_pk == Employee.id)
                             .where(GroupMember.group_id == group.id)
                             .order_by(Employee.display_name, Employee.employee_id)).all())


def add_member(session: Session, group: Group, actor: Employee, employee: Employee, *, now: dt.datetime) -> None:
    """Add *employee* to *group*, open or managed (owners and admins only; idempotent).

    :raise Forbidden: when *actor* neither owns the group nor is an admin.
    :raise InvalidInput: when *employee* has left the organisation.
    """
    _check_manager(session, group, actor)
    if not employee.active:
        raise InvalidInput(N_("%(name)s has left the organisation."), name=employee.display_name, details={"field": "employee_id"})
    insert_new(session, GroupMember.__table__, [{"group_id": group.id, "employee_pk": employee.id,  # type: ignore[attr-defined]
                                                  "joined_at": now}], ("group_id", "employee_pk"), ("group_id",))


def remove_member(session: Session, group: Group, actor: Employee, employee: Employee) -> None:
    """Remove *employee* from *group* (owners and admins only; idempotent).

    :raise Forbidden: when *actor* neither owns the group nor is an admin.
    """
    _check_manager(session, group, actor)
    session.exec(delete(GroupMember).where(GroupMember.group_id == group.id,
                                           GroupMember.employee_pk == employee.id))


def groups_for(session: Session, employee: Employee) -> list[tuple[Group, bool]]:
    """Every group with whether *employee* is a member."""
    mine = set(session.exec(select(GroupMember.group_id).where(GroupMember.employee_pk == employee.id)).all())
    return [(g, g.id in mine) for g in session.exec(select(Group).order_by(Group.name)).all()]
