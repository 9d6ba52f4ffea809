"""Beacon's canonical employee CSV: read and validate a whole file, or refuse it with a line-numbered report.

Header (a contract): ``employee_id,email,display_name,department,division,region,country,office,
job_title,level,manager_id,timezone,language,status``. Empty cells mean "unknown": they never
overwrite a known value. People missing from the file are left alone (this is not a full
export); only an explicit ``status`` deactivates or reactivates someone.

The file is all or nothing: any problem refuses it, and every problem found is reported with its
line number (the line where the record starts). What is checked:

* the bytes: UTF-8 with or without a BOM, or UTF-16 (which Excel's "Unicode Text" writes); other
  encodings (a Windows "CSV (Comma delimited)" save is cp1252) are refused with how to re-save,
  because bytes alone cannot tell cp1252 from cp1250 or Latin-1 and a wrong guess silently
  misspells names;
* the CSV itself: an unclosed quote, a row with too few cells (a truncated file) or too many,
  a cell over the csv module's 131,072-character limit;
* each cell: no spreadsheet formula (a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a
  carriage return runs as a formula when an admin opens an export in a spreadsheet), no control
  characters, the column's length limit, and the column's format;
* the file as a whole: each employee id and each email (case-insensitive) once;
* against the directory (:func:`directory_problems`): managers exist, no manager chain
  loops, and no email belongs to someone else (sign-in finds people by email: a second
  ``ADMIN@...`` row would lock the admin out).

This module only reads and validates; the planner (:mod:`intranet.directory.planning`) turns the
rows into a plan, like any other source, and the run applies it or holds it for an admin.
"""
from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import re
import unicodedata
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from intranet import people
from intranet.directory import managers
from intranet.errors import InvalidInput
from intranet.models import Employee
from intranet.zones import canonical_for

HEADER = ("employee_id", "email", "display_name", "department", "division", "region", "country", "office",
          "job_title", "level", "manager_id", "timezone", "language", "status")
TEXT_FIELDS = ("email", "display_name", "department", "division", "region", "office", "job_title", "language")
#: The database's column sizes: a longer value is refused here rather than failing the write.
MAX_LENGTHS = {"employee_id": 64, "email": 320, "display_name": 255, "department": 255, "division": 255,
               "region": 64, "office": 255, "job_title": 255, "manager_id": 64, "timezone": 64, "language": 16}
FORMULA_START = ("=", "+", "-", "@")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
MAX_REPORTED = 200
SAVE_AS_UTF8 = ("Save it as UTF-8 and import again: in Excel, File > Save As > 'CSV UTF-8 (Comma delimited)'; "
                "in LibreOffice, Save As > 'Text CSV' with 'Edit filter settings' and the character set "
                "'Unicode (UTF-8)'.")
class ImportRejected(InvalidInput):
    """The file was refused as a whole; ``problems`` lists (line, message) pairs."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = sorted(problems, key=lambda p: p[0])
        shown = self.problems[:MAX_REPORTED]
        lines = "\n".join(f"  line {line}: {message}" for line, message in shown)
        more = f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        super().__init__(f"The file was rejected ({len(problems)} problem(s)); nothing was imported:\n{lines}{more}",
                         details=[{"line": line, "message": message} for line, message in self.problems])


@dataclasses.dataclass(frozen=True)
class CanonicalRow:
    """One valid row: the values it gives (absent keys mean "unknown"); ``active`` comes from ``status``."""

    line: int
    employee_id: str
    values: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class CanonicalFile:
    rows: list[CanonicalRow]

    @property
    def row_count(self) -> int:
        return len(self.rows)


def decode(data: bytes) -> str:
    """The file's text: UTF-8 (BOM or not) or UTF-16 (BOM, or the zero bytes of ASCII text without one).

    :raise ImportRejected: any other encoding, naming the line of the first byte that is not UTF-8.
    """
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        encoding = "utf-32"
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif len(data) >= 2 and data[0] and not data[1]:
        encoding = "utf-16-le"
    elif len(data) >= 2 and not data[0] and data[1]:
        encoding = "utf-16-be"
    else:
        encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        if encoding != "utf-8-sig":
            raise ImportRejected([(1, f"the file starts like {encoding.upper()} but is not valid {encoding.upper()} "
                                      f"(at byte {exc.start}). {SAVE_AS_UTF8}")]) from None
        line = data[:exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ImportRejected([(line, f"byte 0x{data[exc.start]:02X} (column {column}) is not UTF-8: the file "
                                     f"looks like a Windows 'CSV (Comma delimited)' export (cp1252). "
                                     f"{SAVE_AS_UTF8}")]) from None
    return text.lstrip("\ufeff")


def read_file(session: Session, data: bytes) -> CanonicalFile:
    """Parse and validate the whole file, on its own and against the directory.

    :raise ImportRejected: listing every problem by line number (the directory is only consulted
        once the bytes, the CSV structure and the header can be read at all).
    """
    file, problems = parse(data)
    problems += directory_problems(session, file)
    if problems:
        raise ImportRejected(problems)
    return file


def parse(data: bytes) -> tuple[CanonicalFile, list[tuple[int, str]]]:
    """The valid rows and the (line, message) problems of the file on its own.

    :raise ImportRejected: when the file cannot be read at all (encoding, header, nothing in it).
    """
    text = decode(data)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    problems: list[tuple[int, str]] = []
    records: list[tuple[int, list[str]]] = []
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append((start, _csv_error(exc, start, reader.line_num)))
            break  # the csv module cannot resynchronise after a quoting error
        records.append((start, cells))
        start = reader.line_num + 1
    if not records:
        raise ImportRejected(problems or [(1, f"the file is empty. Expected header: {','.join(HEADER)}")])
    header = [h.strip() for h in records[0][1]]
    while header and not header[-1]:  # spreadsheets add empty columns after the last used one
        header.pop()
    missing = [h for h in HEADER if h not in header]
    extra = [h for h in header if h not in HEADER]
    if missing or extra:
        parts = ([f"missing columns: {', '.join(missing)}"] if missing else []) + (
            [f"unknown columns: {', '.join(extra)}"] if extra else [])
        raise ImportRejected([(1, "; ".join(parts) + f". Expected header: {','.join(HEADER)}")])
    rows: list[CanonicalRow] = []
    ids: dict[str, int] = {}
    emails: dict[str, int] = {}
    for line, cells in records[1:]:
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header) and not any(c.strip() for c in cells[len(header):]):
            cells = cells[:len(header)]  # the empty trailing columns
        if len(cells) != len(header):
            hint = " (a truncated row?)" if len(cells) < len(header) else ""
            problems.append((line, f"{len(cells)} cells but the header has {len(header)}{hint}"))
            continue
        values = _parse_row(line, dict(zip(header, cells)), problems)
        if values is None:
            continue
        eid = values["employee_id"]
        if eid and eid in ids:
            problems.append((line, f"employee_id {eid!r} also appears on line {ids[eid]}"))
        ids.setdefault(eid, line)
        email = values.get("email")
        if email:
            if email in emails:
                problems.append((line, f"email {email!r} also appears on line {emails[email]} (emails are "
                                       "compared without case; each person needs their own)"))
            emails.setdefault(email, line)
        rows.append(CanonicalRow(line, eid, {k: v for k, v in values.items() if k != "employee_id"}))
    if not rows and not problems:
        problems.append((1, "the file has a header but no employees"))
    return CanonicalFile(rows=rows), problems


def _csv_error(exc: csv.Error, start: int, end: int) -> str:
    text = str(exc)
    if "field larger than field limit" in text:
        return (f"a cell is longer than {csv.field_size_limit():,} characters (no employee field is that long; "
                "an unclosed quote can also swallow the rest of the file)")
    if "unexpected end of data" in text:
        return "a quote opened in this record is never closed (the file ends inside it; is it truncated?)"
    spans = f" (the record runs from line {start} to line {end}: a quote opened here closes too late)" \
        if end > start else ""
    return f"the CSV quoting is broken: {text}{spans}"


def _parse_row(line: int, row: dict[str, str], problems: list[tuple[int, str]]) -> dict[str, Any] | None:
    """The row's values, or None when a cell is unsafe (its content is then not looked at further)."""
    unsafe = False
    for name in HEADER:
        raw = row[name]
        value = raw.strip()
        if value.startswith(FORMULA_START) or raw.startswith(("\t", "\r")):
            first = raw[:1] if raw.startswith(("\t", "\r")) else value[:1]
            problems.append((line, f"{name} {_show(value)} starts with {first!r}: a spreadsheet would run it as "
                                   "a formula, so it is refused (remove the leading character)"))
            unsafe = True
        elif any(unicodedata.category(c) in ("Cc", "Cs") or c in "\u2028\u2029" for c in value):
            problems.append((line, f"{name} contains a line break or another control character"
                                   f"{' (an unclosed quote?)' if chr(10) in value else ''}"))
            unsafe = True
        elif name in MAX_LENGTHS and len(value) > MAX_LENGTHS[name]:
            problems.append((line, f"{name} is {len(value):,} characters long; at most {MAX_LENGTHS[name]} fit"))
            unsafe = True
    if unsafe:
        return None
    values: dict[str, Any] = {}
    cells = {k: row[k].strip() for k in HEADER}
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
        zone = canonical_for(cells["timezone"])
        if zone is None:
            problems.append((line, f"timezone {cells['timezone']!r} is not an IANA time zone such as 'Europe/Paris'"))
        values["timezone"] = zone or cells["timezone"]  # links such as US/Eastern are stored canonical
    if cells["status"]:
        status = cells["status"].lower()
        if status not in ("active", "inactive"):
            problems.append((line, f"status {cells['status']!r} must be 'active' or 'inactive'"))
        values["active"] = status == "active"
    return values


def _show(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


def directory_problems(session: Session, file: CanonicalFile) -> list[tuple[int, str]]:
    """What the file would do to the directory as a whole: unknown managers, loops, shared emails."""
    stored = {eid: (email, manager) for eid, email, manager in session.exec(
        select(Employee.employee_id, func.lower(Employee.email), Employee.manager_id))}
    line_of = {row.employee_id: row.line for row in file.rows}
    problems: list[tuple[int, str]] = []
    for row in file.rows:
        manager = row.values.get("manager_id")
        if manager and manager not in line_of and manager not in stored:
            problems.append((row.line, f"manager_id {manager!r} is not an employee in this file or the directory"))
    # Who holds each email after the import: the file's value where it gives one, else what is stored.
    # Two rows giving the same email were reported by parse already.
    holders: dict[str, list[tuple[str, bool]]] = {}
    for eid, (email, _) in stored.items():
        if email and eid not in line_of:
            holders.setdefault(email, []).append((eid, False))
    for row in file.rows:
        email = row.values.get("email")
        explicit = email is not None
        email = email or (stored.get(row.employee_id) or (None, None))[0]
        if email:
            holders.setdefault(email, []).append((row.employee_id, explicit))
    for row in file.rows:
        email = row.values.get("email")
        others = [eid for eid, explicit in holders.get(email or "", []) if eid != row.employee_id and not explicit]
        if others:
            problems.append((row.line, f"email {email!r} already belongs to employee {others[0]}; two people cannot "
                                       "share an email (sign-in finds people by it)"))
    graph = {eid: manager for eid, (_, manager) in stored.items()}
    graph.update({row.employee_id: row.values["manager_id"] for row in file.rows if "manager_id" in row.values})
    looping = managers.on_cycles(graph)
    for row in file.rows:
        if "manager_id" in row.values and row.employee_id in looping:
            cycle = managers.cycle_from(graph, row.employee_id)
            problems.append((row.line, "the manager chain loops: " + " -> ".join(cycle + cycle[:1])))
    return problems
