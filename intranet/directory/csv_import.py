"""Import employees from Beacon's canonical CSV, all or nothing.

Header: ``employee_id,email,display_name,department,division,region,country,office,job_title,level,
manager_id,timezone,language,status``. Empty cells mean "unknown": they never overwrite a known
value. People missing from the file are left alone (this is not a full sync).
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import re
from collections.abc import Callable, Iterable
from typing import Any
from zoneinfo import available_timezones

from sqlmodel import Session, select

from intranet import people
from intranet.errors import InvalidInput
from intranet.models import Employee

HEADER = ("employee_id", "email", "display_name", "department", "division", "region", "country", "office",
          "job_title", "level", "manager_id", "timezone", "language", "status")
TEXT_FIELDS = ("email", "display_name", "department", "division", "region", "office", "job_title", "language")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
_ZONES: set[str] | None = None


def _zones() -> set[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = available_timezones()
    return _ZONES


class ImportRejected(InvalidInput):
    """The file was refused as a whole; ``problems`` lists (line, message) pairs."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        lines = "\n".join(f"  line {line}: {message}" for line, message in problems[:200])
        more = f"\n  ... and {len(problems) - 200} more" if len(problems) > 200 else ""
        super().__init__(f"The file was rejected ({len(problems)} problem(s)); nothing was imported:\n{lines}{more}",
                         details=[{"line": line, "message": message} for line, message in problems])


@dataclasses.dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged


def _parse_row(line: int, row: dict[str, str], problems: list[tuple[int, str]]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    cells = {k: (row.get(k) or "").strip() for k in HEADER}
    if not cells["employee_id"]:
        problems.append((line, "employee_id is empty"))
    values["employee_id"] = cells["employee_id"]
    for name in TEXT_FIELDS:
        if cells[name]:
            values[name] = cells[name]
    if "email" in values:
        values["email"] = people.normalize_email(values["email"])
        if not EMAIL.match(values["email"]):
            problems.append((line, f"email {cells['email']!r} is not an email address"))
    if "language" in values and not LANGUAGE.match(values["language"]):
        problems.append((line, f"language {cells['language']!r} is not a language tag such as 'en' or 'pt-BR'"))
    if cells["country"]:
        country = cells["country"].upper()
        if not COUNTRY.match(country):
            problems.append((line, f"country {cells['country']!r} is not an ISO 3166 alpha-2 code such as 'DE'"))
        values["country"] = country
    if cells["level"]:
        try:
            level = int(cells["level"])
            if not 1 <= level <= 10:
                raise ValueError
            values["level"] = level
        except ValueError:
            problems.append((line, f"level {cells['level']!r} is not a whole number from 1 to 10"))
    if cells["manager_id"]:
        values["manager_id"] = cells["manager_id"]
        if cells["manager_id"] == cells["employee_id"]:
            problems.append((line, "an employee cannot be their own manager"))
    if cells["timezone"]:
        if cells["timezone"] not in _zones():
            problems.append((line, f"timezone {cells['timezone']!r} is not an IANA time zone such as 'Europe/Paris'"))
        values["timezone"] = cells["timezone"]
    if cells["status"]:
        status = cells["status"].lower()
        if status not in ("active", "inactive"):
            problems.append((line, f"status {cells['status']!r} must be 'active' or 'inactive'"))
        values["active"] = status == "active"
    return values


def read_rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    """Parse and validate the whole file.

    :raise ImportRejected: listing every problem by line number.
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [h for h in HEADER if h not in header]
    extra = [h for h in header if h not in HEADER]
    if missing or extra:
        parts = ([f"missing columns: {', '.join(missing)}"] if missing else []) + (
            [f"unknown columns: {', '.join(extra)}"] if extra else [])
        raise ImportRejected([(1, "; ".join(parts) + f". Expected header: {','.join(HEADER)}")])
    reader.fieldnames = header
    problems: list[tuple[int, str]] = []
    rows: list[tuple[int, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if None in row:
            problems.append((line, f"{len(header) + len(row[None])} cells but the header has {len(header)}"))
            continue
        if not any((v or "").strip() for v in row.values()):
            continue
        values = _parse_row(line, row, problems)
        eid = values["employee_id"]
        if eid and eid in seen:
            problems.append((line, f"employee_id {eid!r} also appears on line {seen[eid]}"))
        seen[eid] = line
        rows.append((line, values))
    if not rows and not problems:
        problems.append((1, "the file has a header but no employees"))
    if problems:
        raise ImportRejected(problems)
    return rows


def import_csv(session: Session, text: str, *, now: dt.datetime,
               progress: Callable[[int], None] | None = None) -> ImportResult:
    """Validate *text* entirely, then create or update each employee (idempotent).

    :raise ImportRejected: when any row is invalid; nothing is changed then.
    """
    rows = read_rows(text)
    ids = [values["employee_id"] for _, values in rows]
    existing = _existing(session, ids)
    known_managers = set(ids) | set(existing)
    unknown_managers = [(line, v["manager_id"]) for line, v in rows if v.get("manager_id")
                        and v["manager_id"] not in known_managers]
    missing = {m for _, m in unknown_managers} - _existing_ids(session, {m for _, m in unknown_managers})
    problems = [(line, f"manager_id {m!r} is not an employee in this file or the directory")
                for line, m in unknown_managers if m in missing]
    if problems:
        raise ImportRejected(problems)
    result = ImportResult()
    for done, (_, values) in enumerate(rows, start=1):
        employee = existing.get(values["employee_id"])
        if employee is None:
            employee = Employee(**{**values, "created_at": now, "updated_at": now})
            if not employee.active:
                employee.deactivated_at = now
            session.add(employee)
            result.created += 1
        else:
            wants_active = values.pop("active", None)
            changed = {k: v for k, v in values.items() if getattr(employee, k) != v}
            reactivate = wants_active is True and not employee.active
            for key, value in changed.items():
                setattr(employee, key, value)
            if reactivate:
                employee.active, employee.deactivated_at = True, None
            if changed or reactivate:
                employee.updated_at = now
                session.add(employee)
            if wants_active is False and employee.active:
                people.deactivate(session, employee, now)
                result.deactivated += 1
            elif changed or reactivate:
                result.updated += 1
            else:
                result.unchanged += 1
        if progress and done % 500 == 0:
            progress(500)
    session.flush()
    if progress:
        progress(len(rows) % 500)
    return result


def _existing(session: Session, ids: Iterable[str]) -> dict[str, Employee]:
    found: dict[str, Employee] = {}
    ids = list(ids)
    for start in range(0, len(ids), 900):  # stay under SQLite's bound-parameter limit
        chunk = ids[start:start + 900]
        found.update((e.employee_id, e) for e in session.exec(select(Employee).where(Employee.employee_id.in_(chunk))))
    return found


def _existing_ids(session: Session, ids: set[str]) -> set[str]:
    return set(_existing(session, ids))
