"""Learned send times for digests: when is each person most likely to read one?

Pure and database-free: everything here works on numpy arrays of shape ``(n, 168)``, one row per
employee and one column per local hour of the week (``weekday * 24 + hour``, Monday = 0), so
planning the whole organisation is a handful of vectorised passes.

The model (see ``shared/reference/DELIVERY.md``, sections 2.1, 2.2 and 2.6):

1. A read *hazard* per hour of the week, estimated as reads / exposure. Exposure is the time a
   digest sat unread (weighted by how buried it was), so "reads at 9 because we sent at 9" does
   not look like "reads at 9". Send-independent activity (sessions, feed reads) shapes it too.
2. Exponential decay of old behaviour (half-life about four weeks), so habits can change.
3. Gamma-Poisson shrinkage organisation -> region -> department x region -> person,
   ``mu = (c + m * mu_parent) / (T + m)``. A new hire simply gets the department x region curve.
   Peers are pooled like with like: each person's exposure counts in units of their group's
   typical attention in that hour (:func:`activity_ratio`), because the planner sends where a
   person reads, and raw pooling would hand a group the hours of its few early or late readers.
4. A send slot ``s`` is scored by ``S(s) = sum_{j<W} mu(s+j) * exp(-j / tau)``, and the chance of
   a read within ``W`` hours is ``1 - exp(-S(s))``. The planner picks the best allowed hour(s)
   for each person's cadence, quiet hours and working days; near-ties go to the hour most often
   read within two hours, so the digest lands just before the person looks. Quiet hours the
   person chose always hold; the organisation's default ones give way where the person's own
   behaviour shows they read (:func:`demonstrated_hours`).
5. Concrete UTC instants over the next seven days, DST-safe, each with its slot key
   ``(local date, ordinal)``; about ``epsilon`` of the slots are jittered by 1-2 hours and
   flagged as explored, with their propensity, so the model keeps learning and can be evaluated.

The database layer feeds :func:`timing_counts` with one query's rows, keeps the decayed counts
(:meth:`TimingCounts.decayed` makes the decay lazy), and turns :class:`PlanBatch` rows into
outbox rows.
"""
from __future__ import annotations

import enum
import functools
import hashlib
import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from intranet import languages
from intranet.languages import N_, ntranslate, translate

logger = logging.getLogger(__name__)

HOURS_PER_WEEK = 168
WEEKDAYS = tuple(range(7))
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class Cadence(enum.StrEnum):
    """How often a person wants their digest. Only the last three are planned here."""

    OFF = "off"
    AS_IT_HAPPENS = "as_it_happens"
    DAILY = "daily"
    TWICE_DAILY = "twice_daily"
    WEEKLY = "weekly"


#: Number of digests a day for each planned cadence (weekly: one on the chosen day).
SLOTS_PER_DAY = {Cadence.DAILY: 1, Cadence.TWICE_DAILY: 2, Cadence.WEEKLY: 1}


class Basis(enum.StrEnum):
    """What a person's send time is based on."""

    #: Enough of their own reads and activity.
    PERSONAL = "personal"
    #: Mostly their department x region peers (new or sparse, or learned timing turned off).
    PEERS = "peers"
    #: Nothing is known: the organisation's default hour.
    DEFAULT = "default"
    #: In this week's holdout: the default hour, so the gain of learned timing can be measured.
    CONTROL = "control"


class EventKind(enum.StrEnum):
    """Kinds of rows :func:`timing_counts` understands (the event import's names)."""

    #: A digest was sent; needs ``pending_hours`` (until read, or censored).
    DIGEST_SENT = "digest_sent"
    #: A digest was opened (not a tracking pixel: Apple MPP prefetches those).
    DIGEST_OPEN = "digest_open"
    #: The person was on the intranet: send-independent activity.
    SESSION = "session"
    #: The person read a post in the feed: send-independent activity.
    READ = "read"


@dataclass(frozen=True)
class TimingSettings:
    """Knobs of the model and the planner, with the defaults the simulator was tuned on."""

    #: Old behaviour counts half after this many days.
    half_life_days: float = 28.0
    #: Burial constant: a digest's pull fades as ``exp(-hours / tau)``.
    tau_hours: float = 8.0
    #: Objective: read within this many hours of the send (24 = reach; 2 = timeliness).
    window_hours: int = 24
    #: A digest not read after this many hours is censored (no more exposure counted).
    pending_hours: int = 48
    #: Prior strengths, in decayed exposure hours per bin, for region and department x region.
    #: Since peers are pooled like with like (see :func:`fit_peers`), a group's reads add little
    #: to its activity-shaped prior: on the organisation tuned on, 200 and 100 gave 90.2 % of the
    #: oracle's gain, 40 and 20 89.8 % (with ``m_activity`` 0.5).
    m_region: float = 200.0
    m_group: float = 100.0
    #: Prior strength of a person's overall read level (pseudo-reads).
    m_level: float = 4.0
    #: Prior strength of a person's hour-of-day read profile (pseudo-reads per hour).
    m_hour: float = 4.0
    #: Prior strength of a person's hour-of-day activity profile (pseudo-events per hour). Half
    #: an event: an evening reader in an office team is active at 20:00 many times as often as
    #: the team, and a stronger prior holds that back (tuned organisation: 89.8 % with 0.5,
    #: 89.5 % with 1, 89.7 % with 0.25).
    m_activity: float = 0.5
    #: Weight of the neighbouring hours when pooling a person's hour-of-day profile (0 = none).
    smooth_neighbours: float = 0.5
    #: Decayed personal events (digest opens + activity) needed for basis ``personal``.
    min_personal_events: float = 10.0
    #: Minimum gap between the two digests of a twice-a-day cadence.
    min_gap_hours: int = 4
    #: The organisation's default hours (second one for twice a day).
    default_hour: int = 9
    default_second_hour: int = 14
    #: Hours whose read-within-``window_hours`` rates differ by less than this (0.2 point) are a
    #: tie, broken by the read-within-``timely_hours`` rate: the digest lands shortly before the
    #: person looks, so it is on top when they do.
    tie_tolerance: float = 0.002
    timely_hours: int = 2
    #: A default quiet hour opens for a person's digest when their own decayed digest opens and
    #: activity in that hour of the day or the next reach this many events and this share of all
    #: their events: someone who demonstrably reads at 06:30 gets the digest at 06:00.
    min_demonstrated_events: float = 2.0
    min_demonstrated_share: float = 0.04
    #: Share of slots explored around the chosen hour. 5 %: on the simulated organisation this
    #: was tuned on (bench.digest_eval, scenario "tuned", seeds 0-4), 10 % left a point of the
    #: oracle's gain on the table for nothing, since each digest already exposes the hours it sits
    #: unread and sessions are observed whatever is sent.
    epsilon: float = 0.05
    #: Share of employees (re-drawn weekly) held out at the default hour.
    control_share: float = 0.05
    #: Days from ``at`` that the planner emits sends for.
    horizon_days: int = 7


@dataclass(frozen=True)
class DeliveryWindow:
    """A person's constraints: cadence, quiet hours, working days, learned timing on or off.

    Quiet hours run from ``quiet_start`` to ``quiet_end`` (local hours, may wrap midnight;
    equal values mean no quiet hours). ``weekly_day`` is the weekday for the weekly cadence
    (Monday = 0) and overrides ``working_days``.

    ``own_quiet_hours`` says whether the person chose these quiet hours. Their own always hold.
    The organisation's default ones protect nights from alerts; for the digest they give way in
    the hours the person demonstrably reads in (see :func:`demonstrated_hours`).
    """

    cadence: Cadence = Cadence.DAILY
    weekly_day: int | None = None
    quiet_start: int = 20
    quiet_end: int = 7
    working_days: tuple[int, ...] = (0, 1, 2, 3, 4)
    learned_timing: bool = True
    own_quiet_hours: bool = True

    def allowed_hours(self) -> list[int]:
        """Local hours of day outside the quiet hours."""
        return [h for h in range(24) if not _is_quiet(h, self.quiet_start, self.quiet_end)]


@dataclass(frozen=True)
class PlannedSend:
    """One digest send: a UTC instant and its slot key ``(local_date, ordinal)``."""

    utc: datetime
    local_date: date
    ordinal: int
    local_hour: int
    explored: bool = False
    #: Probability that the policy sends this slot at this hour (for replay / IPS evaluation).
    propensity: float = 1.0


@dataclass(frozen=True)
class Plan:
    """One person's plan: why, which local hours, and the concrete sends."""

    basis: Basis | None
    local_hours: list[int]
    sends: list[PlannedSend] = field(default_factory=list)


def _is_quiet(hour: int | IntArray, start: int, end: int) -> bool | BoolArray:
    if start == end:
        return hour != hour  # no quiet hours (works for ints and arrays)
    if start < end:
        return (start <= hour) & (hour < end)
    return (hour >= start) | (hour < end)


# --------------------------------------------------------------------------------------------
# Evidence: events -> decayed counts
# --------------------------------------------------------------------------------------------


@dataclass
class TimingCounts:
    """Decayed sufficient statistics per employee.

    ``reads``: digest opens per bin; ``exposure``: burial-weighted hours a digest sat unread per
    bin; ``activity``: sessions and feed reads per bin; ``observed_weeks``: decayed number of
    weeks the person could be seen at all (activity's exposure, the same for every bin).
    """

    reads: FloatArray
    exposure: FloatArray
    activity: FloatArray
    observed_weeks: FloatArray

    @classmethod
    def zeros(cls, n: int) -> TimingCounts:
        """Counts for ``n`` people with no history."""
        z = np.zeros((n, HOURS_PER_WEEK))
        return cls(z, z.copy(), z.copy(), np.zeros(n))

    def decayed(self, days: float, half_life_days: float = 28.0) -> TimingCounts:
        """These counts ``days`` later: the lazy decay, so no nightly rewrite is needed."""
        f = 0.5 ** (days / half_life_days)
        return TimingCounts(self.reads * f, self.exposure * f, self.activity * f,
                            self.observed_weeks * f)

    def __add__(self, other: TimingCounts) -> TimingCounts:
        return TimingCounts(self.reads + other.reads, self.exposure + other.exposure,
                            self.activity + other.activity,
                            self.observed_weeks + other.observed_weeks)

    def take(self, index: npt.ArrayLike) -> TimingCounts:
        """The rows of some employees (for an incremental re-plan)."""
        return TimingCounts(self.reads[index], self.exposure[index], self.activity[index],
                            self.observed_weeks[index])


def decay_weights(age_days: npt.ArrayLike, half_life_days: float = 28.0) -> FloatArray:
    """Weight ``2 ** (-age / half_life)`` of an event ``age_days`` old."""
    return np.exp2(-np.asarray(age_days, dtype=np.float64) / half_life_days)


def observed_weeks(observed_days: npt.ArrayLike, half_life_days: float = 28.0) -> FloatArray:
    """Decayed weeks of observation for people observable for the last ``observed_days`` days.

    Each past day adds one seventh of a week, weighted by its age, so a bin's activity exposure
    is the decayed number of times that hour of the week has passed.
    """
    d = np.asarray(observed_days, dtype=np.float64)
    r = 0.5 ** (1.0 / half_life_days)
    return (1.0 - r ** d) / (1.0 - r) / 7.0


def binned_counts(employee: npt.ArrayLike, hour_of_week: npt.ArrayLike, n_employees: int,
                  weights: npt.ArrayLike | None = None) -> FloatArray:
    """Sum ``weights`` into an ``(n_employees, 168)`` array (one ``bincount``)."""
    idx = np.asarray(employee, dtype=np.int64) * HOURS_PER_WEEK + np.asarray(hour_of_week,
                                                                             dtype=np.int64)
    flat = np.bincount(idx, weights=weights, minlength=n_employees * HOURS_PER_WEEK)
    return flat.astype(np.float64).reshape(n_employees, HOURS_PER_WEEK)


def exposure_counts(employee: npt.ArrayLike, send_hour_of_week: npt.ArrayLike,
                    pending_hours: npt.ArrayLike, weights: npt.ArrayLike, n_employees: int, *,
                    tau_hours: float = 8.0, max_pending: int = 48) -> FloatArray:
    """Burial-weighted hours that each digest sat unread, per local hour-of-week bin.

    A digest sent in bin ``s`` and pending for ``p`` hours adds ``exp(-j / tau)`` (times the
    fraction of hour ``j`` it was pending) to bin ``s + j`` for ``j < min(p, max_pending)``.
    For a digest opened in the hour after it was sent, ``p`` is 1 (the read hour counts).

    :param pending_hours: hours from the send until the read (inclusive of the read's hour,
        fractions allowed), or ``max_pending`` when unread.
    :param weights: decay weight of each send.
    """
    emp = np.asarray(employee, dtype=np.int64)
    s = np.asarray(send_hour_of_week, dtype=np.int64)
    p = np.minimum(np.asarray(pending_hours, dtype=np.float64), max_pending)
    w = np.asarray(weights, dtype=np.float64)
    out = np.zeros(n_employees * HOURS_PER_WEEK)
    base = emp * HOURS_PER_WEEK
    for j in range(int(np.ceil(p.max()))) if p.size else ():
        frac = np.clip(p - j, 0.0, 1.0)
        live = frac > 0
        out += np.bincount(base[live] + (s[live] + j) % HOURS_PER_WEEK,
                           weights=w[live] * frac[live] * np.exp(-j / tau_hours),
                           minlength=out.size)
    return out.reshape(n_employees, HOURS_PER_WEEK)


def timing_counts(employee: npt.ArrayLike, hour_of_week: npt.ArrayLike, age_days: npt.ArrayLike,
                  kind: npt.ArrayLike, n_employees: int, *,
                  pending_hours: npt.ArrayLike | None = None,
                  observed_days: npt.ArrayLike | None = None,
                  settings: TimingSettings | None = None) -> TimingCounts:
    """Turn one query's event rows into decayed :class:`TimingCounts`.

    All arrays are parallel, one entry per event. ``hour_of_week`` is the event's local bin in
    the employee's own time zone; for a ``digest_sent`` row it is the send's bin.

    :param employee: row index (0..n-1) of the employee in the arrays being planned.
    :param age_days: age of the event at planning time, in days (fractions allowed).
    :param kind: :class:`EventKind` values; other kinds are ignored.
    :param pending_hours: for ``digest_sent`` rows, hours until opened (inclusive of the
        open's hour) or ``settings.pending_hours`` if unread; ignored for other rows.
    :param observed_days: per employee, days they have been observable (since hire or since
        tracking began). Defaults to the age of their oldest event.
    :raise ValueError: if ``digest_sent`` rows come without ``pending_hours``.
    """
    settings = settings or TimingSettings()
    emp = np.asarray(employee, dtype=np.int64)
    how = np.asarray(hour_of_week, dtype=np.int64)
    age = np.asarray(age_days, dtype=np.float64)
    kinds = np.asarray(kind).astype(str)
    w = decay_weights(age, settings.half_life_days)

    opened = kinds == EventKind.DIGEST_OPEN.value
    active = (kinds == EventKind.SESSION.value) | (kinds == EventKind.READ.value)
    sent = kinds == EventKind.DIGEST_SENT.value
    reads = binned_counts(emp[opened], how[opened], n_employees, w[opened])
    activity = binned_counts(emp[active], how[active], n_employees, w[active])
    if sent.any():
        if pending_hours is None:
            raise ValueError("digest_sent rows need pending_hours (hours until opened, or the"
                             " censoring limit when unread).")
        pend = np.asarray(pending_hours, dtype=np.float64)[sent]
        exposure = exposure_counts(emp[sent], how[sent], pend, w[sent], n_employees,
                                   tau_hours=settings.tau_hours,
                                   max_pending=settings.pending_hours)
    else:
        exposure = np.zeros_like(reads)
    if observed_days is None:
        observed_days = np.zeros(n_employees)
        np.maximum.at(observed_days, emp, age)
        observed_days = np.where(np.bincount(emp, minlength=n_employees) > 0,
                                 observed_days + 1.0, 0.0)
    return TimingCounts(reads, exposure, activity,
                        observed_weeks(observed_days, settings.half_life_days))


# --------------------------------------------------------------------------------------------
# Estimation: hierarchical Gamma-Poisson shrinkage
# --------------------------------------------------------------------------------------------


def shrink(c: FloatArray, T: FloatArray, parent: FloatArray, m: float) -> FloatArray:
    """Gamma-Poisson posterior mean ``(c + m * parent) / (T + m)``."""
    return (c + m * parent) / (T + m)


def _group_sums(codes: IntArray, n_codes: int, *arrays: FloatArray) -> list[FloatArray]:
    """Per-code sums of ``(n, 168)`` arrays, one ``bincount`` each over a shared index."""
    idx = (codes[:, None] * HOURS_PER_WEEK + np.arange(HOURS_PER_WEEK)).ravel()
    return [np.bincount(idx, weights=a.ravel(), minlength=n_codes * HOURS_PER_WEEK)
            .reshape(n_codes, HOURS_PER_WEEK) for a in arrays]


def _reshaped(parent: FloatArray, ratio: FloatArray) -> FloatArray:
    """``parent * ratio``, rescaled so each row keeps the parent's total."""
    out = parent * ratio
    return out * (parent.sum(-1, keepdims=True) / np.maximum(out.sum(-1, keepdims=True), 1e-300))


@dataclass
class PeerModel:
    """Peer curves: organisation, region and department x region, read hazard and activity.

    Row ``len - 1`` of ``region_mu`` / ``group_mu`` is the organisation, used for codes the
    model has not seen (so a subset can be re-planned against a model fitted on everyone).
    """

    org_mu: FloatArray
    region_mu: FloatArray
    group_mu: FloatArray
    group_activity: FloatArray
    #: Anything known at all (reads or activity anywhere in the organisation).
    known: bool

    def _codes(self, group: npt.ArrayLike) -> IntArray:
        """Row per group code; unknown codes get the organisation's row."""
        codes = np.asarray(group, dtype=np.int64)
        last = self.group_mu.shape[0] - 1
        return np.where((codes >= 0) & (codes < last), codes, last)

    def peer_curve(self, group: npt.ArrayLike) -> FloatArray:
        """Department x region read hazard for each code, ``(n, 168)``."""
        return self.group_mu[self._codes(group)]


def fit_peers(counts: TimingCounts, region: npt.ArrayLike, group: npt.ArrayLike,
              settings: TimingSettings | None = None) -> PeerModel:
    """Fit the organisation, region and department x region curves.

    The organisation's read hazard is itself shrunk toward its activity curve (scaled to the
    read level), so hours nobody was ever sent a digest in still get a sensible value. Each
    person's exposure is weighted by their :func:`activity_ratio` against their group, so each
    curve is the hazard of a member with the group's typical rhythm: the digests pending at
    06:00 are mostly those of people who read at 06:00 (that is why they were sent then), and
    pooled raw they would make 06:00 look good for everyone.

    :param region: region code (0..R-1) per employee, e.g. from ``np.unique(..., return_inverse)``.
    :param group: department x region code (0..G-1) per employee; each group lies in one
        region.
    """
    s = settings or TimingSettings()
    region = np.asarray(region, dtype=np.int64)
    group = np.asarray(group, dtype=np.int64)
    n_r = int(region.max()) + 1 if region.size else 0
    n_g = int(group.max()) + 1 if group.size else 0
    group_region = np.zeros(n_g, dtype=np.int64)
    group_region[group] = region

    # Activity first (send-independent; its exposure is the observed weeks, the same in every
    # bin). People are summed into groups once; regions and the organisation are sums of groups.
    (a_g,) = _group_sums(group, n_g, counts.activity)
    E_g = np.bincount(group, weights=counts.observed_weeks, minlength=n_g)
    (a_r,) = _group_sums(group_region, n_r, a_g)
    E_r = np.bincount(group_region, weights=E_g, minlength=n_r)
    a_o, E_o = a_r.sum(0), E_r.sum()
    if a_o.sum() > 0 and E_o > 0:
        act_o = (a_o + 1e-3 * a_o.mean()) / E_o
    else:
        act_o = np.ones(HOURS_PER_WEEK)
    act_r = shrink(a_r, E_r[:, None], act_o, 4.0)
    act_g = shrink(a_g, E_g[:, None], act_r[group_region], 2.0)

    # Reads over exposure, with each person's exposure counted in units of their group's typical
    # attention. The planner sends where a person reads, so the digests pending at 06:00 are
    # mostly those of the people who read at 06:00: pooled raw, their reads would make 06:00 look
    # good for the whole group (and a new hire would get it). Weighting each exposure hour by how
    # attentive that person is then (their own activity against the group's) pools like with like.
    n = group.size
    attentive = activity_ratio(counts, _by_hour(act_g)[group], s)[:, None, :]
    exposure = (counts.exposure.reshape(n, 7, 24) * attentive).reshape(n, HOURS_PER_WEEK)
    c_g, T_g = _group_sums(group, n_g, counts.reads, exposure)
    c_r, T_r = _group_sums(group_region, n_r, c_g, T_g)
    c_o, T_o = c_r.sum(0), T_r.sum(0)

    known = bool(c_o.sum() + a_o.sum() > 0)
    exposed = (T_o * act_o).sum()
    scale = c_o.sum() / exposed if c_o.sum() > 0 and exposed > 0 else 0.05 / act_o.mean()
    org_mu = shrink(c_o, T_o, scale * act_o, s.m_group)
    # Each level's prior is its parent's read curve reshaped by its own activity.
    region_mu = shrink(c_r, T_r, _reshaped(org_mu, act_r / act_o), s.m_region)
    group_mu = shrink(c_g, T_g, _reshaped(region_mu[group_region], act_g / act_r[group_region]),
                      s.m_group)
    return PeerModel(org_mu=org_mu, region_mu=np.vstack([region_mu, org_mu]),
                     group_mu=np.vstack([group_mu, org_mu]),
                     group_activity=np.vstack([act_g, act_o]), known=known)


@dataclass
class Estimate:
    """Per-person read hazard, their peer curve and how much of it is their own."""

    mu: FloatArray
    peer_mu: FloatArray
    #: Decayed personal events (digest opens + activity).
    evidence: FloatArray


def _smooth(h: FloatArray, neighbours: float) -> FloatArray:
    """Add ``neighbours`` times the hours either side (round the clock) to ``(n, 24)``."""
    if not neighbours:
        return h
    return h + neighbours * (np.roll(h, 1, axis=1) + np.roll(h, -1, axis=1))


def _by_hour(x: FloatArray, neighbours: float = 0.0) -> FloatArray:
    """Pool ``(n, 168)`` over the days of the week into ``(n, 24)``, then :func:`_smooth`."""
    return _smooth(x.reshape(x.shape[0], 7, 24).sum(axis=1), neighbours)


def _tile(x: FloatArray) -> FloatArray:
    return np.tile(x, 7)


def activity_ratio(counts: TimingCounts, peer_activity: FloatArray,
                   settings: TimingSettings | None = None) -> FloatArray:
    """How attentive each person is in each hour of the day against their peers, ``(n, 24)``.

    Observed over expected sessions and feed reads per hour of day (both smoothed over the
    neighbouring hours, shrunk by ``m_activity`` pseudo-events), with the person's overall level
    removed: 1 everywhere for someone with no activity or exactly their peers' rhythm.

    :param peer_activity: each person's peers' activity rate per hour of day, ``(n, 24)``.
    """
    s = settings or TimingSettings()
    k = s.smooth_neighbours
    a_h = _smooth(_by_hour(counts.activity), k)
    x_h = _smooth(peer_activity, k) * counts.observed_weeks[:, None]
    ratio = (a_h + s.m_activity) / (x_h + s.m_activity)
    level = ((ratio * x_h).sum(1) + s.m_activity) / (x_h.sum(1) + s.m_activity)
    return ratio / level[:, None]


def estimate(counts: TimingCounts, group: npt.ArrayLike, model: PeerModel,
             settings: TimingSettings | None = None) -> Estimate:
    """Each person's read hazard over the 168 hours of the week.

    The person level is the conjugate update of :func:`shrink` pooled over the days of the week
    (a person's weekday-hour data is too sparse to stand alone): their department x region curve
    is reshaped by their own hour-of-day activity (observed / expected sessions, shrunk by
    ``m_activity``), rescaled to their own read level (``m_level``), then corrected by their own
    digest opens per hour of day (opens / exposure-expected opens, shrunk by ``m_hour``).
    A person with no history gets exactly the department x region curve.
    """
    s = settings or TimingSettings()
    k = s.smooth_neighbours
    codes = model._codes(group)
    n = codes.size
    peer = model.group_mu[codes]

    # 1. Activity shape: observed / expected sessions per hour of day, level removed.
    a_raw = _by_hour(counts.activity)
    ratio = activity_ratio(counts, _by_hour(model.group_activity)[codes], s)
    prior = (peer.reshape(n, 7, 24) * ratio[:, None, :]).reshape(n, HOURS_PER_WEEK)

    # 2. Read level, then 3. hour-of-day read profile (both exposure-corrected).
    c_h = _by_hour(counts.reads)
    expected_h = _by_hour(counts.exposure * prior)
    lvl = (c_h.sum(1) + s.m_level) / (expected_h.sum(1) + s.m_level)
    theta = (_smooth(c_h, k) + s.m_hour) / (_smooth(expected_h, k) * lvl[:, None] + s.m_hour)
    mu = (prior.reshape(n, 7, 24) * (lvl[:, None] * theta)[:, None, :]).reshape(n, -1)
    return Estimate(mu=mu, peer_mu=peer, evidence=c_h.sum(1) + a_raw.sum(1))


# --------------------------------------------------------------------------------------------
# Scoring and choosing hours
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _kernel(window_hours: int, tau_hours: float) -> FloatArray:
    """Circulant ``K`` with ``(mu @ K)[:, s] = sum_{j<W} mu[:, s+j] * exp(-j / tau)``."""
    K = np.zeros((HOURS_PER_WEEK, HOURS_PER_WEEK))
    s = np.arange(HOURS_PER_WEEK)
    for j in range(window_hours):
        K[(s + j) % HOURS_PER_WEEK, s] = np.exp(-j / tau_hours)
    K.setflags(write=False)
    return K


def read_probability(mu: FloatArray, settings: TimingSettings | None = None,
                     window_hours: int | None = None) -> FloatArray:
    """``P(read within W | sent at s) = 1 - exp(-S(s))`` for every bin ``s``, ``(n, 168)``.

    Computed in single precision: plenty for choosing an hour, and twice as fast.

    :param window_hours: ``W``; defaults to ``settings.window_hours``.
    """
    s = settings or TimingSettings()
    window = window_hours or s.window_hours
    m = mu.astype(np.float32)
    if window <= 4:
        # A short window (read@2h) is a few shifted sums: far cheaper than the 168 x 168 product.
        # In place over slices: ``pull[:, t] += w * m[:, (t + j) % 168]`` without np.roll's copies.
        pull = m.copy()
        for j in range(1, window):
            w = np.float32(np.exp(-j / s.tau_hours))
            pull[..., :-j] += w * m[..., j:]
            pull[..., -j:] += w * m[..., :j]
        return -np.expm1(-pull, out=pull)
    kernel = _kernel(window, s.tau_hours).astype(np.float32)
    return -np.expm1(-(m @ kernel))


@dataclass
class WindowArrays:
    """:class:`DeliveryWindow` values as arrays, for vectorised choosing and scheduling."""

    #: Digests per day: 0 (off / as it happens), 1 (daily, weekly) or 2 (twice daily).
    slots: IntArray
    weekly: BoolArray
    #: Allowed local hours of day, ``(n, 24)``.
    allowed: BoolArray
    #: Days a digest may go out, ``(n, 7)`` (weekly: only the chosen day).
    days: BoolArray
    learned_timing: BoolArray
    #: Hours that are quiet only by the organisation's default, ``(n, 24)``: they open for a
    #: person's digest where :func:`demonstrated_hours` says so.
    soft_quiet: BoolArray | None = None

    def __post_init__(self) -> None:
        if self.soft_quiet is None:
            self.soft_quiet = np.zeros_like(self.allowed)

    def take(self, index: npt.ArrayLike) -> WindowArrays:
        """The rows of some employees."""
        assert self.soft_quiet is not None
        return WindowArrays(self.slots[index], self.weekly[index], self.allowed[index],
                            self.days[index], self.learned_timing[index], self.soft_quiet[index])

    @classmethod
    def from_windows(cls, windows: Sequence[DeliveryWindow]) -> WindowArrays:
        """Build the arrays; distinct windows are few, so each is converted once."""
        unique: dict[DeliveryWindow, int] = {}
        codes = np.fromiter((unique.setdefault(w, len(unique)) for w in windows),
                            dtype=np.int64, count=len(windows))
        hours = np.arange(24)
        rows = []
        for w in unique:
            days = np.zeros(7, dtype=bool)
            if w.cadence == Cadence.WEEKLY:
                days[w.weekly_day if w.weekly_day is not None else 0] = True
            else:
                days[list(w.working_days)] = True
            quiet = _is_quiet(hours, w.quiet_start, w.quiet_end)
            rows.append((SLOTS_PER_DAY.get(Cadence(w.cadence), 0), w.cadence == Cadence.WEEKLY,
                         ~quiet, days, w.learned_timing, quiet & (not w.own_quiet_hours)))
        if not rows:
            return cls(np.zeros(0, np.int64), np.zeros(0, bool), np.zeros((0, 24), bool),
                       np.zeros((0, 7), bool), np.zeros(0, bool), np.zeros((0, 24), bool))
        slots, weekly, allowed, days, learned, soft = (np.array(col) for col in zip(*rows))
        return cls(slots[codes], weekly[codes], allowed[codes], days[codes], learned[codes],
                   soft[codes])


@functools.lru_cache(maxsize=16)
def _pairs(min_gap: int) -> IntArray:
    """Hour pairs ``h1 < h2`` at least ``min_gap`` apart both ways round the clock."""
    return np.array([(a, b) for a, b in itertools.combinations(range(24), 2)
                     if b - a >= min_gap and 24 - (b - a) >= min_gap], dtype=np.int64)


def choose_hours(prob: FloatArray, windows: WindowArrays,
                 settings: TimingSettings | None = None,
                 timely: FloatArray | None = None) -> IntArray:
    """Best local hour(s) of day per person, ``(n, 2)``, ``-1`` where unused.

    Daily: the allowed hour maximising the read probability averaged over their sending days.
    Twice daily: the best pair with a minimum gap. Weekly: the best allowed hour on the chosen
    day. People with no allowed hour, or cadence off, get ``-1``.

    Hours (or pairs) within ``tie_tolerance`` of the best are a tie; with ``timely`` given, the
    tie goes to the one most often read within ``timely_hours``, i.e. the one closest before the
    person usually looks, so the digest is on top when they do. Otherwise it goes to the earliest.

    :param prob: read probability per send bin, ``(n, 168)`` (:func:`read_probability`).
    :param timely: read probability within ``timely_hours`` per send bin, ``(n, 168)``.
    """
    s = settings or TimingSettings()
    n = prob.shape[0]
    out = np.full((n, 2), -1, dtype=np.int64)
    days = windows.days.astype(np.float64)
    n_days = np.maximum(days.sum(1, keepdims=True), 1.0)

    def per_hour(p: FloatArray) -> FloatArray:
        # Mean read probability per hour of day over the sending days (weekly: the one day).
        return np.einsum("ndh,nd->nh", p.reshape(n, 7, 24), days) / n_days

    score = np.where(windows.allowed, per_hour(prob), -np.inf)
    fast = np.where(windows.allowed, per_hour(timely), -np.inf) if timely is not None else None
    any_allowed = windows.allowed.any(1)

    def pick(sc: FloatArray, tb: FloatArray | None, tol: float) -> IntArray:
        if tb is None:
            return np.argmax(sc, axis=1)
        near = sc >= sc.max(axis=1, keepdims=True) - tol
        return np.argmax(np.where(near, tb, -np.inf), axis=1)

    one = (windows.slots == 1) & any_allowed
    out[one, 0] = pick(score[one], None if fast is None else fast[one], s.tie_tolerance)

    two = np.flatnonzero((windows.slots == 2) & any_allowed)
    if two.size:
        pairs = _pairs(s.min_gap_hours)
        pair_score = score[two][:, pairs[:, 0]] + score[two][:, pairs[:, 1]]
        pair_fast = None if fast is None else fast[two][:, pairs[:, 0]] + fast[two][:, pairs[:, 1]]
        finite = np.isfinite(pair_score).any(axis=1)
        best = pick(np.where(np.isfinite(pair_score), pair_score, -1e9),
                    None if pair_fast is None else np.where(np.isfinite(pair_score), pair_fast,
                                                            -np.inf),
                    2 * s.tie_tolerance)
        out[two[finite]] = pairs[best[finite]]
        # Too narrow a window for two digests with the gap: send one, at the best hour.
        rest = two[~finite]
        out[rest, 0] = pick(score[rest], None if fast is None else fast[rest], s.tie_tolerance)
    return out


def demonstrated_hours(counts: TimingCounts,
                       settings: TimingSettings | None = None) -> BoolArray:
    """Local hours of day each person demonstrably reads in, or reads in the hour after, ``(n, 24)``.

    Their own decayed digest opens and activity (sessions, feed reads) in that hour of the day
    or the next must reach ``min_demonstrated_events`` and ``min_demonstrated_share`` of all their
    events. Peers do not count: a default quiet hour opens only on the person's own behaviour.
    """
    s = settings or TimingSettings()
    own = _by_hour(counts.reads) + _by_hour(counts.activity)
    near = own + np.roll(own, -1, axis=1)  # this hour or the next (the send lands just before)
    total = own.sum(1, keepdims=True)
    return (near >= s.min_demonstrated_events) & (near >= s.min_demonstrated_share * total)


def default_curve(n: int, settings: TimingSettings | None = None) -> FloatArray:
    """A pseudo read-probability peaking at the default hours, for ``default`` and ``control``.

    Fed through :func:`choose_hours`, it picks the default hour(s) when allowed, or else the
    nearest allowed hour (as a quiet-hours guard moves a send to the nearest edge).
    """
    s = settings or TimingSettings()
    h = np.arange(24)

    def closeness(target: int) -> FloatArray:
        d = np.abs(h - target)
        return -np.minimum(d, 24 - d) - 1e-3 * h  # ties go to the earlier hour

    curve = np.maximum(closeness(s.default_hour), closeness(s.default_second_hour)) + 24.0
    return np.broadcast_to(_tile(curve), (n, HOURS_PER_WEEK))


# --------------------------------------------------------------------------------------------
# Deterministic hashing: control holdout and exploration
# --------------------------------------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SALT_CONTROL = 0x636F6E74726F6C00
_SALT_EXPLORE = 0x6578706C6F726500
_SALT_SHIFT = 0x7368696674000000


def employee_key(employee_id: str) -> int:
    """A stable 64-bit key for an employee id (independent of ``PYTHONHASHSEED``)."""
    return int.from_bytes(hashlib.blake2b(str(employee_id).encode(), digest_size=8).digest(),
                          "little")


def employee_keys(employee_ids: Sequence[str]) -> npt.NDArray[np.uint64]:
    """:func:`employee_key` for many ids (the digests read as little-endian words at once)."""
    digests = b"".join(hashlib.blake2b(str(e).encode(), digest_size=8).digest()
                       for e in employee_ids)
    return np.frombuffer(digests, dtype="<u8").astype(np.uint64)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser, on arrays (array arithmetic wraps silently)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def uniform_hash(key: npt.ArrayLike, *parts: npt.ArrayLike) -> FloatArray:
    """A deterministic uniform in ``[0, 1)`` from an employee key and integer parts."""
    x = np.atleast_1d(np.asarray(key, dtype=np.uint64))
    for part in parts:
        p = np.atleast_1d(np.asarray(part, dtype=np.int64)).astype(np.uint64)
        x = _mix(x * _GOLDEN ^ _mix(p + _GOLDEN))
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53


def in_control(keys: npt.ArrayLike, week: tuple[int, int], share: float) -> BoolArray:
    """Whether each employee is in the holdout for ISO ``week`` ``(year, week)``."""
    return uniform_hash(keys, _SALT_CONTROL, week[0] * 100 + week[1]) < share


# --------------------------------------------------------------------------------------------
# Local hours -> UTC instants (DST-safe)
# --------------------------------------------------------------------------------------------


def local_to_utc(day: date, hour: int, zone: ZoneInfo | str, minute: int = 0) -> datetime:
    """The UTC instant of local ``day`` at ``hour:minute`` in ``zone``, sent exactly once.

    A time that does not exist (spring forward) maps to the first valid instant after the gap,
    e.g. 02:30 on a Berlin spring-forward day is 03:00 CEST. A time that happens twice (fall
    back) maps to its first occurrence (``fold=0``).
    """
    zone = ZoneInfo(zone) if isinstance(zone, str) else zone
    naive = datetime.combine(day, time(hour, minute))
    first = naive.replace(tzinfo=zone).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first
    # In a gap: fold=0 applies the offset from before it (later instant), fold=1 the one from
    # after it (earlier instant); the transition lies between. Bisect to the second.
    lo = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    hi, after = first, first.astimezone(zone).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0)


@functools.lru_cache(maxsize=1024)
def _utc_table(zone: str, first_day: int, n_days: int) -> IntArray:
    """Epoch seconds of every local ``(day, hour)`` in ``zone``, ``(n_days, 24)``."""
    tz = ZoneInfo(zone)
    table = np.array([[int(local_to_utc(date.fromordinal(first_day + d), h, tz).timestamp())
                       for h in range(24)] for d in range(n_days)], dtype=np.int64)
    table.setflags(write=False)
    return table


# --------------------------------------------------------------------------------------------
# The planner
# --------------------------------------------------------------------------------------------

_SHIFTS = np.array([-2, -1, 1, 2])


@dataclass
class PlanBatch:
    """Plans for many employees, as arrays (cheap to write with one ``executemany``).

    Per employee ``i``: ``basis[i]`` (``None`` when nothing is planned) and ``hours[i]`` (the
    chosen local hours, ``-1`` unused). Sends are parallel arrays, ordered by employee, then by
    slot (so by UTC instant); ``send_employee`` is the row index of each send's employee.
    """

    employee_ids: Sequence[str]
    zones: Sequence[str]
    basis: list[Basis | None]
    hours: IntArray
    send_employee: IntArray
    send_utc: IntArray
    send_local_date: IntArray
    send_ordinal: IntArray
    send_local_hour: IntArray
    send_explored: BoolArray
    send_propensity: FloatArray
    _starts: IntArray = field(repr=False, default_factory=lambda: np.zeros(1, np.int64))

    def __post_init__(self) -> None:
        self._starts = np.searchsorted(self.send_employee, np.arange(len(self.employee_ids) + 1))

    def __len__(self) -> int:
        return len(self.employee_ids)

    def plan(self, i: int) -> Plan:
        """Employee ``i``'s :class:`Plan`."""
        sl = slice(self._starts[i], self._starts[i + 1])
        sends = [PlannedSend(utc=datetime.fromtimestamp(int(u), UTC),
                             local_date=date.fromordinal(int(d)), ordinal=int(o),
                             local_hour=int(h), explored=bool(x), propensity=float(p))
                 for u, d, o, h, x, p in zip(self.send_utc[sl], self.send_local_date[sl],
                                             self.send_ordinal[sl], self.send_local_hour[sl],
                                             self.send_explored[sl], self.send_propensity[sl])]
        return Plan(basis=self.basis[i], local_hours=[int(h) for h in self.hours[i] if h >= 0],
                    sends=sends)

    def __iter__(self) -> Iterator[Plan]:
        return (self.plan(i) for i in range(len(self)))

    def as_dicts(self, cadences: Sequence[str]) -> list[dict[str, object]]:
        """The ``digests plan`` output: one dict per employee, given each one's cadence."""
        return [{"employee_id": e, "timezone": z, "cadence": str(c),
                 "next_sends_utc": [s.utc.isoformat() for s in p.sends],
                 "local_hours": p.local_hours, "basis": p.basis and p.basis.value}
                for e, z, c, p in zip(self.employee_ids, self.zones, cadences, self)]


def choose_bases(estimate: Estimate, windows: WindowArrays, keys: npt.ArrayLike,
                 at: datetime, known: bool,
                 settings: TimingSettings | None = None) -> npt.NDArray[np.object_]:
    """Basis per person (``None`` where no digest is planned).

    In order: no planned cadence -> ``None``; learned timing off -> ``peers`` (``default``
    when nothing is known); nothing known -> ``default``; this week's holdout -> ``control``;
    enough own evidence -> ``personal``; otherwise ``peers``.
    """
    s = settings or TimingSettings()
    n = len(windows.slots)
    basis = np.full(n, Basis.PEERS, dtype=object)
    basis[estimate.evidence >= s.min_personal_events] = Basis.PERSONAL
    week = at.astimezone(UTC).isocalendar()[:2]
    control = in_control(keys, week, s.control_share) if n else np.zeros(0, bool)
    basis[control & windows.learned_timing] = Basis.CONTROL
    basis[~windows.learned_timing] = Basis.PEERS
    if not known:
        basis[basis != Basis.CONTROL] = Basis.DEFAULT
    basis[windows.slots == 0] = None
    return basis


def plan_digests(employee_ids: Sequence[str], zones: Sequence[str],
                 windows: Sequence[DeliveryWindow] | WindowArrays, counts: TimingCounts,
                 group: npt.ArrayLike, at: datetime, *, region: npt.ArrayLike | None = None,
                 model: PeerModel | None = None,
                 settings: TimingSettings | None = None) -> PlanBatch:
    """Plan the next ``horizon_days`` of digests for many employees.

    :param employee_ids: ids, used for the deterministic holdout and exploration.
    :param zones: IANA time zone per employee (all counts are in each person's local time).
    :param windows: each person's :class:`DeliveryWindow` (or prebuilt :class:`WindowArrays`).
    :param counts: their decayed :class:`TimingCounts`, row ``i`` for employee ``i``.
    :param group: department x region code per employee.
    :param at: aware UTC instant; sends go out in ``[at, at + horizon)``.
    :param region: region code per employee; needed unless ``model`` is given.
    :param model: peer curves fitted on the whole organisation, to re-plan only a few people.
    :raise ValueError: if neither ``region`` nor ``model`` is given, or ``at`` is naive.
    """
    s = settings or TimingSettings()
    if at.tzinfo is None:
        raise ValueError("Planning needs an aware instant: pass at=datetime.now(UTC).")
    if model is None:
        if region is None:
            raise ValueError("Pass region codes to fit the peer curves, or a fitted model=.")
        model = fit_peers(counts, region, group, s)
    wa = windows if isinstance(windows, WindowArrays) else WindowArrays.from_windows(windows)
    keys = employee_keys(employee_ids)
    est = estimate(counts, group, model, s)
    basis = choose_bases(est, wa, keys, at, model.known, s)
    wa = open_demonstrated_hours(wa, counts, basis, s)

    hours = np.full((len(wa.slots), 2), -1, dtype=np.int64)
    for which in (Basis.PERSONAL, Basis.PEERS):
        i = np.flatnonzero(basis == which)
        if i.size:
            mu = planning_curve(est, wa.learned_timing, i)
            hours[i] = choose_hours(read_probability(mu, s), wa.take(i), s,
                                    timely=read_probability(mu, s, s.timely_hours))
    i = np.flatnonzero((basis == Basis.DEFAULT) | (basis == Basis.CONTROL))
    if i.size:
        hours[i] = choose_hours(default_curve(i.size, s), wa.take(i), s)

    explore = (basis == Basis.PERSONAL) | (basis == Basis.PEERS) | (basis == Basis.DEFAULT)
    sends = schedule(keys, zones, hours, wa, at, explore, s)
    return PlanBatch(employee_ids=employee_ids, zones=zones, basis=list(basis), hours=hours,
                     **sends)


def planning_curve(est: Estimate, learned_timing: BoolArray, i: IntArray) -> FloatArray:
    """The read hazard the planner uses for people ``i``: their own, or their peers' if they
    turned learned timing off."""
    mu = est.mu[i]
    off = ~learned_timing[i]
    if off.any():
        mu[off] = est.peer_mu[i[off]]
    return mu


def open_demonstrated_hours(windows: WindowArrays, counts: TimingCounts,
                            basis: npt.ArrayLike,
                            settings: TimingSettings | None = None) -> WindowArrays:
    """``windows`` with the organisation's default quiet hours opened where the person reads.

    Only for learned bases (``personal``, ``peers``) with learned timing on: the control holdout
    keeps the standard time, and someone who turned learning off is not planned on their habits.
    A person's own quiet hours are never opened.
    """
    assert windows.soft_quiet is not None
    b = np.asarray(basis, dtype=object)
    learned = ((b == Basis.PERSONAL) | (b == Basis.PEERS)) & windows.learned_timing
    if not (learned.any() and windows.soft_quiet.any()):
        return windows
    opened = windows.soft_quiet & learned[:, None] & demonstrated_hours(counts, settings)
    return replace(windows, allowed=windows.allowed | opened)


def schedule(keys: npt.ArrayLike, zones: Sequence[str], hours: IntArray, windows: WindowArrays,
             at: datetime, explore: BoolArray,
             settings: TimingSettings | None = None) -> dict[str, npt.NDArray]:
    """Concrete sends in ``[at, at + horizon)`` for chosen local hours, as parallel arrays.

    Each slot ``(employee, local date, ordinal)`` is sent at most once: local times are turned
    into UTC with :func:`local_to_utc`; if two slots of one day land on the same instant (both
    in a spring-forward gap) only the first is kept. Where ``explore`` is set, a slot is, with
    probability ``epsilon`` (a hash of employee, date and ordinal), moved 1-2 hours within the
    allowed hours, keeping a twice-daily pair ordered and ``min_gap_hours`` apart.
    """
    s = settings or TimingSettings()
    n = hours.shape[0]
    keys = np.asarray(keys, dtype=np.uint64)
    start = int(at.timestamp())
    end = start + s.horizon_days * 86400
    # Local dates that can fall in the horizon in any zone (UTC-12 .. UTC+14).
    first = (at.astimezone(UTC).date() - timedelta(days=1)).toordinal()
    n_days = s.horizon_days + 3
    day_ord = first + np.arange(n_days)
    weekday = np.array([date.fromordinal(int(d)).weekday() for d in day_ord])

    zone_names, zone_idx = np.unique(np.asarray(zones, dtype=str), return_inverse=True)
    table = np.stack([_utc_table(str(z), first, n_days) for z in zone_names] or
                     [np.zeros((n_days, 24), np.int64)])

    ordinal = np.arange(2)
    used = hours >= 0                                               # (n, 2)

    # Exploration shifts that keep a slot allowed (and a twice-daily pair ordered and apart).
    # They depend on the person and ordinal only, not on the day.
    cand = hours[:, :, None] + _SHIFTS                              # (n, 2, 4)
    cand_c = np.clip(cand, 0, 23)
    ok = (cand == cand_c) & np.take_along_axis(windows.allowed[:, None, :], cand_c, axis=-1)
    other = hours[:, ::-1, None]                                    # the day's other slot
    gap = np.abs(cand - other)
    in_order = np.where(ordinal[None, :, None] == 0, cand < other, cand > other)
    ok &= (other < 0) | ((np.minimum(gap, 24 - gap) >= s.min_gap_hours) & in_order)
    n_ok = ok.sum(-1)                                               # (n, 2)
    can_explore = explore[:, None] & used & (n_ok > 0)

    u = uniform_hash(keys[:, None, None], _SALT_EXPLORE, day_ord[None, :, None],
                     ordinal[None, None, :]).reshape(n, n_days, 2)
    explored = can_explore[:, None, :] & (u < s.epsilon)            # (n, days, 2)
    h = np.broadcast_to(hours[:, None, :], (n, n_days, 2)).copy()
    e_i, e_d, e_o = np.nonzero(explored)
    if e_i.size:
        v = uniform_hash(keys[e_i], _SALT_SHIFT, day_ord[e_d], e_o)
        pick = np.minimum((v * n_ok[e_i, e_o]).astype(np.int64), n_ok[e_i, e_o] - 1)
        rank = np.cumsum(ok[e_i, e_o], axis=-1) - 1                 # rank of each valid shift
        which = np.argmax(ok[e_i, e_o] & (rank == pick[:, None]), axis=-1)
        h[e_i, e_d, e_o] = cand_c[e_i, e_o, which]
    propensity = np.where(explored, s.epsilon / np.maximum(n_ok, 1)[:, None, :],
                          np.where(can_explore, 1.0 - s.epsilon, 1.0)[:, None, :])

    utc = table[zone_idx[:, None, None], np.arange(n_days)[None, :, None], np.clip(h, 0, 23)]
    valid = (used[:, None, :] & windows.days[:, weekday][:, :, None]
             & (utc >= start) & (utc < end))
    valid[:, :, 1] &= ~(valid[:, :, 0] & (utc[:, :, 1] == utc[:, :, 0]))

    # Row-major order: by employee, then local date, then ordinal (= by UTC instant).
    emp, d, o = np.nonzero(valid)
    return dict(send_employee=emp, send_utc=utc[emp, d, o], send_local_date=day_ord[d],
                send_ordinal=o, send_local_hour=h[emp, d, o],
                send_explored=explored[emp, d, o], send_propensity=propensity[emp, d, o])


def plan_employee(employee_id: str, zone: str, window: DeliveryWindow, counts: TimingCounts,
                  model: PeerModel, group: int, at: datetime,
                  settings: TimingSettings | None = None) -> Plan:
    """One person's :class:`Plan` against peer curves fitted on everyone (e.g. after they
    change their settings).

    :param counts: their counts, a one-row :class:`TimingCounts`.
    """
    batch = plan_digests([employee_id], [zone], [window], counts, np.array([group]), at,
                         model=model, settings=settings)
    return batch.plan(0)


# --------------------------------------------------------------------------------------------
# Explaining it to the person
# --------------------------------------------------------------------------------------------


def usual_read_hour(mu: FloatArray, days: Sequence[int] = (0, 1, 2, 3, 4)) -> int:
    """The local hour of day with the highest read hazard over ``days`` (one person's row)."""
    return int(np.argmax(np.asarray(mu).reshape(7, 24)[list(days)].sum(0)))


def read_hours(mu: FloatArray, send_hours: Sequence[int], days: Sequence[int],
               settings: TimingSettings | None = None) -> list[int]:
    """For each send hour, the local hour a digest sent then is most likely read in.

    The mode of the read-time density ``mu(s+j) e^{-j/tau} exp(-sum_{i<j} ...)`` over the
    sending ``days``, up to the next send (or ``window_hours``), so it is never before the send:
    "you usually read around R, so it goes out at S" is true of the very sends planned.

    :param mu: one person's read hazard, ``(168,)``.
    :param send_hours: their regular local send hours, in the order of the day.
    """
    s = settings or TimingSettings()
    mu = np.asarray(mu, dtype=np.float64)
    hours = sorted(send_hours)
    out = []
    for k, h in enumerate(hours):
        span = (hours[(k + 1) % len(hours)] - h) % 24 if len(hours) > 1 else s.window_hours
        j = np.arange(span or s.window_hours)
        density = np.zeros(j.size)
        for d in days or WEEKDAYS:
            pull = mu[(d * 24 + h + j) % HOURS_PER_WEEK] * np.exp(-j / s.tau_hours)
            density += pull * np.exp(-(np.cumsum(pull) - pull))
        out.append((h + int(np.argmax(density))) % 24)
    return [out[sorted(send_hours).index(h)] for h in send_hours]


DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
#: "on Mondays" ... in each language's own words (Spanish and Catalan name the plural day with its article).
ON_DAYS = (N_("on Mondays"), N_("on Tuesdays"), N_("on Wednesdays"), N_("on Thursdays"), N_("on Fridays"),
           N_("on Saturdays"), N_("on Sundays"))


def _and(items: Sequence[str], language: str | None) -> str:
    """``a``, ``a and b``, ``a, b and c``, in *language*."""
    if len(items) < 2:
        return "".join(items)
    return translate(language, "%(items)s and %(last)s", items=", ".join(items[:-1]), last=items[-1])


def _fmt(hours: Sequence[int], language: str | None = None) -> str:
    return _and([f"{h:02d}:00" for h in hours], language)


def regular_hours(plan: Plan) -> list[int]:
    """The local hours the plan's sends go out at, one per ordinal (explored sends aside).

    Taken from the sends themselves; an ordinal whose listed sends are all explored falls back
    to the planned hour.
    """
    out = []
    for ordinal, planned in enumerate(plan.local_hours):
        seen: dict[int, int] = {}
        for send in plan.sends:
            if send.ordinal == ordinal and not send.explored:
                seen[send.local_hour] = seen.get(send.local_hour, 0) + 1
        out.append(max(seen, key=lambda h: (seen[h], -h)) if seen else planned)
    return out


def day_label(d: date, language: str | None = None) -> str:
    """A short local date for people, e.g. ``Wed 25 Nov`` (``mié 25 nov``, ``dc. 25 de nov.``)."""
    return languages.format_date(d, "EEE d MMM", language=language)


def explain(plan: Plan, cadence: Cadence | str, read_at: Sequence[int] | None = None,
            learned_timing: bool = True, language: str | None = None) -> str:
    """A short explanation of the plan's sends for the person in *language*, e.g. for ``/me/digest-schedule``.

    Every hour named comes from ``plan.sends`` (the list shown next to it): the regular hours
    from the sends that are not explored, and the explored ones by date.

    :param read_at: for ``personal``, the hour each regular send is most likely read in
        (:func:`read_hours`), in the same order.
    """
    cadence = Cadence(cadence)
    if cadence == Cadence.OFF:
        return translate(language, "You have turned the digest off.")
    if cadence == Cadence.AS_IT_HAPPENS:
        return translate(language, "You get news as it happens, so there is no digest schedule.")
    if not plan.local_hours:
        return translate(language, "Your quiet hours leave no time to send your digest; please widen them.")
    hours = regular_hours(plan)
    n = len(hours)
    # The weekday phrase goes right after "goes out" with its own leading space ("" when not weekly).
    day = ""
    if cadence == Cadence.WEEKLY and plan.sends:
        day = " " + translate(language, ON_DAYS[plan.sends[0].local_date.weekday()])
    values = {"day": day, "hours": _fmt(hours, language)}
    if plan.basis == Basis.CONTROL:
        text = ntranslate(language, "This week your digest goes out%(day)s at the standard time, %(hours)s: a small "
                          "group does, so we can check that learned timing really helps.",
                          "This week your digests go out%(day)s at the standard times, %(hours)s: a small group "
                          "does, so we can check that learned timing really helps.", n, **values)
    elif plan.basis == Basis.PERSONAL and read_at:
        ahead = [(r - h) % 24 for r, h in zip(read_at, hours)]
        values["read"] = _fmt(read_at, language)
        if not any(ahead):
            text = ntranslate(language, "You usually read around %(read)s, so your digest goes out%(day)s at "
                              "%(hours)s, to be on top when you look.", "You usually read around %(read)s, so your "
                              "digests go out%(day)s at %(hours)s, to be on top when you look.", n, **values)
        elif max(ahead) <= 3:
            text = ntranslate(language, "You usually read around %(read)s, so your digest goes out%(day)s at "
                              "%(hours)s, shortly before, to be on top when you look.", "You usually read around "
                              "%(read)s, so your digests go out%(day)s at %(hours)s, shortly before, to be on top when "
                              "you look.", n, **values)
        else:
            text = ntranslate(language, "You usually read around %(read)s, so your digest goes out%(day)s at "
                              "%(hours)s, ahead of that, to be on top when you look.", "You usually read around "
                              "%(read)s, so your digests go out%(day)s at %(hours)s, ahead of that, to be on top when "
                              "you look.", n, **values)
    elif plan.basis == Basis.PERSONAL:
        text = ntranslate(language, "Based on when you usually read, your digest goes out%(day)s at %(hours)s.",
                          "Based on when you usually read, your digests go out%(day)s at %(hours)s.", n, **values)
    elif plan.basis == Basis.PEERS and not learned_timing:
        text = ntranslate(language, "You turned learned timing off, so your digest goes out%(day)s at %(hours)s, "
                          "when colleagues in your team and region usually read.", "You turned learned timing off, "
                          "so your digests go out%(day)s at %(hours)s, when colleagues in your team and region "
                          "usually read.", n, **values)
    elif plan.basis == Basis.PEERS:
        text = ntranslate(language, "We don't know your reading habits yet, so your digest goes out%(day)s at "
                          "%(hours)s, when colleagues in your team and region usually read.", "We don't know your "
                          "reading habits yet, so your digests go out%(day)s at %(hours)s, when colleagues in your "
                          "team and region usually read.", n, **values)
    else:
        text = ntranslate(language, "Your digest goes out%(day)s at the organisation's usual time, %(hours)s.",
                          "Your digests go out%(day)s at the organisation's usual times, %(hours)s.", n, **values)
    explored = [s for s in plan.sends if s.explored]
    if explored:
        tried = _and([translate(language, "%(day)s at %(hour)s", day=day_label(s.local_date, language),
                                hour=f"{s.local_hour:02d}:00") for s in explored], language)
        return text + " " + translate(language, "Now and then we try a nearby hour to keep learning: %(tried)s.",
                                      tried=tried)
    return text + " " + translate(language, "Now and then we try a nearby hour to keep learning.")

