"""Reading events: the batch ingest behind ``POST /api/v1/events`` and the historical CSV import.

The ingest path is built for volume: one pass of validation in Python, one query for the posts
the batch mentions (through the targeting rule, so an event about a post the person may not see
is refused exactly like one about a post that does not exist), and one multi-row
``INSERT ... ON CONFLICT DO NOTHING RETURNING`` for the rest. The unique key (employee,
client event id) makes retries and re-imports harmless: a duplicate is counted, never stored twice.

Every event is stored in UTC and with the reader's local hour and weekday (in their own time
zone at that instant), which is what the read-time model and the charts group by.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import functools
import hashlib
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, StrictInt, StrictStr, TypeAdapter,
                      ValidationError, model_validator)
from typing_extensions import NotRequired, TypedDict
from sqlalchemy import Select, Table, Text, bindparam, cast, select
from sqlmodel import Session

from intranet import targeting
from intranet.analytics import rollups
from intranet.db import EARLIEST, LATEST, MAX_ID, insert_ignoring_duplicates, storable_utc
from intranet.errors import InvalidInput
from intranet.languages import N_
from intranet.models import CHANNELS, EVENT_KINDS, EngagementEvent, Employee, Post


#: Kinds a browser may report; the others are recorded by the server (or imported).
CLIENT_KINDS = frozenset({"impression", "open", "read", "session", "digest_open", "digest_click"})
#: Kinds about one post (the others are about the person: a session, a digest).
POST_KINDS = frozenset({"impression", "open", "read", "digest_click", "acknowledge"})
#: A click this soon after its digest was delivered, with no page view after it, is a mail scanner.
SCANNER_WINDOW = dt.timedelta(seconds=60)
#: How long after a click a page view (open or read) must follow for the click to be a person's.
PAGE_VIEW_WINDOW = dt.timedelta(minutes=10)
MAX_DWELL_MS = 24 * 3600 * 1000
_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
_TABLE: Table = EngagementEvent.__table__  # type: ignore[attr-defined]
_EVENT_KEY = ("employee_pk", "client_id")
#: On PostgreSQL the event table is partitioned by month of ``occurred_at``, and a partitioned
#: table's unique constraint must hold the partition key (see :mod:`intranet.engagement.partitions`).
_PARTITIONED_EVENT_KEY = ("employee_pk", "client_id", "occurred_at")


def event_key(session: Session) -> tuple[str, ...]:
    """The columns of the unique event key on *session*'s database, the conflict target of every insert.

    ``(employee_pk, client_id)`` on SQLite; PostgreSQL's partitioned table adds ``occurred_at``.
    Either way a retried or re-imported event (same id, same time) is absorbed as a duplicate.
    """
    return _PARTITIONED_EVENT_KEY if session.get_bind().dialect.name == "postgresql" else _EVENT_KEY


# --------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------


_BOT = re.compile(r"bot|crawl|spider|slurp|preview|scanner|safelinks|proofpoint|mimecast|barracuda|python-|curl/",
                  re.IGNORECASE)
_TABLET = re.compile(r"ipad|tablet|kindle|silk/|(android(?!.*mobile))", re.IGNORECASE)
_PHONE = re.compile(r"mobi|iphone|ipod|android|windows phone|teams/.*mobile", re.IGNORECASE)


def device_class(user_agent: str | None) -> str | None:
    """``phone``, ``tablet``, ``desktop`` or ``bot`` from a User-Agent (None when there is none).

    Derived on the server: the client's own claim is never trusted for this.
    """
    if not user_agent:
        return None
    if _BOT.search(user_agent):
        return "bot"
    if _TABLET.search(user_agent):
        return "tablet"
    if _PHONE.search(user_agent):
        return "phone"
    return "desktop"


_ZONES: dict[str, ZoneInfo] = {}


def zone_of(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    """The ZoneInfo for *name*, or *fallback* when the name is missing or unknown (cached)."""
    key = name or fallback
    zone = _ZONES.get(key)
    if zone is None:
        try:
            zone = ZoneInfo(key)
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo(fallback)
        _ZONES[key] = zone
    return zone


def local_hour_weekday(at: dt.datetime, zone: ZoneInfo) -> tuple[int, int]:
    """The local hour (0-23) and weekday (Monday = 0) of the instant *at* in *zone*."""
    local = at.astimezone(zone)
    return local.hour, local.weekday()


def parse_instant(raw: Any) -> dt.datetime:
    """An aware datetime from ISO 8601 text with an offset (``Z`` allowed).

    :raise ValueError: when the text is not ISO 8601, has no offset, or lies outside the years
        Beacon stores (see :func:`intranet.db.storable_utc`).
    """
    if isinstance(raw, dt.datetime):
        value = raw
    elif isinstance(raw, str) and raw.strip():
        text = raw.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        value = dt.datetime.fromisoformat(text)
    else:
        raise ValueError("expected an ISO 8601 timestamp")
    return storable_utc(value)


# --------------------------------------------------------------------------------------------
# The API batch
# --------------------------------------------------------------------------------------------


class EventIn(BaseModel):
    """One reading event a browser reports. :func:`ingest` reads each event of a batch with this model on
    its own, so one malformed event is rejected without refusing the others."""

    # Strict numbers and names: true, 3.0 and "3" are not ids, positions or durations.
    id: StrictStr = Field(pattern=_ID.pattern, description="Client event id; a repeated id is a duplicate")
    kind: Literal[tuple(sorted(CLIENT_KINDS))]  # type: ignore[valid-type]
    post_id: StrictInt | None = Field(
        default=None, ge=1, le=MAX_ID,
        description=f"The post: required for {', '.join(sorted(POST_KINDS & CLIENT_KINDS))}; null for the others")
    occurred_at: Annotated[dt.datetime, BeforeValidator(parse_instant)] = Field(
        description="ISO 8601 with an offset; at most INTRANET_EVENTS_MAX_AGE_HOURS old")
    dwell_ms: StrictInt | None = Field(default=None, ge=0, le=MAX_DWELL_MS)
    delivery_id: StrictInt | None = Field(default=None, ge=1, le=2**31 - 1)
    channel: Literal[CHANNELS] | None = None  # type: ignore[valid-type]
    surface: StrictStr | None = Field(default=None, min_length=1, max_length=16)
    position: StrictInt | None = Field(default=None, ge=0, le=10_000)

    @model_validator(mode="after")
    def _post_when_about_a_post(self) -> EventIn:
        if (self.kind in POST_KINDS) != (self.post_id is not None):
            raise ValueError(f"a {self.kind} event {'needs' if self.kind in POST_KINDS else 'takes no'} post_id")
        return self


class EventBatchIn(BaseModel):
    """``POST /api/v1/events``: a batch of events; the CSRF token may come in the body (``sendBeacon``)."""

    events: list[EventIn]
    csrf_token: str | None = None


def _wire_fields() -> dict[str, Any]:
    # EventIn's fields with their types and bounds, for a TypedDict (validated without building a
    # model per event); the time stays text, read by _instant, and the post rule is checked in _row.
    fields: dict[str, Any] = {}
    for name, info in EventIn.model_fields.items():
        annotation: Any = StrictStr if name == "occurred_at" else (
            Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation)
        fields[name] = annotation if info.is_required() else NotRequired[annotation]
    return fields


#: One event of a batch as sent, when the whole batch is well formed (no other field allowed).
EventWire = TypedDict("EventWire", _wire_fields())  # type: ignore[misc]
EventWire.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]


class BatchWire(TypedDict):
    events: list[EventWire]  # type: ignore[valid-type]
    csrf_token: NotRequired[StrictStr | None]


BatchWire.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
#: ``POST /api/v1/events``'s body validated in one compiled pass over the raw bytes
#: (``BATCH.validate_json``): the fast path for a batch in which every event is well formed. A body
#: it refuses (one bad event, an unknown field) is read event by event with :class:`EventIn`
#: instead, which answers exactly which events were malformed; both paths accept the same events.
BATCH: TypeAdapter[BatchWire] = TypeAdapter(BatchWire)


class RejectedEvent(TypedDict):
    id: str
    code: str


class IngestResult(BaseModel):
    """What became of each event in a batch (200: stored; 202: queued, stored within seconds)."""

    accepted: int = Field(0, description=(
        "Events stored (200), or queued to be stored (202: an event that repeats one already stored is "
        "then absorbed, not stored twice)"))
    duplicates: int = Field(0, description="Repeats of an event already stored (200) or earlier in this batch")
    rejected: list[RejectedEvent] = Field(default_factory=list, description=(
        'code: "invalid" (malformed), "not_found" (no such post, or not yours to see), or '
        '"out_of_range" (too far in the past or future)'))
    _queued: bool = PrivateAttr(False)

    @property
    def queued(self) -> bool:
        """Whether the accepted events were queued for the flusher rather than stored (answer 202)."""
        return self._queued


def ingest(session: Session, employee: Employee, events: Any, *, now: dt.datetime, user_agent: str | None = None,
           org_timezone: str = "UTC", max_batch: int = 500, max_age: dt.timedelta = dt.timedelta(hours=72),
           max_skew: dt.timedelta = dt.timedelta(minutes=5),
           buffer: Callable[[list[dict[str, Any]]], bool] | None = None,
           recent: RecentlyVisible | None = None, checked: bool = False) -> IngestResult:
    """Store (or queue) a batch of *employee*'s client events; answer what was accepted, duplicated or rejected.

    Each rejected event comes back as ``{"id", "code"}`` with code ``invalid`` (malformed),
    ``not_found`` (the post does not exist or the person may not see it: the same answer for both),
    or ``out_of_range`` (timestamp too far in the past or future). Valid events in the same batch
    are stored regardless.

    Three steps, each over the whole batch: :func:`_valid_rows` (Python only), :func:`_visible_rows`
    (one query for the posts named, except those *recent* remembers), then :func:`store` (one
    insert), unless *buffer* takes the
    rows: it returns True once they are queued for the flusher (:mod:`intranet.engagement.buffer`),
    and False when it cannot queue them, in which case they are stored here as usual. Queued
    events count as accepted (the result's :attr:`IngestResult.queued` is set); a queued event
    that repeats one already stored is absorbed when the flusher stores it.

    :param checked: *events* are a :data:`BATCH`'s, validated already (only the post rule, the
        time and its range are left to check); otherwise each raw event is read with :class:`EventIn`.
    :raise InvalidInput: when *events* is not a list, or is longer than *max_batch*.
    """
    if not isinstance(events, list):
        raise InvalidInput(N_('Send {"events": [...]}.'), details={"field": "events"})
    if len(events) > max_batch:
        raise InvalidInput(N_("At most %(most)s events per batch; send the rest in another request."), most=max_batch,
                           details={"field": "events", "max": max_batch})
    result = IngestResult()
    rows = (_checked_rows if checked else _valid_rows)(
        events, employee, result, now=now, device=device_class(user_agent),
        zone=zone_of(employee.timezone, org_timezone), earliest=now - max_age, latest=now + max_skew)
    rows = _visible_rows(session, employee, rows, result, now=now, recent=recent)
    if rows and buffer is not None and buffer(rows):
        result.accepted = len(rows)
        result._queued = True
        return result
    result.accepted = store_events(session, rows)
    result.duplicates += len(rows) - result.accepted
    return result


def _valid_rows(events: list[Any], employee: Employee, result: IngestResult, *, now: dt.datetime,
                device: str | None, zone: ZoneInfo, earliest: dt.datetime, latest: dt.datetime) -> list[dict[str, Any]]:
    """The rows of the well-formed, in-range events, each event id once; the others go into *result*."""
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    for raw in events:
        try:
            event = EventIn.model_validate(raw)
        except ValidationError:
            raw_id = raw.get("id") if isinstance(raw, dict) else None
            result.rejected.append({"id": raw_id if isinstance(raw_id, str) else str(raw_id), "code": "invalid"})
            continue
        event_id, occurred = event.id, event.occurred_at
        if not earliest <= occurred <= latest:
            result.rejected.append({"id": event_id, "code": "out_of_range"})
            continue
        if event_id in seen:
            result.duplicates += 1
            continue
        seen.add(event_id)
        hour, weekday = local_hour_weekday(occurred, zone)
        rows.append({"employee_pk": employee.id, "client_id": event_id, "kind": event.kind, "post_id": event.post_id,
                     "occurred_at": occurred, "received_at": now, "local_hour": hour, "local_weekday": weekday,
                     "dwell_ms": event.dwell_ms, "delivery_id": event.delivery_id, "channel": event.channel,
                     "surface": event.surface, "position": event.position, "device": device, "source": "client"})
    return rows


_UTC = dt.timezone.utc
_from_iso = dt.datetime.fromisoformat


def _instant(text: str) -> dt.datetime:
    """:func:`parse_instant` of *text*, with the common case (a browser's ``toISOString()``) parsed in
    C; the storable range is left to the caller's (narrower) window. :raise ValueError: as parse_instant."""
    try:
        value = _from_iso(text)
    except ValueError:
        return parse_instant(text)  # whitespace, a lower-case z ...: its answer, exactly
    if value.tzinfo is None:
        raise ValueError("expected an offset")
    return value.astimezone(_UTC)


def _checked_rows(events: list[EventWire], employee: Employee, result: IngestResult, *, now: dt.datetime,  # type: ignore[valid-type]
                  device: str | None, zone: ZoneInfo, earliest: dt.datetime,
                  latest: dt.datetime) -> list[dict[str, Any]]:
    """:func:`_valid_rows` for the events of a :data:`BATCH` (types and bounds checked already): the same
    rows and the same refusals, without a model per event."""
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    employee_pk, post_kinds = employee.id, POST_KINDS
    for event in events:
        event_id, kind, post_id = event["id"], event["kind"], event.get("post_id")
        try:
            if (kind in post_kinds) != (post_id is not None):
                raise ValueError("the post rule")
            occurred = _instant(event["occurred_at"])
        except (ValueError, OverflowError):
            result.rejected.append({"id": event_id, "code": "invalid"})
            continue
        if not earliest <= occurred <= latest:
            # Outside the years Beacon stores is malformed (parse_instant's answer), not merely out of range.
            code = "out_of_range" if EARLIEST <= occurred < LATEST else "invalid"
            result.rejected.append({"id": event_id, "code": code})
            continue
        if event_id in seen:
            result.duplicates += 1
            continue
        seen.add(event_id)
        hour, weekday = local_hour_weekday(occurred, zone)
        rows.append({"employee_pk": employee_pk, "client_id": event_id, "kind": kind, "post_id": post_id,
                     "occurred_at": occurred, "received_at": now, "local_hour": hour, "local_weekday": weekday,
                     "dwell_ms": event.get("dwell_ms"), "delivery_id": event.get("delivery_id"),
                     "channel": event.get("channel"), "surface": event.get("surface"),
                     "position": event.get("position"), "device": device, "source": "client"})
    return rows


def _visible_rows(session: Session, employee: Employee, rows: list[dict[str, Any]], result: IngestResult, *,
                  now: dt.datetime, recent: RecentlyVisible | None = None) -> list[dict[str, Any]]:
    """*rows* without those about a post *employee* may not see at *now* (refused as ``not_found`` in *result*)."""
    post_ids = {row["post_id"] for row in rows if row["post_id"] is not None}
    if not post_ids:
        return rows
    visible = visible_post_ids(session, employee, post_ids, now, recent)
    if len(visible) == len(post_ids):
        return rows
    kept = []
    for row in rows:
        if row["post_id"] is not None and row["post_id"] not in visible:
            result.rejected.append({"id": row["client_id"], "code": "not_found"})
        else:
            kept.append(row)
    return kept


def store_events(session: Session, rows: list[dict[str, Any]]) -> int:
    """Store one API batch's event *rows* (see :func:`store`); return how many were new.

    The rollups are folded a moment later, in bulk (:func:`intranet.analytics.rollups.queue`):
    folding one request's few events costs about as much as storing them.
    """
    return len(store(session, rows, {}, fold="queued"))


#: The columns of an event row, in the order :func:`store` writes them.
COLUMNS = ("employee_pk", "client_id", "kind", "post_id", "occurred_at", "received_at", "local_hour", "local_weekday",
           "dwell_ms", "delivery_id", "channel", "surface", "position", "device", "source")
#: Batches this large go through ``COPY`` on PostgreSQL (a smaller one is cheaper as one INSERT).
COPY_FROM = 200
_LOAD_TABLE = "beacon_event_load"


def store(session: Session, rows: Sequence[Mapping[str, Any]], people: Mapping[int, rollups.Person], *,
          org_timezone: str = "UTC", fold: Literal["now", "queued"] = "now") -> list[tuple[int, int, str]]:
    """Store event *rows* and keep the rollups current: the one write path of every event.

    The API's direct path, the buffer's flusher, the CSV import and server-recorded events all
    come here. An event already stored for that person under the same client id (or repeated in
    *rows*; the first one wins) is skipped: retries, re-sent batches, a flusher's redelivery after
    a crash and re-imports are absorbed, never stored twice, and only the events stored now are
    folded, so no count moves twice.

    :param rows: event rows with the keys of :data:`COLUMNS`.
    :param people: the people behind *rows*, by primary key (what folding groups by); unused
        when *fold* is ``"queued"``.
    :param fold: ``"now"`` folds the new events into the rollups in this transaction (bulk
        writers); ``"queued"`` queues their ids for the analytics-fold job (one request's few).
    :return: (id, employee_pk, client_id) of each event stored now.
    """
    if not rows:
        return []
    unique = list({(r["employee_pk"], r["client_id"]): r for r in reversed(rows)}.values())[::-1]
    stored = insert_events(session, unique)
    if fold == "queued":
        rollups.queue(session, [event_id for event_id, _, _ in stored])
    else:
        rollups.fold(session, unique, people, org_timezone=org_timezone,
                     stored=[(employee_pk, client_id) for _, employee_pk, client_id in stored])
    return stored  # type: ignore[return-value]


def insert_events(session: Session, rows: Sequence[Mapping[str, Any]]) -> list[tuple[int, int, str]]:
    """Insert event *rows* (each key once), skipping stored ones; (id, employee_pk, client_id) of the new ones.

    The insert half of :func:`store`, without the rollups (the benchmark times the two apart):
    ``COPY`` on PostgreSQL from :data:`COPY_FROM` rows, else multi-row ``INSERT ... ON CONFLICT
    DO NOTHING RETURNING`` (500 rows a statement, which, unlike an ``executemany``, says which rows
    were new: only those are folded).
    """
    if session.get_bind().dialect.name == "postgresql" and len(rows) >= COPY_FROM:
        return _copy_new(session, rows)  # type: ignore[return-value]
    stored: list[tuple[Any, ...]] = []
    insert_ignoring_duplicates(session, _TABLE, rows, event_key(session), inserted=stored,  # type: ignore[arg-type]
                               returning=("id", "employee_pk", "client_id"))
    return stored  # type: ignore[return-value]


def _copy_new(session: Session, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """PostgreSQL: ``COPY`` *rows* into a temporary table, then move the new ones over with one
    ``INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING`` (COPY itself cannot skip duplicates).

    The temporary table lives as long as the connection and is emptied at each commit, so a
    pooled connection creates it once.
    """
    columns = ", ".join(COLUMNS)
    key = ", ".join(event_key(session))
    connection = session.connection()
    connection.exec_driver_sql(f"CREATE TEMPORARY TABLE IF NOT EXISTS {_LOAD_TABLE} ON COMMIT DELETE ROWS AS "
                               f"SELECT {columns} FROM {_TABLE.name} WITH NO DATA")
    driver = connection.connection.driver_connection
    values = operator.itemgetter(*COLUMNS)
    with driver.cursor() as cursor:  # type: ignore[union-attr]
        with cursor.copy(f"COPY {_LOAD_TABLE} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(values(row))
        cursor.execute(f"INSERT INTO {_TABLE.name} ({columns}) SELECT {columns} FROM {_LOAD_TABLE} "
                       f"ON CONFLICT ({key}) DO NOTHING RETURNING id, employee_pk, client_id")
        stored = cursor.fetchall()
        cursor.execute(f"TRUNCATE {_LOAD_TABLE}")
    return stored


@functools.lru_cache(maxsize=16)
def _live_posts(slots: int) -> Select[Any]:
    """The live posts among *slots* ids, with their audiences as stored (text).

    The SQL form of targeting's liveness rule, so only audiences are left to check in Python. The
    ids are *slots* plain parameters rather than one "expanding" list: SQLAlchemy rewrites an
    expanding statement's text on every execution (more time than the query itself on SQLite),
    while this one is compiled once per size and reused by the driver.
    """
    ids = [bindparam(f"id{i}") for i in range(slots)]
    return (select(Post.id, cast(Post.audience, Text).label("audience"), Post.journey_only, Post.expires_at)
            .where(Post.id.in_(ids), targeting.live_filter(bindparam("now"))))


def _id_slots(count: int) -> int:
    # Sizes grow by powers of two (at least 8), so a few statements serve every batch.
    return max(8, 1 << (count - 1).bit_length())


_AUDIENCES: dict[str, targeting.Audience] = {}
_AUDIENCES_KEPT = 4096


def _audience(stored: str) -> targeting.Audience:
    """The parsed audience for its stored JSON text (cached: a post's audience is read by every batch about it)."""
    audience = _AUDIENCES.get(stored)
    if audience is None:
        if len(_AUDIENCES) >= _AUDIENCES_KEPT:
            _AUDIENCES.clear()
        audience = _AUDIENCES[stored] = targeting.Audience.model_validate_json(stored)
    return audience


class RecentlyVisible:
    """Posts each person was found allowed to see, remembered for a few seconds (per app and process).

    A browser reports events about the same few posts batch after batch (impressions, then the
    open, the read), and checking them is a database query per batch, about a fifth of the
    request. Only "may see" is remembered, never past the post's expiry; a refusal is checked
    afresh every time, so a post published or widened to the person is admitted at once. A post
    unpublished or retargeted away from them is refused at most *seconds* later: until then,
    events about a post they could see seconds ago are still accepted.

    :param seconds: how long a verdict is kept (``INTRANET_EVENTS_VISIBILITY_CACHE_SECONDS``; 0: never).
    """

    def __init__(self, seconds: float, max_entries: int = 200_000) -> None:
        self.keep = dt.timedelta(seconds=seconds)
        self.max_entries = max_entries
        self._until: dict[tuple[int, int], dt.datetime] = {}

    def known(self, employee_pk: int, post_ids: Iterable[int], now: dt.datetime) -> set[int]:
        """Which of *post_ids* the person was found allowed to see, with the verdict still fresh at *now*."""
        until = self._until
        return {p for p in post_ids if (u := until.get((employee_pk, p))) is not None and now < u}

    def remember(self, employee_pk: int, posts: Iterable[tuple[int, dt.datetime | None]], now: dt.datetime) -> None:
        """Keep "may see" for each (post id, its expiry or None) until the earlier of *now* + seconds and the expiry."""
        if not self.keep:
            return
        if len(self._until) >= self.max_entries:
            self._until.clear()  # bounded memory: the next batches simply check again
        horizon = now + self.keep
        for post_id, expires in posts:
            self._until[(employee_pk, post_id)] = horizon if expires is None else min(horizon, expires)


def visible_post_ids(session: Session, employee: Employee, post_ids: Iterable[int], now: dt.datetime,
                     recent: RecentlyVisible | None = None) -> set[int]:
    """Which of *post_ids* exist and may be seen by *employee* at *now*.

    The targeting rule over the few posts a batch names: one Core query by primary key keeps the
    live ones (the rule's SQL form), then the rule's Python predicate decides each distinct
    audience once per batch (posts often share one, such as all staff). Audiences are parsed once
    per process, keyed by their stored text (so an edited audience is parsed afresh), and the
    person's groups are looked up only when an audience names a group. With *recent*, posts the
    person was allowed to see moments ago are not asked about again.
    """
    keys: set[str] | None = None
    managers: set[str] | None = None
    verdicts: dict[str, bool] = {}
    visible = recent.known(employee.id, post_ids, now) if recent is not None else set()  # type: ignore[arg-type]
    ids = sorted(set(post_ids) - visible)
    if not ids:
        return visible
    slots = _id_slots(len(ids))
    # Unused slots repeat the first id, which changes nothing in an IN list.
    params: dict[str, Any] = {f"id{i}": ids[i] if i < len(ids) else ids[0] for i in range(slots)}
    params["now"] = now
    rows = session.connection().execute(_live_posts(slots), params).all()
    # Journey steps count only once released to this person (targeting's release rule).
    steps = [post_id for post_id, _, journey_only, _ in rows if journey_only]
    released = targeting.released_post_ids(session, employee.id, steps, now) if steps else set()
    found = []
    for post_id, stored, journey_only, expires in rows:
        if journey_only and post_id not in released:
            continue
        verdict = verdicts.get(stored)
        if verdict is None:
            audience = _audience(stored)
            if keys is None and any(s.groups for s in (*audience.segments, *audience.exclude)):
                keys = targeting.group_keys_of(session, employee.id)
            if managers is None and targeting.uses_managers(audience):
                managers = targeting.managers_of(session, employee)
            verdict = verdicts[stored] = targeting.employee_matches(audience, employee, keys or (),
                                                                    managers=managers or (), now=now)
        if verdict:
            found.append((post_id, expires))
    if recent is not None:
        recent.remember(employee.id, found, now)  # type: ignore[arg-type]
    return visible | {post_id for post_id, _ in found}


def record(session: Session, employee: Employee, kind: str, *, at: dt.datetime, client_id: str,
           post_id: int | None = None, delivery_id: int | None = None, channel: str | None = None,
           org_timezone: str = "UTC", fold: bool = True) -> bool:
    """Record one server-side event (a digest sent, an acknowledgement); False if already recorded.

    :param fold: fold it into the rollups now; False queues it for :func:`intranet.analytics.rollups.fold_pending`
        (one small insert in this transaction), as a sender does for a batch of messages it folds once.
    """
    hour, weekday = local_hour_weekday(at, zone_of(employee.timezone, org_timezone))
    row = {"employee_pk": employee.id, "client_id": client_id, "kind": kind, "post_id": post_id,
           "occurred_at": at, "received_at": at, "local_hour": hour, "local_weekday": weekday,
           "dwell_ms": None, "delivery_id": delivery_id, "channel": channel, "surface": None,
           "position": None, "device": None, "source": "server"}
    return bool(store(session, [row], {employee.id: employee}, org_timezone=org_timezone,  # type: ignore[dict-item]
                      fold="now" if fold else "queued"))


# --------------------------------------------------------------------------------------------
# Mail scanners
# --------------------------------------------------------------------------------------------


def is_scanner_click(click_at: dt.datetime, delivered_at: dt.datetime | None,
                     page_views: Iterable[dt.datetime]) -> bool:
    """Whether a digest click looks like a mail scanner rather than a person.

    A click within :data:`SCANNER_WINDOW` of the delivery with no page view (an ``open`` or
    ``read``) within :data:`PAGE_VIEW_WINDOW` after it does not count as a read.
    """
    if delivered_at is None or click_at - delivered_at > SCANNER_WINDOW or click_at < delivered_at:
        return False
    return not any(click_at <= v <= click_at + PAGE_VIEW_WINDOW for v in page_views)


# --------------------------------------------------------------------------------------------
# The historical CSV import
# --------------------------------------------------------------------------------------------

CSV_HEADER = ("employee_id", "post_id", "kind", "occurred_at", "dwell_ms")
IMPORT_CHUNK = 1000


@dataclasses.dataclass
class ImportResult:
    rows: int = 0
    loaded: int = 0
    duplicates: int = 0
    errors: list[tuple[int, str]] = dataclasses.field(default_factory=list)


def import_client_id(employee_id: str, post_id: int | None, kind: str, occurred: dt.datetime,
                     dwell_ms: int | None) -> str:
    """A stable event id for an imported row: the same row (same instant, any offset) gives the same id."""
    key = f"{employee_id}\x1f{post_id or ''}\x1f{kind}\x1f{occurred.isoformat()}\x1f{'' if dwell_ms is None else dwell_ms}"
    return "csv-" + hashlib.blake2b(key.encode(), digest_size=20).hexdigest()


def _parse_row(line: int, row: dict[str, str], now: dt.datetime) -> tuple[str, int | None, str, dt.datetime, int | None]:
    employee_id = (row.get("employee_id") or "").strip()
    if not employee_id:
        raise ValueError("employee_id is empty")
    kind = (row.get("kind") or "").strip()
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown kind {kind!r} (use one of: {', '.join(EVENT_KINDS)})")
    raw_post = (row.get("post_id") or "").strip()
    if kind in POST_KINDS:
        if not raw_post.isdigit():
            raise ValueError(f"kind {kind} needs a numeric post_id")
        post_id: int | None = int(raw_post)
    elif raw_post:
        raise ValueError(f"kind {kind} takes no post_id")
    else:
        post_id = None
    try:
        occurred = parse_instant(row.get("occurred_at"))
    except ValueError as exc:
        raise ValueError(f"occurred_at: {exc}") from None
    if occurred > now + dt.timedelta(minutes=5):
        raise ValueError("occurred_at is in the future")
    raw_dwell = (row.get("dwell_ms") or "").strip()
    dwell = None
    if raw_dwell:
        if not raw_dwell.isdigit() or int(raw_dwell) > MAX_DWELL_MS:
            raise ValueError("dwell_ms must be a whole number of milliseconds (at most one day)")
        dwell = int(raw_dwell)
    return employee_id, post_id, kind, occurred, dwell


def import_csv(session: Session, lines: Iterable[str], *, now: dt.datetime, org_timezone: str = "UTC",
               progress: Callable[[int], None] | None = None) -> ImportResult:
    """Import historical engagement from CSV (header ``employee_id,post_id,kind,occurred_at,dwell_ms``).

    Valid rows load even when others are wrong; each wrong row is reported with its line number
    (unknown employees and posts included). Re-importing the same file changes nothing: every
    row's event id is derived from its content.

    :raise InvalidInput: when the header is missing or lacks a required column.
    """
    reader = csv.DictReader(lines)
    missing = [c for c in CSV_HEADER if c not in (reader.fieldnames or [])]
    if missing:
        raise InvalidInput(f"The CSV header must be {','.join(CSV_HEADER)}; missing: {', '.join(missing)}.")
    result = ImportResult()
    for chunk in _chunks(reader, IMPORT_CHUNK):
        parsed: list[tuple[int, tuple[str, int | None, str, dt.datetime, int | None]]] = []
        for line, row in chunk:
            result.rows += 1
            try:
                parsed.append((line, _parse_row(line, row, now)))
            except ValueError as exc:
                result.errors.append((line, str(exc)))
        people = {e.employee_id: e for e in session.execute(select(Employee).where(
            Employee.employee_id.in_(sorted({p[0] for _, p in parsed})))).scalars()}
        posts = set(session.execute(select(Post.id).where(
            Post.id.in_(sorted({p[1] for _, p in parsed if p[1] is not None})))).scalars())
        rows = []
        for line, (employee_id, post_id, kind, occurred, dwell) in parsed:
            employee = people.get(employee_id)
            if employee is None:
                result.errors.append((line, f"unknown employee {employee_id!r}"))
                continue
            if post_id is not None and post_id not in posts:
                result.errors.append((line, f"unknown post {post_id}"))
                continue
            hour, weekday = local_hour_weekday(occurred, zone_of(employee.timezone, org_timezone))
            rows.append({"employee_pk": employee.id,
                         "client_id": import_client_id(employee_id, post_id, kind, occurred, dwell),
                         "kind": kind, "post_id": post_id, "occurred_at": occurred, "received_at": now,
                         "local_hour": hour, "local_weekday": weekday, "dwell_ms": dwell, "delivery_id": None,
                         "channel": None, "surface": None, "position": None, "device": None, "source": "import"})
        inserted = store(session, rows, {e.id: e for e in people.values()}, org_timezone=org_timezone)
        result.loaded += len(inserted)
        result.duplicates += len(rows) - len(inserted)
        if progress:
            progress(len(chunk))
    result.errors.sort()
    return result


def _chunks(reader: csv.DictReader, size: int) -> Iterator[list[tuple[int, dict[str, str]]]]:
    chunk: list[tuple[int, dict[str, str]]] = []
    for row in reader:
        chunk.append((reader.line_num, row))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
