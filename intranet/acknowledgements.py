"""Who has acknowledged a must-read post, by name: the one disclosed, per-person list in Beacon.

Reading and rating are private (the dashboards show them only in groups of at least k people).
Acknowledging a must-read is different: it is a deliberate act the employee is told is recorded
("Acknowledged" on the post), and the post's author and admins may list and export who has and
who has not acknowledged, to follow up. The list covers the post's audience as it is now (active
people it targets) and anyone who acknowledged it earlier but has left the audience since.
"""
from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import and_, or_
from sqlmodel import Session, select

from intranet import posts, targeting
from intranet.errors import NotFound
from intranet.languages import N_
from intranet.models import Employee, Post, PostState

CSV_HEADER = ("employee_id", "name", "email", "department", "region", "level", "in_audience", "acknowledged_at")


def may_list(session: Session, employee: Employee, post: Post) -> bool:
    """Whether *employee* may see who acknowledged *post*: an admin, or its author while they hold
    author rights (as on the publishing desk: writing a post gives no lasting right to it)."""
    if employee.is_admin:
        return True
    return post.author_pk is not None and post.author_pk == employee.id and posts.may_author(session, employee)


def must_read_or_404(session: Session, employee: Employee, post_id: int) -> Post:
    """Load a must-read post whose acknowledgements *employee* may list.

    :raise NotFound: when the post does not exist, is not a must-read, or *employee* may not list
        it (the same answer, so the list does not reveal which posts exist).
    """
    post = session.get(Post, post_id)
    if post is None or not post.must_read or not may_list(session, employee, post):
        raise NotFound(N_("This must-read post does not exist."))
    return post


@dataclasses.dataclass(frozen=True)
class Row:
    """One person on the list."""

    employee: Employee
    in_audience: bool
    acknowledged_at: dt.datetime | None

    def cells(self) -> tuple[object, ...]:
        e = self.employee
        return (e.employee_id, e.display_name, e.email, e.department, e.region, e.level, self.in_audience,
                self.acknowledged_at)


@dataclasses.dataclass(frozen=True)
class Roster:
    post: Post
    rows: list[Row]

    @property
    def audience(self) -> int:
        return sum(1 for r in self.rows if r.in_audience)

    @property
    def acknowledged(self) -> int:
        return sum(1 for r in self.rows if r.in_audience and r.acknowledged_at is not None)

    @property
    def pending(self) -> list[Row]:
        return [r for r in self.rows if r.in_audience and r.acknowledged_at is None]

    @property
    def done(self) -> list[Row]:
        return [r for r in self.rows if r.acknowledged_at is not None]


def roster(session: Session, post: Post) -> Roster:
    """Everyone in *post*'s audience, and everyone who acknowledged it, pending first, by name."""
    audience = targeting.Audience.model_validate(post.audience) if post.audience else None
    targeted = targeting.employee_filter(audience) if audience is not None else None
    acked = PostState.acknowledged_at.is_not(None)
    query = (select(Employee, PostState.acknowledged_at)
             .outerjoin(PostState, and_(PostState.employee_pk == Employee.id, PostState.post_id == post.id))
             .where(or_(targeted, acked) if targeted is not None else acked)
             .order_by(Employee.display_name, Employee.employee_id))
    members: set[int] = set()
    if targeted is not None:
        members = set(session.exec(select(Employee.id).where(targeted)).all())
    rows = [Row(employee, employee.id in members, acknowledged_at) for employee, acknowledged_at in session.exec(query)]
    rows.sort(key=lambda r: (r.acknowledged_at is not None, not r.in_audience))
    return Roster(post=post, rows=rows)


def csv_rows(roster_: Roster) -> list[tuple[object, ...]]:
    """The export's rows (:data:`CSV_HEADER`), pending first."""
    return [row.cells() for row in roster_.rows]
