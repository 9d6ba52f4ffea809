"""CSV files that people open in a spreadsheet: every cell written so it cannot run as a formula.

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a formula
by Excel, LibreOffice and Google Sheets (OWASP "CSV injection"); a department called
``=HYPERLINK(...)`` would then run in the admin's spreadsheet. Such cells get a leading ``'``,
which spreadsheets show as text. Numbers are written as numbers (a negative number is data, not a
formula), so only text is escaped. Every CSV Beacon serves goes through :func:`to_csv`.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """*value* ready for a CSV cell: text that a spreadsheet would read as a formula gets a ``'``.

    ``None`` is an empty cell; numbers stay numbers; dates are ISO 8601.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def to_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A CSV document (RFC 4180 quoting, CRLF line ends) of *header* and *rows*, every cell made safe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return out.getvalue()
