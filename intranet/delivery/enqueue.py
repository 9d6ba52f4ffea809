"""Enqueueing: due digest and alert slots become outbox messages, one per channel.

* A due slot is **claimed** with a conditional UPDATE (``planned -> queued``), so however many
  schedulers run, one wins and the others move on.
* It is **checked** at that moment: a deactivated person's slot is cancelled, a slot past its
  expiry expired, a planned digest whose person no longer wants one cancelled, and a slot whose
  content (:func:`intranet.delivery.content.compose`) is empty skipped.
* One :class:`~intranet.models.OutboxMessage` per channel is **inserted** (``ON CONFLICT DO
  NOTHING`` on (slot, channel)), plus a reminder on a second channel when must-reads are overdue.
  Each message gets a Message-ID that stays the same on every retry.

Enqueueing treats digests and alerts alike; the outbox (:mod:`intranet.delivery.sending`) sends
the messages.
"""
from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlmodel import Session

from intranet import preferences
from intranet.db import insert_new
from intranet.delivery.content import Request, compose_many
from intranet.delivery.planning import PLANNED_CADENCES
from intranet.models import Digest, Employee, OutboxMessage
from intranet.settings import Settings

_OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]


def message_id(employee: Employee, digest: Digest, channel: str, domain: str) -> str:
    """A Message-ID that stays the same on every retry of this slot and channel."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in employee.employee_id)
    return f"<{digest.kind}.{safe}.{digest.local_date.isoformat()}.{digest.ordinal}.{channel}@{domain}>"


def _second_channel(channels: tuple[str, ...]) -> str | None:
    for candidate in ("teams", "email"):
        if candidate not in channels:
            return candidate
    return None


def enqueue_due(session: Session, now: dt.datetime, *, domain: str = "beacon.invalid", limit: int = 2000,
                lookback_days: int = 7, reminder_after: dt.timedelta = dt.timedelta(hours=48),
                teams_enabled: bool = False, weekly_budget: int = 0) -> int:
    """Turn due digest slots into outbox messages (one per channel); returns how many slots were queued.

    The due slots are claimed by one conditional UPDATE, so concurrent schedulers split the work
    instead of doubling it, and checked together (:func:`intranet.delivery.content.compose_many`). A slot past its expiry is marked expired, a deactivated person's is cancelled.

    :param weekly_budget: the weekly budget of posts that are not must-reads (see
        :mod:`intranet.delivery.fatigue`); a slot with nothing else to say once it is spent is skipped.
    """
    due = session.execute(select(Digest.id).where(Digest.status == "planned", Digest.due_at <= now)
                          .order_by(Digest.due_at).limit(limit)).scalars().all()
    if not due:
        return 0
    # One conditional UPDATE claims the whole batch: a concurrent scheduler's claim of the same
    # slots changes no row twice, so each slot is claimed by exactly one of them.
    claimed = set(session.execute(update(Digest).where(Digest.id.in_(due), Digest.status == "planned")
                                  .values(status="queued").returning(Digest.id)).scalars())
    slots = {d.id: d for d in session.execute(select(Digest).where(Digest.id.in_(sorted(claimed)))
                                              .execution_options(populate_existing=True)).scalars()}
    people = {e.id: e for e in session.execute(select(Employee).where(
        Employee.id.in_(sorted({d.employee_pk for d in slots.values()})))).scalars()}
    prefs = preferences.for_employees(session, sorted(people))
    ready: list[tuple[Digest, Employee]] = []
    for digest_id in due:
        if digest_id not in claimed:
            continue
        digest = slots[digest_id]
        employee = people.get(digest.employee_pk)
        if employee is None or not employee.active:
            digest.status, digest.reason = "cancelled", "employee inactive"
            continue
        if now >= digest.expires_at:
            digest.status, digest.reason = "expired", "enqueued after its expiry"
            continue
        if digest.kind == "digest" and prefs[employee.id].cadence not in PLANNED_CADENCES:
            digest.status, digest.reason = "cancelled", f"cadence is now {prefs[employee.id].cadence}"
            continue
        ready.append((digest, employee))
    # Only whether there is anything matters here; the sender composes (and ranks) again.
    contents = compose_many(session, [Request(employee, digest) for digest, employee in ready], now, prefs=prefs,
                            lookback_days=lookback_days, reminder_after=reminder_after, rank=False,
                            weekly_budget=weekly_budget)
    values = []
    queued = 0
    for (digest, employee), content in zip(ready, contents, strict=True):
        if content.empty:
            digest.status, digest.reason = "skipped", "weekly budget spent" if content.held_back else "nothing new"
            continue
        channels = [c for c in prefs[employee.id].channels if c != "teams" or teams_enabled]
        rows = [{"channel": c, "escalation": False} for c in channels]
        second = _second_channel(tuple(channels))
        if content.overdue_must_reads and second and (second != "teams" or teams_enabled):
            rows.append({"channel": second, "escalation": True})
        values += [{"digest_id": digest.id, "employee_pk": employee.id, "channel": r["channel"],
                    "escalation": r["escalation"], "status": "pending", "attempts": 0, "next_attempt_at": now,
                    "expires_at": digest.expires_at, "lease_until": None, "claimed_by": None,
                    "message_id": message_id(employee, digest, r["channel"], domain), "post_ids": [],
                    "sent_at": None, "last_error": None, "created_at": now} for r in rows]
        queued += 1
    for start in range(0, len(values), 500):
        insert_new(session, _OUTBOX, values[start:start + 500], ("digest_id", "channel"), ("id",))
    session.flush()
    return queued


def enqueue_job(session: Session, now: dt.datetime, settings: Settings) -> int:
    """Scheduled: queue the digests and alerts that are due."""
    domain = urlsplit(settings.site.base_url).hostname or "beacon.invalid"
    return enqueue_due(session, now, domain=domain, lookback_days=settings.digests.lookback_days,
                       reminder_after=settings.alerts.reminder_after, teams_enabled=settings.mail.teams_enabled,
                       weekly_budget=settings.fatigue.weekly_budget)
