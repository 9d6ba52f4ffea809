"""Ranking: each person's posts in the order most worth their time, and why.

The score of post *p* for person *u* (DELIVERY.md part B, §3.3) is, in log-odds::

    logit(affinity[u, topic(p)]) + ENGAGEMENT_WEIGHT * lift(p) + QUALITY_WEIGHT * quality(p)
        - FRESHNESS_PER_DAY * age_days(p)
        + boosts (followed topic, targeted at the person's department)
        - penalties (already read, muted topic)

* **Affinity** (§3.2) is a Beta estimate per topic from decayed pseudo-counts: reads (more for
  a dwell that covers the post's length), digest clicks, impressions scrolled past without an
  open (weighted by how likely that position was looked at), stars and thumbs. Both counts halve
  every :data:`HALF_LIFE_DAYS`; the person's department's pooled rate is the prior (strength
  :data:`PRIOR_STRENGTH`), so a newcomer starts from their colleagues, and the estimate is
  clamped to :data:`AFFINITY_FLOOR` so no topic is ever silenced. Must-reads teach nothing: a
  compliance notice skipped or rated low is feedback on the notice, not on its topic.
* **Quality** (§3.1) is a Bayesian average of stars (:data:`QUALITY_PSEUDO` pseudo-ratings at the
  mean of the posts being ranked) or a Beta posterior of thumbs, so two 5-star ratings on a new
  post move it a little, not to the top.
* **Lift** is the post's own pull: how much more often the people it reached opened it than
  they open its topic's posts, in log-odds, shrunk towards 0 (:func:`engagement_lift`). Reads
  outnumber ratings about ten to one, so this separates posts within a topic long before their
  stars do. The counts are refreshed hourly by the ``ranking-refresh`` job.
* **Diversity**: each further post of a topic already placed costs :data:`TOPIC_PENALTY`
  (an MMR-style greedy pick, done exactly as one sort), and on the first page no topic takes
  more than :data:`PAGE_ONE_SHARE` of the places while other topics wait.

Must-reads never pass through the score: callers pin the unacknowledged ones first.

The numeric core is pure functions over numpy arrays; :func:`load_profile` and
:func:`load_quality` read what they need with an explicit session (a few grouped queries per
person, never one per post), and :func:`rank` ties them together.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Integer, String, bindparam, case, cast, func, literal, null, select, union_all, update
from sqlmodel import Session

from intranet import ratings
from intranet.db import UTCDateTime, insert_new
from intranet.models import DepartmentPrior, EngagementEvent, Employee, Post, PostRatingStats, PostState, Rating
from intranet.reasons import Reason

# --------------------------------------------------------------------------------------------
# Parameters (log-odds units unless said otherwise)
# --------------------------------------------------------------------------------------------

#: Every signal's weight halves after this many days, so interests can drift.
HALF_LIFE_DAYS = 30.0
#: Signals older than this (six half-lives, under 2 % of their weight) are not read at all.
HORIZON_DAYS = 180
#: Pseudo-observations of the department prior in a person's affinity (a0 in §3.2).
PRIOR_STRENGTH = 4.0
#: Pseudo-observations of the organisation's 0.5 in a department's pooled rate.
DEPARTMENT_PRIOR_STRENGTH = 2.0
#: How often the ``ranking-refresh`` job recomputes every department's prior, and the oldest prior
#: a feed uses before recomputing its department itself.
PRIOR_REFRESH = dt.timedelta(hours=1)
PRIOR_MAX_AGE = dt.timedelta(hours=6)
#: No topic's affinity goes below this (or above 1 - this): one bad post never silences a topic.
AFFINITY_FLOOR = 0.05
#: Mass of an open whose dwell covered at least :data:`ENGAGED_DWELL_SHARE` of the expected reading time.
ENGAGED = 1.0
#: Mass of an open left quickly, or whose dwell is unknown (a digest click, a read without timing).
GLANCED = 0.5
ENGAGED_DWELL_SHARE = 0.5
#: Negative mass of an impression never opened, times the chance its position was looked at.
#: As heavy as a read: at DELIVERY.md's 0.3 a person's skips barely moved a topic against their
#: reads (bench.ranking_eval tuning seeds 0-2: 0.3 -> 1.0 gained 3 points of the NDCG@10 gap).
SKIP = 1.0
#: Examination probability at position r (0 = top) is (1 + r) ** -EXAMINATION_EXPONENT.
EXAMINATION_EXPONENT = 0.8
#: The chance a skipped impression was looked at when its position is unknown (imports).
UNKNOWN_POSITION_EXAMINED = 0.5
#: Explicit feedback weighs more than implicit: a thumb is this much mass, 5 stars all positive.
THUMB_MASS = 2.0
#: Reading speed for the expected reading time (words of about 6 characters with the space).
WORDS_PER_MINUTE = 230
CHARS_PER_WORD = 6
MIN_EXPECTED_MS = 15_000

#: Pseudo-ratings in the Bayesian average (C in §3.1), placed at the mean rating.
QUALITY_PSEUDO = 10.0
#: Pseudo-ratings that keep that mean itself near the middle when few posts have ratings.
MEAN_PSEUDO = 20.0
NEUTRAL_STARS = 3.0
NEUTRAL_THUMBS = 0.5
#: On tuning seeds 0-2 of bench.ranking_eval, 1.5 beat 1.0 by 2-4 points of the gap; 2.0 gained no more.
QUALITY_WEIGHT = 1.5
#: Impressions at the topic's open rate in a post's own open rate (see :func:`engagement_lift`).
ENGAGEMENT_PSEUDO = 20.0
ENGAGEMENT_WEIGHT = 1.0
#: A quality this far above the mean (in stars) is worth telling: "Rated highly by your colleagues".
PRAISED = 0.25

#: A week-old post has lost 0.35 log-odds units against a new one. (bench.ranking_eval's people
#: have no taste for freshness, so it would choose 0; 0.05 cost it under a point against 0.03, 0.1 four.)
FRESHNESS_PER_DAY = 0.05
FOLLOW_BOOST = 1.0
TARGETED_BOOST = 0.5
READ_PENALTY = 1.5
#: Larger than any other spread of scores: a muted topic's posts sink below every other post.
MUTE_PENALTY = 20.0
#: Soft: in bench.ranking_eval a penalty of 0.5 cost a fifth of Beacon's NDCG@10 for little variety
#: beyond what the hard page-one share already gives.
TOPIC_PENALTY = 0.1
PAGE_ONE_SHARE = 0.5

#: A topic the person reads this much (affinity) on evidence of at least MIN_OWN_MASS is "theirs".
LIKED = 0.6
MIN_OWN_MASS = 1.5
MAX_REASONS = 3

_ENGAGED_KINDS = ("open", "read", "digest_click")
_LEARNED_KINDS = ("impression",) + _ENGAGED_KINDS
_DAY = 86400.0


# --------------------------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------------------------


def decay(age_days: np.ndarray) -> np.ndarray:
    """The weight left of signals *age_days* old (1 now, 0.5 after :data:`HALF_LIFE_DAYS`)."""
    return np.power(0.5, np.maximum(np.asarray(age_days, dtype=float), 0.0) / HALF_LIFE_DAYS)


def examination(position: np.ndarray) -> np.ndarray:
    """The chance an item shown at *position* (0 = top; NaN = unknown) was looked at."""
    position = np.asarray(position, dtype=float)
    known = np.power(1.0 + np.maximum(np.nan_to_num(position, nan=0.0), 0.0), -EXAMINATION_EXPONENT)
    return np.where(np.isnan(position), UNKNOWN_POSITION_EXAMINED, known)


def expected_read_ms(chars: np.ndarray) -> np.ndarray:
    """How long reading a post of *chars* characters takes, in milliseconds (at least 15 s)."""
    minutes = np.asarray(chars, dtype=float) / (CHARS_PER_WORD * WORDS_PER_MINUTE)
    return np.maximum(minutes * 60_000.0, MIN_EXPECTED_MS)


def signal_masses(*, engaged: np.ndarray, dwell_ms: np.ndarray, chars: np.ndarray, shown: np.ndarray,
                  position: np.ndarray, stars: np.ndarray, thumb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative pseudo-counts of one person's signals about each post (before decay).

    :param engaged: opened, read or clicked from a digest.
    :param dwell_ms: the longest dwell recorded (NaN when unknown); normalised by *chars*, the
        post's length, so a long read of a long post counts like a long read of a short one.
    :param shown: an impression was recorded; without *engaged* it is a skip.
    :param position: the best position it was shown at (NaN when unknown).
    :param stars: 1-5 or NaN; *thumb*: +1, -1 or 0.
    """
    engaged = np.asarray(engaged, dtype=bool)
    dwell = np.asarray(dwell_ms, dtype=float)
    covered = np.nan_to_num(dwell / expected_read_ms(chars), nan=0.0) >= ENGAGED_DWELL_SHARE
    pos = np.where(engaged, np.where(covered, ENGAGED, GLANCED), 0.0)
    neg = np.where(~engaged & np.asarray(shown, dtype=bool), SKIP * examination(position), 0.0)
    stars = np.asarray(stars, dtype=float)
    rated = ~np.isnan(stars)
    pos = pos + np.where(rated, THUMB_MASS * (np.nan_to_num(stars) - 1) / 4, 0.0)
    neg = neg + np.where(rated, THUMB_MASS * (5 - np.nan_to_num(stars, nan=5.0)) / 4, 0.0)
    thumb = np.asarray(thumb, dtype=float)
    pos = pos + THUMB_MASS * (thumb > 0)
    neg = neg + THUMB_MASS * (thumb < 0)
    return pos, neg


def topic_totals(topic_index: np.ndarray, weights: np.ndarray, n_topics: int) -> np.ndarray:
    """Sum *weights* per topic (``topic_index`` gives each row's topic)."""
    return np.bincount(np.asarray(topic_index, dtype=np.int64), weights=weights, minlength=n_topics)[:n_topics]


def affinity(pos: np.ndarray, neg: np.ndarray, prior: np.ndarray, strength: float | None = None) -> np.ndarray:
    """Beta estimate (pos + a0 * prior) / (pos + neg + a0), kept within [floor, 1 - floor] (a0: *strength*,
    :data:`PRIOR_STRENGTH` by default)."""
    strength = PRIOR_STRENGTH if strength is None else strength
    estimate = (pos + strength * prior) / (pos + neg + strength)
    return np.clip(estimate, AFFINITY_FLOOR, 1.0 - AFFINITY_FLOOR)


def star_quality(count: np.ndarray, total: np.ndarray, mean: float) -> np.ndarray:
    """Bayesian average of stars minus *mean*: (C * m + sum) / (C + n) - m."""
    count = np.asarray(count, dtype=float)
    return (QUALITY_PSEUDO * mean + np.asarray(total, dtype=float)) / (QUALITY_PSEUDO + count) - mean


def thumb_quality(up: np.ndarray, down: np.ndarray, rate: float) -> np.ndarray:
    """Beta posterior mean of thumbs up minus *rate*, on the star scale (a thumb spans 4 stars)."""
    up, down = np.asarray(up, dtype=float), np.asarray(down, dtype=float)
    posterior = (up + QUALITY_PSEUDO * rate) / (up + down + QUALITY_PSEUDO)
    return 4.0 * (posterior - rate)


def engagement_lift(engaged: np.ndarray, shown: np.ndarray, topic_index: np.ndarray) -> np.ndarray:
    """How much more often each post is opened than its topic's posts, in log-odds, shrunk towards 0.

    *engaged* and *shown* count the people who opened the post and the people it was shown to
    (must-reads excluded); the topic's rate over the posts given is the prior, worth
    :data:`ENGAGEMENT_PSEUDO` impressions. The topic itself is the person's affinity's business;
    this is the post's own pull, from far more evidence than its ratings (a read per impression
    a few times over, against a rating per ten reads).
    """
    engaged = np.asarray(engaged, dtype=float)
    shown = np.maximum(np.asarray(shown, dtype=float), engaged)
    topic_index = np.asarray(topic_index, dtype=np.int64)
    if len(topic_index) == 0:
        return np.zeros(0)
    n_topics = int(topic_index.max()) + 1
    topic_rate = ((np.bincount(topic_index, engaged, n_topics) + 1.0)
                  / (np.bincount(topic_index, shown, n_topics) + 2.0))[topic_index]
    rate = (engaged + ENGAGEMENT_PSEUDO * topic_rate) / (shown + ENGAGEMENT_PSEUDO)
    bound = AFFINITY_FLOOR / 10
    return logit(np.clip(rate, bound, 1 - bound)) - logit(np.clip(topic_rate, bound, 1 - bound))


def logit(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return np.log(p) - np.log1p(-p)


def diversify(scores: np.ndarray, topic_index: np.ndarray, *, page_size: int,
              penalty: float = TOPIC_PENALTY, share: float = PAGE_ONE_SHARE) -> np.ndarray:
    """An order of the items (indices) that trades score for variety of topics.

    Greedy MMR with a per-topic redundancy cost: the j-th post of a topic (j = 0, 1, ...) competes
    with ``score - penalty * j``. Within a topic that effective score falls with j, so the greedy
    pick is exactly one stable sort. Then the first *page_size* places hold at most
    ``ceil(share * page_size)`` posts of one topic, as long as other topics have posts to offer.
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    scores = np.asarray(scores, dtype=float)
    topics = np.asarray(topic_index, dtype=np.int64)
    by_topic = np.lexsort((-scores, topics))  # topic, then best first
    sorted_topics = topics[by_topic]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_topics)) + 1]
    counts = np.diff(np.r_[starts, n])
    rank_in_topic = np.empty(n, dtype=np.int64)
    rank_in_topic[by_topic] = np.arange(n) - np.repeat(starts, counts)
    order = np.lexsort((np.arange(n), -(scores - penalty * rank_in_topic)))
    cap = max(1, math.ceil(share * page_size))
    page = order[:page_size]
    if len(np.unique(topics)) < 2 or np.bincount(topics[page]).max(initial=0) <= cap:
        return order
    kept: list[int] = []
    deferred: list[int] = []
    taken: dict[int, int] = {}
    rest = order.tolist()
    i = 0
    while len(kept) < page_size and i < len(rest):
        item = rest[i]
        i += 1
        t = int(topics[item])
        if taken.get(t, 0) >= cap:
            deferred.append(item)
            continue
        taken[t] = taken.get(t, 0) + 1
        kept.append(item)
    # Not enough other topics to fill the page: the deferred posts come back in order.
    shortfall = page_size - len(kept)
    kept += deferred[:shortfall]
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    tail = sorted(deferred[shortfall:] + rest[i:], key=lambda item: position[item])
    return np.array(kept + tail, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# What the ranker knows about a person and about posts
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Profile:
    """One person's topic affinities: their own decayed masses and their department's prior."""

    pos: dict[str, float]
    neg: dict[str, float]
    prior: dict[str, float]

    def affinities(self, topics: Sequence[str]) -> np.ndarray:
        """The affinity for each of *topics* (a topic never seen gets the organisation's 0.5 prior)."""
        pos = np.array([self.pos.get(t, 0.0) for t in topics])
        neg = np.array([self.neg.get(t, 0.0) for t in topics])
        prior = np.array([self.prior.get(t, NEUTRAL_THUMBS) for t in topics])
        return affinity(pos, neg, prior)

    def own_mass(self, topic: str) -> float:
        return self.pos.get(topic, 0.0) + self.neg.get(topic, 0.0)


EMPTY_PROFILE = Profile({}, {}, {})


def _ages(values: Sequence[dt.datetime | None], now: dt.datetime) -> np.ndarray:
    return np.array([(now - v).total_seconds() / _DAY if v is not None else HORIZON_DAYS for v in values], dtype=float)


def _by_topic(topics: list[str], pos: np.ndarray, neg: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
    names = sorted(set(topics))
    index = {t: i for i, t in enumerate(names)}
    idx = np.array([index[t] for t in topics], dtype=np.int64)
    p, n = topic_totals(idx, pos, len(names)), topic_totals(idx, neg, len(names))
    return dict(zip(names, p.tolist(), strict=True)), dict(zip(names, n.tolist(), strict=True))


def _signal_counts(session: Session, *, now: dt.datetime, department: str | None = None) -> tuple[list, list]:
    """Per (department, post): people engaged, shown, reached and the last signal; and the ratings.

    Only *department*'s members when given; everyone's (department None included) otherwise.
    """
    since = now - dt.timedelta(days=HORIZON_DAYS)
    engaged = case((EngagementEvent.kind.in_(_ENGAGED_KINDS), EngagementEvent.employee_pk))
    shown = case((EngagementEvent.kind == "impression", EngagementEvent.employee_pk))
    members = [Employee.department == department] if department else []
    events = session.execute(
        select(Employee.department, Post.topic, func.count(func.distinct(engaged)), func.count(func.distinct(shown)),
               func.max(EngagementEvent.occurred_at), Post.id, func.count(func.distinct(EngagementEvent.employee_pk)))
        .join(Post, Post.id == EngagementEvent.post_id)
        .join(Employee, Employee.id == EngagementEvent.employee_pk)
        .where(*members, EngagementEvent.occurred_at >= since,
               EngagementEvent.kind.in_(_LEARNED_KINDS), Post.must_read.is_(False))
        .group_by(Employee.department, Post.id, Post.topic)).all()
    rated = session.execute(
        select(Employee.department, Post.topic, func.count(Rating.stars), func.coalesce(func.sum(Rating.stars), 0),
               func.sum(case((Rating.thumb == "up", 1), else_=0)), func.sum(case((Rating.thumb == "down", 1), else_=0)),
               func.max(Rating.updated_at))
        .join(Post, Post.id == Rating.post_id).join(Employee, Employee.id == Rating.employee_pk)
        .where(*members, Rating.updated_at >= since, Post.must_read.is_(False))
        .group_by(Employee.department, Post.id, Post.topic)).all()
    return events, rated


def _pooled_rates(events: list, rated: list, *, now: dt.datetime) -> dict[str, dict[str, float]]:
    """Each department's pooled rate per topic, from :func:`_signal_counts`."""
    events = [r for r in events if r[0]]
    rated = [r for r in rated if r[0]]
    if not events and not rated:
        return {}
    keys = [(r[0], r[1]) for r in events] + [(r[0], r[1]) for r in rated]
    ev_engaged = np.array([r[2] for r in events], dtype=float)
    ev_skipped = np.maximum(np.array([r[3] for r in events], dtype=float) - ev_engaged, 0.0)
    ev_weight = decay(_ages([r[4] for r in events], now))
    n_stars = np.array([r[2] for r in rated], dtype=float)
    sum_stars = np.array([r[3] for r in rated], dtype=float)
    ups = np.array([r[4] or 0 for r in rated], dtype=float)
    downs = np.array([r[5] or 0 for r in rated], dtype=float)
    r_weight = decay(_ages([r[6] for r in rated], now))
    pos = np.r_[ev_weight * GLANCED * ev_engaged,
                r_weight * THUMB_MASS * ((sum_stars - n_stars) / 4 + ups)]
    neg = np.r_[ev_weight * SKIP * UNKNOWN_POSITION_EXAMINED * ev_skipped,
                r_weight * THUMB_MASS * ((5 * n_stars - sum_stars) / 4 + downs)]
    names = sorted(set(keys))
    index = {k: i for i, k in enumerate(names)}
    idx = np.array([index[k] for k in keys], dtype=np.int64)
    rates = department_rate(topic_totals(idx, pos, len(names)), topic_totals(idx, neg, len(names)))
    out: dict[str, dict[str, float]] = {}
    for (dept, topic), rate in zip(names, rates.tolist(), strict=True):
        out.setdefault(dept, {})[topic] = rate
    return out


def department_rate(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """A department's pooled rate from its members' summed masses, shrunk towards the organisation's 0.5."""
    a0 = DEPARTMENT_PRIOR_STRENGTH
    return np.clip((pos + a0 * 0.5) / (pos + neg + a0), AFFINITY_FLOOR, 1 - AFFINITY_FLOOR)


def load_department_prior(session: Session, department: str | None, *, now: dt.datetime) -> dict[str, float]:
    """The department's pooled rate per topic, computed now: its members' engaged and skipped posts, and ratings.

    It reads every member's signals (at 100k people, a large department's are hundreds of
    thousands of rows); feeds use :func:`department_prior`, which keeps the result. An empty
    department gives 0.5 everywhere.
    """
    if not department:
        return {}
    events, rated = _signal_counts(session, now=now, department=department)
    return _pooled_rates(events, rated, now=now).get(department, {})


def department_prior(session: Session, department: str | None, *, now: dt.datetime,
                     keep: bool = True) -> dict[str, float]:
    """The department's pooled rate per topic as last computed, recomputed (and kept) when older than
    :data:`PRIOR_MAX_AGE`.

    The ``ranking-refresh`` job recomputes every department each :data:`PRIOR_REFRESH`, so a feed
    recomputes one only on a new database or when the scheduler is down. A prior lags its
    department's signals by at most :data:`PRIOR_MAX_AGE`: it is the pooled taste of many people
    over months, a cold start worth :data:`PRIOR_STRENGTH` observations, and the person's own
    signals (always read fresh) outweigh it as they accumulate. Every instance reads the same row.

    :param keep: store a recomputed prior; False for callers that must not write (composing a
        digest preview), which then recompute it each time the kept one is too old.
    """
    if not department:
        return {}
    row = session.get(DepartmentPrior, department)
    if row is not None and row.computed_at > now - PRIOR_MAX_AGE:
        return dict(row.rates)
    rates = load_department_prior(session, department, now=now)
    if keep:
        _store_priors(session, {department: rates}, now=now)
    return rates


def _store_priors(session: Session, priors: dict[str, dict[str, float]], *, now: dt.datetime) -> None:
    table = DepartmentPrior.__table__  # type: ignore[attr-defined]
    if not priors:
        return
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(table)
    # Two instances recomputing the same department write nearly the same numbers: the later wins.
    session.execute(statement.on_conflict_do_update(
        index_elements=["department"], set_={"rates": statement.excluded.rates,
                                             "computed_at": statement.excluded.computed_at}),
        [{"department": d, "rates": r, "computed_at": now} for d, r in sorted(priors.items())])
    # Objects already loaded in this session would otherwise keep the old rates.
    for department in priors:
        cached = session.identity_map.get(session.identity_key(DepartmentPrior, department))
        if cached is not None:
            session.expire(cached)


def refresh_job(session: Session, now: dt.datetime, settings: Any = None) -> int:
    """Recompute every department's prior and each post's reach, and recount post ratings (the periodic job).

    Returns how many departments were computed. Safe to run twice: it only overwrites values.
    """
    departments = [d for d in session.execute(select(Employee.department).where(Employee.department.is_not(None))
                                              .distinct()).scalars()]
    events, rated = _signal_counts(session, now=now)
    priors = _pooled_rates(events, rated, now=now)
    _store_priors(session, {d: priors.get(d, {}) for d in departments}, now=now)
    _store_reach(session, events)
    ratings.recount_all(session)
    return len(departments)


def _store_reach(session: Session, events: list) -> None:
    """Each post's people reached and engaged (summed over departments: a person is in one)."""
    reach: dict[int, list[int]] = {}
    for row in events:
        counts = reach.setdefault(row[5], [0, 0])
        counts[0] += row[6]
        counts[1] += row[2]
    stats = PostRatingStats.__table__  # type: ignore[attr-defined]
    stored = {r[0]: (r[1], r[2]) for r in session.execute(select(stats.c.post_id, stats.c.reached, stats.c.engaged))}
    changed = {p: tuple(c) for p, c in reach.items() if stored.get(p) != tuple(c)}
    changed.update({p: (0, 0) for p, c in stored.items() if p not in reach and c != (0, 0)})
    insert_new(session, stats, [{"post_id": p, "n_stars": 0, "sum_stars": 0, "ups": 0, "downs": 0,
                                 "reached": 0, "engaged": 0} for p in sorted(changed) if p not in stored],
               ("post_id",), ("post_id",))
    if changed:
        session.execute(update(stats).where(stats.c.post_id == bindparam("post")).values(
            reached=bindparam("n_reached"), engaged=bindparam("n_engaged")),
            [{"post": p, "n_reached": c[0], "n_engaged": c[1]} for p, c in sorted(changed.items())])


def _none(type_: Any) -> Any:
    # A typed NULL: PostgreSQL types a UNION's columns from its first branches, and a bare NULL there is text.
    return cast(null(), type_)


def _profile_signals_statement() -> Any:
    """:func:`load_profile`'s statement, built once (building it cost more CPU than running it)."""
    employee_pk = bindparam("profile_employee_pk", type_=Integer)
    since = bindparam("profile_since", type_=UTCDateTime())
    # One plain parameter per kind, not an "expanding" list (re-rendered on every execution).
    engaged_kinds = [literal(kind) for kind in _ENGAGED_KINDS]
    engaged = func.max(case((EngagementEvent.kind.in_(engaged_kinds), 1), else_=0))
    shown = func.max(case((EngagementEvent.kind == "impression", 1), else_=0))
    position = func.min(case((EngagementEvent.kind == "impression", EngagementEvent.position)))
    chars = func.length(Post.body_text) + func.length(Post.summary)
    # One statement for the three kinds of signal (a discriminator first, NULL where a kind has no value):
    # a feed reads them on every first page.
    events = (
        select(literal(0).label("kind"), EngagementEvent.post_id, Post.topic, engaged, func.max(EngagementEvent.dwell_ms),
               shown, position, func.max(EngagementEvent.occurred_at), chars,
               _none(Integer).label("stars"), _none(String).label("thumb"))
        .join(Post, Post.id == EngagementEvent.post_id)
        .where(EngagementEvent.employee_pk == employee_pk, EngagementEvent.occurred_at >= since,
               EngagementEvent.kind.in_([literal(kind) for kind in _LEARNED_KINDS]), Post.must_read.is_(False))
        .group_by(EngagementEvent.post_id, Post.id, Post.topic))
    # Opening a post page marks it read on the server even when no client event arrived.
    reads = (
        select(literal(1), PostState.post_id, Post.topic, _none(Integer), _none(Integer), _none(Integer),
               _none(Integer), PostState.read_at, chars, _none(Integer), _none(String))
        .join(Post, Post.id == PostState.post_id)
        .where(PostState.employee_pk == employee_pk, PostState.read_at >= since, Post.must_read.is_(False)))
    rated = (
        select(literal(2), Rating.post_id, Post.topic, _none(Integer), _none(Integer), _none(Integer),
               _none(Integer), Rating.updated_at, _none(Integer), Rating.stars, Rating.thumb)
        .join(Post, Post.id == Rating.post_id)
        .where(Rating.employee_pk == employee_pk, Rating.updated_at >= since, Post.must_read.is_(False)))
    return union_all(events, reads, rated)


_PROFILE_SIGNALS = _profile_signals_statement()


def load_profile(session: Session, employee: Employee, *, now: dt.datetime,
                 prior: dict[str, float] | None = None) -> Profile:
    """*employee*'s decayed topic masses from their events (live and imported), reads and ratings.

    :param prior: the department prior when the caller already has it (a batch of digests).
    """
    since = now - dt.timedelta(days=HORIZON_DAYS)
    connection = session.connection()  # Core rows: the ORM adds nothing to these column queries
    by_kind: tuple[list, list, list] = ([], [], [])
    for row in connection.execute(_PROFILE_SIGNALS, {"profile_employee_pk": employee.id, "profile_since": since}):
        by_kind[row[0]].append(row[1:])
    events = [r[:8] for r in by_kind[0]]
    reads = [(r[0], r[1], r[6], r[7]) for r in by_kind[1]]
    rated = [(r[0], r[1], r[8], r[9], r[6]) for r in by_kind[2]]
    if prior is None:
        prior = department_prior(session, employee.department, now=now)
    return _profile_from(events, reads, rated, prior, now)


def _profile_from(events: Sequence[Any], reads: Sequence[Any], rated: Sequence[Any], prior: dict[str, float],
                  now: dt.datetime) -> Profile:
    """A profile from one person's grouped event rows, reads and ratings (as :func:`load_profile` reads them)."""
    pairs: dict[int, dict] = {}
    for post_id, topic, eng, dwell, was_shown, pos, last, length in events:
        pairs[post_id] = {"topic": topic, "engaged": bool(eng), "dwell": dwell, "shown": bool(was_shown),
                          "position": pos, "last": last, "chars": length or 0, "stars": None, "thumb": 0}
    for post_id, topic, read_at, length in reads:
        pair = pairs.setdefault(post_id, {"topic": topic, "engaged": True, "dwell": None, "shown": False,
                                          "position": None, "last": read_at, "chars": length or 0, "stars": None,
                                          "thumb": 0})
        pair["engaged"] = True
        pair["last"] = max(pair["last"], read_at) if pair["last"] else read_at
    for post_id, topic, stars, thumb, updated in rated:
        pair = pairs.setdefault(post_id, {"topic": topic, "engaged": False, "dwell": None, "shown": False,
                                          "position": None, "last": updated, "chars": 0, "stars": None, "thumb": 0})
        pair["stars"], pair["thumb"] = stars, (1 if thumb == "up" else -1 if thumb == "down" else 0)
        pair["last"] = max(pair["last"], updated) if pair["last"] else updated
    if not pairs:
        return Profile({}, {}, prior)
    rows = list(pairs.values())
    nan = float("nan")
    pos, neg = signal_masses(
        engaged=np.array([r["engaged"] for r in rows]),
        dwell_ms=np.array([nan if r["dwell"] is None else r["dwell"] for r in rows], dtype=float),
        chars=np.array([r["chars"] for r in rows], dtype=float),
        shown=np.array([r["shown"] for r in rows]),
        position=np.array([nan if r["position"] is None else r["position"] for r in rows], dtype=float),
        stars=np.array([nan if r["stars"] is None else r["stars"] for r in rows], dtype=float),
        thumb=np.array([r["thumb"] for r in rows], dtype=float))
    weight = decay(_ages([r["last"] for r in rows], now))
    p, n = _by_topic([r["topic"] for r in rows], pos * weight, neg * weight)
    return Profile(p, n, prior)


def load_profiles(session: Session, employees: Sequence[Employee], *, now: dt.datetime,
                  priors: dict[str | None, dict[str, float]]) -> dict[int, Profile]:
    """:func:`load_profile` for many people at once (a batch of digests): three grouped queries for
    the whole batch instead of three per person, the same profile for each.

    :param priors: department priors by department, filled here for departments not in it yet
        (read as kept, never stored: composing only reads).
    """
    pks = sorted({e.id for e in employees})
    since = now - dt.timedelta(days=HORIZON_DAYS)
    connection = session.connection()
    engaged = func.max(case((EngagementEvent.kind.in_(_ENGAGED_KINDS), 1), else_=0))
    shown = func.max(case((EngagementEvent.kind == "impression", 1), else_=0))
    position = func.min(case((EngagementEvent.kind == "impression", EngagementEvent.position)))
    chars = func.length(Post.body_text) + func.length(Post.summary)
    events: dict[int, list] = {pk: [] for pk in pks}
    reads: dict[int, list] = {pk: [] for pk in pks}
    rated: dict[int, list] = {pk: [] for pk in pks}
    for start in range(0, len(pks), 1000):
        part = pks[start:start + 1000]
        for pk, *row in connection.execute(
                select(EngagementEvent.employee_pk, EngagementEvent.post_id, Post.topic, engaged,
                       func.max(EngagementEvent.dwell_ms), shown, position, func.max(EngagementEvent.occurred_at), chars)
                .join(Post, Post.id == EngagementEvent.post_id)
                .where(EngagementEvent.employee_pk.in_(part), EngagementEvent.occurred_at >= since,
                       EngagementEvent.kind.in_(_LEARNED_KINDS), Post.must_read.is_(False))
                .group_by(EngagementEvent.employee_pk, EngagementEvent.post_id, Post.id, Post.topic)
                .order_by(EngagementEvent.employee_pk, EngagementEvent.post_id)):
            events[pk].append(row)
        for pk, *row in connection.execute(
                select(PostState.employee_pk, PostState.post_id, Post.topic, PostState.read_at, chars)
                .join(Post, Post.id == PostState.post_id)
                .where(PostState.employee_pk.in_(part), PostState.read_at >= since, Post.must_read.is_(False))
                .order_by(PostState.employee_pk, PostState.post_id)):
            reads[pk].append(row)
        for pk, *row in connection.execute(
                select(Rating.employee_pk, Rating.post_id, Post.topic, Rating.stars, Rating.thumb, Rating.updated_at)
                .join(Post, Post.id == Rating.post_id)
                .where(Rating.employee_pk.in_(part), Rating.updated_at >= since, Post.must_read.is_(False))
                .order_by(Rating.employee_pk, Rating.post_id)):
            rated[pk].append(row)
    out: dict[int, Profile] = {}
    for employee in employees:
        if employee.department not in priors:
            priors[employee.department] = department_prior(session, employee.department, now=now, keep=False)
        out[employee.id] = _profile_from(events[employee.id], reads[employee.id], rated[employee.id],
                                         priors[employee.department], now)
    return out


@dataclasses.dataclass(frozen=True)
class Quality:
    """Each post's quality on the star scale, relative to the mean of the posts ranked together."""

    value: np.ndarray
    count: np.ndarray
    #: People reached and engaged per post (see :func:`engagement_lift`); None when unknown.
    reached: np.ndarray | None = None
    engaged: np.ndarray | None = None


def load_rating_counts(session: Session, post_ids: Sequence[int]) -> dict[int, tuple[int, ...]]:
    """The kept rating counts and reach of *post_ids* (those that have any), for :func:`quality_of`:
    a batch reads them once for all its posts, then takes each person's quality from them."""
    counts: dict[int, tuple[int, ...]] = {}
    ids = list(post_ids)
    stats = PostRatingStats
    for start in range(0, len(ids), 5000):
        part = ids[start:start + 5000]
        rows = session.execute(select(stats.post_id, stats.n_stars, stats.sum_stars, stats.ups, stats.downs,
                                      stats.reached, stats.engaged).where(stats.post_id.in_(part))).all()
        counts.update((r[0], tuple(r[1:])) for r in rows)
    return counts


def quality_of(counts: dict[int, tuple[int, ...]], post_ids: Sequence[int], styles: Sequence[str]) -> Quality:
    """What :func:`load_quality` gives for *post_ids*, from counts already loaded (:func:`load_rating_counts`)."""
    ids = list(post_ids)
    table = np.array([counts.get(i, (0,) * 6) for i in ids], dtype=float).reshape(len(ids), 6)
    return quality(table[:, 0], table[:, 1], table[:, 2], table[:, 3],
                   np.array([s == "thumbs" for s in styles], dtype=bool), reached=table[:, 4], engaged=table[:, 5])


def load_quality(session: Session, post_ids: Sequence[int], styles: Sequence[str]) -> Quality:
    """Quality of *post_ids* (rated with *styles*) from their kept rating counts and reach."""
    return quality_of(load_rating_counts(session, post_ids), post_ids, styles)


def quality(n_stars: np.ndarray, sum_stars: np.ndarray, ups: np.ndarray, downs: np.ndarray,
            thumbs: np.ndarray, *, reached: np.ndarray | None = None, engaged: np.ndarray | None = None) -> Quality:
    """Bayesian quality of each post from its rating counts (stars or thumbs by *thumbs*), carrying its reach."""
    star_mean = (float(sum_stars.sum()) + MEAN_PSEUDO * NEUTRAL_STARS) / (float(n_stars.sum()) + MEAN_PSEUDO)
    up_rate = (float(ups.sum()) + MEAN_PSEUDO * NEUTRAL_THUMBS) / (float((ups + downs).sum()) + MEAN_PSEUDO)
    value = np.where(thumbs, thumb_quality(ups, downs, up_rate), star_quality(n_stars, sum_stars, star_mean))
    return Quality(value=value, count=np.where(thumbs, ups + downs, n_stars), reached=reached, engaged=engaged)


# --------------------------------------------------------------------------------------------
# Ranking a candidate set
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Candidate:
    """What the ranker needs to know about one post the person may see."""

    post_id: int
    topic: str
    published_at: dt.datetime
    must_read: bool
    acknowledged: bool
    read: bool
    all_staff: bool
    rating_style: str = "stars"
    #: The post's audience names the person's department.
    for_department: bool = False
    author_department: str | None = None

    @property
    def pinned(self) -> bool:
        return self.must_read and not self.acknowledged


def targets_department(audience: dict, department: str | None) -> bool:
    """Whether an audience (as a post stores it) names *department* in one of its included segments."""
    if not department or not isinstance(audience, dict):
        return False
    return any(isinstance(segment, dict) and department in (segment.get("departments") or ())
               for segment in audience.get("segments") or ())


@dataclasses.dataclass(frozen=True)
class Ranked:
    """Candidates in the person's order (indices into the list given), each with its reasons."""

    order: list[int]
    why: list[list[Reason]]
    scores: np.ndarray


def score(*, affinities: np.ndarray, quality: np.ndarray, age_days: np.ndarray, followed: np.ndarray,
          targeted: np.ndarray, read: np.ndarray, muted: np.ndarray, lift: np.ndarray | float = 0.0) -> np.ndarray:
    """The ranking score of each post (see the module's formula); *lift* from :func:`engagement_lift`."""
    return (logit(affinities) + ENGAGEMENT_WEIGHT * np.asarray(lift) + QUALITY_WEIGHT * quality - FRESHNESS_PER_DAY * np.maximum(age_days, 0.0)
            + FOLLOW_BOOST * followed + TARGETED_BOOST * targeted - READ_PENALTY * read - MUTE_PENALTY * muted)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MICROSECOND = dt.timedelta(microseconds=1)


def epoch_us(moment: dt.datetime) -> int:
    """*moment* (aware) as whole microseconds since 1970 UTC: ages from these equal ``timedelta`` arithmetic exactly."""
    return (moment - _EPOCH) // _MICROSECOND


@dataclasses.dataclass(frozen=True)
class Candidates:
    """A candidate set as columns (one entry per post), what :func:`rank_columns` ranks without a Python
    object per post. :meth:`of` builds it from :class:`Candidate` objects; a feed builds it from rows."""

    post_id: np.ndarray
    #: Each post's topic as an index into ``topics`` (sorted names).
    topic_index: np.ndarray
    topics: list[str]
    #: When the post reached the person (:func:`epoch_us`).
    published_us: np.ndarray
    must_read: np.ndarray
    acknowledged: np.ndarray
    read: np.ndarray
    all_staff: np.ndarray
    for_department: np.ndarray
    #: The author's department, per post (only a pinned must-read's is ever shown); None when unknown.
    author_department: list[str | None]
    thumbs: np.ndarray

    def __len__(self) -> int:
        return len(self.post_id)

    @property
    def pinned(self) -> np.ndarray:
        return self.must_read & ~self.acknowledged

    @classmethod
    def of(cls, candidates: Sequence[Candidate]) -> Candidates:
        names = sorted({c.topic for c in candidates})
        index = {t: i for i, t in enumerate(names)}
        return cls(post_id=np.array([c.post_id for c in candidates], dtype=np.int64),
                   topic_index=np.array([index[c.topic] for c in candidates], dtype=np.int64), topics=names,
                   published_us=np.array([epoch_us(c.published_at) for c in candidates], dtype=np.int64),
                   must_read=np.array([c.must_read for c in candidates], dtype=bool),
                   acknowledged=np.array([c.acknowledged for c in candidates], dtype=bool),
                   read=np.array([c.read for c in candidates], dtype=bool),
                   all_staff=np.array([c.all_staff for c in candidates], dtype=bool),
                   for_department=np.array([c.for_department for c in candidates], dtype=bool),
                   author_department=[c.author_department for c in candidates],
                   thumbs=np.array([c.rating_style == "thumbs" for c in candidates], dtype=bool))


def rank(candidates: Sequence[Candidate], *, profile: Profile, quality: Quality, now: dt.datetime,
         department: str | None, followed: Sequence[str] = (), muted: Sequence[str] = (),
         page_size: int = 20) -> Ranked:
    """Order *candidates*: unacknowledged must-reads first (newest first), then the ranked rest.

    :param quality: for the candidates, in the same order (see :func:`load_quality`).
    :param page_size: the first page, over which no topic may take more than its share.
    """
    return rank_columns(Candidates.of(candidates), profile=profile, quality=quality, now=now, department=department,
                        followed=followed, muted=muted, page_size=page_size)


def rank_columns(candidates: Candidates, *, profile: Profile, quality: Quality, now: dt.datetime,
                 department: str | None, followed: Sequence[str] = (), muted: Sequence[str] = (),
                 page_size: int = 20) -> Ranked:
    """:func:`rank` over columns: the same order and reasons, in numpy rather than a loop per post.

    Reasons are worked out once per combination of the facts they depend on (a few dozen at most),
    never per post.
    """
    n = len(candidates)
    topic_index = candidates.topic_index
    names = candidates.topics
    aff_by_topic = profile.affinities(names)
    aff = aff_by_topic[topic_index] if n else np.zeros(0)
    followed_set, muted_set = set(followed), set(muted)
    topic_followed = np.array([t in followed_set for t in names], dtype=bool)
    topic_muted = np.array([t in muted_set for t in names], dtype=bool)
    is_followed = topic_followed[topic_index] if n else np.zeros(0, dtype=bool)
    is_muted = (topic_muted[topic_index] & ~candidates.must_read) if n else np.zeros(0, dtype=bool)
    # Whole microseconds, then seconds, then days: what (now - published).total_seconds() / _DAY gives.
    ages = (epoch_us(now) - candidates.published_us) / 1e6 / _DAY
    lift = (engagement_lift(quality.engaged, quality.reached, topic_index)
            if quality.reached is not None and quality.engaged is not None else 0.0)
    scores = score(affinities=aff, quality=quality.value, age_days=ages, followed=is_followed,
                   targeted=candidates.for_department, read=candidates.read, muted=is_muted, lift=lift)
    pinned_mask = candidates.pinned
    pinned = np.flatnonzero(pinned_mask)
    # Newest first, ties by the larger post id (a stable sort of (published, id) reversed).
    pinned = pinned[np.lexsort((candidates.post_id[pinned], candidates.published_us[pinned]))[::-1]]
    rest = np.flatnonzero(~pinned_mask)
    rest_order = rest[diversify(scores[rest], topic_index[rest], page_size=page_size)] if len(rest) else rest
    order = pinned.tolist() + rest_order.tolist()
    praised = (quality.value >= PRAISED) & (quality.count >= 3)
    fresh = ages < 1
    if not n:
        return Ranked(order=order, why=[], scores=scores)
    sources = {d: i + 1 for i, d in enumerate(sorted({d for d, p in zip(candidates.author_department,
                                                                          pinned_mask.tolist()) if p and d}))}
    source_code = np.array([sources.get(d, 0) if p else 0
                            for d, p in zip(candidates.author_department, pinned_mask.tolist())], dtype=np.int64) \
        if sources else np.zeros(n, dtype=np.int64)
    facts = np.column_stack([topic_index, pinned_mask, source_code, candidates.for_department, candidates.must_read,
                             candidates.all_staff, praised, fresh]).astype(np.int64)
    combos, first, which = np.unique(facts, axis=0, return_index=True, return_inverse=True)
    reasons: list[list[Reason]] = []
    for i in first.tolist():
        topic = names[topic_index[i]]
        c = Candidate(post_id=int(candidates.post_id[i]), topic=topic, published_at=now, must_read=bool(candidates.must_read[i]),
                      acknowledged=bool(candidates.acknowledged[i]), read=bool(candidates.read[i]),
                      all_staff=bool(candidates.all_staff[i]), for_department=bool(candidates.for_department[i]),
                      author_department=candidates.author_department[i] if pinned_mask[i] else None)
        reasons.append(explain(c, affinity=float(aff[i]), own_mass=profile.own_mass(topic),
                               prior=profile.prior.get(topic, NEUTRAL_THUMBS), quality=float(quality.value[i]),
                               ratings=int(quality.count[i]), age_days=float(ages[i]),
                               followed=bool(is_followed[i]), muted=bool(is_muted[i]), department=department))
    why = [reasons[k] for k in np.asarray(which).reshape(-1).tolist()]
    return Ranked(order=order, why=why, scores=scores)


def explain(candidate: Candidate, *, affinity: float, own_mass: float, prior: float, quality: float, ratings: int,
            age_days: float, followed: bool, muted: bool, department: str | None) -> list[Reason]:
    """Reasons a post sits where it does (at least one, at most three), worded later in the reader's language."""
    reasons: list[Reason] = []
    if candidate.pinned:
        source = candidate.author_department
        reasons.append(Reason.of("must_read_from", department=source) if source else Reason.of("must_read"))
    if candidate.for_department and department:
        reasons.append(Reason.of("targeted_at", department=department))
    if followed:
        reasons.append(Reason.of("follows", topic=candidate.topic))
    if muted:
        reasons.append(Reason.of("muted", topic=candidate.topic))
    if affinity >= LIKED and own_mass >= MIN_OWN_MASS:
        reasons.append(Reason.of("reads_topic", topic=candidate.topic))
    elif affinity >= LIKED and prior >= LIKED and department:
        reasons.append(Reason.of("popular_in", department=department))
    if quality >= PRAISED and ratings >= 3:
        reasons.append(Reason.of("rated_highly"))
    if age_days < 1 and not candidate.pinned:
        reasons.append(Reason.of("fresh"))
    if not reasons:
        reasons.append(Reason.of("everyone" if candidate.all_staff else "group"))
    return reasons[:MAX_REASONS]
