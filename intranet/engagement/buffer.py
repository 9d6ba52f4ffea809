"""The event buffer: web workers queue accepted events in a Redis stream; one flusher stores them in bulk.

Without it (the default, and SQLite's embedded setup) every ``POST /api/v1/events`` stores its own
batch: one INSERT and one commit per request. With ``INTRANET_EVENTS_BUFFER_URL`` set (several
instances on PostgreSQL, with the Redis the rate limits already use), a request still validates
its events and checks that the person may see each post named (so the answer says exactly which
events were refused, and why), then appends the accepted ones to a Redis stream with one
round trip (a script: ``XADD`` then ``XLEN``) and answers 202. The stream is the durable part:
nothing is held in a web worker's memory, so a worker that stops loses nothing.

One :class:`Flusher` (in the scheduler process, under its lease; or ``flask intranet events
flush``) reads the stream through a consumer group, stores what it read with the same code as
every other write (:func:`intranet.engagement.events.store`: ``COPY`` on PostgreSQL, the rollups
folded in the same transaction), commits, and only then acknowledges and deletes the entries.
A flusher that dies between reading and acknowledging leaves its entries pending in the group;
the next round of any flusher claims them once they have been idle for
``INTRANET_EVENTS_BUFFER_CLAIM_IDLE_SECONDS`` (``XAUTOCLAIM``), and what had already been stored
is absorbed by the event key (employee, client id) like any retry: stored once, folded once.

When Redis cannot take a batch (down, timing out, or holding more than
``INTRANET_EVENTS_BUFFER_MAX_ENTRIES`` batches because no flusher runs), the worker logs a warning
and stores events directly, as without a buffer, for :data:`RETRY_AFTER` seconds before trying
Redis again: an accepted event is never refused or dropped because of the buffer.

This is the only module that uses Redis streams (redis-py).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pydantic_core
import redis
from sqlalchemy import select
from sqlmodel import Session

from intranet.engagement import events as event_store
from intranet.errors import Unavailable
from intranet.models import Employee, Post
from intranet.settings import EventSettings

logger = logging.getLogger(__name__)

#: The consumer group every flusher reads through.
GROUP = "beacon-flusher"
#: Seconds web workers store events directly after Redis failed (or was full) before trying it again.
RETRY_AFTER = 5.0
#: Redis calls give up after this long, so a dead Redis costs a request at most that (then RETRY_AFTER of direct writes).
TIMEOUT = 0.5
#: Longest single wait for new entries, so a stopping flusher notices within this many seconds.
POLL = 0.5
#: Entries asked for per read (a browser's batch is up to 50 events).
READ_COUNT = 100
#: Version of an entry's layout: a flusher refuses (and sets aside) entries it does not know.
FORMAT = b"1"
#: Append one entry (field, value, ... as ARGV) and answer the stream's length.
_APPEND = "redis.call('XADD', KEYS[1], '*', unpack(ARGV)) return redis.call('XLEN', KEYS[1])"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
#: What varies per event, in the order an entry lists it; the person, receipt time, device and
#: source are the batch's own (one request), so they are written once per entry.
_PER_EVENT = ("client_id", "kind", "post_id", "occurred_at", "local_hour", "local_weekday", "dwell_ms", "delivery_id",
              "channel", "surface", "position")


def _micros(at: dt.datetime) -> int:
    delta = at - _EPOCH  # the timedelta's own fields: about twice as fast as floor-dividing it
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _instant(micros: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=micros)


def encode(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One stream entry for one request's event rows (same person, receipt time, device and source)."""
    first = rows[0]
    events = [[r["client_id"], r["kind"], r["post_id"], _micros(r["occurred_at"]), r["local_hour"], r["local_weekday"],
               r["dwell_ms"], r["delivery_id"], r["channel"], r["surface"], r["position"]] for r in rows]
    # pydantic-core's JSON writer (UTF-8, compact) is about four times as fast as json.dumps here.
    return {"v": FORMAT, "employee": first["employee_pk"], "received": _micros(first["received_at"]),
            "device": first["device"] or "", "source": first["source"], "n": len(rows),
            "events": pydantic_core.to_json(events)}


def decode(fields: Mapping[bytes, bytes]) -> list[dict[str, Any]]:
    """The event rows of one stream entry (the inverse of :func:`encode`).

    :raise ValueError: the entry is not one :func:`encode` wrote.
    """
    if fields.get(b"v") != FORMAT:
        raise ValueError(f"unknown entry format {fields.get(b'v')!r}")
    try:
        employee_pk = int(fields[b"employee"])
        received = _instant(int(fields[b"received"]))
        device = fields[b"device"].decode() or None
        source = fields[b"source"].decode()
        rows = []
        for values in pydantic_core.from_json(fields[b"events"]):
            row = dict(zip(_PER_EVENT, values, strict=True))
            row["occurred_at"] = _instant(row["occurred_at"])
            row.update(employee_pk=employee_pk, received_at=received, device=device, source=source)
            rows.append(row)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed entry: {exc}") from None
    return rows


class EventBuffer:
    """The Redis stream accepted events wait in (one per app; safe to share between threads).

    :param url: the Redis URL (``INTRANET_EVENTS_BUFFER_URL``).
    :param stream: the stream key; set-aside entries go to ``<stream>:dead``.
    """

    def __init__(self, url: str, stream: str, *, max_entries: int = 100_000, flush_events: int = 5000,
                 flush_seconds: float = 1.0, claim_idle: float = 30.0) -> None:
        self.url, self.stream, self.dead_letters = url, stream, f"{stream}:dead"
        self.max_entries, self.flush_events, self.flush_seconds, self.claim_idle = (
            max_entries, flush_events, flush_seconds, claim_idle)
        self.client = redis.Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
        self._append = self.client.register_script(_APPEND)
        self._direct_until = 0.0

    @classmethod
    def from_settings(cls, settings: EventSettings) -> EventBuffer | None:
        """The buffer the settings configure, or None when events are stored by each request."""
        if not settings.buffer_url:
            return None
        return cls(settings.buffer_url, settings.buffer_stream, max_entries=settings.buffer_max_entries,
                   flush_events=settings.buffer_flush_events, flush_seconds=settings.buffer_flush_seconds,
                   claim_idle=settings.buffer_claim_idle_seconds)

    def append(self, rows: Sequence[Mapping[str, Any]]) -> bool:
        """Queue one request's event *rows*: True once Redis holds them, False when the caller must store them.

        One round trip and one command: a script running ``XADD`` then ``XLEN`` (a two-command
        pipeline cost redis-py about twice the client CPU). A stream longer than the bound still
        keeps this batch (it is stored later), and sends the next ones direct for a while.
        """
        if time.monotonic() < self._direct_until:
            return False
        try:
            length = self._append(keys=[self.stream], args=[v for pair in encode(rows).items() for v in pair])
        except redis.RedisError as exc:
            self._go_direct(f"is unavailable ({exc})")
            return False
        if length > self.max_entries:
            self._go_direct(f"holds {length} batches, more than INTRANET_EVENTS_BUFFER_MAX_ENTRIES={self.max_entries}"
                            " (is the scheduler's flusher running?)")
        return True

    def _go_direct(self, why: str) -> None:
        already = time.monotonic() < self._direct_until
        self._direct_until = time.monotonic() + RETRY_AFTER
        if not already:
            logger.warning("Event buffer %s %s: this worker stores events directly for the next %.0f s",
                           self.stream, why, RETRY_AFTER)


@dataclasses.dataclass
class FlushResult:
    """What one flush round did."""

    #: Stream entries (request batches) taken, and the events in them.
    batches: int = 0
    events: int = 0
    #: Events stored now (the rest repeated stored ones: a retry, or a redelivery after a crash).
    stored: int = 0
    #: Events whose person or post was deleted while they waited (erased with them, as stored ones are).
    dropped: int = 0
    #: Entries no flusher can read, moved to the dead-letter stream.
    set_aside: int = 0
    #: How long the oldest entry had waited when its events were committed, in milliseconds (from
    #: the time Redis gave its id: comparable only while Redis's clock and this host's agree).
    waited_ms: int = 0

    def add(self, other: FlushResult) -> None:
        for field in dataclasses.fields(self):
            merge = max if field.name == "waited_ms" else int.__add__
            setattr(self, field.name, merge(getattr(self, field.name), getattr(other, field.name)))


class Flusher:
    """Moves buffered events into the database: read, store and fold, commit, then acknowledge.

    :param store: ``store(session, rows, people)``, the one event write path
        (:func:`intranet.engagement.events.store` with the organisation's zone).
    :param consumer: this flusher's name in the consumer group (default: host, process, random).
    """

    def __init__(self, buffer: EventBuffer, sessions: Callable[[], Session],
                 store: Callable[[Session, list[dict[str, Any]], Mapping[int, Any]], Sequence[Any]],
                 consumer: str | None = None) -> None:
        self.buffer, self.sessions, self.store, self.stream = buffer, sessions, store, buffer.stream
        # A client of its own: its reads block up to the flush interval, longer than a web request may wait.
        self.client = redis.Redis.from_url(buffer.url, socket_timeout=buffer.flush_seconds + 10,
                                           socket_connect_timeout=5)
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._group_ready = False

    def ensure_group(self) -> None:
        """Create the stream and its consumer group unless they exist (entries from the start are read)."""
        if self._group_ready:
            return
        try:
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def flush(self, wait: float = 0.0, stopping: threading.Event | None = None) -> FlushResult:
        """One round: take up to ``flush_events`` events, store them in one transaction, acknowledge them.

        Entries this flusher read before without acknowledging them (its store failed) come first,
        then entries another flusher left idle (it died), then new ones. With *wait*, the round
        waits up to that many seconds for a first new entry, then as long again for more (less
        once *stopping* is set).

        :raise Unavailable: Redis failed (nothing was acknowledged; the entries wait).
        :raise sqlalchemy.exc.SQLAlchemyError: storing failed (rolled back; the entries wait).
        """
        try:
            self.ensure_group()
            entries = self._take(wait, stopping)
        except redis.RedisError as exc:
            raise Unavailable(f"The event buffer's Redis ({self.buffer.url}) cannot be read: {exc}") from exc
        if not entries:
            return FlushResult()
        result = FlushResult(batches=len(entries))
        rows: list[dict[str, Any]] = []
        done: list[bytes] = []
        for entry_id, fields in entries:
            try:
                batch = decode(fields)
            except ValueError as exc:
                self._set_aside(entry_id, fields, str(exc))
                result.set_aside += 1
                done.append(entry_id)
                continue
            rows += batch
            done.append(entry_id)
        result.events = len(rows)
        if rows:
            with self.sessions() as session:
                people = {p.id: p for p in session.execute(select(Employee).where(
                    Employee.id.in_(sorted({r["employee_pk"] for r in rows})))).scalars()}
                wanted = sorted({r["post_id"] for r in rows if r["post_id"] is not None})
                posts = set(session.execute(select(Post.id).where(Post.id.in_(wanted))).scalars()) if wanted else set()
                kept = [r for r in rows if r["employee_pk"] in people and (r["post_id"] is None or r["post_id"] in posts)]
                result.dropped = len(rows) - len(kept)
                result.stored = len(self.store(session, kept, people))
                session.commit()
        oldest = min(int(entry_id.split(b"-", 1)[0]) for entry_id in done)
        result.waited_ms = max(0, int(time.time() * 1000) - oldest)
        # Only now: a crash before this line leaves the entries pending, to be stored again (absorbed).
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.xack(self.stream, GROUP, *done)
            pipe.xdel(self.stream, *done)
            pipe.execute()
        except redis.RedisError as exc:
            # Stored but not acknowledged: redelivered later and absorbed as repeats.
            raise Unavailable(f"The event buffer's Redis ({self.buffer.url}) failed after storing: {exc}") from exc
        if result.dropped:
            logger.info("Event buffer: %d events dropped, their person or post was deleted while they waited",
                        result.dropped)
        return result

    def drain(self) -> FlushResult:
        """Flush rounds until the stream holds nothing for this flusher (``flask intranet events flush``)."""
        total = FlushResult()
        while True:
            result = self.flush()
            if not result.batches:
                return total
            total.add(result)

    def run(self, stopping: threading.Event) -> FlushResult:
        """Flush until *stopping* is set, then drain what is left: the scheduler's flusher thread.

        A failed round (Redis or the database away) is logged and retried a moment later; its
        entries stay in the stream.
        """
        total = FlushResult()
        while not stopping.is_set():
            try:
                total.add(self.flush(wait=self.buffer.flush_seconds, stopping=stopping))
            except Exception:
                logger.exception("Event buffer flush failed; its events stay queued and are retried")
                stopping.wait(self.buffer.flush_seconds)
        try:
            total.add(self.drain())
        except Exception:
            logger.exception("Event buffer: draining at shutdown failed; the events stay queued for the next flusher")
        return total

    def _take(self, wait: float, stopping: threading.Event | None) -> list[tuple[bytes, Mapping[bytes, bytes]]]:
        limit = self.buffer.flush_events
        taken: dict[bytes, Mapping[bytes, bytes]] = {}
        events = 0

        def keep(found: Sequence[Any]) -> None:
            nonlocal events
            for entry_id, fields in found:
                if fields and entry_id not in taken:  # a pending entry deleted meanwhile comes back empty
                    taken[entry_id] = fields
                    events += int(fields.get(b"n", 1))

        # This flusher's own unacknowledged entries (a failed store), then what a dead one left.
        read = self.client.xreadgroup(GROUP, self.consumer, {self.stream: "0"}, count=READ_COUNT)
        keep(read[0][1] if read else [])
        if events < limit:
            keep(self.client.xautoclaim(self.stream, GROUP, self.consumer, min_idle_time=int(self.buffer.claim_idle * 1000),
                                        start_id="0-0", count=READ_COUNT)[1])
        # New entries: wait up to *wait* for a first one, then up to *wait* more while they keep coming,
        # so a busy stream is stored in transactions of up to flush_events (one COPY a second). Waits
        # are cut in slices of POLL seconds so that a stop is noticed at once.
        deadline = time.monotonic() + wait
        first = True
        while events < limit:
            remaining = 0.0 if stopping is not None and stopping.is_set() else deadline - time.monotonic()
            block = int(min(remaining, POLL) * 1000)
            # block=None: do not wait (redis-py's block=0 would wait forever).
            read = self.client.xreadgroup(GROUP, self.consumer, {self.stream: ">"}, count=READ_COUNT,
                                          block=block if block > 0 else None)
            found = read[0][1] if read else []
            if found:
                keep(found)
                if first:
                    first, deadline = False, time.monotonic() + wait
            elif block <= 0 or time.monotonic() >= deadline:
                break
        return list(taken.items())

    def _set_aside(self, entry_id: bytes, fields: Mapping[bytes, bytes], why: str) -> None:
        logger.error("Event buffer entry %s cannot be read (%s); moved to %s", entry_id.decode(), why,
                     self.buffer.dead_letters)
        self.client.xadd(self.buffer.dead_letters, {**fields, b"error": why.encode(), b"entry": entry_id})


def flusher_for(buffer: EventBuffer, sessions: Callable[[], Session], *, org_timezone: str = "UTC") -> Flusher:
    """The flusher of *buffer*, storing through :func:`intranet.engagement.events.store` (rollups folded at once)."""
    return Flusher(buffer, sessions, functools.partial(event_store.store, org_timezone=org_timezone, fold="now"))


class FlusherThread:
    """The flusher as a background thread of the scheduler process; :meth:`stop` drains the stream first."""

    def __init__(self, flusher: Flusher) -> None:
        self.flusher = flusher
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=flusher.run, args=(self.stopping,), name="beacon-event-flusher",
                                       daemon=True)

    def start(self) -> FlusherThread:
        self.thread.start()
        logger.info("Event buffer flusher %s reading %s", self.flusher.consumer, self.flusher.stream)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop reading, store what is queued, and wait for that (up to *timeout* seconds)."""
        self.stopping.set()
        self.thread.join(timeout)
