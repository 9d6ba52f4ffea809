"""The few statement shapes rollups run on every ingest batch, as driver SQL compiled once per shape.

Folding runs inside the event ingest's transaction, whose whole budget is a few milliseconds per
batch; building and compiling SQLAlchemy constructs per call cost more than the statements
themselves. So the text of each shape (insert-returning-new, add-to-counters, select-by-keys)
is built once per (table, columns, row count, dialect) and run with
``exec_driver_sql``; values go through each column's own bind and result processing, so they
are stored and read exactly as the ORM would. The SQL is the same on SQLite (3.35+) and
PostgreSQL: ``INSERT ... ON CONFLICT``, ``RETURNING`` and row-value ``IN (VALUES ...)``.
"""
from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Table
from sqlmodel import Session

#: Rows per statement: far below SQLite's (32,766) and PostgreSQL's (65,535) parameter limits.
CHUNK = 500


def _marker(dialect: Any) -> str:
    return {"qmark": "?", "format": "%s", "pyformat": "%s"}[dialect.paramstyle]


@functools.lru_cache(maxsize=256)
def _bind(table: Table, dialect: Any, columns: tuple[str, ...]) -> tuple[tuple[int, Any], ...]:
    found = []
    for i, name in enumerate(columns):
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            found.append((i, process))
    return tuple(found)


@functools.lru_cache(maxsize=256)
def _result(table: Table, dialect: Any, columns: tuple[str, ...]) -> tuple[tuple[int, Any], ...]:
    found = []
    for i, name in enumerate(columns):
        column_type = table.c[name].type
        process = column_type.dialect_impl(dialect).result_processor(dialect, None)
        if process is not None:
            found.append((i, process))
    return tuple(found)


def _chunks(rows: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(rows), CHUNK):
        yield rows[start:start + CHUNK]


def _params(table: Table, dialect: Any, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> tuple[Any, ...]:
    processors = _bind(table, dialect, columns)
    out: list[Any] = []
    for row in rows:
        if processors:
            row = list(row)
            for i, process in processors:
                if row[i] is not None:
                    row[i] = process(row[i])
        out.extend(row)
    return tuple(out)


def _read(table: Table, dialect: Any, columns: tuple[str, ...], rows: list[Any]) -> list[tuple[Any, ...]]:
    processors = _result(table, dialect, columns)
    if not processors:
        return [tuple(r) for r in rows]
    out = []
    for r in rows:
        r = list(r)
        for i, process in processors:
            r[i] = process(r[i])
        out.append(tuple(r))
    return out


@functools.lru_cache(maxsize=512)
def _insert_new_sql(table: Table, dialect: Any, columns: tuple[str, ...], conflict: tuple[str, ...],
                    returning: tuple[str, ...], n: int) -> str:
    q, mark = dialect.identifier_preparer.quote, _marker(dialect)
    row = "(" + ", ".join([mark] * len(columns)) + ")"
    return (f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({', '.join(q(c) for c in columns)}) "
            f"VALUES {', '.join([row] * n)} ON CONFLICT ({', '.join(q(c) for c in conflict)}) DO NOTHING "
            f"RETURNING {', '.join(q(c) for c in returning)}")


def insert_new(session: Session, table: Table, columns: tuple[str, ...], rows: Sequence[Sequence[Any]],
               conflict: tuple[str, ...], returning: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """Insert *rows* (value tuples in *columns* order), skipping those clashing on *conflict*;
    the *returning* values of the rows actually inserted."""
    connection, dialect = session.connection(), session.get_bind().dialect
    # In key order, as add(): a second insert of a key waits for the first's transaction on PG.
    positions = [columns.index(k) for k in conflict]
    rows = sorted(rows, key=lambda r: tuple(r[i] for i in positions))
    found: list[tuple[Any, ...]] = []
    for chunk in _chunks(rows):
        sql = _insert_new_sql(table, dialect, columns, conflict, returning, len(chunk))
        found += _read(table, dialect, returning,
                       connection.exec_driver_sql(sql, _params(table, dialect, columns, chunk)).fetchall())
    return found


@functools.lru_cache(maxsize=512)
def _add_sql(table: Table, dialect: Any, columns: tuple[str, ...], keys: tuple[str, ...], n: int,
             greatest: tuple[str, ...] = (), returning: tuple[str, ...] = ()) -> str:
    prep = dialect.identifier_preparer
    q, mark, name = prep.quote, _marker(dialect), prep.format_table(table)
    row = "(" + ", ".join([mark] * len(columns)) + ")"
    # SQLite's two-argument MAX is PostgreSQL's GREATEST.
    biggest = "GREATEST" if dialect.name == "postgresql" else "MAX"
    sets = ", ".join(f"{q(c)} = {biggest}({name}.{q(c)}, excluded.{q(c)})" if c in greatest else
                     f"{q(c)} = {name}.{q(c)} + excluded.{q(c)}" for c in columns if c not in keys)
    tail = f" RETURNING {', '.join(q(c) for c in returning)}" if returning else ""
    return (f"INSERT INTO {name} ({', '.join(q(c) for c in columns)}) VALUES {', '.join([row] * n)} "
            f"ON CONFLICT ({', '.join(q(c) for c in keys)}) DO UPDATE SET {sets}{tail}")


def add(session: Session, table: Table, columns: tuple[str, ...], keys: tuple[str, ...],
        rows: Sequence[Sequence[Any]], *, greatest: tuple[str, ...] = (),
        returning: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    """Add each row's counts (the columns not in *keys*) to the stored row with the same *keys*,
    inserting the row when there is none. Rows must be unique on *keys*.

    :param greatest: columns that keep the larger of the stored and the given value instead of the sum.
    :param returning: columns whose stored values (after the addition) are returned, one tuple per row.
    """
    if not rows:
        return []
    connection, dialect = session.connection(), session.get_bind().dialect
    # In key order, so concurrent writers lock counter rows in the same order (no deadlocks on PG).
    positions = [columns.index(k) for k in keys]
    ordered = sorted(rows, key=lambda r: tuple(r[i] for i in positions))
    found: list[tuple[Any, ...]] = []
    for chunk in _chunks(ordered):
        result = connection.exec_driver_sql(_add_sql(table, dialect, columns, keys, len(chunk), greatest, returning),
                                            _params(table, dialect, columns, chunk))
        if returning:
            found += _read(table, dialect, returning, result.fetchall())
    return found


@functools.lru_cache(maxsize=512)
def _select_sql(table: Table, dialect: Any, columns: tuple[str, ...], keys: tuple[str, ...], n: int) -> str:
    prep = dialect.identifier_preparer
    q, mark = prep.quote, _marker(dialect)
    row = "(" + ", ".join([mark] * len(keys)) + ")"
    name = prep.format_table(table)
    if len(keys) == 1:
        return f"SELECT {', '.join(q(c) for c in columns)} FROM {name} WHERE {q(keys[0])} IN ({', '.join([mark] * n)})"
    # A join on the key list, not "(a, b) IN (VALUES ...)": SQLite (3.40) answers that row-value
    # IN with a scan of the whole table (0.5 s at a million rows, against 4 ms for the join).
    on = " AND ".join(f"{name}.{q(k)} = keys.column{i + 1}" for i, k in enumerate(keys))
    return (f"SELECT {', '.join(f'{name}.{q(c)}' for c in columns)} FROM (VALUES {', '.join([row] * n)}) AS keys "
            f"JOIN {name} ON {on}")


def select_by_keys(session: Session, table: Table, columns: tuple[str, ...], keys: tuple[str, ...],
                   values: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """The *columns* of the rows whose *keys* equal one of *values* (tuples in *keys* order)."""
    connection, dialect = session.connection(), session.get_bind().dialect
    found: list[tuple[Any, ...]] = []
    for chunk in _chunks(values):
        sql = _select_sql(table, dialect, columns, keys, len(chunk))
        found += _read(table, dialect, columns,
                       connection.exec_driver_sql(sql, _params(table, dialect, keys, chunk)).fetchall())
    return found


def run(session: Session, sql: str, params: Sequence[Any], decode: Sequence[tuple[int, Table, str]] = (),
        *, fetch: bool = True) -> list[list[Any]]:
    """Run driver SQL written with ``?`` placeholders (rewritten for the driver's style).

    :param decode: (position, table, column) of result values to read as that column's type.
    """
    dialect = session.get_bind().dialect
    if _marker(dialect) != "?":
        sql = sql.replace("?", _marker(dialect))
    result = session.connection().exec_driver_sql(sql, tuple(params))
    if not fetch:
        return []
    rows = [list(r) for r in result.fetchall()]
    for position, table, column in decode:
        process = _result(table, dialect, (column,))
        if process:
            convert = process[0][1]
            for r in rows:
                r[position] = convert(r[position])
    return rows
