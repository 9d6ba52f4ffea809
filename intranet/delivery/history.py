"""Reading history -> the read-time model's decayed counts, kept up to date incrementally.

Each person's counts (digest reads, exposure, activity per local hour of the week) are stored in
:class:`~intranet.models.TimingState` as of an instant and decayed lazily (``0.5 ** (days /
half-life)``), so no nightly rewrite is needed. The refresh job folds in only events that are
*settled* (received more than the censoring window ago, so every open that can belong to a digest
is already known); at planning time the few unsettled events are counted afresh on top.

Event kinds feed the model like this: ``digest_sent`` is exposure, ``digest_open`` (not a tracking
pixel: Apple Mail prefetches those) and ``digest_click`` (not a mail scanner) are digest reads,
``session``, ``open`` and ``read`` are send-independent activity.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import io
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlmodel import Session

from intranet.delivery import timing
from intranet.engagement.events import PAGE_VIEW_WINDOW, SCANNER_WINDOW
from intranet.models import EngagementEvent, TimingModel, TimingState

H = timing.HOURS_PER_WEEK
_MODEL_KINDS = ("digest_sent", "digest_open", "digest_click", "session", "open", "read")
_STATE = TimingState.__table__  # type: ignore[attr-defined]


@dataclasses.dataclass
class EventArrays:
    """Events as parallel arrays: employee row index, epoch seconds, local hour of week, kind, id."""

    row: np.ndarray
    t: np.ndarray
    how: np.ndarray
    kind: np.ndarray
    event_id: np.ndarray

    def __len__(self) -> int:
        return len(self.row)

    def where(self, mask: np.ndarray) -> EventArrays:
        return EventArrays(self.row[mask], self.t[mask], self.how[mask], self.kind[mask], self.event_id[mask])


def load_events(session: Session, index: dict[int, int], *, after_id: int = 0,
                through_id: int | None = None, employee_pks: Sequence[int] | None = None) -> EventArrays:
    """The model-relevant events with ``after_id < id [<= through_id]``, as arrays.

    :param index: employee pk -> row index; events of people not in it are skipped.
    """
    E = EngagementEvent
    query = select(E.employee_pk, E.occurred_at, E.local_weekday, E.local_hour, E.kind, E.id, E.surface).where(
        E.id > after_id, E.kind.in_(_MODEL_KINDS))
    if through_id is not None:
        query = query.where(E.id <= through_id)
    if employee_pks is not None:
        query = query.where(E.employee_pk.in_(list(employee_pks)))
    rows, ts, hows, kinds, ids = [], [], [], [], []
    for pk, occurred, weekday, hour, kind, event_id, surface in session.execute(query):
        i = index.get(pk)
        if i is None or (kind == "digest_open" and surface == "pixel"):
            continue
        rows.append(i)
        ts.append(occurred.timestamp())
        hows.append(weekday * 24 + hour)
        kinds.append(kind)
        ids.append(event_id)
    return EventArrays(np.asarray(rows, np.int64), np.asarray(ts, np.float64), np.asarray(hows, np.int64),
                       np.asarray(kinds, dtype="<U12"), np.asarray(ids, np.int64))


def _match_previous(send_row: np.ndarray, send_t: np.ndarray, row: np.ndarray, t: np.ndarray) -> np.ndarray:
    """For each (row, t), the index of the latest send of the same row at or before t, or -1."""
    if not len(send_row) or not len(row):
        return np.full(len(row), -1, np.int64)
    order = np.lexsort((send_t, send_row))
    key_s = send_row[order] * 1e11 + send_t[order]
    idx = np.searchsorted(key_s, row * 1e11 + t, side="right") - 1
    ok = idx >= 0
    ok[ok] &= send_row[order][idx[ok]] == row[ok]
    return np.where(ok, order[np.maximum(idx, 0)], -1)


def counts_from_events(ev: EventArrays, n: int, now: dt.datetime, settings: timing.TimingSettings,
                       keep: np.ndarray | None = None) -> tuple[timing.TimingCounts, np.ndarray]:
    """Decayed counts (as of *now*) of *ev* for *n* people, and the mask of events actually used.

    Digest clicks within a minute of their digest with no page view after them (mail scanners)
    are dropped; each digest's pending time runs to its first read, censored at the window.
    Matching uses every event in *ev*; only those in *keep* (default: all) are counted.
    """
    now_t = now.timestamp()
    sent = ev.kind == "digest_sent"
    read_kind = (ev.kind == "digest_open") | (ev.kind == "digest_click")
    views = (ev.kind == "open") | (ev.kind == "read")
    use = np.ones(len(ev), bool)

    s_idx = np.flatnonzero(sent)
    r_idx = np.flatnonzero(read_kind)
    match = _match_previous(ev.row[s_idx], ev.t[s_idx], ev.row[r_idx], ev.t[r_idx])
    clicks = ev.kind[r_idx] == "digest_click"
    if clicks.any():
        since_send = np.where(match >= 0, ev.t[r_idx] - ev.t[s_idx[np.maximum(match, 0)]], np.inf)
        fast = clicks & (since_send <= SCANNER_WINDOW.total_seconds())
        if fast.any():
            v_idx = np.flatnonzero(views)
            order = np.lexsort((ev.t[v_idx], ev.row[v_idx]))
            key_v = ev.row[v_idx][order] * 1e11 + ev.t[v_idx][order]
            probe = ev.row[r_idx] * 1e11 + ev.t[r_idx]
            nxt = np.searchsorted(key_v, probe, side="left")
            has = nxt < len(key_v)
            follow = np.zeros(len(r_idx), bool)
            follow[has] = key_v[nxt[has]] - probe[has] <= PAGE_VIEW_WINDOW.total_seconds()
            scanner = fast & ~follow
            use[r_idx[scanner]] = False
            match = np.where(scanner, -1, match)

    first_read = np.full(len(s_idx), np.inf)
    ok = match >= 0
    np.minimum.at(first_read, match[ok], ev.t[r_idx][ok])
    send_t = ev.t[s_idx]
    limit = float(settings.pending_hours)
    pending = np.where(np.isfinite(first_read), np.floor((first_read - send_t) / 3600.0) + 1.0,
                       np.clip((now_t - send_t) / 3600.0, 0.0, limit))
    pending_all = np.zeros(len(ev))
    pending_all[s_idx] = np.minimum(pending, limit)

    kinds = np.where(read_kind, timing.EventKind.DIGEST_OPEN.value,
                     np.where(views, timing.EventKind.READ.value, ev.kind))
    m = use if keep is None else use & keep
    age = np.maximum(now_t - ev.t[m], 0.0) / 86400.0
    counts = timing.timing_counts(ev.row[m], ev.how[m], age, kinds[m], n, pending_hours=pending_all[m],
                                  observed_days=np.zeros(n), settings=settings)
    return counts, use


# --------------------------------------------------------------------------------------------
# Stored state
# --------------------------------------------------------------------------------------------


def _pack(reads: np.ndarray, exposure: np.ndarray, activity: np.ndarray) -> bytes:
    return zlib.compress(np.stack([reads, exposure, activity]).astype(np.float32).tobytes(), 1)


def _unpack(blob: bytes) -> np.ndarray:
    return np.frombuffer(zlib.decompress(blob), dtype=np.float32).reshape(3, H)


def settled_through(session: Session, now: dt.datetime, settings: timing.TimingSettings) -> int:
    """The highest event id received long enough ago that every read of its digest is known."""
    cutoff = now - dt.timedelta(hours=settings.pending_hours)
    value = session.execute(select(func.max(EngagementEvent.id)).where(EngagementEvent.received_at <= cutoff)).scalar()
    return int(value or 0)


def watermark(session: Session) -> int:
    """The last event id folded into the stored state."""
    return int(session.execute(select(func.max(TimingState.through_event_id))).scalar() or 0)


def current_counts(session: Session, employee_pks: Sequence[int], now: dt.datetime,
                   settings: timing.TimingSettings | None = None) -> tuple[timing.TimingCounts, np.ndarray]:
    """Everyone's decayed counts at *now*: stored state (decayed) plus the events not folded in yet.

    Returns the counts (row ``i`` for ``employee_pks[i]``) and each person's first event time
    (epoch seconds, ``inf`` when none), from which their observed weeks are derived.
    """
    s = settings or timing.TimingSettings()
    n = len(employee_pks)
    index = {pk: i for i, pk in enumerate(employee_pks)}
    reads, exposure, activity = np.zeros((n, H)), np.zeros((n, H)), np.zeros((n, H))
    first = np.full(n, np.inf)
    mark = watermark(session)
    for pk, blob, as_of, first_at in session.execute(
            select(TimingState.employee_pk, TimingState.counts, TimingState.as_of, TimingState.first_event_at)):
        i = index.get(pk)
        if i is None:
            continue
        f = 0.5 ** (max((now - as_of).total_seconds(), 0.0) / 86400.0 / s.half_life_days)
        arr = _unpack(blob)
        reads[i], exposure[i], activity[i] = arr[0] * f, arr[1] * f, arr[2] * f
        if first_at is not None:
            first[i] = first_at.timestamp()
    ev = load_events(session, index, after_id=mark)
    fresh, used = counts_from_events(ev, n, now, s)
    if len(ev):
        np.minimum.at(first, ev.row[used], ev.t[used])
    observed_days = np.where(np.isfinite(first), (now.timestamp() - np.where(np.isfinite(first), first, 0)) / 86400 + 1, 0)
    counts = timing.TimingCounts(reads + fresh.reads, exposure + fresh.exposure, activity + fresh.activity,
                                 timing.observed_weeks(np.maximum(observed_days, 0), s.half_life_days))
    return counts, first


def refresh(session: Session, now: dt.datetime, settings: timing.TimingSettings | None = None) -> int:
    """Fold settled events into the stored state (only for the people they concern); returns how many people.

    Safe to run twice: the state records the last event it folded in, and a second run finds
    nothing new. The caller commits.
    """
    s = settings or timing.TimingSettings()
    mark = watermark(session)
    through = settled_through(session, now, s)
    if through <= mark:
        return 0
    touched = list(session.execute(select(EngagementEvent.employee_pk).where(
        EngagementEvent.id > mark, EngagementEvent.id <= through).distinct()).scalars())
    if not touched:
        return 0
    updated = 0
    for start in range(0, len(touched), 2000):
        pks = touched[start:start + 2000]
        index = {pk: i for i, pk in enumerate(pks)}
        ev = load_events(session, index, after_id=mark, employee_pks=pks)   # settled and unsettled: opens
        fold = ev.event_id <= through                                        # of settled digests count
        # Only settled events go into the state; unsettled ones are re-counted at planning time.
        counts, used = counts_from_events(ev, len(pks), now, s, keep=fold)
        old = {pk: (blob, as_of, first_at) for pk, blob, as_of, first_at in session.execute(
            select(TimingState.employee_pk, TimingState.counts, TimingState.as_of, TimingState.first_event_at)
            .where(TimingState.employee_pk.in_(pks)))}
        first_t = np.full(len(pks), np.inf)
        settled_used = used & fold
        if settled_used.any():
            np.minimum.at(first_t, ev.row[settled_used], ev.t[settled_used])
        rows = []
        for pk, i in index.items():
            reads, exposure, activity = counts.reads[i], counts.exposure[i], counts.activity[i]
            first_at = None if not np.isfinite(first_t[i]) else dt.datetime.fromtimestamp(first_t[i], dt.timezone.utc)
            if pk in old:
                blob, as_of, old_first = old[pk]
                f = 0.5 ** (max((now - as_of).total_seconds(), 0.0) / 86400.0 / s.half_life_days)
                arr = _unpack(blob)
                reads, exposure, activity = reads + arr[0] * f, exposure + arr[1] * f, activity + arr[2] * f
                first_at = min(x for x in (first_at, old_first) if x is not None) if (first_at or old_first) else None
            rows.append({"employee_pk": pk, "counts": _pack(reads, exposure, activity), "as_of": now,
                         "first_event_at": first_at, "through_event_id": through})
        _upsert_state(session, rows)
        updated += len(rows)
    # People not touched keep their rows; move the watermark for everyone (cheap: one UPDATE).
    session.execute(_STATE.update().values(through_event_id=through))
    return updated


def _upsert_state(session: Session, rows: list[dict[str, Any]]) -> None:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(_STATE).values(rows)
    statement = statement.on_conflict_do_update(index_elements=["employee_pk"], set_={
        "counts": statement.excluded.counts, "as_of": statement.excluded.as_of,
        "first_event_at": statement.excluded.first_event_at, "through_event_id": statement.excluded.through_event_id})
    session.execute(statement)


# --------------------------------------------------------------------------------------------
# The fitted peer model (so one person can be re-planned without refitting everyone)
# --------------------------------------------------------------------------------------------


def save_model(session: Session, model: timing.PeerModel, groups: dict[str, int], regions: dict[str, int],
               now: dt.datetime) -> None:
    """Store the organisation's fitted peer curves (replacing the previous ones)."""
    buffer = io.BytesIO()
    arrays = {f.name: np.asarray(getattr(model, f.name)) for f in dataclasses.fields(model)}
    np.savez_compressed(buffer, **arrays)
    row = session.get(TimingModel, 1) or TimingModel(id=1, blob=b"", as_of=now)
    row.blob, row.groups, row.regions, row.as_of = buffer.getvalue(), groups, regions, now
    session.add(row)
    session.flush()


def load_model(session: Session) -> tuple[timing.PeerModel, dict[str, int], dict[str, int]] | None:
    """The stored peer curves and their code maps, or None before the first planning run."""
    row = session.get(TimingModel, 1)
    if row is None:
        return None
    with np.load(io.BytesIO(row.blob)) as data:
        values = {name: (data[name].item() if data[name].ndim == 0 else data[name]) for name in data.files}
    return timing.PeerModel(**values), dict(row.groups), dict(row.regions)
