"""Driver-level bulk writes for the directory sync: many rows, one statement, no per-row ORM work.

A full Graph round writes some 300,000 rows (employees, Entra records, directory rows). Through
SQLAlchemy's executemany every value of every row goes through its type's bind processor and a
parameter dictionary is built per row. Here:

* each column's bind processor (the column's own SQLAlchemy type, so what is stored is exactly
  what a Core ``insert()`` would store) runs once per *distinct* value where values repeat
  (timestamps: every row of a round carries the same ``now``), and per value only for JSON;
* rows travel as tuples straight to the driver, inside the session's transaction;
* PostgreSQL inserts go through ``COPY ... FROM STDIN`` (psycopg); updates through the driver's
  ``executemany`` (pipelined by psycopg). SQLite uses ``executemany`` on its cursor: each row
  binds its own parameters, so SQLite's bound-parameter limit does not apply.

This module is the only one in the directory package that talks to the DBAPI driver.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, Table
from sqlalchemy.engine import Connection
from sqlmodel import Session

CHUNK = 5000  # rows converted and sent per driver call (bounds memory, not parameters)

_Convert = Callable[[Any], Any]


def _converter(conn: Connection, table: Table, name: str) -> _Convert | None:
    """The column's bind processor for this dialect, memoized by value unless values are JSON."""
    column = table.c[name]
    process = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    if process is None:
        return None
    if isinstance(column.type, JSON):
        return process
    memo: dict[Any, Any] = {}

    def convert(value: Any) -> Any:
        try:
            return memo[value]
        except KeyError:
            out = memo[value] = process(value)
            return out

    return convert


def _tuples(rows: Iterable[Mapping[str, Any]], names: Sequence[str],
            converters: Sequence[_Convert | None]) -> list[tuple[Any, ...]]:
    spec = list(zip(names, converters))
    if all(c is None for c in converters):
        return [tuple([row[n] for n in names]) for row in rows]
    return [tuple([row[n] if c is None else c(row[n]) for n, c in spec]) for row in rows]


def _defaults(table: Table, names: Sequence[str]) -> dict[str, Callable[[], Any]]:
    """Client-side defaults of the columns the rows leave out (what Core would fill in)."""
    out: dict[str, Callable[[], Any]] = {}
    for column in table.columns:
        default = column.default
        if column.name in names or default is None:
            continue
        if default.is_scalar:
            out[column.name] = lambda arg=default.arg: arg  # type: ignore[attr-defined]
        elif default.is_callable:
            out[column.name] = lambda arg=default.arg: arg(None)  # type: ignore[attr-defined]
    return out


def _chunks(rows: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT *rows* (dicts with the same keys) into *table* in the session's transaction.

    Columns the rows leave out get their client-side default (as with Core ``insert()``) or the
    database's.
    """
    if not rows:
        return
    conn = session.connection()
    given = list(rows[0])
    defaults = _defaults(table, given)
    names = given + list(defaults)
    converters = [_converter(conn, table, n) for n in names]
    driver = conn.connection.driver_connection
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(n) for n in names)
    for chunk in _chunks(rows):
        if defaults:
            chunk = [{**row, **{n: make() for n, make in defaults.items()}} for row in chunk]
        values = _tuples(chunk, names, converters)
        if conn.dialect.name == "postgresql":
            with driver.cursor() as cursor, cursor.copy(  # type: ignore[union-attr]
                    f"COPY {quote(table.name)} ({columns}) FROM STDIN") as copy:
                for value in values:
                    copy.write_row(value)
        else:
            marks = ", ".join("?" for _ in names)
            cursor = driver.cursor()  # type: ignore[union-attr]
            try:
                cursor.executemany(f"INSERT INTO {quote(table.name)} ({columns}) VALUES ({marks})", values)
            finally:
                cursor.close()


def update_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]], *, key: str) -> None:
    """UPDATE *table* SET each row's other keys WHERE *key* matches; rows may set different columns."""
    if not rows:
        return
    conn = session.connection()
    groups: dict[frozenset[str], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(frozenset(row), []).append(row)
    driver = conn.connection.driver_connection
    quote = conn.dialect.identifier_preparer.quote
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    for group in groups.values():
        assigned = [n for n in group[0] if n != key]
        if not assigned:
            continue
        order = [*assigned, key]
        converters = [_converter(conn, table, n) for n in order]
        if conn.dialect.name == "postgresql" and len({row[key] for row in group}) == len(group):
            _update_from_arrays(conn, table, group, assigned, key)
            continue
        sql = (f"UPDATE {quote(table.name)} SET {', '.join(f'{quote(n)} = {mark}' for n in assigned)} "
               f"WHERE {quote(key)} = {mark}")
        for chunk in _chunks(group):
            cursor = driver.cursor()  # type: ignore[union-attr]
            try:
                cursor.executemany(sql, _tuples(chunk, order, converters))
            finally:
                cursor.close()


def _update_from_arrays(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], assigned: Sequence[str],
                        key: str) -> None:
    """PostgreSQL: ``UPDATE t SET ... FROM unnest(<one array per column>) v WHERE t.key = v.key``.

    One short statement with one parameter per column: psycopg parses a query with thousands of
    placeholders in Python on every execution, which cost more than the update itself.
    """
    order = [*assigned, key]
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    columns: list[list[Any]] = []
    casts: list[str] = []
    for name in order:
        column = table.c[name]
        values = [row[name] for row in rows]
        if isinstance(column.type, JSON):  # as text (what psycopg's Json dumper sends), cast back below
            null = column.type.none_as_null  # else None is stored as JSON null, as SQLAlchemy does
            values = [None if v is None and null else json.dumps(v) for v in values]
        else:
            convert = _converter(conn, table, name)
            if convert is not None:
                values = [convert(v) for v in values]
        columns.append(values)
        casts.append(f"CAST(%b AS {column.type.compile(dialect=dialect)}[])")  # binary: no escaping
    sql = (f"UPDATE {quote(table.name)} AS t SET {', '.join(f'{quote(n)} = v.{quote(n)}' for n in assigned)} "
           f"FROM unnest({', '.join(casts)}) AS v ({', '.join(quote(n) for n in order)}) "
           f"WHERE t.{quote(key)} = v.{quote(key)}")
    with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(sql, columns)
