"""Planning a directory run: every change one run would make, computed in memory, written nowhere.

A source (a Graph delta round, an HR export, Beacon's canonical CSV) becomes a :class:`Plan`
through one :class:`Planner`: it loads only the rows the records touch (by many keys at once,
never one query per person), works out each person's values (the field-by-field merge of
:mod:`intranet.directory.merge` for Graph and HR, the file's values as given for the canonical
CSV), resolves managers in a second pass (:mod:`intranet.directory.managers` breaks loops) and
diffs the result against what is stored. Records that cannot be applied are quarantined in the
plan. The plan is JSON-safe, so a run held by the guard keeps it exactly as an admin will see it;
:mod:`intranet.directory.apply` writes it.

Graph semantics: an absent property leaves a value unchanged, ``null`` clears it; duplicates and
replays are harmless because a plan compares with what is stored; ``@removed`` ``changed``
deactivates (restorable), ``deleted`` deactivates and schedules erasure; a restored user comes
back active with everything Beacon kept about them. A full round sweeps (soft) the users it no
longer lists.
"""
from __future__ import annotations

import collections
import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from sqlalchemy import ARRAY, any_, literal
from sqlmodel import Session, select

from intranet.db import is_postgres
from intranet.directory import managers
from intranet.directory import merge as merge_mod
from intranet.directory.csv_import import CanonicalFile
from intranet.directory.hr import HrExport
from intranet.directory.normalize import Normalizer, unmapped_rows
from intranet.directory.policy import Policy
from intranet.models import EmployeeDirectory, Employee, EntraUser, HrRecord, Quarantine

CHUNK = 900  # stays under SQLite's bound-parameter limit
EMPLOYEE_FIELDS = ("id", "employee_id", "email", "display_name", "department", "division", "region", "country",
                   "office", "job_title", "level", "level_label", "manager_id", "timezone", "language", "active",
                   "entra_tenant_id", "entra_object_id", "deactivated_at", "hire_date")


class EntraRecord(NamedTuple):
    """A stored Entra user: what Graph said last, and the employee it is linked to (if any)."""

    id: str
    props: dict[str, Any]
    included: bool
    removed: str | None  # "changed" (restorable), "deleted", or None
    employee_pk: int | None


class HrStored(NamedTuple):
    """A stored HR record: the last applied values of one employee number."""

    employee_number: str
    props: dict[str, Any]
    as_of: dt.datetime | None
    employee_pk: int | None


class Truth(NamedTuple):
    """A Graph user as a round leaves it: the stored properties updated with what the round said."""

    props: dict[str, Any]
    removed: str | None


ENTRA_COLUMNS = (EntraUser.id, EntraUser.props, EntraUser.included, EntraUser.removed, EntraUser.employee_pk)
HR_COLUMNS = (HrRecord.employee_number, HrRecord.props, HrRecord.as_of, HrRecord.employee_pk)


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


def where_in(session: Session, column: Any, values: Iterable[Any]) -> list[Any]:
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


def _employee_row(row: Any) -> dict[str, Any]:
    out = dict(zip(EMPLOYEE_FIELDS, row))
    # Plans are JSON (a held run keeps its plan): dates travel as ISO text, as merge writes them.
    if out["hire_date"] is not None:
        out["hire_date"] = out["hire_date"].isoformat()
    return out


def _employee_rows(session: Session, column: Any, values: Iterable[Any] | None) -> list[dict[str, Any]]:
    cols = [getattr(Employee, f) for f in EMPLOYEE_FIELDS]
    if values is None:
        return [_employee_row(row) for row in session.exec(select(*cols))]
    out: list[dict[str, Any]] = []
    for match in where_in(session, column, values):
        out.extend(_employee_row(row) for row in session.exec(select(*cols).where(match)))
    return out


def _employee_rows_where(session: Session, condition: Any) -> list[dict[str, Any]]:
    cols = [getattr(Employee, f) for f in EMPLOYEE_FIELDS]
    return [_employee_row(row) for row in session.exec(select(*cols).where(condition))]


def _directory_rows(session: Session, pks: Iterable[int] | None) -> dict[int, dict[str, Any]]:
    query = select(EmployeeDirectory.employee_pk, EmployeeDirectory.cost_center, EmployeeDirectory.sources,
                   EmployeeDirectory.pending_termination, EmployeeDirectory.erase_after)
    rows: list[Any] = []
    if pks is None:
        rows = list(session.exec(query))
    else:
        for match in where_in(session, EmployeeDirectory.employee_pk, pks):
            rows.extend(session.exec(query.where(match)))
    return {r.employee_pk: {"cost_center": r.cost_center, "sources": r.sources or {},
                            "pending_termination": r.pending_termination, "erase_after": r.erase_after}
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
    """Turns one source's records into a :class:`Plan`: :meth:`plan_graph`, :meth:`plan_hr` and
    :meth:`plan_canonical` share the lookups, the second pass over managers and the diff (reads
    only; never writes)."""

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
        stored: dict[str, EntraRecord] = {}
        query = select(*ENTRA_COLUMNS)
        if full:
            stored = {r.id: r for r in map(EntraRecord._make, self.session.exec(query))}
            self.index.add(_employee_rows(self.session, None, None))
        else:
            for match in where_in(self.session, EntraUser.id, ids):
                stored.update((r.id, r) for r in map(EntraRecord._make, self.session.exec(query.where(match))))
        # The new truth per user: stored props updated with what the round said.
        truth: dict[str, Truth] = {}
        for oid in ids:
            change = staged.get(oid)
            old = stored.get(oid)
            props = dict(old.props) if old is not None else {}
            removed = old.removed if old is not None else None
            if change is None:
                pass  # only re-evaluated (open quarantine)
            elif "@removed" in change:
                removed = change["@removed"] if removed != "deleted" else "deleted"
            else:
                props.update(change)
                props.pop("id", None)
                removed = None  # a plain object after a removal is a restore
            truth[oid] = Truth(props, removed)
        if full:
            for oid, row in stored.items():
                if oid not in truth and row.removed is None:
                    truth[oid] = Truth(dict(row.props), "changed")  # swept: missing from the snapshot
                    plan.counts["swept"] += 1
        if not full:
            # Linked users are found through their Entra record; only the others need the
            # (indexed) lookups by object id, employee number and email.
            pks = [row.employee_pk for oid in truth if (row := stored.get(oid)) is not None
                   and row.employee_pk is not None]
            self.index.add(_employee_rows(self.session, Employee.id, pks))
            unlinked = [oid for oid in truth if oid not in self.index.by_oid]
            if unlinked and self.tenant_id:
                for match in where_in(self.session, Employee.entra_object_id, unlinked):
                    self.index.add(_employee_rows_where(self.session, (Employee.entra_tenant_id == self.tenant_id)
                                                        & match))
            unlinked = [oid for oid in unlinked if oid not in self.index.by_oid]
            numbers = {self.normalizer.employee_number(truth[o].props.get("employeeId"), self.policy.strip_leading_zeros)
                       for o in unlinked}
            self.index.add(_employee_rows(self.session, Employee.employee_id, [n for n in numbers if n]))
            emails = {e for o in unlinked for e in (str(truth[o].props.get("mail") or "").lower(),
                                                     str(truth[o].props.get("userPrincipalName") or "").lower()) if e}
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
            if employee is None and old is not None and old.employee_pk is not None:
                employee = self.index.by_pk.get(old.employee_pk)
            if employee is None and included:
                if not number:
                    self._quarantine(plan, "graph", oid, "no_join_key", "the user has no employeeId", props)
                    quarantined.add(oid)
                else:
                    employee = self.index.by_eid.get(number)
                    if employee is not None and employee["entra_object_id"] not in (None, oid):
                        other = truth.get(employee["entra_object_id"])
                        other_alive = other is None or other.removed is None  # not loaded or not removed
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
                                     f"several Entra users have employeeId {employee_id}", truth[dup].props)
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

    def _entra_rows(self, plan: Plan, truth: Mapping[str, Truth],
                    stored: Mapping[str, EntraRecord], subjects: Mapping[str, _Subject], included_of: Mapping[str, bool]) -> None:
        for oid, (props, removed) in truth.items():
            included = included_of[oid]
            subject = subjects.get(oid)
            employee_pk = subject.employee["id"] if subject and subject.employee else None
            row = {"id": oid, "props": props, "included": included, "removed": removed}
            old = stored.get(oid)
            if old is None:
                plan.entra_inserts.append({**row, "employee_pk": employee_pk,
                                           "employee_id": subject.employee_id if subject and not employee_pk else None})
            elif (old.props != props or old.included != included or old.removed != removed
                  or (employee_pk is not None and old.employee_pk != employee_pk)
                  or (subject is not None and subject.employee is None)):
                plan.entra_updates.append({**row, "employee_pk": employee_pk if employee_pk is not None else old.employee_pk,
                                           "employee_id": subject.employee_id if subject and not employee_pk else None})

    def _oid_to_employee_id(self, oids: set[str], subjects: Mapping[str, _Subject]) -> dict[str, str]:
        """Manager object ids -> employee ids (employees in this plan, then the database)."""
        out = {oid: s.employee_id for oid, s in subjects.items() if oid in oids}
        missing = [o for o in oids if o not in out]
        for match in where_in(self.session, EntraUser.id, missing):
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
        records: dict[tuple[str, Any], HrStored] = {}
        query = select(*HR_COLUMNS)
        if everything:
            for r in map(HrStored._make, self.session.exec(query)):
                records[("n", r.employee_number)] = r
                if r.employee_pk is not None:
                    records[("pk", r.employee_pk)] = r
        else:
            for match in where_in(self.session, HrRecord.employee_pk, pks):
                records.update((("pk", r.employee_pk), r) for r in map(HrStored._make, self.session.exec(query.where(match))))
            for match in where_in(self.session, HrRecord.employee_number, numbers):
                records.update((("n", r.employee_number), r)
                               for r in map(HrStored._make, self.session.exec(query.where(match))))
        directories = _directory_rows(self.session, None if everything else pks)
        for s in subjects:
            record = (records.get(("pk", s.employee["id"])) if s.employee else None) or records.get(("n", s.employee_id))
            if record is not None:
                s.hr_number, s.hr_props = record.employee_number, record.props
                s.hr_fresh = self._fresh(record.as_of)
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
        stored = {r.employee_number: r for r in map(HrStored._make, self.session.exec(select(*HR_COLUMNS)))}
        self.index.add(_employee_rows(self.session, Employee.employee_id, list(good)))
        self.index.add(_employee_rows(self.session, Employee.id, [r.employee_pk for r in stored.values() if r.employee_pk]))
        emails = [r.props["email"] for r in good.values() if r.props.get("email")]
        self.index.add(_employee_rows(self.session, Employee.email, emails))  # stored casefolded
        subjects: dict[str, _Subject] = {}
        for number, row in good.items():
            old = stored.get(number)
            employee = self.index.by_pk.get(old.employee_pk) if old is not None and old.employee_pk else None
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
            props = dict(old.props) if old is not None else {}
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
            elif old.props != props or old.as_of != export.as_of or (employee and old.employee_pk != employee["id"]):
                plan.hr_updates.append({"employee_number": number, "props": props,
                                        "as_of": export.as_of.isoformat(), **link})
        if self.policy.hr_full_snapshot:
            for number, old in stored.items():
                if number in good or number in blocked or old.employee_pk is None:
                    continue
                employee = self.index.by_pk.get(old.employee_pk)
                if employee is None or not employee["active"]:
                    continue
                subjects[number] = _Subject(employee=employee, employee_id=employee["employee_id"], hr_number=number,
                                            hr_props={**old.props, "inactive": True}, hr_fresh=fresh, hr_missing=True)
        # Entra's view of these people, for the merge.
        pks = [s.employee["id"] for s in subjects.values() if s.employee]
        entra: dict[int, EntraRecord] = {}
        for match in where_in(self.session, EntraUser.employee_pk, pks):
            for r in map(EntraRecord._make, self.session.exec(select(*ENTRA_COLUMNS).where(match))):
                entra[r.employee_pk] = r  # type: ignore[index]
        directories = _directory_rows(self.session, pks)
        manager_oids: set[str] = set()
        for s in subjects.values():
            if s.employee and s.employee["id"] in entra:
                r = entra[s.employee["id"]]
                s.entra_id, s.entra_props = r.id, r.props
                s.entra_removed = r.removed or (None if r.included else "excluded")
                if r.props.get("_manager"):
                    manager_oids.add(r.props["_manager"])
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

    def _merge_all(self, subjects: Iterable[_Subject], oid_to_eid: dict[str, Any]) -> None:
        """Merge every subject, resolving Entra manager references to employee ids."""
        merge, missing, today = merge_mod.merge, merge_mod.MISSING, self.now.date()  # once, not per person
        for s in subjects:
            manager: Any = missing
            if s.entra_props is not None and "_manager" in s.entra_props:
                moid = s.entra_props["_manager"]
                manager = oid_to_eid.get(moid, ("?", moid)) if moid else None
            s.merged = merge(
                entra_props=s.entra_props, entra_removed=s.entra_removed, entra_manager=manager,
                hr=s.hr_props, hr_fresh=s.hr_fresh, current_sources=(s.directory or {}).get("sources") or {},
                n=self.normalizer, policy=self.policy, org_timezone=self.org_timezone, today=today)

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
        for match in where_in(self.session, Employee.employee_id, unknown):
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
