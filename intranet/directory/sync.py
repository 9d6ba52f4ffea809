"""Directory sync runs: Graph delta rounds and HR files, planned in memory, applied in one transaction.

A run goes: take the ``directory-sync`` lease (a second run is refused: "already running") ->
read the source (a whole Graph delta round, or a whole HR file) -> **plan** every change in
Python against the rows it touches (loaded in chunks, never one query per person) -> ask the
guard -> either **apply** the plan with bulk statements in one transaction, together with the new
deltaLink, or **hold** it for an admin. Every run, whatever happens, is recorded in
``intranet_sync_run``.

Graph semantics: an absent property leaves a value unchanged, ``null`` clears it; duplicates and
replays are harmless because a plan compares with what is stored; ``@removed`` ``changed``
deactivates (restorable), ``deleted`` deactivates and schedules erasure; a restored user comes
back active with everything Beacon kept about them. An expired deltaLink (``syncStateNotFound``,
410) or a changed ``$select`` makes the run a full resync with mark-and-sweep.

The planner and :func:`apply_plan` only flush; :class:`DirectorySync` is the edge of a run (like
the scheduler's runner) and commits between its phases: the lease and the run record must be
visible to other processes while the run works.
"""
from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import functools
import gc
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import ARRAY, any_, delete, func, literal
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from intranet import leases, people
from intranet.db import is_postgres
from intranet.delivery import schedule
from intranet.directory import bulk, csv_import
from intranet.directory import guard as guard_mod
from intranet.directory import managers
from intranet.directory import merge as merge_mod
from intranet.directory.csv_import import CanonicalFile
from intranet.directory.hr import HrExport, HrMapping, read_export
from intranet.directory.normalize import Normalizer, unmapped_rows
from intranet.directory.policy import Policy, load as load_policy
from intranet.models import (
    EmployeeDirectory, Employee, EntraUser, HrRecord, Quarantine, SyncHeld, SyncRun, SyncState, UnmappedValue,
)

logger = logging.getLogger(__name__)

LEASE_NAME = "directory-sync"
LEASE_TTL = dt.timedelta(minutes=15)
CHUNK = 900  # stays under SQLite's bound-parameter limit
EMPLOYEE_FIELDS = ("id", "employee_id", "email", "display_name", "department", "division", "region", "country",
                   "office", "job_title", "level", "level_label", "manager_id", "timezone", "language", "active",
                   "entra_tenant_id", "entra_object_id", "deactivated_at")
COMPARED = merge_mod.EMPLOYEE_COLUMNS


class AlreadyRunning(RuntimeError):
    """Another directory sync holds the lease; the refused run is recorded as ``run_id``."""

    def __init__(self, run_id: int | None = None) -> None:
        super().__init__("A directory sync is already running; try again when it has finished.")
        self.run_id = run_id


# ================================================================================================
# Plans
# ================================================================================================


@dataclasses.dataclass
class Plan:
    """Everything one run would change; JSON-safe so a held run can store it as it is."""

    source: str
    mode: str
    creates: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    updates: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    deactivate: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # {"id", "erase": bool}
    entra_inserts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    entra_updates: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    hr_inserts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    hr_updates: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    directory: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # {"employee_pk"|"employee_id", ...}
    quarantine: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    quarantine_scope: list[str] | None = None  # source keys re-evaluated (None: the whole source)
    unmapped: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    state: dict[str, Any] = dataclasses.field(default_factory=dict)
    counts: dict[str, int] = dataclasses.field(default_factory=lambda: collections.Counter())
    diff: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it rebuilds a Counter from (key, value) pairs and so mangles it.
        return {f.name: (dict(getattr(self, f.name)) if f.name == "counts" else getattr(self, f.name))
                for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        plan = cls(**{k: v for k, v in data.items()})
        plan.counts = collections.Counter(plan.counts)
        return plan


def _chunks(items: list[Any], size: int = CHUNK) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _in(session: Session, column: Any, values: Iterable[Any]) -> list[Any]:
    """Conditions that together select the rows whose *column* is one of *values* (none if empty).

    PostgreSQL gets one ``column = ANY(array)`` with a single parameter: psycopg parses a query
    with hundreds of placeholders in Python on every call, which cost more than the lookups.
    Elsewhere ``IN`` lists in chunks that stay under SQLite's bound-parameter limit.
    """
    values = list(values)
    if not values:
        return []
    if is_postgres(session):
        return [column == any_(literal(values, ARRAY(column.type)))]
    return [column.in_(chunk) for chunk in _chunks(values)]


def _employee_rows(session: Session, column: Any, values: Iterable[Any] | None) -> list[dict[str, Any]]:
    cols = [getattr(Employee, f) for f in EMPLOYEE_FIELDS]
    if values is None:
        return [dict(zip(EMPLOYEE_FIELDS, row)) for row in session.exec(select(*cols))]
    out: list[dict[str, Any]] = []
    for match in _in(session, column, values):
        out.extend(dict(zip(EMPLOYEE_FIELDS, row)) for row in session.exec(select(*cols).where(match)))
    return out


def _employee_rows_where(session: Session, condition: Any) -> list[dict[str, Any]]:
    cols = [getattr(Employee, f) for f in EMPLOYEE_FIELDS]
    return [dict(zip(EMPLOYEE_FIELDS, row)) for row in session.exec(select(*cols).where(condition))]


def _directory_rows(session: Session, pks: Iterable[int] | None) -> dict[int, EmployeeDirectory]:
    query = select(EmployeeDirectory.employee_pk, EmployeeDirectory.cost_center, EmployeeDirectory.sources,
                   EmployeeDirectory.pending_termination, EmployeeDirectory.erase_after)
    rows: list[Any] = []
    if pks is None:
        rows = list(session.exec(query))
    else:
        for match in _in(session, EmployeeDirectory.employee_pk, pks):
            rows.extend(session.exec(query.where(match)))
    return {r[0]: {"cost_center": r[1], "sources": r[2] or {}, "pending_termination": r[3], "erase_after": r[4]}
            for r in rows}


class _Index:
    """The employees a plan touches, indexed by pk, employee id, Entra object id and email."""

    def __init__(self) -> None:
        self.by_pk: dict[int, dict[str, Any]] = {}
        self.by_eid: dict[str, dict[str, Any]] = {}
        self.by_oid: dict[str, dict[str, Any]] = {}
        self.by_email: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            if row["id"] in self.by_pk:
                continue
            self.by_pk[row["id"]] = row
            self.by_eid[row["employee_id"]] = row
            if row["entra_object_id"]:
                self.by_oid[row["entra_object_id"]] = row
            if row["email"]:
                self.by_email[row["email"].lower()].append(row)


@dataclasses.dataclass
class _Subject:
    """One employee (existing or to create) and what each source says about them."""

    employee: dict[str, Any] | None
    employee_id: str
    entra_id: str | None = None
    entra_props: dict[str, Any] | None = None
    entra_removed: str | None = None
    hr_number: str | None = None
    hr_props: dict[str, Any] | None = None
    hr_fresh: bool = True
    hr_missing: bool = False
    directory: dict[str, Any] | None = None
    merged: merge_mod.Merged | None = None


class Planner:
    """Turns source records into a :class:`Plan` (reads only; never writes)."""

    def __init__(self, session: Session, policy: Policy, *, now: dt.datetime, org_timezone: str,
                 tenant_id: str | None = None) -> None:
        self.session = session
        self.policy = policy
        self.now = now
        self.org_timezone = org_timezone
        self.tenant_id = tenant_id
        self.normalizer = Normalizer(policy.maps)
        self.index = _Index()

    # -------------------------------------------------------------------------- Graph

    def plan_graph(self, staged: Mapping[str, Any], *, full: bool, delta_link: str | None,
                   select_hash: str | None) -> Plan:
        """Plan a Graph round. ``staged`` maps user id -> the merged properties the round delivered
        (or ``{"@removed": reason}``); in a full round, stored users it lacks are swept (soft)."""
        plan = Plan(source="graph", mode="full" if full else "delta")
        plan.counts["seen"] = len(staged)
        open_keys = list(self.session.exec(
            select(Quarantine.source_key).where(Quarantine.source == "graph", Quarantine.blocking.is_(True))))
        ids = list(dict.fromkeys([*staged, *open_keys]))
        stored: dict[str, Any] = {}
        query = select(EntraUser.id, EntraUser.props, EntraUser.included, EntraUser.removed, EntraUser.employee_pk)
        if full:
            stored = {r[0]: r for r in self.session.exec(query)}
            self.index.add(_employee_rows(self.session, None, None))
        else:
            for match in _in(self.session, EntraUser.id, ids):
                stored.update((r[0], r) for r in self.session.exec(query.where(match)))
        # The new truth per user: stored props updated with what the round said.
        truth: dict[str, tuple[dict[str, Any], str | None]] = {}
        for oid in ids:
            change = staged.get(oid)
            old = stored.get(oid)
            props = dict(old[1]) if old is not None else {}
            removed = old[3] if old is not None else None
            if change is None:
                pass  # only re-evaluated (open quarantine)
            elif "@removed" in change:
                removed = change["@removed"] if removed != "deleted" else "deleted"
            else:
                props.update(change)
                props.pop("id", None)
                removed = None  # a plain object after a removal is a restore
            truth[oid] = (props, removed)
        if full:
            for oid, row in stored.items():
                if oid not in truth and row[3] is None:
                    truth[oid] = (dict(row[1]), "changed")  # swept: missing from the snapshot
                    plan.counts["swept"] += 1
        if not full:
            # Linked users are found through their Entra record; only the others need the
            # (indexed) lookups by object id, employee number and email.
            pks = [row[4] for oid in truth if (row := stored.get(oid)) is not None and row[4] is not None]
            self.index.add(_employee_rows(self.session, Employee.id, pks))
            unlinked = [oid for oid in truth if oid not in self.index.by_oid]
            if unlinked and self.tenant_id:
                for match in _in(self.session, Employee.entra_object_id, unlinked):
                    self.index.add(_employee_rows_where(self.session, (Employee.entra_tenant_id == self.tenant_id)
                                                        & match))
            unlinked = [oid for oid in unlinked if oid not in self.index.by_oid]
            numbers = {self.normalizer.employee_number(truth[o][0].get("employeeId"), self.policy.strip_leading_zeros)
                       for o in unlinked}
            self.index.add(_employee_rows(self.session, Employee.employee_id, [n for n in numbers if n]))
            emails = {e for o in unlinked for e in (str(truth[o][0].get("mail") or "").lower(),
                                                     str(truth[o][0].get("userPrincipalName") or "").lower()) if e}
            self.index.add(_employee_rows(self.session, Employee.email, list(emails)))

        subjects: dict[str, _Subject] = {}  # by entra id
        claimed: dict[str, str] = {}  # employee_id -> entra id
        number_of: dict[str, str | None] = {}
        quarantined: set[str] = set()
        included_of: dict[str, bool] = {}
        for oid, (props, removed) in truth.items():
            included = included_of[oid] = removed is None and self.policy.include.includes(props)
            number = self.normalizer.employee_number(props.get("employeeId"), self.policy.strip_leading_zeros)
            number_of[oid] = number
            old = stored.get(oid)
            employee = self.index.by_oid.get(oid)
            if employee is None and old is not None and old[4] is not None:
                employee = self.index.by_pk.get(old[4])
            if employee is None and included:
                if not number:
                    self._quarantine(plan, "graph", oid, "no_join_key", "the user has no employeeId", props)
                    quarantined.add(oid)
                else:
                    employee = self.index.by_eid.get(number)
                    if employee is not None and employee["entra_object_id"] not in (None, oid):
                        other = truth.get(employee["entra_object_id"])
                        other_alive = other is None or other[1] is None  # not loaded or not removed
                        if other_alive:
                            self._quarantine(plan, "graph", oid, "duplicate_key",
                                             f"employee {number} is already linked to Entra user "
                                             f"{employee['entra_object_id']}", props)
                            quarantined.add(oid)
                            employee = None
                    if employee is None and oid not in quarantined:
                        email = (self.normalizer.email(props.get("mail"))
                                 or self.normalizer.email(props.get("userPrincipalName")))
                        matches = [e for e in self.index.by_email.get(email or "", [])
                                   if e["entra_object_id"] in (None, oid)]
                        if len(matches) > 1:
                            self._quarantine(plan, "graph", oid, "ambiguous_match",
                                             f"{len(matches)} employees have the email {email}", props)
                            quarantined.add(oid)
                        elif matches and matches[0]["employee_id"] not in claimed:
                            employee = matches[0]
            if oid in quarantined:
                continue
            if employee is None and not included:
                continue  # not an employee (guest, room, service account) and never was
            employee_id = employee["employee_id"] if employee is not None else number
            if employee_id in claimed:
                for dup in (oid, claimed[employee_id]):
                    self._quarantine(plan, "graph", dup, "duplicate_key",
                                     f"several Entra users have employeeId {employee_id}", truth[dup][0])
                    quarantined.add(dup)
                    subjects.pop(dup, None)
                continue
            claimed[employee_id] = oid
            subjects[oid] = _Subject(employee=employee, employee_id=employee_id, entra_id=oid, entra_props=props,
                                     entra_removed=removed or (None if included else "excluded"))
        plan.quarantine_scope = None if full else ids
        self._entra_rows(plan, truth, stored, subjects, included_of)
        self._attach_hr(subjects.values(), everything=full)
        manager_oids = {p.get("_manager") for p, _ in truth.values() if p.get("_manager")}
        oid_to_eid = self._oid_to_employee_id(manager_oids, subjects)
        self._merge_all(subjects.values(), oid_to_eid)
        self._finish(plan, list(subjects.values()))
        plan.state = {"delta_link": delta_link, "select_hash": select_hash, "full": full}
        return plan

    def _entra_rows(self, plan: Plan, truth: Mapping[str, tuple[dict[str, Any], str | None]],
                    stored: Mapping[str, Any], subjects: Mapping[str, _Subject], included_of: Mapping[str, bool]) -> None:
        for oid, (props, removed) in truth.items():
            included = included_of[oid]
            subject = subjects.get(oid)
            employee_pk = subject.employee["id"] if subject and subject.employee else None
            row = {"id": oid, "props": props, "included": included, "removed": removed}
            old = stored.get(oid)
            if old is None:
                plan.entra_inserts.append({**row, "employee_pk": employee_pk,
                                           "employee_id": subject.employee_id if subject and not employee_pk else None})
            elif (old[1] != props or old[2] != included or old[3] != removed
                  or (employee_pk is not None and old[4] != employee_pk)
                  or (subject is not None and subject.employee is None)):
                plan.entra_updates.append({**row, "employee_pk": employee_pk if employee_pk is not None else old[4],
                                           "employee_id": subject.employee_id if subject and not employee_pk else None})

    def _oid_to_employee_id(self, oids: set[str], subjects: Mapping[str, _Subject]) -> dict[str, str]:
        """Manager object ids -> employee ids (employees in this plan, then the database)."""
        out = {oid: s.employee_id for oid, s in subjects.items() if oid in oids}
        missing = [o for o in oids if o not in out]
        for match in _in(self.session, EntraUser.id, missing):
            for oid, eid in self.session.exec(select(EntraUser.id, Employee.employee_id)
                                              .join(Employee, Employee.id == EntraUser.employee_pk)
                                              .where(match)):
                out[oid] = eid
        return out

    def _attach_hr(self, subjects: Iterable[_Subject], *, everything: bool = False) -> None:
        """Attach HR records and directory rows (a full round loads whole tables: fewer queries)."""
        subjects = list(subjects)
        pks = [s.employee["id"] for s in subjects if s.employee]
        numbers = [s.employee_id for s in subjects]
        records: dict[Any, Any] = {}
        query = select(HrRecord.employee_number, HrRecord.props, HrRecord.as_of, HrRecord.employee_pk)
        if everything:
            for r in self.session.exec(query):
                records[("n", r[0])] = r
                if r[3] is not None:
                    records[("pk", r[3])] = r
        else:
            for match in _in(self.session, HrRecord.employee_pk, pks):
                records.update((("pk", r[3]), r) for r in self.session.exec(query.where(match)))
            for match in _in(self.session, HrRecord.employee_number, numbers):
                records.update((("n", r[0]), r) for r in self.session.exec(
                    query.where(match)))
        directories = _directory_rows(self.session, None if everything else pks)
        for s in subjects:
            record = (records.get(("pk", s.employee["id"])) if s.employee else None) or records.get(("n", s.employee_id))
            if record is not None:
                s.hr_number, s.hr_props = record[0], record[1]
                s.hr_fresh = self._fresh(record[2])
            if s.employee:
                s.directory = directories.get(s.employee["id"])

    def _fresh(self, as_of: dt.datetime | None) -> bool:
        return as_of is not None and self.now - as_of <= dt.timedelta(days=self.policy.hr_stale_after_days)

    # -------------------------------------------------------------------------- HR

    def plan_hr(self, export: HrExport, *, last_rows: int | None) -> Plan:
        """Plan an HR file: every row is compared with what is stored; bad rows are quarantined."""
        plan = Plan(source="hr", mode="file")
        plan.counts["seen"] = export.row_count
        fresh = self._fresh(export.as_of)
        if not fresh:
            plan.counts["stale"] = 1
        plan.quarantine_scope = None
        good: dict[str, Any] = {}
        blocked: set[str] = set()
        for row in export.rows:
            if row.problem:
                reason, detail = row.problem
                key = row.number or f"line {row.line}"
                self._quarantine(plan, "hr", key, reason, f"line {row.line}: {detail}", row.raw)
                if row.number:
                    blocked.add(row.number)
            else:
                good[row.number] = row  # type: ignore[index]
        stored = {r[0]: r for r in self.session.exec(
            select(HrRecord.employee_number, HrRecord.props, HrRecord.as_of, HrRecord.employee_pk))}
        self.index.add(_employee_rows(self.session, Employee.employee_id, list(good)))
        self.index.add(_employee_rows(self.session, Employee.id, [r[3] for r in stored.values() if r[3]]))
        emails = [r.props["email"] for r in good.values() if r.props.get("email")]
        self.index.add(_employee_rows(self.session, Employee.email, emails))  # stored casefolded
        subjects: dict[str, _Subject] = {}
        for number, row in good.items():
            old = stored.get(number)
            employee = self.index.by_pk.get(old[3]) if old is not None and old[3] else None
            employee = employee or self.index.by_eid.get(number)
            if employee is None and row.props.get("email"):
                matches = [e for e in self.index.by_email.get(row.props["email"], [])
                           if e["employee_id"] not in good or e["employee_id"] == number]
                if len(matches) > 1:
                    self._quarantine(plan, "hr", number, "ambiguous_match",
                                     f"{len(matches)} employees have the email {row.props['email']}", row.raw)
                    continue
                employee = matches[0] if matches else None
            if employee is None and not self.policy.hr_create_unmatched:
                plan.counts["unmatched"] += 1
                continue
            props = dict(old[1]) if old is not None else {}
            # An empty cell never overwrites a known value; the row's values replace the rest.
            props.update(row.props)
            for transient in ("inactive", "termination_date"):
                if transient not in row.props:
                    props.pop(transient, None)
            subjects[number] = _Subject(employee=employee, employee_id=employee["employee_id"] if employee else number,
                                        hr_number=number, hr_props=props, hr_fresh=fresh)
            link = {"employee_pk": employee["id"] if employee else None,
                    "employee_id": None if employee else number}
            if old is None:
                plan.hr_inserts.append({"employee_number": number, "props": props,
                                        "as_of": export.as_of.isoformat(), **link})
            elif old[1] != props or old[2] != export.as_of or (employee and old[3] != employee["id"]):
                plan.hr_updates.append({"employee_number": number, "props": props,
                                        "as_of": export.as_of.isoformat(), **link})
        if self.policy.hr_full_snapshot:
            for number, old in stored.items():
                if number in good or number in blocked or old[3] is None:
                    continue
                employee = self.index.by_pk.get(old[3])
                if employee is None or not employee["active"]:
                    continue
                subjects[number] = _Subject(employee=employee, employee_id=employee["employee_id"], hr_number=number,
                                            hr_props={**old[1], "inactive": True}, hr_fresh=fresh, hr_missing=True)
        # Entra's view of these people, for the merge.
        pks = [s.employee["id"] for s in subjects.values() if s.employee]
        entra: dict[int, Any] = {}
        for match in _in(self.session, EntraUser.employee_pk, pks):
            for r in self.session.exec(select(EntraUser.id, EntraUser.props, EntraUser.removed, EntraUser.included,
                                              EntraUser.employee_pk).where(match)):
                entra[r[4]] = r
        directories = _directory_rows(self.session, pks)
        manager_oids: set[str] = set()
        for s in subjects.values():
            if s.employee and s.employee["id"] in entra:
                r = entra[s.employee["id"]]
                s.entra_id, s.entra_props = r[0], r[1]
                s.entra_removed = r[2] or (None if r[3] else "excluded")
                if r[1].get("_manager"):
                    manager_oids.add(r[1]["_manager"])
            if s.employee:
                s.directory = directories.get(s.employee["id"])
        oid_to_eid = self._oid_to_employee_id(manager_oids, {})
        self._merge_all(subjects.values(), oid_to_eid)
        self._finish(plan, list(subjects.values()))
        plan.state = {"last_rows": export.row_count, "last_as_of": export.as_of.isoformat(), "full": True}
        plan.diff["hr_rows"] = {"now": export.row_count, "last": last_rows}
        return plan

    # -------------------------------------------------------------------------- canonical CSV

    def plan_canonical(self, file: CanonicalFile) -> Plan:
        """Plan a canonical CSV (validated whole, see :mod:`intranet.directory.csv_import`).

        The file's values are taken as given; an empty cell leaves a value alone; only an explicit
        ``status`` deactivates or reactivates; people the file does not list are untouched.
        """
        plan = Plan(source="csv", mode="file")
        plan.counts["seen"] = file.row_count
        plan.quarantine_scope = []  # a bad file is refused whole: nothing is ever quarantined
        self.index.add(_employee_rows(self.session, Employee.employee_id, [r.employee_id for r in file.rows]))
        directories = _directory_rows(self.session, list(self.index.by_pk))
        subjects: list[_Subject] = []
        for row in file.rows:
            employee = self.index.by_eid.get(row.employee_id)
            directory = directories.get(employee["id"]) if employee else None
            values = {k: v for k, v in row.values.items() if k not in ("manager_id", "active")}
            sources = dict((directory or {}).get("sources") or {})
            # Provenance moves to the file only where it changes a value (a re-import changes nothing).
            sources.update({k: "csv" for k, v in values.items()
                            if employee is None or employee.get(k) != v or k not in sources})
            pending = (directory or {}).get("pending_termination")
            merged = merge_mod.Merged(
                values=values, sources=sources, active=row.values.get("active"),
                pending_termination=pending.date() if isinstance(pending, dt.datetime) else pending,
                manager_candidates=[("csv", row.values["manager_id"])] if "manager_id" in row.values else [])
            subjects.append(_Subject(employee=employee, employee_id=row.employee_id, directory=directory,
                                     merged=merged))
        self._finish(plan, subjects)
        deactivated = {d["id"] for d in plan.deactivate}
        changed = {u["id"] for u in plan.updates} - deactivated
        plan.counts["changed"] = len(changed)
        plan.counts["unchanged"] = file.row_count - plan.counts["created"] - len(changed) - len(deactivated)
        plan.state = {"last_rows": file.row_count, "last_as_of": self.now.isoformat()}
        return plan

    # -------------------------------------------------------------------------- shared

    def _quarantine(self, plan: Plan, source: str, key: str, reason: str, detail: str, record: Mapping[str, Any],
                    *, blocking: bool = True, employee_pk: int | None = None) -> None:
        plan.quarantine.append({"source": source, "source_key": str(key)[:128], "reason": reason,
                                "detail": detail[:1000], "record": _json_safe(record), "blocking": blocking,
                                "employee_pk": employee_pk})
        if blocking:
            plan.counts["quarantined"] += 1

    def _merge_all(self, subjects: Any, oid_to_eid: dict[str, Any]) -> None:
        """Merge every subject, resolving Entra manager references to employee ids."""
        for subject in subjects:
            manager: Any = merge_mod.MISSING
            if subject.entra_props is not None and "_manager" in subject.entra_props:
                moid = subject.entra_props["_manager"]
                manager = oid_to_eid.get(moid, ("?", moid)) if moid else None
            self._merge(subject, manager)

    def _merge(self, s: _Subject, entra_manager: Any) -> None:
        s.merged = merge_mod.merge(
            entra_props=s.entra_props, entra_removed=s.entra_removed, entra_manager=entra_manager,
            hr=s.hr_props, hr_fresh=s.hr_fresh, current_sources=(s.directory or {}).get("sources") or {},
            n=self.normalizer, policy=self.policy, org_timezone=self.org_timezone, today=self.now.date())

    def _finish(self, plan: Plan, subjects: list[_Subject]) -> None:
        """Second pass (managers, cycles), then the diff against the stored employees."""
        creates_ids = {s.employee_id for s in subjects if s.employee is None}
        manager_of = self._resolve_managers(plan, subjects, creates_ids)
        deactivations: list[dict[str, Any]] = []
        for s in subjects:
            merged = s.merged
            assert merged is not None
            values = dict(merged.values)
            if s.employee_id in manager_of:
                values["manager_id"] = manager_of[s.employee_id]
            pending = merged.pending_termination.isoformat() if merged.pending_termination else None
            erase = s.entra_removed == "deleted"
            if s.employee is None:
                row = {"employee_id": s.employee_id, **{k: v for k, v in values.items() if v is not None}}
                row.setdefault("display_name", s.employee_id)
                row["active"] = merged.active is not False
                if s.entra_id:
                    row["entra_tenant_id"], row["entra_object_id"] = self.tenant_id, s.entra_id
                plan.creates.append(row)
                plan.counts["created"] += 1
                plan.directory.append({"employee_id": s.employee_id, "cost_center": _value(merged.cost_center),
                                       "sources": merged.sources, "pending_termination": pending,
                                       "erase": erase})
                continue
            current = s.employee
            changes = {k: v for k, v in values.items() if current.get(k) != v}
            if s.entra_id and current["entra_object_id"] != s.entra_id:
                changes["entra_object_id"], changes["entra_tenant_id"] = s.entra_id, self.tenant_id
            if merged.active is True and not current["active"]:
                changes["active"], changes["deactivated_at"] = True, None
                plan.counts["reactivated"] += 1
            if changes:
                plan.updates.append({"id": current["id"], **changes})
                if "active" not in changes:
                    plan.counts["updated"] += 1
            if merged.active is False and current["active"]:
                deactivations.append({"id": current["id"], "employee_id": current["employee_id"],
                                      "display_name": current["display_name"],
                                      "reason": s.entra_removed or ("missing from HR file" if s.hr_missing
                                                                    else f"{plan.source.upper()} status")})
                plan.deactivate.append({"id": current["id"]})
                plan.counts["deactivated"] += 1
            directory = s.directory
            wanted_cost = _value(merged.cost_center) if merged.cost_center is not merge_mod.MISSING else (
                directory or {}).get("cost_center")
            erase_needed = erase and not (directory or {}).get("erase_after")
            restore = merged.active is True and bool((directory or {}).get("erase_after"))
            if (directory is None or directory["cost_center"] != wanted_cost or directory["sources"] != merged.sources
                    or _iso(directory["pending_termination"]) != pending or erase_needed or restore):
                plan.directory.append({"employee_pk": current["id"], "cost_center": wanted_cost,
                                       "sources": merged.sources, "pending_termination": pending,
                                       "erase": erase_needed, "restore": restore, "exists": directory is not None})
        plan.diff["deactivations"] = deactivations
        plan.diff["updates"] = [{"id": u["id"], "fields": sorted(k for k in u if k != "id")} for u in plan.updates[:500]]
        plan.diff["creates"] = [c["employee_id"] for c in plan.creates[:500]]
        plan.unmapped = list(unmapped_rows(self.normalizer.unmapped))
        plan.counts["unmapped"] = len(plan.unmapped)

    def _resolve_managers(self, plan: Plan, subjects: list[_Subject], creates: set[str]) -> dict[str, str | None]:
        """Each subject's manager (first resolvable candidate), then break cycles keeping last good values."""
        wanted = {eid for s in subjects for _, eid in s.merged.manager_candidates  # type: ignore[union-attr]
                  if isinstance(eid, str)}
        known = set(creates) | {s.employee_id for s in subjects}
        unknown = [e for e in wanted if e not in known]
        for match in _in(self.session, Employee.employee_id, unknown):
            known.update(self.session.exec(select(Employee.employee_id).where(match)))
        result: dict[str, str | None] = {}
        for s in subjects:
            candidates = s.merged.manager_candidates  # type: ignore[union-attr]
            if not candidates:
                continue
            chosen: str | None = None
            failed: list[str] = []
            for source, eid in candidates:
                if eid is None:
                    break
                if isinstance(eid, tuple):  # an Entra manager that is not (yet) an employee
                    failed.append(f"{source}: Entra user {eid[1]}")
                    continue
                if eid in known and eid != s.employee_id:
                    chosen = eid
                    break
                failed.append(f"{source}: {eid}")
            if failed and chosen is None:
                plan.counts["reference_failures"] += 1
                self._quarantine(plan, plan.source, s.hr_number if plan.source == "hr" and s.hr_number
                                 else (s.entra_id or s.employee_id), "manager_not_found",
                                 "manager not found (" + "; ".join(failed) + "); kept without a manager",
                                 {"employee_id": s.employee_id}, blocking=False,
                                 employee_pk=s.employee["id"] if s.employee else None)
            result[s.employee_id] = chosen
        changed = {eid: m for eid, m in result.items()
                   if (self.index.by_eid.get(eid) or {}).get("manager_id", None) != m or eid in creates}
        if not changed:
            return result
        graph = dict(self.session.exec(select(Employee.employee_id, Employee.manager_id)).all())
        graph.update(changed)
        if not managers.on_cycles(graph).intersection(changed):
            return result  # the common case, found in one pass instead of a chain walk per person
        for eid in list(changed):
            cycle = managers.cycle_from(graph, eid)
            if not cycle:
                continue
            for member in cycle:
                if member in changed:
                    old = (self.index.by_eid.get(member) or {}).get("manager_id")
                    graph[member] = old
                    result[member] = old
                    subject = next((s for s in subjects if s.employee_id == member), None)
                    key = (subject.hr_number if plan.source == "hr" and subject and subject.hr_number
                           else (subject.entra_id if subject and subject.entra_id else member))
                    self._quarantine(plan, plan.source, key, "manager_cycle",
                                     "manager chain loops: " + " -> ".join(cycle + [cycle[0]])
                                     + "; the previous manager was kept", {"employee_id": member})
            if managers.cycle_from(graph, eid):
                graph[eid] = None
                result[eid] = None
        return result


def _value(value: Any) -> Any:
    return None if value is merge_mod.MISSING else value


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.date().isoformat() if isinstance(value, dt.datetime) else str(value)


def _json_safe(record: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): (v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else str(v))
            for k, v in record.items()}


def _dt(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


# ================================================================================================
# Applying a plan
# ================================================================================================


def apply_plan(session: Session, plan: Plan, *, now: dt.datetime, policy: Policy, run_id: int | None) -> None:
    """Write *plan* with bulk statements (flushes; the caller commits, once)."""
    table = Employee.__table__
    if plan.creates:
        rows = [{**{k: None for k in ("email", "department", "division", "region", "country", "office", "job_title",
                                      "level", "level_label", "manager_id", "timezone", "language",
                                      "entra_tenant_id", "entra_object_id")},
                 "display_name": "", "is_contributor": False, "is_comms": False, "is_admin": False,
                 **c, "created_at": now, "updated_at": now,
                 "deactivated_at": None if c.get("active", True) else now} for c in plan.creates]
        bulk.insert_rows(session, table, rows)
    new_pks: dict[str, int] = {}
    wanted = [c["employee_id"] for c in plan.creates] + [
        r["employee_id"] for r in plan.entra_inserts + plan.entra_updates + plan.hr_inserts + plan.hr_updates
        if r.get("employee_id")]
    wanted = list(dict.fromkeys(wanted))
    if len(wanted) > 20 * CHUNK:  # many new people: one scan beats hundreds of IN queries
        new_pks.update((eid, pk) for pk, eid in session.execute(select(Employee.id, Employee.employee_id)))
    else:
        for match in _in(session, Employee.employee_id, wanted):
            new_pks.update((eid, pk) for pk, eid in session.execute(
                select(Employee.id, Employee.employee_id).where(match)))
    bulk.update_rows(session, table, [{**u, "updated_at": now} for u in plan.updates], key="id")

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
    for match in _in(session, Employee.id, ids):
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
        for match in _in(session, Quarantine.source_key, list(plan.quarantine_scope) + [q["source_key"] for q in plan.quarantine]):
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


def _save_state(session: Session, plan: Plan, now: dt.datetime) -> bool:
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


# ================================================================================================
# Runs
# ================================================================================================


def _stage(staged: dict[str, Any], users: Iterable[dict[str, Any]]) -> int:
    """Fold one delta page into the round's staged changes (later items win, key by key)."""
    n = 0
    for user in users:
        oid = user.get("id")
        if not oid:
            continue
        n += 1
        removed = user.get("@removed")
        if removed is not None:
            staged[oid] = {"@removed": (removed or {}).get("reason") or "changed"}
            continue
        refs = user.pop("manager@delta", None)
        for key in [k for k in user if k.startswith("@") or "@odata" in k]:
            del user[key]
        for key, value in user.items():
            # Complex values (employeeOrgData, onPremisesExtensionAttributes) are replaced whole, so a
            # null member is the same as a missing one: drop them (smaller records, faster JSON).
            if type(value) is dict and None in value.values():
                user[key] = {k: v for k, v in value.items() if v is not None}
        if refs is not None:
            alive = [r.get("id") for r in refs if "@removed" not in r and r.get("id")]
            user["_manager"] = alive[-1] if alive else None
        entry = staged.get(oid)
        if entry is None or "@removed" in entry:
            staged[oid] = user
        else:
            entry.update(user)
    return n


def _cycle_collector_paused(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run *method* with CPython's cyclic garbage collector paused.

    A round builds hundreds of thousands of small containers (staged users, plan rows) that hold
    no reference cycles; while they pile up, the collector re-scans all of them again and again
    (measured: some 12 s of gen-2 collections in a 100,000-user full sync). Reference counting
    still frees everything as usual; cycles made meanwhile are collected once it is back on.
    """

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return method(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return wrapper


@dataclasses.dataclass
class RunOutcome:
    run_id: int
    status: str
    message: str
    counts: dict[str, int] = dataclasses.field(default_factory=dict)


class DirectorySync:
    """The edge of a sync run: lease, run record, read, plan, guard, apply or hold, commit.

    :param engine: the database.
    :param config: the Flask config (``INTRANET_*``).
    :param clock: returns the current aware UTC time.
    :param graph_client: a :class:`intranet.directory.graph.GraphClient` (built from *config* if None).
    :param progress: called with ``(done, total_or_None, label)`` while reading.
    """

    def __init__(self, engine: Engine, config: Mapping[str, Any], *, clock: Callable[[], dt.datetime],
                 policy: Policy | None = None, graph_client: Any = None,
                 progress: Callable[[int, int | None, str], None] | None = None, owner: str | None = None) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.policy = policy or load_policy(config)
        self._graph_client = graph_client
        self.progress = progress or (lambda done, total, label: None)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._released = True

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    @property
    def graph_client(self) -> Any:
        if self._graph_client is None:
            from intranet.directory.graph import GraphClient, GraphSettings

            self._graph_client = GraphClient(GraphSettings.from_config(self.config))
        return self._graph_client

    # -------------------------------------------------------------------------- lifecycle

    def _start(self, source: str, mode: str, trigger: str, **fields: Any) -> SyncRun:
        now = self.clock()
        with self._session() as session:
            if not leases.acquire(session, LEASE_NAME, self.owner, ttl=LEASE_TTL, now=now):
                session.rollback()
                run = SyncRun(source=source, mode=mode, trigger=trigger, status="refused", started_at=now,
                              finished_at=now, duration_ms=0,
                              error="A directory sync is already running; this run was refused.", **fields)
                session.add(run)
                session.commit()
                raise AlreadyRunning(run.id)
            run = SyncRun(source=source, mode=mode, trigger=trigger, status="running", started_at=now, **fields)
            session.add(run)
            session.commit()
            self._released = False
            return run

    def _renew(self) -> None:
        with self._session() as session:
            leases.acquire(session, LEASE_NAME, self.owner, ttl=LEASE_TTL, now=self.clock())
            session.commit()

    def _release(self) -> None:
        if self._released:
            return
        with self._session() as session:
            leases.release(session, LEASE_NAME, self.owner)
            session.commit()

    def _fail(self, run: SyncRun, started: float, exc: BaseException) -> RunOutcome:
        with self._session() as session:
            row = session.get(SyncRun, run.id)
            assert row is not None
            row.status = "failed"
            row.error = str(exc)[:4000]
            row.request_id = getattr(exc, "request_id", None)
            # msal's correlation id (token errors) or the client-request-id we sent Graph.
            row.correlation_id = getattr(exc, "correlation_id", None) or getattr(exc, "client_request_id", None)
            row.finished_at = self.clock()
            row.duration_ms = int((time.perf_counter() - started) * 1000)
            session.add(row)
            session.commit()
        logger.error("Directory sync run %s failed: %s", run.id, exc)
        return RunOutcome(run.id, "failed", str(exc))

    def _conclude(self, run: SyncRun, plan: Plan, started: float, *, hold_reason: str | None,
                  extra: Mapping[str, Any] | None = None) -> RunOutcome:
        """Apply (or hold) the plan and record the run: one transaction."""
        now = self.clock()
        with self._session() as session:
            row = session.get(SyncRun, run.id)
            assert row is not None
            for key, value in (extra or {}).items():
                setattr(row, key, value)
            _count(row, plan)
            if hold_reason:
                row.status = "held"
                row.error = f"Held for an admin: {hold_reason}."
                session.add(SyncHeld(run_id=run.id, reason=hold_reason[:1000], plan=plan.to_json(),
                                     diff=guard_mod.summarize(plan.diff), created_at=now))
            else:
                apply_plan(session, plan, now=now, policy=self.policy, run_id=run.id)
                row.delta_committed = _save_state(session, plan, now)
                row.status = "succeeded"
            guard_mod.supersede_older(session, plan.source, run.id)
            row.finished_at = self.clock()
            row.duration_ms = int((time.perf_counter() - started) * 1000)
            session.add(row)
            leases.release(session, LEASE_NAME, self.owner)  # in the same commit: one fsync fewer
            session.commit()
            self._released = True
        message = (f"held: {hold_reason}" if hold_reason else
                   f"{plan.counts['seen']} seen, {plan.counts['created']} created, {plan.counts['updated']} updated, "
                   f"{plan.counts['deactivated']} deactivated, {plan.counts['reactivated']} reactivated, "
                   f"{plan.counts['quarantined']} quarantined, {plan.counts['unmapped']} unmapped values")
        logger.info("Directory sync run %s (%s %s): %s", run.id, plan.source, plan.mode, message)
        return RunOutcome(run.id, "held" if hold_reason else "succeeded", message, dict(plan.counts))

    # -------------------------------------------------------------------------- Graph

    @_cycle_collector_paused
    def run_graph(self, *, full: bool = False, trigger: str = "cli") -> RunOutcome:
        """One Graph round (incremental from the committed deltaLink, or full with mark-and-sweep).

        :raise AlreadyRunning: another sync holds the lease (the refusal is recorded).
        """
        from intranet.directory.graph import DeltaExpired, GraphError

        started = time.perf_counter()
        client = self.graph_client
        select_hash = client.settings.select_hash()
        with self._session() as session:
            state = session.get(SyncState, "graph")
            delta_link = state.delta_link if state else None
            if state and state.select_hash and state.select_hash != select_hash:
                delta_link = None
                logger.warning("The Graph $select list changed; running a full resync")
        full = full or delta_link is None
        run = self._start("graph", "full" if full else "delta", trigger)
        notes: list[str] = []
        try:
            try:
                staged = self._read_round(None if full else delta_link)
            except DeltaExpired as exc:
                notes.append(f"deltaLink expired ({exc.status} {exc.code}); ran a full resync")
                full = True
                staged = self._read_round(None)
            staged, final_link = staged
            read_s = time.perf_counter() - started
            with self._session() as session:
                planner = Planner(session, self.policy, now=self.clock(),
                                  org_timezone=self.config.get("INTRANET_ORG_TIMEZONE") or "UTC",
                                  tenant_id=client.settings.tenant_id)
                plan = planner.plan_graph(staged, full=full, delta_link=final_link, select_hash=select_hash)
                verdict = guard_mod.check(session, self.policy.guard, deactivations=plan.counts["deactivated"])
            logger.info("Graph round read in %.2f s, planned in %.2f s", read_s, time.perf_counter() - started - read_s)
            extra = {"mode": "full" if full else "delta"}
            if notes:
                extra["error"] = "; ".join(notes)
            return self._conclude(run, plan, started, hold_reason=verdict.reason if verdict.hold else None,
                                  extra=extra)
        except GraphError as exc:
            return self._fail(run, started, exc)
        except Exception as exc:
            self._fail(run, started, exc)
            raise
        finally:
            self._release()

    def _read_round(self, delta_link: str | None) -> tuple[dict[str, Any], str]:
        staged: dict[str, Any] = {}
        seen = pages = 0
        final = None
        for page in self.graph_client.iter_delta(delta_link):
            seen += _stage(staged, page.users)
            pages += 1
            self.progress(seen, None, "Reading Graph")
            if pages % 25 == 0:
                self._renew()
            if page.delta_link:
                final = page.delta_link
        if final is None:  # pragma: no cover - iter_delta always ends with a deltaLink
            raise RuntimeError("The delta round ended without a deltaLink.")
        return staged, final

    # -------------------------------------------------------------------------- HR

    @_cycle_collector_paused
    def run_hr(self, data: bytes, *, file_name: str, mapping: str | None = None, as_of: dt.datetime | None = None,
               trigger: str = "cli") -> RunOutcome:
        """Import one HR export through its column mapping.

        :raise AlreadyRunning: another sync holds the lease (the refusal is recorded).
        """
        started = time.perf_counter()
        run = self._start("hr", "file", trigger, file_name=os_basename(file_name))
        try:
            hr_mapping = HrMapping.load(mapping or self.policy.hr_mapping, self.policy.mappings_dir)
            with self._session() as session:
                planner = Planner(session, self.policy, now=self.clock(),
                                  org_timezone=self.config.get("INTRANET_ORG_TIMEZONE") or "UTC")
                export = read_export(data, hr_mapping, planner.normalizer, file_name=file_name, as_of=as_of,
                                     strip_leading_zeros=self.policy.strip_leading_zeros)
                self.progress(export.row_count, export.row_count, "Reading HR file")
                state = session.get(SyncState, "hr")
                last_rows = state.last_rows if state else None
                plan = planner.plan_hr(export, last_rows=last_rows)
                verdict = guard_mod.check(session, self.policy.guard, deactivations=plan.counts["deactivated"],
                                          hr_rows=export.row_count, last_hr_rows=last_rows)
            extra = {"file_sha256": export.sha256, "rows": export.row_count, "as_of": export.as_of,
                     "stale_source": bool(plan.counts.get("stale"))}
            if plan.counts.get("stale"):
                extra["error"] = (f"The HR file is older than {self.policy.hr_stale_after_days} days "
                                  f"(as of {export.as_of.date()}): HR was demoted to a fallback source.")
            return self._conclude(run, plan, started, hold_reason=verdict.reason if verdict.hold else None,
                                  extra=extra)
        except Exception as exc:
            from intranet.errors import IntranetError

            outcome = self._fail(run, started, exc)
            if isinstance(exc, IntranetError):
                return outcome
            raise
        finally:
            self._release()

    # -------------------------------------------------------------------------- canonical CSV

    @_cycle_collector_paused
    def run_csv(self, data: bytes, *, file_name: str, trigger: str = "cli") -> RunOutcome:
        """Import a canonical CSV: all rows valid or nothing changes; the guard may hold it for an admin.

        A refused file is a failed run whose error is the line-numbered report.

        :raise AlreadyRunning: another sync holds the lease (the refusal is recorded).
        """
        started = time.perf_counter()
        run = self._start("csv", "file", trigger, file_name=os_basename(file_name),
                          file_sha256=hashlib.sha256(data).hexdigest())
        try:
            with self._session() as session:
                file = csv_import.read_file(session, data)
                self.progress(file.row_count, file.row_count, "Reading CSV")
                planner = Planner(session, self.policy, now=self.clock(),
                                  org_timezone=self.config.get("INTRANET_ORG_TIMEZONE") or "UTC")
                plan = planner.plan_canonical(file)
                verdict = guard_mod.check(session, self.policy.guard, deactivations=plan.counts["deactivated"])
            return self._conclude(run, plan, started, hold_reason=verdict.reason if verdict.hold else None,
                                  extra={"rows": file.row_count})
        except Exception as exc:
            from intranet.errors import IntranetError

            outcome = self._fail(run, started, exc)
            if isinstance(exc, IntranetError):
                return outcome
            raise
        finally:
            self._release()

    # -------------------------------------------------------------------------- held runs

    @_cycle_collector_paused
    def approve(self, run_id: int, *, admin: Employee) -> RunOutcome:
        """Apply a held run's plan exactly as the admin saw it (audited on the run)."""
        started = time.perf_counter()
        now = self.clock()
        with self._session() as session:
            if not leases.acquire(session, LEASE_NAME, self.owner, ttl=LEASE_TTL, now=now):
                raise AlreadyRunning(run_id)
            session.commit()
            self._released = False
        try:
            with self._session() as session:
                run, held = guard_mod.load_held(session, run_id)
                plan = Plan.from_json(held.plan)
                apply_plan(session, plan, now=now, policy=self.policy, run_id=run.id)
                run.delta_committed = _save_state(session, plan, now)
                run.status, run.decided_by_pk, run.decided_at = "approved", admin.id, now
                held.plan = {}
                session.add_all([run, held])
                session.commit()
            logger.warning("Admin %s approved held %s sync run %s (%d deactivations)", admin.employee_id,
                           plan.source, run_id, len(plan.deactivate))
            return RunOutcome(run_id, "approved", f"applied in {time.perf_counter() - started:.1f} s")
        finally:
            self._release()


def os_basename(path: str) -> str:
    return os.path.basename(path)[:255]


def _count(row: SyncRun, plan: Plan) -> None:
    for name in ("seen", "created", "updated", "deactivated", "reactivated", "quarantined", "unmapped",
                 "reference_failures"):
        setattr(row, name, int(plan.counts.get(name, 0)))


# ================================================================================================
# Erasure and periodic jobs
# ================================================================================================

ERASED_FIELDS = {"email": None, "department": None, "division": None, "region": None, "country": None,
                 "office": None, "job_title": None, "level": None, "level_label": None, "manager_id": None,
                 "timezone": None, "language": None}


def erase_due(session: Session, now: dt.datetime) -> int:
    """Anonymize employees deleted for good in Entra whose retention ended (the row stays, inactive)."""
    due = session.exec(select(EmployeeDirectory).where(EmployeeDirectory.erase_after.is_not(None),
                                                       EmployeeDirectory.erase_after <= now)).all()
    for directory in due:
        employee = session.get(Employee, directory.employee_pk)
        if employee is None:
            continue
        people.deactivate(session, employee, now)
        for key, value in ERASED_FIELDS.items():
            setattr(employee, key, value)
        employee.display_name = "Former employee"
        employee.updated_at = now
        session.add(employee)
        session.exec(delete(EntraUser).where(EntraUser.employee_pk == employee.id))
        session.exec(delete(HrRecord).where(HrRecord.employee_pk == employee.id))
        directory.erase_after, directory.cost_center, directory.sources = None, None, {"erased": now.isoformat()}
        session.add(directory)
    session.flush()
    return len(due)


def _graph_configured(config: Mapping[str, Any]) -> bool:
    return bool(config.get("INTRANET_ENTRA_TENANT_ID") and config.get("INTRANET_ENTRA_CLIENT_ID"))


def _job_engine(session: Session) -> Engine:
    bind = session.get_bind()
    return bind.engine if hasattr(bind, "engine") else bind  # type: ignore[return-value]


def graph_job(session: Session, now: dt.datetime, config: dict[str, Any]) -> str | None:
    """Scheduled: an incremental Graph round, or a full resync when the last one is old."""
    if not _graph_configured(config):
        return None
    policy = load_policy(config)
    state = session.get(SyncState, "graph")
    full = state is None or state.last_full_at is None or (
        now - state.last_full_at >= dt.timedelta(hours=policy.full_resync_hours))
    sync = DirectorySync(_job_engine(session), config, clock=lambda: now, policy=policy)
    try:
        return sync.run_graph(full=full, trigger="schedule").status
    except AlreadyRunning:
        logger.info("Scheduled directory sync skipped: another sync is running")
        return "refused"


def apply_due_terminations(session: Session, now: dt.datetime) -> int:
    """Deactivate employees whose HR termination date (an effective date) has come."""
    due = session.exec(select(Employee).join(EmployeeDirectory, EmployeeDirectory.employee_pk == Employee.id)
                       .where(Employee.active.is_(True), EmployeeDirectory.pending_termination.is_not(None),
                              EmployeeDirectory.pending_termination <= now)).all()
    for employee in due:
        people.deactivate(session, employee, now)
    return len(due)


def lifecycle_job(session: Session, now: dt.datetime, config: dict[str, Any]) -> dict[str, int]:
    """Scheduled: HR terminations that took effect, and erasures whose retention ended."""
    return {"terminated": apply_due_terminations(session, now), "erased": erase_due(session, now)}


schedule.register(schedule.Job("directory-graph-sync", graph_job, dt.timedelta(minutes=30), misfire_grace_time=600,
                               description="Sync employees from Entra ID (incremental; full resync every 3 days)."))
schedule.register(schedule.Job("directory-lifecycle", lifecycle_job, dt.timedelta(hours=1),
                               description="Apply HR terminations that took effect; anonymize employees deleted in "
                                           "Entra once their retention ended."))


# ================================================================================================
# Read models for the admin pages
# ================================================================================================


def coverage(session: Session) -> dict[str, Any]:
    """Share of active employees with a department, region, level and time zone."""
    total = session.exec(select(func.count()).select_from(Employee).where(Employee.active.is_(True))).one()
    out: dict[str, Any] = {"active": total}
    for name in ("department", "region", "level", "timezone"):
        column = getattr(Employee, name)
        have = session.exec(select(func.count()).select_from(Employee)
                            .where(Employee.active.is_(True), column.is_not(None))).one()
        out[name] = {"count": have, "share": (have / total) if total else 0.0}
    return out


def recent_runs(session: Session, limit: int = 20) -> list[SyncRun]:
    return list(session.exec(select(SyncRun).order_by(SyncRun.id.desc()).limit(limit)))


def open_quarantine(session: Session, limit: int = 200) -> list[Quarantine]:
    return list(session.exec(select(Quarantine).order_by(Quarantine.blocking.desc(), Quarantine.last_seen_at.desc())
                             .limit(limit)))


def unmapped_values(session: Session, limit: int = 200) -> list[UnmappedValue]:
    return list(session.exec(select(UnmappedValue).order_by(UnmappedValue.dimension, UnmappedValue.occurrences.desc())
                             .limit(limit)))


__all__ = ["AlreadyRunning", "DirectorySync", "Plan", "Planner", "apply_plan", "coverage", "erase_due",
           "open_quarantine", "recent_runs", "unmapped_values"]
