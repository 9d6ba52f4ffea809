"""Reading HR exports (Workday, BambooHR, SCIM-style CSV) through a column mapping file.

The mapping (``config/hr_mappings/<name>.toml``) names, for each canonical field, the column
that holds it; nothing is guessed from the header. Files may be UTF-8 with or without a BOM,
delimited by ``,``, ``;`` or tab; header names are compared normalized (case, spaces and
punctuation do not matter). Each file has an ``as_of`` date (given, or read from its name) which
decides whether HR is fresh enough to own its fields.

This module only reads and validates: :mod:`intranet.directory.planning` decides what to apply.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import datetime as dt
import hashlib
import io
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from intranet.directory.normalize import Normalizer, clean, fold
from intranet.errors import InvalidInput

CANONICAL_FIELDS = (
    "employee_number", "email", "display_name", "given_name", "family_name", "job_title", "level",
    "department", "division", "cost_center", "office", "city", "country", "region", "timezone", "language",
    "manager", "worker_type", "status", "hire_date", "termination_date",
)
DELIMITERS = (",", ";", "\t")


class HrFileRejected(InvalidInput):
    """The file as a whole cannot be used (encoding, missing columns, unknown mapping)."""


def normalize_header(name: str) -> str:
    """``" Employee-ID "`` and ``employee_id`` compare equal."""
    return re.sub(r"[^0-9a-z]+", "_", fold(name.lstrip("\ufeff"))).strip("_")


@dataclasses.dataclass(frozen=True)
class HrMapping:
    """How one HR system's export maps to Beacon's canonical fields."""

    name: str
    columns: dict[str, str]
    required: tuple[str, ...] = ("employee_number",)
    date_formats: tuple[str, ...] = ("%Y-%m-%d",)
    as_of_pattern: str | None = r"(\d{4}-\d{2}-\d{2})"
    active_values: frozenset[str] = frozenset({"active"})
    inactive_values: frozenset[str] = frozenset({"inactive", "terminated"})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str = "mapping") -> HrMapping:
        columns = dict(data.get("columns") or {})
        unknown = [key for key in columns if key not in CANONICAL_FIELDS]
        if unknown:
            raise HrFileRejected(f"HR mapping {name!r}: unknown canonical field(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(CANONICAL_FIELDS)}.")
        if "employee_number" not in columns:
            raise HrFileRejected(f"HR mapping {name!r} must name the employee_number column (the join key).")
        file = data.get("file") or {}
        status = data.get("status") or {}
        required = tuple(file.get("required", ("employee_number",)))
        missing = [key for key in required if key not in columns]
        if missing:
            raise HrFileRejected(f"HR mapping {name!r} requires {', '.join(missing)} but maps no column to it.")
        return cls(
            name=str(data.get("name", name)),
            columns=columns,
            required=required,
            date_formats=tuple(file.get("date_formats", ("%Y-%m-%d",))),
            as_of_pattern=file.get("as_of_pattern", r"(\d{4}-\d{2}-\d{2})"),
            active_values=frozenset(fold(v) for v in status.get("active", ("Active",))),
            inactive_values=frozenset(fold(v) for v in status.get("inactive", ("Inactive", "Terminated"))),
        )

    @classmethod
    def load(cls, name_or_path: str, mappings_dir: Path) -> HrMapping:
        """A mapping by name (``workday`` -> ``<mappings_dir>/workday.toml``) or by path.

        :raise HrFileRejected: no such mapping, or it is invalid.
        """
        path = Path(name_or_path)
        if not path.suffix:
            path = mappings_dir / f"{name_or_path}.toml"
        if not path.exists():
            available = ", ".join(sorted(p.stem for p in mappings_dir.glob("*.toml"))) or "none"
            raise HrFileRejected(f"No HR mapping {name_or_path!r} (looked for {path}); available: {available}.")
        with path.open("rb") as fh:
            return cls.from_dict(tomllib.load(fh), path.stem)


@dataclasses.dataclass
class HrRow:
    line: int
    number: str | None
    props: dict[str, Any]
    raw: dict[str, str]
    problem: tuple[str, str] | None = None  # (reason code, detail) when the row must be quarantined


@dataclasses.dataclass
class HrExport:
    rows: list[HrRow]
    as_of: dt.datetime
    sha256: str
    file_name: str
    mapping: str

    @property
    def row_count(self) -> int:
        return len(self.rows)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HrFileRejected(f"The HR file is not UTF-8 (byte {exc.start}): export it as UTF-8 (with or without BOM).") from None


def sniff_delimiter(header_line: str) -> str:
    """The delimiter among ``,``, ``;`` and tab that splits the header into the most cells."""
    counts = {d: header_line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    if counts[best] == 0:
        raise HrFileRejected("Cannot tell the delimiter: the header has no ',', ';' or tab.")
    return best


def _parse_date(value: str | None, formats: tuple[str, ...]) -> dt.date | None:
    if not value:
        return None
    for fmt in formats:
        try:
            return dt.datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def as_of_from(file_name: str, mapping: HrMapping) -> dt.datetime | None:
    """The export date from the file's name (``workers_2026-11-20.csv``), at 00:00 UTC."""
    if not mapping.as_of_pattern:
        return None
    match = re.search(mapping.as_of_pattern, Path(file_name).name)
    if not match:
        return None
    try:
        day = dt.date.fromisoformat(match.group(1))
    except ValueError:
        return None
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)


def read_export(data: bytes, mapping: HrMapping, normalizer: Normalizer, *, file_name: str,
                as_of: dt.datetime | None = None, strip_leading_zeros: bool = False) -> HrExport:
    """Parse and normalize an HR export; bad rows are marked (``HrRow.problem``), not dropped.

    :raise HrFileRejected: the file cannot be read, or a required column is missing.
    """
    text = _decode(data)
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    if not first:
        raise HrFileRejected("The HR file is empty.")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(first))
    header = next(reader)
    positions = {normalize_header(h): i for i, h in enumerate(header)}
    columns: dict[str, int] = {}
    for canonical, column in mapping.columns.items():
        index = positions.get(normalize_header(column))
        if index is not None:
            columns[canonical] = index
    missing = [f"{name} (column {mapping.columns[name]!r})" for name in mapping.required if name not in columns]
    if missing:
        raise HrFileRejected(f"The HR file lacks required column(s) for mapping {mapping.name!r}: "
                             f"{', '.join(missing)}. Header found: {', '.join(h.strip() for h in header)}.")
    as_of = as_of or as_of_from(file_name, mapping)
    if as_of is None:
        raise HrFileRejected(f"Cannot tell when {file_name!r} was exported: give --as-of YYYY-MM-DD or put the "
                             "date in the file name (e.g. workers_2026-11-20.csv).")
    rows: list[HrRow] = []
    for line_no, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        raw = {name: cells[i] for name, i in columns.items() if i < len(cells)}
        rows.append(_row(line_no, raw, mapping, normalizer, strip_leading_zeros))
    _mark_duplicates(rows)
    return HrExport(rows=rows, as_of=as_of, sha256=hashlib.sha256(data).hexdigest(), file_name=Path(file_name).name,
                    mapping=mapping.name)


def _row(line: int, raw: dict[str, str], mapping: HrMapping, n: Normalizer, strip_zeros: bool) -> HrRow:
    number = n.employee_number(raw.get("employee_number"), strip_zeros)
    props: dict[str, Any] = {}
    problem: tuple[str, str] | None = None
    if number is None:
        problem = ("no_join_key", "the row has no employee number")
    email_raw = clean(raw.get("email"))
    if email_raw:
        email = n.email(email_raw)
        if email is None:
            problem = problem or ("invalid_email", f"{email_raw!r} is not an email address")
        else:
            props["email"] = email
    display = clean(raw.get("display_name")) or " ".join(
        p for p in (clean(raw.get("given_name")), clean(raw.get("family_name"))) if p) or None
    if display:
        props["display_name"] = display[:255]
    for name in ("job_title", "office", "city", "worker_type"):
        value = clean(raw.get(name))
        if value:
            props[name] = value[:255]
    if clean(raw.get("cost_center")):
        props["cost_center"] = clean(raw.get("cost_center"))[:64]  # type: ignore[index]
    for name, convert in (("department", n.department), ("division", n.division), ("region", n.region),
                          ("country", n.country), ("language", n.language), ("timezone", n.zone)):
        value = convert(raw.get(name))
        if value:
            props[name] = value
    level, label = n.level(raw.get("level"))
    if level is not None:
        props["level"] = level
    if label:
        props["level_label"] = label
    manager = n.employee_number(raw.get("manager"), strip_zeros)
    if manager:
        props["manager"] = manager
        if manager == number:
            problem = problem or ("manager_cycle", "the employee is their own manager")
    status = clean(raw.get("status"))
    if status:
        folded = fold(status)
        if folded in mapping.inactive_values:
            props["inactive"] = True
        elif folded not in mapping.active_values:
            n.unmapped[("hr_status", status)] += 1
    for name in ("hire_date", "termination_date"):
        day = _parse_date(clean(raw.get(name)), mapping.date_formats)
        if day:
            props[name] = day.isoformat()
        elif clean(raw.get(name)):
            problem = problem or ("invalid_date", f"{name} {raw.get(name)!r} is not a date")
    return HrRow(line=line, number=number, props=props, raw=raw, problem=problem)


def _mark_duplicates(rows: list[HrRow]) -> None:
    """Every row of an employee number that appears more than once is quarantined (all of them)."""
    lines: dict[str, list[HrRow]] = collections.defaultdict(list)
    for row in rows:
        if row.number:
            lines[row.number].append(row)
    for number, group in lines.items():
        if len(group) > 1:
            where = ", ".join(str(r.line) for r in group)
            for row in group:
                row.problem = ("duplicate_key", f"employee number {number} appears on lines {where}")
