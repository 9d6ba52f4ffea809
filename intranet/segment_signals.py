"""Segment signals: where (department, region, level) a post landed notably worse than elsewhere.

Ratings alone cannot tell: they are missing not at random (the people a post does not suit skip
it and rarely rate it). So each segment is judged on exposure: of the people who were shown the
post (an impression, a digest that carried it, an open), how many had a good outcome (an engaged
read — a dwell covering half the expected reading time, as the ranker counts one — or a rating of
4-5 stars or a thumb up; a 1-2 star rating or a thumb down is never good).

The test is empirical Bayes (DELIVERY.md part B, §3.6). Each segment's expected rate is the rest
of the audience's rate for this post, adjusted for the segment's usual taste for the topic when
there is history (indirect standardisation: a department that never reads HR posts is not flagged
on every HR post). The segment's own rate is shrunk toward that expectation with a Beta prior of
:data:`PRIOR_STRENGTH` pseudo-people:

    θ ~ Beta(a0·e + y, a0·(1 − e) + n − y)

and the segment is flagged when P(θ < (1 − δ)·e) exceeds :data:`THRESHOLD` (δ = :data:`RELATIVE_DROP`).
Small groups stay out: a segment, and the rest of the audience beside it, each need at least
:data:`MIN_GROUP` exposed people, or the segment is not shown at all (so no subtraction of two
figures reveals a group under five).

Services take a session and never commit. :func:`assess` is the pure part (also used by the
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
#: Pseudo-people of the prior around the expected rate (a0): a few people doing badly move little.
PRIOR_STRENGTH = 20.0
#: "Notably worse": the rate is below (1 - this) times the expected one ...
RELATIVE_DROP = 0.2
#: ... with at least this posterior probability. Strict, because every post tests some thirty
#: segments: on bench.segment_eval's tuning organisations (0-1), 0.95 with a 0.3 drop raised
#: about as many false alarms as it found problems; 0.99 with a 0.2 drop raised none.
THRESHOLD = 0.99
#: Pseudo-people pulling a segment's topic history toward the organisation's (the case-mix step).
HISTORY_STRENGTH = 10.0
#: Earlier posts of the same topic read for the case-mix adjustment.
HISTORY_POSTS = 20
HISTORY_DAYS = 180
DIMENSIONS = ("department", "region", "level")
_EXPOSURE_KINDS = ("impression", "open", "read", "digest_open", "digest_click")
_READ_KINDS = ("open", "read")


# --------------------------------------------------------------------------------------------
# The test (pure)
# --------------------------------------------------------------------------------------------


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


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def expected_rates(rest_rate: np.ndarray, *, history_segment: np.ndarray | None = None,
                   history_rest: np.ndarray | None = None) -> np.ndarray:
    """Each segment's expected rate: the rest's rate on this post, moved by how the segment usually
    compares with the rest on the topic (log-odds; no history leaves it unmoved)."""
    rest_rate = np.asarray(rest_rate, dtype=float)
    if history_segment is None or history_rest is None:
        return np.clip(rest_rate, 1e-4, 1 - 1e-4)
    shift = _logit(np.asarray(history_segment, dtype=float)) - _logit(np.asarray(history_rest, dtype=float))
    return 1.0 / (1.0 + np.exp(-(_logit(rest_rate) + shift)))


def assess(n: np.ndarray, y: np.ndarray, expected: np.ndarray, *, strength: float = PRIOR_STRENGTH,
           drop: float = RELATIVE_DROP) -> np.ndarray:
    """P(θ < (1 − *drop*)·e) for each segment with *n* exposed people, *y* good outcomes and expected
    rate *expected*, under the Beta(strength·e + y, strength·(1 − e) + n − y) posterior."""
    n, y, e = (np.asarray(v, dtype=float) for v in (n, y, expected))
    a = strength * e + y
    b = strength * (1.0 - e) + n - y
    return np.array([beta_cdf((1.0 - drop) * ei, ai, bi) for ei, ai, bi in zip(e, a, b)])


def judge(n: np.ndarray, y: np.ndarray, *, total: tuple[float, float], hist_n: np.ndarray | None = None,
          hist_y: np.ndarray | None = None, hist_total: tuple[float, float] = (0.0, 0.0), min_group: int = MIN_GROUP,
          strength: float = PRIOR_STRENGTH, drop: float = RELATIVE_DROP) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The whole test for the segments of one dimension of one post.

    :param n: exposed people per segment; *y*: good outcomes per segment.
    :param total: (exposed, good) over the post's whole audience.
    :param hist_n: the same counts per segment on earlier posts of the topic (None: no history),
        with *hist_total* over everyone; each segment's history is shrunk toward the organisation's
        rate by :data:`HISTORY_STRENGTH` pseudo-people.
    :return: which segments may be shown (they and the rest beside them have *min_group* people),
        their expected rates, and the posterior probability that each is notably worse.
    """
    n, y = np.asarray(n, dtype=float), np.asarray(y, dtype=float)
    total_n, total_y = total
    keep = (n >= min_group) & (total_n - n >= min_group)
    rest_rate = (total_y - y + 0.5) / np.maximum(total_n - n + 1.0, 1.0)
    hist_seg = hist_rest = None
    if hist_n is not None and hist_y is not None and hist_total[0] > 0:
        hn, hy = np.asarray(hist_n, dtype=float), np.asarray(hist_y, dtype=float)
        org_rate = (hist_total[1] + 1.0) / (hist_total[0] + 2.0)
        hist_seg = (hy + HISTORY_STRENGTH * org_rate) / (hn + HISTORY_STRENGTH)
        hist_rest = (hist_total[1] - hy + HISTORY_STRENGTH * org_rate) / (hist_total[0] - hn + HISTORY_STRENGTH)
    expected = expected_rates(rest_rate, history_segment=hist_seg, history_rest=hist_rest)
    probability = np.zeros(len(n))
    if keep.any():
        probability[keep] = assess(n[keep], y[keep], expected[keep], strength=strength, drop=drop)
    return keep, expected, probability


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
    probability_worse: float = Field(description="Posterior probability the segment's rate is notably lower")
    flagged: bool


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


def for_post(session: Session, post: Post, *, now: dt.datetime, min_group: int = MIN_GROUP,
             strength: float = PRIOR_STRENGTH, drop: float = RELATIVE_DROP, threshold: float = THRESHOLD) -> PostSignals:
    """*post*'s segments by department, region and level, worst first, with the flagged ones marked."""
    seen = exposures(session, [post.id])
    history = _history(session, post, now)
    total_n, total_y = len(seen.good), int(seen.good.sum())
    out: list[SegmentSignalPublic] = []
    hidden = 0
    for dimension in DIMENSIONS:
        labels = np.array([_label(v) for v in seen.values[dimension]], dtype=object)
        names = sorted(set(labels.tolist()))
        if len(names) < 2:
            continue  # one segment is the whole audience: nothing to compare it with
        n = np.array([(labels == g).sum() for g in names], dtype=float)
        y = np.array([seen.good[labels == g].sum() for g in names], dtype=float)
        hist_n = hist_y = None
        hist_total = (0.0, 0.0)
        if history is not None and len(history.good):
            hist_labels = np.array([_label(v) for v in history.values[dimension]], dtype=object)
            hist_n = np.array([(hist_labels == g).sum() for g in names], dtype=float)
            hist_y = np.array([history.good[hist_labels == g].sum() for g in names], dtype=float)
            hist_total = (float(len(history.good)), float(history.good.sum()))
        keep, expected, probability = judge(n, y, total=(total_n, total_y), hist_n=hist_n, hist_y=hist_y,
                                            hist_total=hist_total, min_group=min_group, strength=strength, drop=drop)
        hidden += int((~keep).sum())
        for i in np.flatnonzero(keep):
            out.append(SegmentSignalPublic(
                dimension=dimension, value=names[i], exposed=int(n[i]), good=int(y[i]),
                rate=round(float(y[i] / n[i]), 4), expected=round(float(expected[i]), 4),
                probability_worse=round(float(probability[i]), 4), flagged=bool(probability[i] > threshold)))
    out.sort(key=lambda s: (-s.probability_worse, s.dimension, s.value))
    return PostSignals(exposed=total_n, good=total_y, segments=out, hidden=hidden)
