"""Applying a plan: bulk statements in the caller's transaction (flushes only; the run commits).

Employees, Entra and HR records and directory rows go through :mod:`intranet.directory.bulk`;
deactivations go through :func:`intranet.people.deactivate`, which ends the person's sessions
everywhere; quarantine and unmapped values are reconciled with what is stored; the source's new
position (the Graph deltaLink, the HR file's size and date) is recorded with the changes, so a
deltaLink is never committed without the round it ends.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlmodel import Session, select

from intranet import people
from intranet.directory import bulk
from intranet.directory.planning import CHUNK, Plan, where_in
from intranet.directory.policy import Policy
from intranet.models import EmployeeDirectory, Employee, EntraUser, HrRecord, Quarantine, SyncState, UnmappedValue


def apply_plan(session: Session, plan: Plan, *, now: dt.datetime, policy: Policy, run_id: int | None) -> None:
    """Write *plan* with bulk statements (flushes; the caller commits, once)."""
    table = Employee.__table__
    if plan.creates:
        blank = {**dict.fromkeys(("email", "department", "division", "region", "country", "office", "job_title",
                                  "level", "level_label", "manager_id", "timezone", "language", "entra_tenant_id",
                                  "entra_object_id", "hire_date")),
                 "display_name": "", "is_contributor": False, "is_comms": False, "is_admin": False}
        rows = [_dates({**blank, **c, "created_at": now, "updated_at": now,
                        "deactivated_at": None if c.get("active", True) else now}) for c in plan.creates]
        bulk.insert_rows(session, table, rows)
    new_pks: dict[str, int] = {}
    wanted = [c["employee_id"] for c in plan.creates] + [
        r["employee_id"] for r in plan.entra_inserts + plan.entra_updates + plan.hr_inserts + plan.hr_updates
        if r.get("employee_id")]
    wanted = list(dict.fromkeys(wanted))
    if len(wanted) > 20 * CHUNK:  # many new people: one scan beats hundreds of IN queries
        new_pks.update((eid, pk) for pk, eid in session.execute(select(Employee.id, Employee.employee_id)))
    else:
        for match in where_in(session, Employee.employee_id, wanted):
            new_pks.update((eid, pk) for pk, eid in session.execute(
                select(Employee.id, Employee.employee_id).where(match)))
    bulk.update_rows(session, table, [_dates({**u, "updated_at": now}) for u in plan.updates], key="id")

    def link(row: Mapping[str, Any]) -> int | None:
        return row.get("employee_pk") or (new_pks.get(row["employee_id"]) if row.get("employee_id") else None)

    if plan.entra_inserts:
        rows = [{"id": r["id"], "props": r["props"], "included": r["included"], "removed": r["removed"],
                 "employee_pk": link(r), "updated_at": now} for r in plan.entra_inserts]
        bulk.insert_rows(session, EntraUser.__table__, rows)
    if plan.entra_updates:
        rows = [{"id": r["id"], "props": r["props"], "included": r["included"], "removed": r["removed"],
                 "employee_pk": link(r), "updated_at": now} for r in plan.entra_updates]
        bulk.update_rows(session, EntraUser.__table__, rows, key="id")
    hr_rows = [{"employee_number": r["employee_number"], "props": r["props"], "as_of": _dt(r["as_of"]),
                "employee_pk": link(r), "updated_at": now} for r in plan.hr_inserts + plan.hr_updates]
    if hr_rows:
        inserts = hr_rows[:len(plan.hr_inserts)]
        updates = hr_rows[len(plan.hr_inserts):]
        bulk.insert_rows(session, HrRecord.__table__, inserts)
        bulk.update_rows(session, HrRecord.__table__, updates, key="employee_number")
    if plan.directory:
        ins, upd = [], []
        for r in plan.directory:
            pk = r.get("employee_pk") or new_pks.get(r.get("employee_id", ""))
            if pk is None:
                continue
            erase_after = now + dt.timedelta(days=policy.erase_after_days) if r.get("erase") else None
            row = {"employee_pk": pk, "cost_center": r["cost_center"], "sources": r["sources"],
                   "pending_termination": _dt(r["pending_termination"]), "updated_at": now}
            if r.get("erase") or r.get("restore"):
                row["erase_after"] = erase_after
            (upd if r.get("exists") else ins).append(row)
        bulk.insert_rows(session, EmployeeDirectory.__table__, [{"erase_after": None, **x} for x in ins])
        bulk.update_rows(session, EmployeeDirectory.__table__, upd, key="employee_pk")
    session.flush()
    # Deactivation always goes through people.deactivate: it ends the person's sessions everywhere.
    ids = [d["id"] for d in plan.deactivate]
    for match in where_in(session, Employee.id, ids):
        for employee in session.exec(select(Employee).where(match)
                                     .execution_options(populate_existing=True)):
            people.deactivate(session, employee, now)
    _apply_quarantine(session, plan, now, run_id)
    _apply_unmapped(session, plan, now)
    session.flush()


def _apply_quarantine(session: Session, plan: Plan, now: dt.datetime, run_id: int | None) -> None:
    query = select(Quarantine).where(Quarantine.source == plan.source)
    existing: dict[tuple[str, str], Quarantine] = {}
    if plan.quarantine_scope is None:
        existing = {(q.source_key, q.reason): q for q in session.exec(query)}
    else:
        for match in where_in(session, Quarantine.source_key, list(plan.quarantine_scope) + [q["source_key"] for q in plan.quarantine]):
            existing.update(((q.source_key, q.reason), q) for q in session.exec(query.where(match)))
    keep: set[tuple[str, str]] = set()
    for q in plan.quarantine:
        key = (q["source_key"], q["reason"])
        if key in keep:
            continue
        keep.add(key)
        row = existing.get(key)
        if row is None:
            session.add(Quarantine(**q, run_id=run_id, first_seen_at=now, last_seen_at=now))
        else:
            row.detail, row.record, row.blocking, row.last_seen_at, row.run_id = (
                q["detail"], q["record"], q["blocking"], now, run_id)
            row.employee_pk = q["employee_pk"] or row.employee_pk
            session.add(row)
    for key, row in existing.items():
        if key not in keep:
            session.delete(row)


def _apply_unmapped(session: Session, plan: Plan, now: dt.datetime) -> None:
    if not plan.unmapped:
        return
    existing = {(u.dimension, u.value): u for u in session.exec(select(UnmappedValue))}
    for item in plan.unmapped:
        row = existing.get((item["dimension"], item["value"]))
        if row is None:
            session.add(UnmappedValue(**item, source=plan.source, first_seen_at=now, last_seen_at=now))
        else:
            row.occurrences, row.last_seen_at, row.source = item["occurrences"], now, plan.source
            session.add(row)


def save_state(session: Session, plan: Plan, now: dt.datetime) -> bool:
    """Record the source's new position; returns whether a deltaLink was committed."""
    state = session.get(SyncState, plan.source) or SyncState(source=plan.source)
    committed = False
    if plan.source == "graph" and plan.state.get("delta_link"):
        state.delta_link, state.select_hash = plan.state["delta_link"], plan.state.get("select_hash")
        committed = True
    if plan.state.get("full"):
        state.last_full_at = now
    if "last_rows" in plan.state:
        state.last_rows = plan.state["last_rows"]
        state.last_as_of = _dt(plan.state["last_as_of"])
    state.last_success_at = state.updated_at = now
    session.add(state)
    return committed


def _dt(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _dates(row: dict[str, Any]) -> dict[str, Any]:
    """A plan row with its ISO date text (plans are JSON) as dates, as the date columns take them."""
    if isinstance(row.get("hire_date"), str):
        row["hire_date"] = dt.date.fromisoformat(row["hire_date"])
    return row
