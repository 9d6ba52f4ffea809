"""Fatigue: fewer messages for people who do not read them, and a weekly budget for everyone.

Two rules, both of which leave must-reads alone (they are pinned in every digest and alerted
until acknowledged, whatever the cadence or the budget):

* **Ignored digests.** A person whose last ``INTRANET_FATIGUE_IGNORED_DIGESTS`` digests went out
  with no open and no click since (a ``digest_open`` that is not a tracking pixel, or a
  ``digest_click``) is offered the next gentler cadence (:data:`STEP_DOWN`: as it happens or twice
  a day -> daily -> weekly; weekly is the floor) on their feed and preferences page, to accept or
  dismiss with one click. Where the organisation enables ``INTRANET_FATIGUE_AUTO_STEP_DOWN``, a
  suggestion left unanswered for as many more ignored digests becomes an automatic step down,
  announced in Beacon (until the person keeps it or undoes it) and in their next digest. People
  with as-it-happens news are judged on their alerts, everyone else on their planned digests;
  a dismissed suggestion comes back only after as many further ignored digests.
* **Weekly budget.** Beyond must-reads, a person is sent at most ``INTRANET_WEEKLY_ITEM_BUDGET``
  posts in any 7 days, digests and alerts together; :func:`intranet.delivery.content.compose`
  holds back the rest (they wait in the feed, and the digest says how many more there are).

:func:`scan_job` is the periodic job; the person's choices are :func:`accept`, :func:`dismiss`,
:func:`keep` and :func:`undo`. Functions take a session and never commit.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlmodel import Session

from intranet import languages, preferences
from intranet.languages import N_
from intranet.models import Digest, EngagementEvent, Employee, FatigueNotice, OutboxMessage, Post
from intranet.settings import Settings

#: The next gentler cadence (weekly is the floor: Beacon never turns a digest off by itself).
STEP_DOWN = {"as_it_happens": "daily", "twice_daily": "daily", "daily": "weekly"}
#: Digest history looked at (finished outbox rows are purged after 30 days).
WINDOW = dt.timedelta(days=28)
#: The span of the weekly budget.
WEEK = dt.timedelta(days=7)
CADENCE_NAMES = {"as_it_happens": N_("as it happens"), "twice_daily": N_("twice a day"), "daily": N_("once a day"),
                 "weekly": N_("once a week"), "off": N_("never")}
_ENGAGED = ("digest_open", "digest_click")


# --------------------------------------------------------------------------------------------
# The weekly budget
# --------------------------------------------------------------------------------------------


def _sent_post_ids(session: Session, now: dt.datetime, employee_pks: list[int] | None,
                   excluding_digest: int | None = None) -> dict[int, set[int]]:
    query = select(OutboxMessage.employee_pk, OutboxMessage.post_ids).where(
        OutboxMessage.status == "sent", OutboxMessage.sent_at > now - WEEK, OutboxMessage.sent_at <= now)
    if excluding_digest is not None:
        query = query.where(OutboxMessage.digest_id != excluding_digest)
    sent: dict[int, set[int]] = defaultdict(set)
    chunks = [None] if employee_pks is None else [employee_pks[i:i + 5000] for i in range(0, len(employee_pks), 5000)]
    for chunk in chunks:
        part = query if chunk is None else query.where(OutboxMessage.employee_pk.in_(chunk))
        for pk, post_ids in session.execute(part):
            sent[pk].update(post_ids or ())
    return sent


def _must_reads(session: Session, post_ids: set[int]) -> set[int]:
    ids = sorted(post_ids)
    out: set[int] = set()
    for start in range(0, len(ids), 5000):
        out.update(session.execute(select(Post.id).where(Post.id.in_(ids[start:start + 5000]), Post.must_read))
                   .scalars())
    return out


def sent_this_week(session: Session, employee_pk: int, now: dt.datetime, *,
                   excluding_digest: int | None = None) -> int:
    """How many posts that are not must-reads *employee_pk* was sent in the 7 days before *now*.

    A post sent twice (by email and in Beacon, or in two digests) counts once.

    :param excluding_digest: leave out the messages of this slot (its other channels are the same digest).
    """
    sent = _sent_post_ids(session, now, [employee_pk], excluding_digest).get(employee_pk, set())
    return len(sent - _must_reads(session, sent)) if sent else 0


def sent_post_ids_by_digest(session: Session, employee_pks: list[int], now: dt.datetime) -> dict[int, dict[int, set[int]]]:
    """The posts sent to each of *employee_pks* in the 7 days before *now*, by the digest slot that
    carried them: what :func:`sent_this_week` counts, for a batch that leaves out a different slot per person."""
    query = select(OutboxMessage.employee_pk, OutboxMessage.digest_id, OutboxMessage.post_ids).where(
        OutboxMessage.status == "sent", OutboxMessage.sent_at > now - WEEK, OutboxMessage.sent_at <= now)
    sent: dict[int, dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))
    for start in range(0, len(employee_pks), 5000):
        for pk, digest_id, post_ids in session.execute(query.where(
                OutboxMessage.employee_pk.in_(employee_pks[start:start + 5000]))):
            sent[pk][digest_id].update(post_ids or ())
    return sent


def must_reads_among(session: Session, post_ids: set[int]) -> set[int]:
    """Which of *post_ids* are must-reads (they never count against the budget)."""
    return _must_reads(session, post_ids) if post_ids else set()


def sent_this_week_many(session: Session, employee_pks: Iterable[int] | None, now: dt.datetime) -> dict[int, int]:
    """:func:`sent_this_week` for many people in two queries (people who were sent nothing are left out).

    :param employee_pks: whom to count; None counts everyone.
    """
    sent = _sent_post_ids(session, now, None if employee_pks is None else list(employee_pks))
    must = _must_reads(session, set().union(*sent.values())) if sent else set()
    return {pk: len(ids - must) for pk, ids in sent.items()}


@dataclasses.dataclass(frozen=True)
class Budget:
    """One person's weekly budget as the preferences page shows it."""

    limit: int
    used: int

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


def budget_for(session: Session, employee: Employee, now: dt.datetime, weekly_budget: int) -> Budget | None:
    """*employee*'s weekly budget and what they have used of it (None when the organisation set none)."""
    if not weekly_budget:
        return None
    return Budget(weekly_budget, sent_this_week(session, employee.id, now))


# --------------------------------------------------------------------------------------------
# Ignored digests
# --------------------------------------------------------------------------------------------


def _engaged_filter(now: dt.datetime) -> Any:
    E = EngagementEvent
    return and_(E.kind.in_(_ENGAGED), E.occurred_at > now - WINDOW, or_(E.surface.is_(None), E.surface != "pixel"))


def _ignored_counts(session: Session, now: dt.datetime, at_least: int) -> dict[int, dict[str, int]]:
    """Per person and slot kind, how many slots went out since their last open or click, or since
    their last cadence notice was made or answered (whichever came last); only counts >= *at_least*.

    One grouped statement: a day's digests for 100,000 people are 28 x 100,000 slots in the window,
    too many to carry into Python.
    """
    E, N, O = EngagementEvent, FatigueNotice, OutboxMessage
    floor = now - WINDOW
    engaged = (select(E.employee_pk.label("pk"), func.max(E.occurred_at).label("last"))
               .where(_engaged_filter(now)).group_by(E.employee_pk).subquery())
    slots = (select(O.employee_pk.label("pk"), Digest.kind.label("kind"), func.min(O.sent_at).label("sent_at"))
             .join(Digest, Digest.id == O.digest_id)
             .where(O.status == "sent", O.sent_at > floor, O.sent_at <= now, O.escalation.is_(False))
             .group_by(O.employee_pk, O.digest_id, Digest.kind).subquery())
    last = func.coalesce(engaged.c.last, floor)
    decided = func.coalesce(N.resolved_at, N.created_at, floor)
    after = case((last > decided, last), else_=decided)
    rows = session.execute(
        select(slots.c.pk, slots.c.kind, func.count())
        .outerjoin(engaged, engaged.c.pk == slots.c.pk).outerjoin(N, N.employee_pk == slots.c.pk)
        .where(slots.c.sent_at > after)
        .group_by(slots.c.pk, slots.c.kind).having(func.count() >= at_least))
    out: dict[int, dict[str, int]] = defaultdict(dict)
    for pk, kind, count in rows:
        out[pk][kind] = int(count)
    return out


def _last_engaged(session: Session, now: dt.datetime, employee_pks: list[int]) -> dict[int, dt.datetime]:
    E = EngagementEvent
    query = select(E.employee_pk, func.max(E.occurred_at)).where(_engaged_filter(now)).group_by(E.employee_pk)
    out: dict[int, dt.datetime] = {}
    for start in range(0, len(employee_pks), 5000):
        chunk = employee_pks[start:start + 5000]
        out.update((pk, at) for pk, at in session.execute(query.where(E.employee_pk.in_(chunk))))
    return out


@dataclasses.dataclass
class ScanReport:
    suggested: int = 0
    stepped_down: int = 0
    withdrawn: int = 0

    def __str__(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in dataclasses.asdict(self).items())


def scan(session: Session, now: dt.datetime, *, ignored_digests: int, auto_step_down: bool) -> tuple[ScanReport, list[int]]:
    """Suggest, withdraw and (where allowed) apply cadence step downs from the digest history.

    Safe to run twice: one notice row per person, and a second run finds nothing new to do.

    :return: the report, and the people whose cadence was stepped down (their slots need re-planning).
    """
    report, stepped = ScanReport(), []
    ignoring = _ignored_counts(session, now, ignored_digests)
    notices = {n.employee_pk: n for n in session.execute(
        select(FatigueNotice).where(FatigueNotice.resolved_at.is_(None))).scalars()}
    undecided = sorted(pk for pk, n in notices.items() if n.kind == "suggestion")
    engaged = _last_engaged(session, now, undecided)
    known = [pk for pk in ignoring if pk not in notices]
    for start in range(0, len(known), 5000):
        notices.update((n.employee_pk, n) for n in session.execute(
            select(FatigueNotice).where(FatigueNotice.employee_pk.in_(known[start:start + 5000]))).scalars())
    pks = sorted(set(ignoring) | set(undecided))
    prefs = preferences.for_employees(session, pks)
    for pk in pks:
        cadence = prefs[pk].cadence
        # Counted since the last open or click, or since the notice was made or answered.
        ignored = ignoring.get(pk, {}).get("alert" if cadence == "as_it_happens" else "digest", 0)
        notice = notices.get(pk)
        if notice is not None and notice.resolved_at is None and notice.kind == "suggestion":
            last_engaged = engaged.get(pk)
            if cadence != notice.from_cadence or (last_engaged is not None and last_engaged > notice.created_at):
                _resolve(notice, "withdrawn", now)  # they changed it themselves, or read their digests again
                report.withdrawn += 1
            elif auto_step_down and ignored >= ignored_digests:
                _step_down(session, notice, pk, now, ignored=notice.ignored + ignored)
                stepped.append(pk)
                report.stepped_down += 1
            continue
        if notice is not None and notice.resolved_at is None and notice.announced_at is None:
            continue  # an automatic step down the person has not been told about yet
        target = STEP_DOWN.get(cadence)
        if target is None or ignored < ignored_digests:
            continue
        row = notice or FatigueNotice(employee_pk=pk)
        row.kind, row.from_cadence, row.to_cadence, row.ignored = "suggestion", cadence, target, ignored
        row.created_at, row.resolved_at, row.resolution, row.announced_at = now, None, None, None
        session.add(row)
        report.suggested += 1
    session.flush()
    return report, stepped


def _resolve(notice: FatigueNotice, resolution: str, now: dt.datetime) -> None:
    notice.resolution, notice.resolved_at = resolution, now


def _set_cadence(session: Session, employee: Employee, cadence: str, now: dt.datetime) -> None:
    preferences.update(session, employee, preferences.PreferencesIn(cadence=cadence), now=now)  # type: ignore[arg-type]


def _step_down(session: Session, notice: FatigueNotice, employee_pk: int, now: dt.datetime, *, ignored: int) -> None:
    employee = session.get(Employee, employee_pk)
    assert employee is not None
    _set_cadence(session, employee, notice.to_cadence, now)
    notice.kind, notice.ignored, notice.created_at, notice.announced_at = "step_down", ignored, now, None
    session.add(notice)


def scan_job(session: Session, now: dt.datetime, settings: Settings) -> str:
    """Scheduled: suggest gentler cadences, apply automatic step downs, and re-plan those people's slots."""
    from intranet.delivery import planning

    report, stepped = scan(session, now, ignored_digests=settings.fatigue.ignored_digests,
                           auto_step_down=settings.fatigue.auto_step_down)
    for pk in stepped:
        employee = session.get(Employee, pk)
        if employee is not None:
            planning.replan_employee(session, employee, now, settings.digests.plan_horizon,
                                     org_timezone=settings.site.org_timezone)
    return str(report)


# --------------------------------------------------------------------------------------------
# What the person sees and chooses
# --------------------------------------------------------------------------------------------


def open_notice(session: Session, employee: Employee) -> FatigueNotice | None:
    """*employee*'s notice waiting for an answer, if any."""
    notice = session.get(FatigueNotice, employee.id)
    return notice if notice is not None and notice.resolved_at is None else None


def _open(session: Session, employee: Employee, kind: str) -> FatigueNotice:
    from intranet.errors import NotFound

    notice = open_notice(session, employee)
    if notice is None or notice.kind != kind:
        raise NotFound(N_("There is no cadence suggestion waiting for you."))
    return notice


def accept(session: Session, employee: Employee, now: dt.datetime) -> FatigueNotice:
    """Take the suggested cadence (the caller re-plans the person's slots).

    :raise NotFound: no suggestion is waiting.
    """
    notice = _open(session, employee, "suggestion")
    _set_cadence(session, employee, notice.to_cadence, now)
    _resolve(notice, "accepted", now)
    session.flush()
    return notice


def dismiss(session: Session, employee: Employee, now: dt.datetime) -> FatigueNotice:
    """Keep the current cadence; the suggestion returns only after as many further ignored digests.

    :raise NotFound: no suggestion is waiting.
    """
    notice = _open(session, employee, "suggestion")
    _resolve(notice, "dismissed", now)
    session.flush()
    return notice


def keep(session: Session, employee: Employee, now: dt.datetime) -> FatigueNotice:
    """Acknowledge an automatic step down and keep the gentler cadence.

    :raise NotFound: no step down is waiting.
    """
    notice = _open(session, employee, "step_down")
    _resolve(notice, "kept", now)
    session.flush()
    return notice


def undo(session: Session, employee: Employee, now: dt.datetime) -> FatigueNotice:
    """Go back to the cadence before an automatic step down (the caller re-plans the person's slots).

    :raise NotFound: no step down is waiting.
    """
    notice = _open(session, employee, "step_down")
    _set_cadence(session, employee, notice.from_cadence, now)
    _resolve(notice, "reverted", now)
    session.flush()
    return notice


def describe(notice: FatigueNotice, language: str | None = None) -> str:
    """The notice in one plain sentence, in *language* (the feed, the preferences page and the digest all use it)."""
    old = languages.translate(language, CADENCE_NAMES[notice.from_cadence])
    new = languages.translate(language, CADENCE_NAMES[notice.to_cadence])
    if notice.kind == "step_down":
        return languages.translate(language, "Your last %(ignored)s digests went unopened, so Beacon now sends your "
                                 "digest %(new)s instead of %(old)s. Must-reads still reach you as before.",
                                 ignored=notice.ignored, new=new, old=old)
    return languages.translate(language, "Your last %(ignored)s digests went unopened. Would you rather get your "
                             "digest %(new)s instead of %(old)s? Must-reads still reach you as before.",
                             ignored=notice.ignored, new=new, old=old)


@dataclasses.dataclass(frozen=True)
class NoticeView:
    """An open notice as a page shows it: the sentence and the two answers' labels."""

    kind: str
    text: str
    from_name: str
    to_name: str


def shown(session: Session, employee: Employee, language: str | None = None) -> NoticeView | None:
    """*employee*'s open notice in *language*, ready for the feed or the preferences page (None when there is none)."""
    return view_of(open_notice(session, employee), language)


def open_notice_join(employee_pk: Any) -> Any:
    """The outer-join condition finding *employee_pk*'s open notice (as :func:`open_notice`), for one-statement pages."""
    return and_(FatigueNotice.employee_pk == employee_pk, FatigueNotice.resolved_at.is_(None))


def view_of(notice: FatigueNotice | None, language: str | None = None) -> NoticeView | None:
    """An open *notice* (from :func:`open_notice` or :func:`open_notice_join`) ready to show, in *language*."""
    if notice is None:
        return None
    return NoticeView(notice.kind, describe(notice, language),
                      languages.translate(language, CADENCE_NAMES[notice.from_cadence]),
                      languages.translate(language, CADENCE_NAMES[notice.to_cadence]))


def announcement(session: Session, employee: Employee) -> FatigueNotice | None:
    """An automatic step down the next digest should announce (not announced yet), if any."""
    notice = session.get(FatigueNotice, employee.id)
    if notice is None or notice.kind != "step_down" or notice.announced_at is not None:
        return None
    return notice


def announcements(session: Session, employee_pks: list[int]) -> dict[int, FatigueNotice]:
    """:func:`announcement` for a batch of people (one query): the people with one to announce."""
    out: dict[int, FatigueNotice] = {}
    for start in range(0, len(employee_pks), 5000):
        for notice in session.execute(select(FatigueNotice).where(
                FatigueNotice.employee_pk.in_(employee_pks[start:start + 5000]), FatigueNotice.kind == "step_down",
                FatigueNotice.announced_at.is_(None))).scalars():
            out[notice.employee_pk] = notice
    return out


def mark_announced(notice: FatigueNotice, now: dt.datetime) -> None:
    """Record that a digest told the person about *notice*."""
    notice.announced_at = now
