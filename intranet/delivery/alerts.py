"""Alerts: must-reads and "as it happens" posts that cannot wait for a planned digest.

Planned digests (:mod:`intranet.delivery.planning`) only reach people whose cadence is daily,
twice a day or weekly, at their planned hours. Two things must go out between them:

* a **must-read** (and its reminders until it is acknowledged or its deadline passes) to people
  whose cadence is ``off`` or ``as_it_happens``, and to weekly people between their digests
  (must-reads bypass mutes and cadence limits, never quiet hours);
* every targeted post to people whose cadence is ``as_it_happens``, soon after it goes live.

**Design: an alert is a digest slot of its own kind.** An alert is a :class:`~intranet.models.Digest`
row with ``kind = "alert"``, in the same table and under the same unique slot key
(employee, local date, ordinal): its ordinal is ``100 +`` the index of the local batching window
of the day it is due in (``INTRANET_ALERT_BATCH_MINUTES``, 15 by default; planned digests use
ordinals 0 and 1). So "this person, this window" is one row whoever creates it, the outbox holds
one message per (slot, channel) as for any digest, and enqueueing, claiming, leases, retries,
pacing and expiry are the digests' own. What a slot carries is recorded in
:class:`~intranet.models.DigestItem`, whose primary key (employee, post, round) is the
exactly-once guarantee for posts: round 0 is the first delivery (as it happens, or a new
must-read), round *k* >= 1 the *k*-th reminder of an unacknowledged must-read, due
*k* x ``INTRANET_MUST_READ_REMINDER_HOURS`` after publishing (at most
``INTRANET_MUST_READ_MAX_REMINDERS``), also sent on a second channel when one is configured.
A person who becomes eligible late gets only the round now due, never a backlog of rounds.

* **Scanning** (:func:`scan`, job ``alerts-scan``, every minute): for each recent live post, the
  people in its audience (:func:`intranet.targeting.employee_filter`) whose cadence calls for an
  alert and who have no item for the post's current round yet are found in SQL; mutes and
  follows are applied, and each person's new items are attached to one slot.
* **Batching and quiet hours**: items are attached only to a slot that is still ``planned`` and
  due at least :data:`MARGIN` from now, at the first window boundary that is outside the person's
  quiet hours and on one of their working days. Enqueueing takes only slots already due, so an
  item is never attached to a slot that has gone out; posts going live in one window share a slot,
  and posts held by quiet hours or a weekend pile into the first allowed window (one message).
  On a DST fall-back day a repeated local window finds its slot taken and moves on to the next.
  (This assumes the clocks of concurrent schedulers agree within :data:`MARGIN`.)
* **Weekly people**: when their next planned digest comes before the alert would, the must-read
  item is attached to that digest instead (it is listed first there anyway), so it is not sent
  twice. Daily and twice-daily people get must-reads and reminders at the top of their digests,
  so they get no alerts.
* **At send time** (:func:`intranet.delivery.content.compose`) the items are re-checked:
  targeting at that moment, the person active, must-reads still unacknowledged and before their
  deadline, other posts still unread, not muted, followed (when the person follows topics, as it
  happens means those topics) and the cadence still ``as_it_happens``. An empty alert is not sent.
* **Expiry**: an alert slot expires when the allowed window it is due in ends (quiet hours begin
  or the working day ends), at most :data:`MAX_VALID` later, so a retried alert is never sent in
  quiet hours. Its items stay claimed: an ordinary post is then only in the feed, a must-read
  comes back in its next reminder round.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import and_, exists, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from intranet import preferences, targeting
from intranet.delivery import content
from intranet.db import insert_new
from intranet.engagement.events import zone_of
from intranet.models import Digest, DigestItem, Employee, Post, PostState, Preference
from intranet.settings import AlertSettings, Settings

logger = logging.getLogger(__name__)


_DIGEST = Digest.__table__  # type: ignore[attr-defined]
_ITEM = DigestItem.__table__  # type: ignore[attr-defined]
#: Ordinals of alert slots start here (planned digests use 0 and 1).
ORDINAL_BASE = 100
#: An item is only attached to a slot due at least this far ahead (enqueueing takes due slots).
MARGIN = dt.timedelta(minutes=1)
#: The longest an alert may wait in the outbox (within one allowed window).
MAX_VALID = dt.timedelta(hours=12)
#: Cadences that get must-reads outside planned digests.
MUST_READ_CADENCES = ("off", "as_it_happens", "weekly")
_CHUNK = 500


# --------------------------------------------------------------------------------------------
# When: the first allowed window
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Window:
    """An alert slot: due at ``due`` (UTC), keyed by ``(local_date, ordinal)``, valid until ``until``."""

    due: dt.datetime
    local_date: dt.date
    ordinal: int
    local_hour: int
    until: dt.datetime


def _allowed(at: dt.datetime, zone: ZoneInfo, prefs: preferences.Preferences) -> bool:
    local = at.astimezone(zone)
    return local.weekday() in prefs.working_days and not prefs.is_quiet(local.hour)


def first_window(after: dt.datetime, zone: ZoneInfo, prefs: preferences.Preferences,
                 batch: dt.timedelta) -> Window:
    """The first batching-window boundary at or after *after* outside quiet hours, on a working day.

    Boundaries are multiples of *batch* in UTC, which are local boundaries too in every zone
    whose offset is a multiple of *batch* (all of them for 15 minutes).
    """
    step = int(batch.total_seconds())
    at = dt.datetime.fromtimestamp(-(-int(after.timestamp()) // step) * step, dt.timezone.utc)
    for _ in range(8 * 86400 // step):
        if _allowed(at, zone, prefs):
            break
        at += batch
    else:  # no allowed moment in a week (cannot happen with validated preferences): send anyway
        at = dt.datetime.fromtimestamp(-(-int(after.timestamp()) // step) * step, dt.timezone.utc)
    until = at + batch
    while until < at + MAX_VALID and _allowed(until, zone, prefs):
        until += batch
    local = at.astimezone(zone)
    minute = local.hour * 60 + local.minute
    return Window(due=at, local_date=local.date(), ordinal=ORDINAL_BASE + minute // (step // 60),
                  local_hour=local.hour, until=min(until, at + MAX_VALID))


# --------------------------------------------------------------------------------------------
# Who: scanning live posts for people owed an alert
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Owed:
    post_id: int
    round: int
    must_read: bool
    topic: str


def _round_due(post: Any, now: dt.datetime, s: AlertSettings) -> int:
    """The reminder round of a must-read at *now* (0 = the first delivery)."""
    if not post.must_read or s.reminder_after <= dt.timedelta(0):
        return 0
    return min(int((now - post.published_at) // s.reminder_after), s.max_reminders)


def _cadence_in(cadences: tuple[str, ...], default: str) -> Any:
    """SQL: the person's effective cadence is one of *cadences* (NULL means the organisation's)."""
    chosen = Preference.cadence.in_(cadences)
    return or_(chosen, Preference.cadence.is_(None)) if default in cadences else chosen


def owed(session: Session, now: dt.datetime, s: AlertSettings) -> dict[int, list[_Owed]]:
    """Who is owed which (post, round) that no slot carries yet: employee pk -> items."""
    default = preferences.org_defaults(session)["cadence"]
    oldest_must_read = now - s.reminder_after * (s.max_reminders + 1) - dt.timedelta(days=1)
    # Narrow columns: this runs every minute, and post bodies are not needed to decide.
    posts = session.execute(select(Post.id, Post.audience, Post.topic, Post.must_read, Post.ack_deadline,
                                   Post.published_at).where(
        targeting.live_filter(now),
        # Journey steps reach people when released, not when published: intranet.journeys alerts them.
        Post.journey_only.is_(False),
        or_(Post.published_at >= now - s.lookback,
            and_(Post.must_read.is_(True), Post.published_at >= oldest_must_read,
                 or_(Post.ack_deadline.is_(None), Post.ack_deadline > now))))
        .order_by(Post.published_at, Post.id)).all()
    out: dict[int, list[_Owed]] = defaultdict(list)
    for post in posts:
        must = post.must_read and (post.ack_deadline is None or post.ack_deadline > now)
        if not must and post.published_at < now - s.lookback:
            continue
        round_ = _round_due(post, now, s) if must else 0
        state = and_(PostState.employee_pk == Employee.id, PostState.post_id == post.id)
        done = exists().where(DigestItem.employee_pk == Employee.id, DigestItem.post_id == post.id,
                              DigestItem.round == round_)
        if must:
            cadences, untouched = MUST_READ_CADENCES, PostState.acknowledged_at.is_(None)
        else:
            cadences, untouched = ("as_it_happens",), PostState.read_at.is_(None)
        try:
            # A savepoint per post: one post whose audience the database cannot evaluate (one
            # stored before audiences were bounded, say) is skipped instead of stopping every alert.
            with session.begin_nested():
                query = (select(Employee.id).outerjoin(Preference, Preference.employee_pk == Employee.id)
                         .outerjoin(PostState, state)
                         .where(targeting.employee_filter(targeting.Audience.model_validate(post.audience), now=now),
                                _cadence_in(cadences, default), untouched, ~done))
                pks = session.execute(query).scalars().all()
        except (SQLAlchemyError, ValidationError):
            logger.exception("Alerts scan: skipped post %s, whose audience cannot be evaluated; fix or "
                             "unpublish it", post.id)
            continue
        for pk in pks:
            out[pk].append(_Owed(post.id, round_, must, post.topic))
    return out


def _slot_row(employee_pk: int, zone: ZoneInfo, window: Window, now: dt.datetime) -> dict[str, Any]:
    return {"employee_pk": employee_pk, "local_date": window.local_date, "ordinal": window.ordinal,
            "due_at": window.due, "expires_at": window.until, "timezone": zone.key, "local_hour": window.local_hour,
            "basis": None, "explored": False, "propensity": 1.0, "status": "planned", "reason": "",
            "created_at": now, "kind": "alert"}


def _usable_slots(session: Session, employee_pks: list[int], now: dt.datetime) -> dict[tuple[int, dt.date, int], int]:
    """(employee, local date, ordinal) -> id of the alert slots items may still be attached to."""
    rows = session.execute(select(Digest.employee_pk, Digest.local_date, Digest.ordinal, Digest.id).where(
        Digest.employee_pk.in_(employee_pks), Digest.kind == "alert", Digest.status == "planned",
        Digest.due_at >= now + MARGIN))
    return {(pk, local_date, ordinal): digest_id for pk, local_date, ordinal, digest_id in rows}


def _alert_slot(session: Session, employee_pk: int, zone: ZoneInfo, prefs: preferences.Preferences,
                now: dt.datetime, s: AlertSettings) -> int:
    """The id of the planned alert slot *employee_pk*'s new items go into (created when needed)."""
    after = now + MARGIN
    for _ in range(1000):
        window = first_window(after, zone, prefs, s.batch)
        insert_new(session, _DIGEST, [_slot_row(employee_pk, zone, window, now)],
                   ("employee_pk", "local_date", "ordinal"), ("id",))
        found = _usable_slots(session, [employee_pk], now).get((employee_pk, window.local_date, window.ordinal))
        if found is not None:
            return found
        after = window.due + s.batch  # taken: gone out already, or a repeated local window (DST)
    raise RuntimeError(f"no free alert slot for employee {employee_pk}")


def _next_digests(session: Session, employee_pks: list[int], now: dt.datetime) -> dict[int, tuple[int, dt.datetime]]:
    """Each person's next planned digest (not alert): employee pk -> (digest id, due)."""
    out: dict[int, tuple[int, dt.datetime]] = {}
    for start in range(0, len(employee_pks), _CHUNK):
        rows = session.execute(select(Digest.employee_pk, Digest.id, Digest.due_at).where(
            Digest.employee_pk.in_(employee_pks[start:start + _CHUNK]), Digest.kind == "digest",
            Digest.status == "planned", Digest.due_at >= now + MARGIN).order_by(Digest.due_at.desc()))
        out.update((pk, (digest_id, due)) for pk, digest_id, due in rows)  # the earliest is written last
    return out


def scan(session: Session, now: dt.datetime, *, settings: AlertSettings | None = None,
         org_timezone: str = "UTC") -> int:
    """Attach every newly owed (person, post, round) to a slot; returns how many items were new.

    Safe to run twice or concurrently: slots and items are inserted with ``ON CONFLICT DO NOTHING``
    on their unique keys. Works in bulk (a must-read for everyone is a few statements per 500
    people); only a window already taken (DST, or a slot gone out) takes the one-by-one path.
    """
    s = settings or AlertSettings()
    return attach(session, owed(session, now, s), now, settings=s, org_timezone=org_timezone)


def owe(post_id: int, round_: int, *, must_read: bool, topic: str) -> _Owed:
    """One (post, round) owed to a person, for :func:`attach` (journeys owe their released steps)."""
    return _Owed(post_id, round_, must_read, topic)


def attach(session: Session, pending: dict[int, list[_Owed]], now: dt.datetime, *,
           settings: AlertSettings | None = None, org_timezone: str = "UTC") -> int:
    """Attach owed items (employee pk -> items) to alert slots; returns how many items were new.

    Items already attached (same person, post and round) are left alone, so this is safe to repeat.
    """
    s = settings or AlertSettings()
    if not pending:
        return 0
    pks = list(pending)
    prefs = preferences.for_employees(session, pks)
    zones: dict[int, ZoneInfo] = {}
    for start in range(0, len(pks), _CHUNK):
        zones.update((pk, zone_of(tz, org_timezone)) for pk, tz in session.execute(
            select(Employee.id, Employee.timezone).where(Employee.id.in_(pks[start:start + _CHUNK]))))
    wanted = {pk: kept for pk, items in pending.items()
              if (kept := [i for i in items if content.wanted(prefs[pk], i.topic, must_read=i.must_read)])}
    windows: dict[int, Window] = {}
    cache: dict[tuple[Any, ...], Window] = {}
    for pk in wanted:
        p = prefs[pk]
        key = (zones[pk].key, p.quiet_start, p.quiet_end, p.working_days)
        if key not in cache:
            cache[key] = first_window(now + MARGIN, zones[pk], p, s.batch)
        windows[pk] = cache[key]
    target: dict[int, int] = {}
    weekly = [pk for pk in wanted if prefs[pk].cadence == "weekly"]
    for pk, (digest_id, due) in _next_digests(session, weekly, now).items():
        if due <= windows[pk].due:
            target[pk] = digest_id  # their digest comes first and lists must-reads at the top
    rest = [pk for pk in wanted if pk not in target]
    for start in range(0, len(rest), _CHUNK):
        chunk = rest[start:start + _CHUNK]
        insert_new(session, _DIGEST, [_slot_row(pk, zones[pk], windows[pk], now) for pk in chunk],
                   ("employee_pk", "local_date", "ordinal"), ("id",))
        usable = _usable_slots(session, chunk, now)
        for pk in chunk:
            found = usable.get((pk, windows[pk].local_date, windows[pk].ordinal))
            target[pk] = found if found is not None else _alert_slot(session, pk, zones[pk], prefs[pk], now, s)
    rows = [{"employee_pk": pk, "post_id": i.post_id, "round": i.round, "digest_id": target[pk], "created_at": now}
            for pk, items in wanted.items() for i in items]
    new = 0
    for start in range(0, len(rows), _CHUNK):
        new += len(insert_new(session, _ITEM, rows[start:start + _CHUNK], ("employee_pk", "post_id", "round"),
                              ("digest_id",)))
    session.flush()
    return new


def scan_job(session: Session, now: dt.datetime, settings: Settings) -> int:
    """Scheduled: give must-reads and as-it-happens posts their alert slots."""
    return scan(session, now, settings=settings.alerts, org_timezone=settings.site.org_timezone)
