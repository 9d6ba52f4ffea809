"""Sending: the outbox sends every digest and alert message once, even with several senders or a
crash mid-batch.

A message row moves ``pending -> sending -> sent`` (or ``failed``, ``expired``, ``skipped``).

* **Claiming** is one ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING``
  on PostgreSQL, so concurrent senders take disjoint rows. SQLAlchemy silently drops the lock
  clause on SQLite, where a single sender must run (the re-checked WHERE still keeps a stray
  second one from taking a row twice: SQLite serialises writers).
* **Leases**: a claimed row carries ``lease_until``; a sender renews the leases of its batch's
  unsent rows together whenever half a lease has gone by (one UPDATE) and skips any row someone
  else has taken over. A sender that dies leaves its rows to be
  re-claimed once their lease expires, and the re-send uses the same Message-ID (at most one
  duplicate per crash, in the window between the SMTP server's 250 and our commit).
* **Retries**: temporary failures (SMTP 4xx, dropped connections, HTTP 429/5xx) go back to
  ``pending`` with exponential backoff and jitter; permanent ones (SMTP 5xx, HTTP 4xx) are
  ``failed`` at once. Nothing is sent after the message's expiry (the person's next slot).
* **Outages**: a failure that says the channel itself is unavailable (the SMTP server refuses
  connections or closes them, the Teams flow is throttled or failing) puts the rest of the batch's
  messages on that channel back with the same backoff without trying them, so a server that is
  down costs one attempt per batch instead of a timeout per message, and the sender logs an
  alert (an ERROR record with ``alert`` set, once per batch while it lasts); giving a message up
  at its expiry is an alert too.
* **Pacing**: a token bucket holds sends to the provider's rate (Exchange Online: 30 a minute
  per mailbox).

* **Re-checking**: once claimed, the batch's contents are composed again together
  (:func:`intranet.delivery.content.compose_many`) and each is rendered just before its send
  (:mod:`intranet.delivery.rendering`), so what goes out is what the person may see at that
  moment (give or take the batch's own duration, under a minute with the default pacing and
  batch); an empty message is skipped.
* **Recording**: each result is committed with its ``digest_sent`` event before the next send; the
  events are queued for the rollups in that transaction and folded once per batch (a crash leaves
  them to the analytics-fold job).

Mail goes out only after the claim is committed, and each result is committed right after its
send: :func:`send_due` owns those commits, so it takes a session of its own (the job runner gives
the sender the session factory, the app's templates and its clock: see :mod:`intranet.jobs`).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlmodel import Session

from intranet import languages, preferences
from intranet.analytics import rollups
from intranet.db import is_postgres
from intranet.delivery.channels import PermanentFailure, RenderedDigest, TemporaryFailure
from intranet.delivery import fatigue
from intranet.delivery.content import Request, compose_many, in_languages
from intranet.delivery.rendering import Renderer, why
from intranet.engagement import events
from intranet.models import Digest, Employee, OutboxMessage
from intranet.settings import MailSettings, Settings
from intranet.webhooks.events import digest_sent_event, subscribed

logger = logging.getLogger(__name__)


CLAIMABLE = ("pending", "sending")
MAX_BACKOFF = dt.timedelta(hours=1)


class Channel(Protocol):
    def deliver(self, digest: RenderedDigest, now: dt.datetime) -> None: ...


class Pacer:
    """A token bucket: at most *rate_per_minute* sends, evenly spaced, with a small burst."""

    def __init__(self, rate_per_minute: float, *, burst: int = 1, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.interval = 60.0 / rate_per_minute if rate_per_minute > 0 else 0.0
        self.burst = max(burst, 1)
        self.sleep, self.monotonic = sleep, monotonic
        self.tokens = float(self.burst)
        self.last = monotonic()
        self.lock = threading.Lock()

    def wait(self) -> None:
        """Block until one more send is allowed."""
        if not self.interval:
            return
        with self.lock:
            now = self.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.last) / self.interval)
            self.last = now
            if self.tokens < 1:
                delay = (1 - self.tokens) * self.interval
                self.sleep(delay)
                self.last = self.monotonic()
                self.tokens = 0.0
            else:
                self.tokens -= 1


def backoff(attempts: int, base_seconds: float, *, rng: random.Random | None = None) -> dt.timedelta:
    """Delay before retry number *attempts*: base * 2^(attempts-1), +-20 % jitter, at most an hour."""
    r = rng or random
    seconds = min(base_seconds * 2 ** max(attempts - 1, 0), MAX_BACKOFF.total_seconds())
    return dt.timedelta(seconds=seconds * r.uniform(0.8, 1.2))


def retry_at(failure: TemporaryFailure, *, attempts: int, base_seconds: float, now: dt.datetime,
             expires_at: dt.datetime, rng: random.Random | None = None) -> dt.datetime | None:
    """When to try a message again after *failure* (backoff, or the server's Retry-After if longer),
    or None when that would be at or after *expires_at*: the message is then given up."""
    delay = backoff(attempts, base_seconds, rng=rng)
    if failure.retry_after:
        delay = max(delay, dt.timedelta(seconds=failure.retry_after))
    return None if now + delay >= expires_at else now + delay


def finish(session: Session, message: Any, status: str, reason: str) -> None:
    """Close *message* (a row of an outbox table: a digest message, a reply email, a webhook
    delivery) for good with *status* and why, and commit."""
    message.status, message.lease_until, message.last_error = status, None, reason[:1000]
    session.add(message)
    session.commit()


def put_back(session: Session, message: Any, again: dt.datetime, reason: str) -> None:
    """Hand *message* (a row of an outbox table, like :func:`finish`'s) back for another attempt at
    *again*, out of its sender's lease, with why the last one failed; commit."""
    message.status, message.next_attempt_at, message.lease_until = "pending", again, None
    message.last_error = reason[:1000]
    session.add(message)
    session.commit()


def claim_due(session: Session, model: type[Any], now: dt.datetime, owner: str, *, limit: int,
              lease: dt.timedelta, where: tuple[ColumnElement[bool], ...] = ()) -> list[int]:
    """Claim up to *limit* due rows of an outbox table *model* for *owner* (the caller commits at once).

    The one claim of every outbox (digest messages, reply emails, webhook deliveries): *model*
    has ``id``, ``status``, ``next_attempt_at``, ``lease_until``, ``claimed_by`` and ``attempts``;
    a row is due when pending and its time has come, or when its sender's lease ran out.
    *where* narrows the candidates (say, to some channels). Returns the claimed ids.
    """
    due = or_(and_(model.status == "pending", model.next_attempt_at <= now),
              and_(model.status == "sending", model.lease_until < now))
    candidates = select(model.id).where(due, *where).order_by(model.next_attempt_at, model.id).limit(limit)
    if is_postgres(session):
        # Picked once, in a materialised CTE: as a plain "id IN (subquery)" PostgreSQL may rescan
        # the subquery for every row (a nested-loop semi join), each rescan skipping the rows this
        # very UPDATE had just locked and changed, so a claim took every due row whatever its limit.
        picked = candidates.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
        candidates = select(picked.c.id)
    statement = (update(model).where(model.id.in_(candidates.scalar_subquery()), due)
                 .values(status="sending", lease_until=now + lease, claimed_by=owner, attempts=model.attempts + 1)
                 .returning(model.id))
    return sorted(session.execute(statement).scalars().all())


def renew(session: Session, model: type[Any], row_pk: int, owner: str, now: dt.datetime,
          lease: dt.timedelta) -> bool:
    """Extend *owner*'s lease on one claimed row of *model* just before sending; False when it is
    no longer ours (the lease ran out and another sender took it over)."""
    renewed = session.execute(update(model).where(model.id == row_pk, model.claimed_by == owner,
                                                  model.status == "sending").values(lease_until=now + lease))
    return renewed.rowcount == 1  # type: ignore[attr-defined]


def renew_many(session: Session, model: type[Any], row_pks: list[int], owner: str, now: dt.datetime,
               lease: dt.timedelta) -> set[int]:
    """:func:`renew` for many claimed rows of *model* in one statement; returns those still *owner*'s."""
    if not row_pks:
        return set()
    statement = (update(model).where(model.id.in_(row_pks), model.claimed_by == owner, model.status == "sending")
                 .values(lease_until=now + lease).returning(model.id))
    return set(session.execute(statement).scalars().all())


def claim(session: Session, now: dt.datetime, owner: str, *, limit: int, lease: dt.timedelta,
          channels: tuple[str, ...] | None = None) -> list[int]:
    """Claim up to *limit* due messages for *owner* (the caller commits at once); returns their ids."""
    where = (OutboxMessage.channel.in_(channels),) if channels is not None else ()
    return claim_due(session, OutboxMessage, now, owner, limit=limit, lease=lease, where=where)


@dataclasses.dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    expired: int = 0
    skipped: int = 0
    lost: int = 0

    def __str__(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in dataclasses.asdict(self).items())

    def add(self, other: SendReport) -> None:
        """Count *other*'s messages in this report too."""
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def configured_channels(mail: MailSettings) -> dict[str, Channel]:
    """The configured channels (email needs INTRANET_SMTP_HOST, Teams its workflow URL)."""
    from intranet.delivery.channels.in_app import InApp

    out: dict[str, Channel] = {"in_app": InApp()}
    if mail.smtp_host:
        from intranet.delivery.channels.email import SmtpMailer

        out["email"] = SmtpMailer(mail.smtp_host, mail.smtp_port, username=mail.smtp_username or None,
                                  password=mail.smtp_password or None, starttls=mail.smtp_starttls,
                                  sender=mail.mail_from)
    if mail.teams_workflow_url:
        from intranet.delivery.channels.teams import TeamsWorkflow

        out["teams"] = TeamsWorkflow(mail.teams_workflow_url)
    return out


def send_due(session: Session, clock: Callable[[], dt.datetime], settings: Settings, renderer: Renderer, *,
             channels: dict[str, Channel], owner: str | None = None, pacer: Pacer | None = None,
             limit: int | None = None, rng: random.Random | None = None) -> SendReport:
    """Claim a batch of due messages and send them, committing the claim and then each result.

    The batch is read and composed at once (:func:`intranet.delivery.content.compose_many`: a few
    set-based queries for all its people, not a dozen per message); then each message is rendered,
    sent and its result committed before the next one goes out, so a crash repeats at most the one
    message in flight (with the same Message-ID). The leases of the batch's unsent messages are
    renewed together whenever half the lease has gone by, and a message no longer ours is dropped.
    The ``digest_sent`` events are stored with each result and folded into the rollups once per
    batch (queued in the same transaction, so a crash leaves them to the fold job, never lost).

    :param clock: the current time (read again before each send, since pacing takes time).
    :param channels: channel name -> deliverer; messages of channels not given are left alone.
    """
    owner = owner or default_owner()
    lease = settings.mail.lease
    pacer = pacer or Pacer(settings.mail.rate_per_minute)
    report = SendReport()
    claimed_at = clock()
    ids = claim(session, claimed_at, owner, limit=limit or settings.mail.batch, lease=lease,
                channels=tuple(channels))
    session.commit()
    if not ids:
        return report
    batch = _load_batch(session, ids, owner, claimed_at, settings, report)
    if batch:
        _send_batch(session, batch, clock, claimed_at, settings, renderer, channels, owner, pacer, rng, report)
    if report.sent:
        # The batch's digest_sent events, queued with each result, folded together.
        rollups.fold_pending(session, org_timezone=settings.site.org_timezone, limit=report.sent)
        session.commit()
    return report


@dataclasses.dataclass
class _Outgoing:
    """One claimed message, its person and slot, and what it will say."""

    message: OutboxMessage
    employee: Employee
    digest: Digest
    prefs: preferences.Preferences
    content: Any = None
    language: str = languages.DEFAULT


def _load_batch(session: Session, ids: list[int], owner: str, now: dt.datetime, settings: Settings,
                report: SendReport) -> list[_Outgoing]:
    """The claimed messages still ours, with their people and slots, composed in one go; the
    expired, the inactive people's and the empty ones are finished here."""
    messages = {m.id: m for m in session.execute(
        select(OutboxMessage).where(OutboxMessage.id.in_(ids)).execution_options(populate_existing=True)).scalars()}
    ours = [messages[pk] for pk in ids if pk in messages and messages[pk].claimed_by == owner
            and messages[pk].status == "sending"]
    report.lost += len(ids) - len(ours)
    people = {e.id: e for e in session.execute(select(Employee).where(
        Employee.id.in_(sorted({m.employee_pk for m in ours})))).scalars()}
    slots = {d.id: d for d in session.execute(select(Digest).where(
        Digest.id.in_(sorted({m.digest_id for m in ours})))).scalars()}
    prefs = preferences.for_employees(session, sorted(people))
    batch: list[_Outgoing] = []
    for message in ours:
        if now >= message.expires_at:
            finish(session, message, "expired", "expired before it could be sent")
            report.expired += 1
            continue
        employee, digest = people.get(message.employee_pk), slots.get(message.digest_id)
        if employee is None or not employee.active or digest is None:
            finish(session, message, "skipped", "employee inactive")
            report.skipped += 1
            continue
        batch.append(_Outgoing(message, employee, digest, prefs[employee.id]))
    contents = compose_many(
        session, [Request(o.employee, o.digest, must_reads_only=o.message.escalation) for o in batch], now,
        prefs=prefs, limit=settings.digests.max_items, lookback_days=settings.digests.lookback_days,
        reminder_after=settings.alerts.reminder_after, weekly_budget=settings.fatigue.weekly_budget)
    kept: list[_Outgoing] = []
    for outgoing, content in zip(batch, contents, strict=True):
        if content.empty:
            finish(session, outgoing.message, "skipped", "nothing to send any more")
            report.skipped += 1
            continue
        # In the person's language (chosen, else the directory's; a scheduler has no browser to ask).
        outgoing.language = languages.choose(outgoing.prefs.language, outgoing.employee.language) or languages.DEFAULT
        outgoing.content = content
        kept.append(outgoing)
    for outgoing, content in zip(kept, in_languages(session, [o.content for o in kept], [o.language for o in kept]),
                                 strict=True):
        outgoing.content = content
    session.commit()  # end the read transaction: nothing is held while sending
    return kept


def _send_batch(session: Session, batch: list[_Outgoing], clock: Callable[[], dt.datetime], claimed_at: dt.datetime,
                settings: Settings, renderer: Renderer, channels: dict[str, Channel], owner: str, pacer: Pacer,
                rng: random.Random | None, report: SendReport) -> None:
    lease = settings.mail.lease
    renewed_at = claimed_at
    mine = {o.message.id for o in batch}
    # An automatic cadence step down is announced by the person's next digest (any channel).
    notices = fatigue.announcements(session, sorted({o.employee.id for o in batch if o.digest.kind == "digest"}))
    webhooks_wanted = subscribed(session, "digest.sent")
    session.commit()
    down: dict[str, TemporaryFailure] = {}  # channel -> the failure that showed it unavailable
    deferred: dict[str, int] = {}
    for outgoing in batch:
        message, employee, digest, content = outgoing.message, outgoing.employee, outgoing.digest, outgoing.content
        now = clock()
        if now >= renewed_at + lease / 2:
            # Half the lease is gone: renew every message of the batch still unsent, at once.
            kept = renew_many(session, OutboxMessage, sorted(mine), owner, now, lease)
            session.commit()
            report.lost += len(mine - kept)
            mine, renewed_at = kept, now
        if message.id not in mine:
            continue
        if now >= message.expires_at:
            mine.discard(message.id)
            finish(session, message, "expired", "expired before it could be sent")
            report.expired += 1
            continue
        if message.channel in down:
            mine.discard(message.id)
            if _retry_later(session, message, down[message.channel], now, settings, rng, report):
                deferred[message.channel] = deferred.get(message.channel, 0) + 1
            continue
        step_down = None if message.escalation or digest.kind != "digest" else notices.get(employee.id)
        if message.channel == "in_app":
            # The in-app digest is its outbox row (the post ids): rendering mail and a card for it
            # was half of a run's rendering, thrown away.
            rendered = RenderedDigest(message_id=message.message_id, recipient_email=None,
                                      recipient_name=employee.display_name, subject="", html="", text="", card={},
                                      unsubscribe_url="")
        else:
            rendered = renderer.render(employee, message, content, outgoing.prefs,
                                       why(digest, content, outgoing.language),
                                       reminder=digest.kind == "alert" and content.overdue_must_reads > 0,
                                       notice=fatigue.describe(step_down, outgoing.language) if step_down else None,
                                       language=outgoing.language)
        if message.channel != "in_app":
            pacer.wait()
            now = clock()
        mine.discard(message.id)
        try:
            channels[message.channel].deliver(rendered, now)
        except TemporaryFailure as exc:
            if exc.outage:
                down[message.channel] = exc
            _retry_later(session, message, exc, now, settings, rng, report)
            logger.warning("Digest message %s (%s) failed temporarily: %s", message.id, message.channel, exc.reason)
            continue
        except PermanentFailure as exc:
            finish(session, message, "failed", exc.reason)
            report.failed += 1
            logger.error("Digest message %s (%s) failed permanently: %s", message.id, message.channel, exc.reason)
            continue
        message.status, message.sent_at, message.lease_until = "sent", now, None
        message.post_ids, message.last_error = content.post_ids, None
        session.add(message)
        if step_down is not None:
            fatigue.mark_announced(step_down, now)
            notices.pop(employee.id, None)
        events.record(session, employee, "digest_sent", at=now, client_id=f"outbox-{message.id}",
                      delivery_id=message.id, channel=message.channel, org_timezone=settings.site.org_timezone,
                      fold=False)
        if webhooks_wanted:
            digest_sent_event(session, message, digest, employee, post_ids=content.post_ids, now=now)
        session.commit()
        report.sent += 1
    for channel, failure in down.items():
        logger.error("Delivery alert: the %s channel is unavailable (%s); %d more of this batch's messages wait "
                     "for their retry", channel, failure.reason, deferred.get(channel, 0),
                     extra={"alert": "delivery_channel_down", "channel": channel})


def _retry_later(session: Session, message: OutboxMessage, failure: TemporaryFailure, now: dt.datetime,
                 settings: Settings, rng: random.Random | None, report: SendReport) -> bool:
    """Put *message* back for a retry after *failure* (backoff or Retry-After), or give it up when
    that would fall after its expiry; commit. True when it will be retried."""
    again = retry_at(failure, attempts=message.attempts, base_seconds=settings.mail.retry_seconds, now=now,
                     expires_at=message.expires_at, rng=rng)
    if again is None:
        finish(session, message, "expired", f"gave up before the next digest: {failure.reason}")
        report.expired += 1
        logger.error("Delivery alert: digest message %s (%s) given up after %d attempts: %s", message.id,
                     message.channel, message.attempts, failure.reason,
                     extra={"alert": "delivery_given_up", "channel": message.channel})
        return False
    put_back(session, message, again, failure.reason)
    report.retried += 1
    return True


#: How long one sending run (the ``digests-send`` job, every minute) goes on claiming new batches.
#: Paced at the default 30 a minute, one batch of 30 fills it; unpaced (a relay of one's own), a
#: run used to send one batch and stop, so 100,000 digests took 100,000 / 30 minutes.
SEND_RUN_BUDGET = dt.timedelta(seconds=45)


def send_batch(sessions: Callable[[], Session], clock: Callable[[], dt.datetime], settings: Settings,
               renderer: Renderer, *, budget: dt.timedelta = SEND_RUN_BUDGET,
               monotonic: Callable[[], float] = time.monotonic) -> SendReport:
    """Send paced batches of due messages on every configured channel, then close the channels.

    Batch after batch over the same connections and pacer, while the last batch sent or settled
    something and had no temporary failure (a struggling channel waits for its backoff) and less
    than *budget* has passed, so the next run of the job is not held up; each batch commits as
    :func:`send_due` says, so a crash still repeats at most the one message in flight.

    :param sessions: opens the session the sender commits in, as it goes.
    :param clock: the current time, read again before each send (pacing takes time).
    """
    channels = configured_channels(settings.mail)
    pacer = Pacer(settings.mail.rate_per_minute)
    total = SendReport()
    started = monotonic()
    try:
        with sessions() as session:
            while True:
                report = send_due(session, clock, settings, renderer, channels=channels, pacer=pacer)
                total.add(report)
                if report.retried or not (report.sent or report.skipped or report.expired or report.failed) \
                        or monotonic() - started >= budget.total_seconds():
                    return total
    finally:
        mailer = channels.get("email")
        if mailer is not None and hasattr(mailer, "close"):
            mailer.close()


def purge_job(session: Session, now: dt.datetime, settings: Settings) -> int:
    """Scheduled: forget finished outbox rows and past digest slots after 30 days (bodies are never stored)."""
    from sqlalchemy import delete

    cutoff = now - dt.timedelta(days=30)
    result = session.execute(delete(Digest).where(Digest.due_at < cutoff))
    return result.rowcount or 0

