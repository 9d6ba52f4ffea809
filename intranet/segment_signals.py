"""Segment signals: where (department, region, level) a post landed notably worse than elsewhere.

Ratings alone cannot tell: they are missing not at random (the people a post does not suit skip
it and rarely rate it). So each segment is judged on exposure: of the people who were shown the
post (an impression, a digest that carried it, an open), how many had a good outcome (an engaged
read — a dwell covering half the expected reading time, as the ranker counts one — or a rating of
4-5 stars or a thumb up; a 1-2 star rating or a thumb down is never good).

The test is empirical Bayes (DELIVERY.md part B, §3.6). Each segment's expected rate e is the
rest of the audience's rate for this post, adjusted for the segment's usual taste for the topic
when there is history (indirect standardisation: a department that never reads HR posts is not
flagged on every HR post). Segments' true rates stray around their expected ones by an amount the
topic's history measures (method of moments, per dimension: :func:`concentration`), so a
segment's good outcomes are beta-binomial:

    y ~ BetaBinomial(n, κ·m, κ·(1 − m)),   m = (1 − δ)·e,  δ = :data:`RELATIVE_DROP`

and its p-value is P(Y <= y): how unlikely so few good outcomes would be if it were no more than
δ worse than expected. Every shown segment of the post (all dimensions) is one test;
Benjamini-Hochberg over them flags those with q <= :data:`FALSE_DISCOVERY_RATE`.

Why not a posterior probability of "notably worse" under a Beta prior around e (the first
version): segments' rates cluster tightly around e (κ ≈ 200 on the simulated organisations), so a
prior fitted to them shrinks a real collapse of a 45-person department back toward e, and a fixed
loose prior (20 pseudo-people) at a 0.99 cut had to be strict because nothing accounted for the
thirty-odd tests per post. The prior-predictive tail plus BH keeps the shrinkage where it belongs
(in the null's spread) and makes the multiplicity explicit; bench.segment_eval measures both.

Small groups stay out: a segment, and the rest of the audience beside it, each need at least
:data:`MIN_GROUP` exposed people, or the segment is not tested or shown at all (so no
subtraction of two figures reveals a group under five).

Services take a session and never commit. :func:`judge` is the pure part (also used by the
benchmark on simulated organisations).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy import case, func, select
from sqlmodel import Session

from intranet.models import DigestItem, Employee, EngagementEvent, Post, PostState, Rating
from intranet.ranking import ENGAGED_DWELL_SHARE, expected_read_ms

#: Fewer exposed people than this in a segment (or in the rest beside it) and it is not shown.
MIN_GROUP = 5
#: "Notably worse": the test asks whether the rate is below (1 - this) times the expected one.
RELATIVE_DROP = 0.1
#: The expected share of false alarms among a post's flagged segments (Benjamini-Hochberg over
#: every segment of every dimension of the post). Chosen on bench.segment_eval's tuning
#: organisations (0-9): 0.02 kept precision at 0.94 there with recall 0.59; see bench/README.md.
FALSE_DISCOVERY_RATE = 0.05
#: The beta-binomial spread (κ) of segments' rates around their expected rates when the topic has
#: too little history to measure it (fewer than MIN_CELLS segment cells): wide, so cautious.
DEFAULT_CONCENTRATION = 50.0
MIN_CONCENTRATION, MAX_CONCENTRATION = 10.0, 2000.0
MIN_CELLS = 20
#: Pseudo-people pulling a segment's topic history toward the organisation's (the case-mix step).
HISTORY_STRENGTH = 10.0
#: Earlier posts of the same topic read for the case-mix adjustment and the spread.
HISTORY_POSTS = 20
HISTORY_DAYS = 180
DIMENSIONS = ("department", "region", "level")
_EXPOSURE_KINDS = ("impression", "open", "read", "digest_open", "digest_click")
_READ_KINDS = ("open", "read")


# --------------------------------------------------------------------------------------------
# The test (pure)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class History:
    """One dimension's counts on earlier posts of the topic: one row per post, one column per segment
    (*n* exposed, *y* good), and each post's whole audience (*total_n*, *total_y*, which also counts
    people in segments the present post did not reach)."""

    n: np.ndarray
    y: np.ndarray
    total_n: np.ndarray
    total_y: np.ndarray

    @classmethod
    def of(cls, n: np.ndarray, y: np.ndarray, total_n: np.ndarray | None = None,
           total_y: np.ndarray | None = None) -> History:
        """Counts per (earlier post, segment); the totals default to the rows' sums."""
        n, y = np.atleast_2d(np.asarray(n, dtype=float)), np.atleast_2d(np.asarray(y, dtype=float))
        return cls(n, y, n.sum(1) if total_n is None else np.asarray(total_n, dtype=float),
                   y.sum(1) if total_y is None else np.asarray(total_y, dtype=float))


def beta_cdf(x: float, a: float, b: float) -> float:
    """P(X <= *x*) for X ~ Beta(*a*, *b*): the regularized incomplete beta function.

    Lentz's continued fraction (Numerical Recipes §6.4), using the symmetry relation where it
    converges faster; accurate to about 1e-10 for the sizes met here.
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(x, a, b) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(1.0 - x, b, a) / b


def _beta_fraction(x: float, a: float, b: float) -> float:
    tiny, eps = 1e-300, 1e-12
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def beta_binomial_cdf(y: float, n: float, a: float, b: float) -> float:
    """P(Y <= *y*) for Y ~ BetaBinomial(*n*, *a*, *b*): Y successes of *n* at a rate drawn from Beta(a, b).

    The probabilities of 0..y follow from P(0) = B(a, n + b) / B(a, b) and the ratio of
    neighbours, summed in log space (fine for the tens of thousands of people a big region holds).
    """
    y, n = int(y), int(n)
    if y < 0:
        return 0.0
    if y >= n:
        return 1.0
    k = np.arange(y, dtype=float)
    log_first = math.lgamma(a + b) + math.lgamma(n + b) - math.lgamma(b) - math.lgamma(n + a + b)
    log_ratios = np.log((n - k) * (k + a)) - np.log((k + 1.0) * (n - k - 1.0 + b))
    log_pmf = log_first + np.concatenate(([0.0], np.cumsum(log_ratios)))
    top = log_pmf.max()
    return float(min(1.0, math.exp(top) * np.exp(log_pmf - top).sum()))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def _rest_rate(total_n: np.ndarray, total_y: np.ndarray, n: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (total_y - y + 0.5) / np.maximum(total_n - n + 1.0, 1.0)


def expected_rates(rest_rate: np.ndarray, *, history_segment: np.ndarray | None = None,
                   history_rest: np.ndarray | None = None) -> np.ndarray:
    """Each segment's expected rate: the rest's rate on this post, moved by how the segment usually
    compares with the rest on the topic (log-odds; no history leaves it unmoved)."""
    rest_rate = np.asarray(rest_rate, dtype=float)
    if history_segment is None or history_rest is None:
        return np.clip(rest_rate, 1e-4, 1 - 1e-4)
    shift = _logit(np.asarray(history_segment, dtype=float)) - _logit(np.asarray(history_rest, dtype=float))
    return 1.0 / (1.0 + np.exp(-(_logit(rest_rate) + shift)))


def _topic_shift(history: History) -> tuple[np.ndarray, np.ndarray]:
    """Each segment's usual rate on the topic and the rest's beside it, both pulled toward the
    organisation's rate by :data:`HISTORY_STRENGTH` pseudo-people."""
    hn, hy = history.n.sum(0), history.y.sum(0)
    all_n, all_y = float(history.total_n.sum()), float(history.total_y.sum())
    org_rate = (all_y + 1.0) / (all_n + 2.0)
    segment = (hy + HISTORY_STRENGTH * org_rate) / (hn + HISTORY_STRENGTH)
    rest = (all_y - hy + HISTORY_STRENGTH * org_rate) / (all_n - hn + HISTORY_STRENGTH)
    return segment, rest


def concentration(n: np.ndarray, y: np.ndarray, expected: np.ndarray, *, min_group: int = MIN_GROUP) -> float:
    """How tightly segments' rates sit around their expected rates: κ of a Beta(κ·e, κ·(1 − e)) spread,
    by the method of moments over (post, segment) cells of at least *min_group* people.

    A beta-binomial count has variance n·e·(1 − e)·(1 + (n − 1)·ρ) with ρ = 1 / (κ + 1), so the sum
    of squared Pearson residuals estimates Σ(1 + (n − 1)·ρ). Fewer than :data:`MIN_CELLS` cells
    give :data:`DEFAULT_CONCENTRATION`; the estimate is kept within
    [:data:`MIN_CONCENTRATION`, :data:`MAX_CONCENTRATION`] (a real problem in the history widens the
    spread, which only makes the test more cautious).
    """
    n, y, e = (np.asarray(v, dtype=float).ravel() for v in (n, y, expected))
    cells = n >= min_group
    if cells.sum() < MIN_CELLS:
        return DEFAULT_CONCENTRATION
    n, y, e = n[cells], y[cells], e[cells]
    pearson = ((y - n * e) ** 2 / (n * e * (1.0 - e))).sum()
    rho = (pearson - len(n)) / max(float((n - 1.0).sum()), 1.0)
    if rho <= 0:
        return MAX_CONCENTRATION
    return float(np.clip(1.0 / rho - 1.0, MIN_CONCENTRATION, MAX_CONCENTRATION))


def lower_tail(n: np.ndarray, y: np.ndarray, expected: np.ndarray, *, kappa: float,
               drop: float = RELATIVE_DROP) -> np.ndarray:
    """For each segment, the chance of *y* or fewer good outcomes among *n* if its rate were only
    *drop* below its expected rate and spread like segments usually are: the p-value of "no more
    than *drop* worse" under BetaBinomial(n, κ·m, κ·(1 − m)) with m = (1 − drop)·e."""
    m = (1.0 - drop) * np.asarray(expected, dtype=float)
    return np.array([beta_binomial_cdf(yi, ni, kappa * mi, kappa * (1.0 - mi))
                     for ni, yi, mi in zip(np.asarray(n, dtype=float), np.asarray(y, dtype=float), m)])


def false_discovery_q(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values): flagging every q <= α keeps the expected
    share of false alarms among the flags at most α (for independent or positively dependent tests)."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p
    order = np.argsort(p)
    scaled = p[order] * p.size / np.arange(1, p.size + 1)
    q = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    out = np.empty_like(q)
    out[order] = q
    return out


def judge(n: np.ndarray, y: np.ndarray, *, total: tuple[float, float], history: History | None = None,
          min_group: int = MIN_GROUP, drop: float = RELATIVE_DROP) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The test for the segments of one dimension of one post (before the multiple-testing step).

    :param n: exposed people per segment; *y*: good outcomes per segment.
    :param total: (exposed, good) over the post's whole audience.
    :param history: the same dimension's counts on earlier posts of the topic (None: none yet). It
        gives each segment's usual take on the topic (the case mix) and how far segments' rates
        usually stray from what is expected of them (the beta-binomial spread, :func:`concentration`).
    :return: which segments may be shown (they and the rest beside them have *min_group* people),
        their expected rates, and each one's p-value of "no more than *drop* worse than expected"
        (1 for a segment not shown).
    """
    n, y = np.asarray(n, dtype=float), np.asarray(y, dtype=float)
    total_n, total_y = total
    keep = (n >= min_group) & (total_n - n >= min_group)
    rest_rate = _rest_rate(total_n, total_y, n, y)
    kappa = DEFAULT_CONCENTRATION
    if history is not None and history.total_n.sum() > 0:
        segment, rest = _topic_shift(history)
        expected = expected_rates(rest_rate, history_segment=segment, history_rest=rest)
        then = expected_rates(_rest_rate(history.total_n[:, None], history.total_y[:, None], history.n, history.y),
                              history_segment=segment[None, :], history_rest=rest[None, :])
        kappa = concentration(history.n, history.y, then, min_group=min_group)
    else:
        expected = expected_rates(rest_rate)
    p_value = np.ones(len(n))
    if keep.any():
        p_value[keep] = lower_tail(n[keep], y[keep], expected[keep], kappa=kappa, drop=drop)
    return keep, expected, p_value


# --------------------------------------------------------------------------------------------
# Who was exposed, and how it went (one row per person and post)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Exposure:
    """Exposed people of some posts: their segment values and whether each exposure went well."""

    employee_pk: np.ndarray
    post_id: np.ndarray
    good: np.ndarray
    values: dict[str, np.ndarray]  # dimension -> value per row (object array; None when unknown)


def exposures(session: Session, post_ids: Sequence[int]) -> Exposure:
    """Everyone shown any of *post_ids* (events, digests, post pages), with their outcome per post."""
    ids = sorted(set(post_ids))
    empty = np.array([], dtype=np.int64)
    if not ids:
        return Exposure(empty, empty, np.array([], dtype=bool), {d: np.array([], dtype=object) for d in DIMENSIONS})
    read_dwell = func.max(case((EngagementEvent.kind.in_(_READ_KINDS), EngagementEvent.dwell_ms)))
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    for pk, post_id, dwell in session.execute(
            select(EngagementEvent.employee_pk, EngagementEvent.post_id, read_dwell)
            .where(EngagementEvent.post_id.in_(ids), EngagementEvent.kind.in_(_EXPOSURE_KINDS))
            .group_by(EngagementEvent.employee_pk, EngagementEvent.post_id)):
        rows[(pk, post_id)] = {"dwell": dwell}
    for pk, post_id in session.execute(select(DigestItem.employee_pk, DigestItem.post_id)
                                       .where(DigestItem.post_id.in_(ids)).distinct()):
        rows.setdefault((pk, post_id), {"dwell": None})
    for pk, post_id in session.execute(select(PostState.employee_pk, PostState.post_id)
                                       .where(PostState.post_id.in_(ids), PostState.read_at.is_not(None))):
        rows.setdefault((pk, post_id), {"dwell": None})
    for pk, post_id, stars, thumb in session.execute(select(Rating.employee_pk, Rating.post_id, Rating.stars,
                                                            Rating.thumb).where(Rating.post_id.in_(ids))):
        rows.setdefault((pk, post_id), {"dwell": None}).update(stars=stars, thumb=thumb)
    chars = dict(session.execute(select(Post.id, func.length(Post.body_text) + func.length(Post.summary))
                                 .where(Post.id.in_(ids))).all())
    people = {pk: (dept, region, level) for pk, dept, region, level in session.execute(
        select(Employee.id, Employee.department, Employee.region, Employee.level)
        .where(Employee.id.in_(sorted({pk for pk, _ in rows}))))} if rows else {}
    keys = [k for k in rows if k[0] in people]
    good = []
    for pk, post_id in keys:
        row = rows[(pk, post_id)]
        dwell = row["dwell"]
        engaged = dwell is not None and dwell >= ENGAGED_DWELL_SHARE * float(expected_read_ms(chars.get(post_id) or 0))
        stars, thumb = row.get("stars"), row.get("thumb")
        liked = (stars is not None and stars >= 4) or thumb == "up"
        disliked = (stars is not None and stars <= 2) or thumb == "down"
        good.append((engaged or liked) and not disliked)
    values = {d: np.array([people[pk][i] for pk, _ in keys], dtype=object) for i, d in enumerate(DIMENSIONS)}
    return Exposure(np.array([k[0] for k in keys], dtype=np.int64), np.array([k[1] for k in keys], dtype=np.int64),
                    np.array(good, dtype=bool), values)


# --------------------------------------------------------------------------------------------
# One post's segments
# --------------------------------------------------------------------------------------------


class SegmentSignalPublic(BaseModel):
    """How one segment received the post, against what its share of the rest predicts."""

    dimension: str = Field(description="department, region or level")
    value: str
    exposed: int = Field(description="People in the segment who were shown the post (at least 5)")
    good: int = Field(description="Of them, engaged reads or good ratings")
    rate: float
    expected: float = Field(description="The rate the rest of the audience predicts for this segment")
    p_value: float = Field(description="The chance of a rate this low if the segment were no more than 20 % below "
                                       "its expected rate (spread as segments usually are on this topic)")
    q_value: float = Field(description="Benjamini-Hochberg adjusted p-value over the post's segments: flagging every "
                                       "segment at or below it would make false alarms at most this share of the flags")
    flagged: bool = Field(description="q_value at or below the false-discovery rate (5 %)")


@dataclasses.dataclass(frozen=True)
class PostSignals:
    exposed: int
    good: int
    segments: list[SegmentSignalPublic]
    #: Segments left out because they, or the rest beside them, had fewer than MIN_GROUP people.
    hidden: int

    @property
    def flagged(self) -> list[SegmentSignalPublic]:
        return [s for s in self.segments if s.flagged]


def _label(value: Any) -> str:
    return "unknown" if value is None else str(value)


def _history(session: Session, post: Post, now: dt.datetime) -> Exposure | None:
    earlier = session.execute(select(Post.id).where(
        Post.topic == post.topic, Post.id != post.id, Post.published_at.is_not(None),
        Post.published_at >= now - dt.timedelta(days=HISTORY_DAYS)).order_by(Post.published_at.desc())
        .limit(HISTORY_POSTS)).scalars().all()
    return exposures(session, earlier) if earlier else None


def _history_counts(history: Exposure, dimension: str, names: list[str]) -> History:
    """*history*'s counts for one dimension: a row per earlier post, a column per segment in *names*."""
    posts, row = np.unique(history.post_id, return_inverse=True)
    labels = np.array([_label(v) for v in history.values[dimension]], dtype=object)
    column = {name: i for i, name in enumerate(names)}
    col = np.array([column.get(label, -1) for label in labels], dtype=np.int64)
    n, y = np.zeros((len(posts), len(names))), np.zeros((len(posts), len(names)))
    inside = col >= 0
    np.add.at(n, (row[inside], col[inside]), 1.0)
    np.add.at(y, (row[inside], col[inside]), history.good[inside].astype(float))
    total_n = np.bincount(row, minlength=len(posts)).astype(float)
    total_y = np.bincount(row, weights=history.good.astype(float), minlength=len(posts))
    return History(n, y, total_n, total_y)


def for_post(session: Session, post: Post, *, now: dt.datetime, min_group: int = MIN_GROUP,
             drop: float = RELATIVE_DROP, rate: float = FALSE_DISCOVERY_RATE) -> PostSignals:
    """*post*'s segments by department, region and level, worst first, with the flagged ones marked.

    Every shown segment of every dimension is one test; Benjamini-Hochberg over all of them keeps
    the expected share of false alarms among the flags at *rate*.
    """
    seen = exposures(session, [post.id])
    history = _history(session, post, now)
    total_n, total_y = len(seen.good), int(seen.good.sum())
    tested: list[tuple[str, str, float, float, float, float]] = []
    hidden = 0
    for dimension in DIMENSIONS:
        labels = np.array([_label(v) for v in seen.values[dimension]], dtype=object)
        names = sorted(set(labels.tolist()))
        if len(names) < 2:
            continue  # one segment is the whole audience: nothing to compare it with
        n = np.array([(labels == g).sum() for g in names], dtype=float)
        y = np.array([seen.good[labels == g].sum() for g in names], dtype=float)
        earlier = _history_counts(history, dimension, names) if history is not None and len(history.good) else None
        keep, expected, p_value = judge(n, y, total=(total_n, total_y), history=earlier, min_group=min_group,
                                        drop=drop)
        hidden += int((~keep).sum())
        tested += [(dimension, names[i], n[i], y[i], float(expected[i]), float(p_value[i])) for i in np.flatnonzero(keep)]
    q_value = false_discovery_q(np.array([t[5] for t in tested]))
    out = [SegmentSignalPublic(dimension=dimension, value=value, exposed=int(n), good=int(y),
                               rate=round(float(y / n), 4), expected=round(expected, 4), p_value=p_value,
                               q_value=float(q), flagged=bool(q <= rate))
           for (dimension, value, n, y, expected, p_value), q in zip(tested, q_value)]
    out.sort(key=lambda s: (s.p_value, s.dimension, s.value))
    return PostSignals(exposed=total_n, good=total_y, segments=out, hidden=hidden)
