"""Engine, the model base with Beacon's own metadata, and timestamps.

Beacon keeps its tables in its own ``MetaData`` (all prefixed ``intranet_``) so that a host
application's models and migrations never collide with ours.
"""
from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, AwareDatetime
from sqlalchemy import DateTime, MetaData, Table, create_engine, event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import make_transient_to_detached, registry, sessionmaker
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, SQLModel

from intranet import stemming
from intranet.settings import DatabaseSettings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Base(SQLModel, registry=registry(metadata=metadata)):
    """Base of every Beacon table model (and only those)."""


def utcnow() -> dt.datetime:
    """The current time as an aware UTC datetime (the only kind Beacon stores)."""
    return dt.datetime.now(dt.timezone.utc)


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """Return *value* as aware UTC; SQLite hands back naive datetimes that were stored as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MICROSECOND = dt.timedelta(microseconds=1)


def utc_micros(values: Sequence[Any]) -> np.ndarray:
    """Whole microseconds since 1970 UTC of a :class:`UTCDateTime` column's values *as the driver returns them*
    (``type_coerce(column, String)`` skips the decorator): SQLite's stored text, or PostgreSQL's aware datetimes.

    Hot paths that read hundreds of timestamps per request use it instead of one Python datetime per value.
    """
    if not len(values):
        return np.zeros(0, dtype=np.int64)
    if isinstance(values[0], str):  # "YYYY-MM-DD HH:MM:SS[.ffffff]", naive UTC, which numpy parses in C
        return np.array(values, dtype="datetime64[us]").astype(np.int64)
    return np.array([(as_utc(v) - _EPOCH) // _MICROSECOND for v in values], dtype=np.int64)


#: The largest id a Beacon table can hold: ids are PostgreSQL ``integer`` columns (SQLite's reach
#: 2^63 - 1). A larger number cannot even be compared with one there, so it is refused before.
MAX_ID = 2**31 - 1
#: The instants Beacon accepts from people and clients: wide enough for any real post or event,
#: narrow enough that converting zones or adding a few years never leaves Python's years 1-9999.
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
LATEST = dt.datetime(3000, 1, 1, tzinfo=dt.timezone.utc)


def storable_utc(value: dt.datetime) -> dt.datetime:
    """*value*, an aware datetime, in UTC, when it lies between :data:`EARLIEST` and :data:`LATEST`.

    :raise ValueError: for a naive datetime or one outside that range (``0001-01-01T00:00:00+14:00``
        cannot even be converted to UTC).
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("the time needs a UTC offset, e.g. 2026-11-24T09:00:00+01:00")
    try:
        utc = value.astimezone(dt.timezone.utc)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ValueError(f"the time must lie between {EARLIEST.year} and {LATEST.year - 1}")
    return utc


#: A pydantic field type for times sent by clients: aware, in range, and converted to UTC.
Instant = Annotated[AwareDatetime, AfterValidator(storable_utc)]


def make_engine(url: str, *, pool: DatabaseSettings | None = None, **kwargs: Any) -> Engine:
    """Create an engine tuned for the backend behind *url*.

    SQLite gets WAL, foreign keys and a busy timeout so the web process and the scheduler can
    share the file; PostgreSQL gets pre-ping so pooled connections survive restarts.

    :param pool: the pool's size, overflow, timeouts and pre-ping (``INTRANET_DB_*``); SQLite
        keeps SQLAlchemy's own pool for files and memory.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 15})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=15000")
            stemming.register(dbapi_conn)  # the search index's triggers call them
            if parsed.database and parsed.database != ":memory:":
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    if pool is not None:
        kwargs.setdefault("pool_size", pool.pool_size)
        kwargs.setdefault("max_overflow", pool.max_overflow)
        kwargs.setdefault("pool_timeout", pool.pool_timeout_s)
        kwargs.setdefault("pool_pre_ping", pool.pool_pre_ping)
        if parsed.get_backend_name() == "postgresql":
            connect_args = dict(kwargs.get("connect_args") or {})
            connect_args.setdefault("connect_timeout", pool.connect_timeout_s)
            kwargs["connect_args"] = connect_args
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def add_search_functions(engine: Engine) -> None:
    """Give every connection of *engine*, a SQLite engine Beacon did not create (a host application's),
    the SQL functions the search index's triggers call (:func:`intranet.stemming.register`).

    On checkout rather than on connect, so the connections already in the host's pool get them too.
    """
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "checkout")
    def _search_functions(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        stemming.register(dbapi_conn)


def ping(engine: Engine, *, timeout_s: float) -> None:
    """Run one trivial query on *engine*, giving up after about *timeout_s* (readiness checks).

    :raise sqlalchemy.exc.SQLAlchemyError: the database cannot be reached or did not answer in time.
    """
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            # SET LOCAL ends with this transaction: the pooled connection keeps its usual timeout.
            connection.execute(text(f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}"))
        connection.execute(text("SELECT 1"))
        connection.rollback()


def connection_limit(engine: Engine) -> int | None:
    """How many connections PostgreSQL at *engine* accepts from ordinary roles, or None (SQLite).

    ``max_connections`` less the slots kept for superusers (and, from PostgreSQL 16, for roles
    with ``pg_use_reserved_connections``).
    """
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as connection:
        rows = dict(connection.execute(text(
            "SELECT name, setting::int FROM pg_settings WHERE name IN "
            "('max_connections', 'superuser_reserved_connections', 'reserved_connections')")).all())
    return rows["max_connections"] - rows.get("superuser_reserved_connections", 0) - rows.get("reserved_connections", 0)


def connection_demand(pool: DatabaseSettings, *, instances: int, workers: int, scheduler_processes: int = 1) -> int:
    """The most connections a deployment opens: every web worker's pool and overflow, and the scheduler's."""
    return (instances * workers + scheduler_processes) * pool.per_process


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """The one way Beacon opens sessions on *engine* (the app keeps one in its state).

    ``expire_on_commit=False``: objects stay readable after the commit that ends a request or a
    job step, since templates and mail are rendered after it.
    """
    return sessionmaker(bind=engine, class_=Session, expire_on_commit=False)


def attach_loaded(session: Session, model: type[Any], values: dict[str, Any]) -> Any:
    """The *model* instance for *values*, a full row already read (column key -> value), in *session*.

    Does what the ORM does when it loads a row, without the query: the instance is persistent in
    *session*'s identity map, its attributes count as loaded and unchanged, and later changes are
    flushed as usual. When *session* already holds that row, its instance is returned unchanged.
    """
    mapper = inspect(model)
    existing = session.identity_map.get(mapper.identity_key_from_primary_key(
        [values[c.key] for c in mapper.primary_key]))
    if existing is not None:
        return existing
    instance = mapper.class_manager.new_instance()
    vars(instance).update(values)
    make_transient_to_detached(instance)
    session.add(instance)
    return instance


def is_unavailable(exc: BaseException) -> bool:
    """Whether *exc* says the database cannot be reached or dropped the connection (a restart, a
    failover, a network cut), rather than that a statement was wrong: worth a retry, not a 500."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    return isinstance(exc, (OperationalError, InterfaceError)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated)


def is_postgres(session: Session) -> bool:
    """Whether *session* talks to PostgreSQL (row locks and SKIP LOCKED are available)."""
    return session.get_bind().dialect.name == "postgresql"


class UTCDateTime(TypeDecorator):
    """A timestamp stored as UTC and always returned timezone-aware, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("Beacon stores only timezone-aware datetimes; got a naive one.")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return as_utc(value)

    def bind_processor(self, dialect: Any) -> Any:
        general = super().bind_processor(dialect)
        if dialect.name != "sqlite":
            return general

        # SQLite stores the text "YYYY-MM-DD HH:MM:SS.ffffff" (SQLAlchemy's DATETIME format);
        # isoformat writes the same text in one C call, where the general path (this decorator,
        # then DATETIME's dict-and-% formatting) cost several microseconds per value, which
        # showed on hot insert paths with a timestamp per row.
        def process(value: Any) -> str | None:
            if type(value) is not dt.datetime or value.tzinfo is None:
                return general(value)  # type: ignore[no-any-return,misc]
            return value.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(" ", "microseconds")

        return process


def insert_new(session: Session, table: Table, rows: Sequence[dict[str, Any]], conflict: Sequence[str],
               returning: Sequence[str]) -> list[tuple[Any, ...]]:
    """Insert *rows*, skipping those that clash on the unique columns *conflict*.

    SQLite (3.35+) and PostgreSQL both support ``INSERT ... ON CONFLICT DO NOTHING RETURNING``,
    through SQLAlchemy's dialect-specific ``insert``. Returns the *returning* columns of the rows
    actually inserted.
    """
    if not rows:
        return []
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    # An executemany of one cached statement: SQLAlchemy's "insertmanyvalues" turns it into a few
    # multi-row INSERTs with RETURNING, without recompiling a statement per batch.
    statement = (insert(table).on_conflict_do_nothing(index_elements=list(conflict))
                 .returning(*(table.c[name] for name in returning)))
    return [tuple(r) for r in session.execute(statement, list(rows)).all()]


#: Rows per multi-row INSERT: 500 rows of a wide table stay far below SQLite's (32,766) and
#: PostgreSQL's (65,535) bound-parameter limits, and a steady row count keeps statements reusable.
BULK_ROWS = 500


def insert_ignoring_duplicates(session: Session, table: Table, rows: Sequence[dict[str, Any]],
                               conflict: Sequence[str], *, inserted: list[tuple[Any, ...]] | None = None,
                               returning: Sequence[str] = ()) -> int:
    """Insert *rows* with one multi-row ``INSERT ... ON CONFLICT (conflict) DO NOTHING``; return how many were new.

    The lean sibling of :func:`insert_new` for hot paths that need only the count: the statement
    text depends only on the columns and the number of rows, so the driver reuses its prepared
    form (sqlite3's statement cache; psycopg prepares a query after a few executions), and the
    values go through each column's own bind processing, so they are stored exactly as the ORM
    stores them. Every row must have the same keys. Rows clashing with each other or with stored
    rows on *conflict* are skipped and not counted.
    """
    if not rows:
        return 0
    dialect = session.get_bind().dialect
    marker = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(dialect.paramstyle)
    if marker is None:  # a driver with named/numeric placeholders: the general path
        new = insert_new(session, table, rows, conflict, returning or conflict)
        if inserted is not None:
            inserted.extend(new)
        return len(new)
    columns = tuple(rows[0])
    processed = [(i, process) for i, process in enumerate(_bind_processors(table, dialect, columns))
                 if process is not None]
    values_of = operator.itemgetter(*columns) if len(columns) > 1 else (lambda row: (row[columns[0]],))
    connection = session.connection()
    head, tail = _insert_text(table, dialect, columns, tuple(conflict))
    if inserted is not None:
        tail += " RETURNING " + ", ".join(dialect.identifier_preparer.quote(c) for c in returning or conflict)
    row_marks = "(" + ", ".join([marker] * len(columns)) + ")"
    count = 0
    # A value shared by every row (a batch's receipt time) is processed once, not once per row.
    seen: list[Any] = [None] * len(columns)
    done: list[Any] = [None] * len(columns)
    for start in range(0, len(rows), BULK_ROWS):
        chunk = rows[start:start + BULK_ROWS]
        params: list[Any] = []
        for row in chunk:
            values = values_of(row)
            if processed:
                values = list(values)
                for i, process in processed:
                    value = values[i]
                    if value is not seen[i] or value is None:
                        seen[i], done[i] = value, process(value)
                    values[i] = done[i]
            params.extend(values)
        sql = head + ", ".join([row_marks] * len(chunk)) + tail
        result = connection.exec_driver_sql(sql, tuple(params))
        if inserted is None:
            count += result.rowcount
        else:
            new = [tuple(r) for r in result.fetchall()]
            inserted.extend(new)
            count += len(new)
    return count


@functools.lru_cache(maxsize=64)
def _bind_processors(table: Table, dialect: Any, columns: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns)


@functools.lru_cache(maxsize=64)
def _insert_text(table: Table, dialect: Any, columns: tuple[str, ...], conflict: tuple[str, ...]) -> tuple[str, str]:
    quote = dialect.identifier_preparer.quote
    head = (f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
            f"({', '.join(quote(c) for c in columns)}) VALUES ")
    return head, f" ON CONFLICT ({', '.join(quote(c) for c in conflict)}) DO NOTHING"
