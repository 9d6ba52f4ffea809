"""Platform cases: one employee's feed and one audience count, against hand-written SQL.

Each case runs Beacon's product path and a raw baseline on the same data, in the same process and
on the same database connection, alternating the two so that noise hits both alike:

* **feed** — ``intranet.feed.feed_page(session, employee, now=..., limit=20)`` for random active
  employees (ranked: every visible post scored, the order stored for the cursor), against one
  hand-written SQL query of the *unranked* page over the same tables (ids, the columns a feed
  item shows, read/acknowledged state, newest first). Both pages must be as long and start with
  the same unacknowledged must-reads in the same order (the ranker never moves them). Goal:
  product p50 <= 5x raw p50.
* **audience** — ``intranet.targeting.count_audience`` for random stored audiences, against a
  hand-written ``SELECT COUNT(*)``; the numbers must be equal. Goal: <= 3x. Plus the all-staff
  count (every active employee), goal < 50 ms.

Raw queries go through the DBAPI cursor of the session's own connection (``sqlite3`` or
``psycopg``), which is the floor any Python code can reach. Each item is timed with
``time.perf_counter_ns`` after one warm-up call, as the median of ``repeat`` calls; p50/p95 are
over items. The ORM identity map is emptied before every product call, as a fresh request would
find it.
"""
from __future__ import annotations

import cProfile
import dataclasses
import datetime as dt
import gc
import io
import pstats
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlmodel import Session

from intranet import feed, targeting
from intranet.models import Employee, Post

from bench.datagen import Dataset

FEED_GOAL = 5.0
AUDIENCE_GOAL = 3.0
ALL_STAFF_GOAL_MS = 50.0
FEED_LIMIT = 20


@dataclasses.dataclass
class CaseResult:
    """One line of the report (and one object of the JSON output)."""

    case: str
    db: str
    size: str
    n_items: int
    repeat: int
    p50_ms: float
    p95_ms: float
    baseline_p50_ms: float | None = None
    baseline_p95_ms: float | None = None
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None
    correctness: str = "pass"
    notes: list[str] = dataclasses.field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Raw SQL over the DBAPI connection
# --------------------------------------------------------------------------------------------


class Raw:
    """Hand-written SQL on the session's own DBAPI connection (``:name`` placeholders)."""

    def __init__(self, session: Session, dialect: str) -> None:
        self.dialect = dialect
        self.connection = session.connection().connection.dbapi_connection
        self._cache: dict[str, str] = {}

    def sql(self, query: str) -> str:
        if self.dialect != "postgresql":
            return query
        if query not in self._cache:
            self._cache[query] = re.sub(r":(\w+)", r"%(\1)s", query)
        return self._cache[query]

    def ts(self, value: dt.datetime) -> Any:
        # SQLAlchemy stores SQLite timestamps as naive-UTC text in this exact format.
        if self.dialect == "sqlite":
            return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        return value

    def all(self, query: str, params: dict[str, Any]) -> list[tuple]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(self.sql(query), params)
            return cursor.fetchall()
        finally:
            cursor.close()


#: The raw targeting rule as CTEs (`hit`: the segments matching the person; `released`: the journey
#: steps released to them, and when), shared by the raw queries. The relative rules are here as in the product:
#: "reports to" matches the person's chain of managers (walked up from :manager_id, at most
#: MAX_CHAIN deep, UNION so a cycle ends), "hired in the last N days" compares the segment's N with
#: the person's days since hire (:days_since_hire, NULL without a hire date: never matches).
TARGETING_CTES = """\
WITH RECURSIVE managers(employee_id, manager_id, depth) AS (
    SELECT e.employee_id, e.manager_id, 1 FROM intranet_employee e WHERE e.employee_id = CAST(:manager_id AS VARCHAR)
    UNION
    SELECT e.employee_id, e.manager_id, m.depth + 1
    FROM intranet_employee e JOIN managers m ON e.employee_id = m.manager_id
    WHERE m.depth < 50
),
mine(dimension, value) AS (
    SELECT 'department', CAST(:department AS VARCHAR) UNION ALL
    SELECT 'division', CAST(:division AS VARCHAR) UNION ALL
    SELECT 'region', CAST(:region AS VARCHAR) UNION ALL
    SELECT 'country', CAST(:country AS VARCHAR) UNION ALL
    SELECT 'office', CAST(:office AS VARCHAR) UNION ALL
    SELECT 'group', g.key FROM intranet_group g
        JOIN intranet_group_member gm ON gm.group_id = g.id WHERE gm.employee_pk = :pk UNION ALL
    SELECT 'reports_to', employee_id FROM managers
),
matched AS (
    SELECT v.segment_id, COUNT(DISTINCT v.dimension) AS n
    FROM intranet_audience_value v JOIN mine m ON m.dimension = v.dimension AND m.value = v.value
    GROUP BY v.segment_id
),
hit AS (
    SELECT s.post_id, s.exclude
    FROM intranet_audience_segment s LEFT JOIN matched m ON m.segment_id = s.id
    WHERE COALESCE(m.n, 0) = s.n_dimensions
      AND (s.level_min IS NULL OR s.level_min <= :level)
      AND (s.level_max IS NULL OR s.level_max >= :level)
      AND (s.hired_within_days IS NULL
           OR (CAST(:days_since_hire AS INTEGER) >= 0 AND s.hired_within_days >= CAST(:days_since_hire AS INTEGER)))
),
released AS (
    SELECT r.post_id, MAX(r.released_at) AS released_at FROM intranet_journey_release r
    WHERE r.employee_pk = :pk AND r.status = 'released' AND r.released_at <= :now
    GROUP BY r.post_id
),
"""


def targeting_params(raw: Raw, employee: Employee, now: dt.datetime) -> dict[str, Any]:
    """The parameters of :data:`TARGETING_CTES` for *employee* at *now*."""
    days = None if employee.hire_date is None else (now.date() - employee.hire_date).days
    return {"pk": employee.id, "department": employee.department, "division": employee.division,
            "region": employee.region, "country": employee.country, "office": employee.office,
            "level": employee.level, "manager_id": employee.manager_id or None, "days_since_hire": days,
            "now": raw.ts(now)}


FEED_SQL = TARGETING_CTES + """\
page AS (
    -- Rank on narrow columns first; fetch the wide post rows for the page only. A journey step
    -- reached the person when it was released to them, and is ordered by that moment.
    SELECT p.id, CASE WHEN p.must_read AND ps.acknowledged_at IS NULL THEN 1 ELSE 0 END AS pinned,
           CASE WHEN p.journey_only THEN COALESCE(rl.released_at, p.published_at) ELSE p.published_at END AS shown_at
    FROM intranet_post p
    LEFT JOIN intranet_post_state ps ON ps.post_id = p.id AND ps.employee_pk = :pk
    LEFT JOIN released rl ON rl.post_id = p.id
    WHERE p.status IN ('scheduled', 'published')
      AND p.published_at <= :now AND (p.expires_at IS NULL OR p.expires_at > :now)
      AND (p.all_staff OR p.id IN (SELECT post_id FROM hit WHERE NOT exclude))
      AND p.id NOT IN (SELECT post_id FROM hit WHERE exclude)
      AND (NOT p.journey_only OR p.id IN (SELECT post_id FROM released))
    ORDER BY pinned DESC, shown_at DESC, p.id DESC
    LIMIT :limit
)
SELECT p.id, p.title, p.summary, p.topic, p.must_read, p.published_at, ps.read_at, ps.acknowledged_at, page.pinned
FROM page
JOIN intranet_post p ON p.id = page.id
LEFT JOIN intranet_post_state ps ON ps.post_id = p.id AND ps.employee_pk = :pk
ORDER BY page.pinned DESC, page.shown_at DESC, p.id DESC
"""


def raw_feed(raw: Raw, employee: Employee, now: dt.datetime, limit: int = FEED_LIMIT) -> list[tuple[int, int]]:
    """(id, pinned) of *employee*'s first unranked feed page, by hand-written SQL (the employee is active)."""
    params = {**targeting_params(raw, employee, now), "limit": limit}
    return [(row[0], int(row[8])) for row in raw.all(FEED_SQL, params)]


def _pinned(page: list[tuple[int, int]]) -> list[int]:
    return [post_id for post_id, pinned in page if pinned]


EMPLOYEE_COLUMNS = {"department": "e.department", "division": "e.division", "region": "e.region",
                    "country": "e.country", "office": "e.office"}


def _raw_segment(segment: targeting.Segment, params: dict[str, Any], today: dt.date, day: Callable[[dt.date], Any]
                 ) -> str:
    """One segment as SQL over ``intranet_employee e`` (NULL attributes never match)."""
    clauses = []

    def bind(value: Any) -> str:
        name = f"p{len(params)}"
        params[name] = value
        return f":{name}"

    for dimension, values in segment.dimension_values().items():
        marks = ", ".join(bind(v) for v in sorted(values))
        if dimension == "group":
            clauses.append("e.id IN (SELECT gm.employee_pk FROM intranet_group_member gm "
                           f"JOIN intranet_group g ON g.id = gm.group_id WHERE g.key IN ({marks}))")
        elif dimension == "reports_to":
            # Everyone below these managers, directly or not (at most 50 levels; UNION ends a cycle).
            clauses.append("e.employee_id IN (WITH RECURSIVE below(employee_id, depth) AS ("
                           f"SELECT x.employee_id, 1 FROM intranet_employee x WHERE x.manager_id IN ({marks}) "
                           "UNION SELECT x.employee_id, b.depth + 1 FROM intranet_employee x "
                           "JOIN below b ON x.manager_id = b.employee_id WHERE b.depth < 50) "
                           "SELECT employee_id FROM below)")
        else:
            clauses.append(f"{EMPLOYEE_COLUMNS[dimension]} IN ({marks})")
    if segment.level_min is not None:
        clauses.append(f"e.level >= {bind(segment.level_min)}")
    if segment.level_max is not None:
        clauses.append(f"e.level <= {bind(segment.level_max)}")
    if segment.hired_within_days is not None:
        since = today - dt.timedelta(days=segment.hired_within_days)
        clauses.append(f"(e.hire_date >= {bind(day(since))} AND e.hire_date <= {bind(day(today))})")
    return "(" + " AND ".join(clauses) + ")"


def raw_count(raw: Raw, audience: targeting.Audience, *, now: dt.datetime | None = None) -> int:
    """The audience headcount by hand-written SQL (query text built per call, as an app would).

    :param now: the moment asked about, for "hired in the last N days" (the current time if None,
        as :func:`intranet.targeting.count_audience`).
    """
    today = (now or dt.datetime.now(dt.timezone.utc)).date()
    # SQLite stores dates as ISO text; the sqlite3 module's date adapter is deprecated.
    day = (lambda d: d.isoformat()) if raw.dialect == "sqlite" else (lambda d: d)
    params: dict[str, Any] = {}
    where = ["e.active = TRUE"]
    if not audience.all_staff:
        where.append("(" + " OR ".join(_raw_segment(s, params, today, day) for s in audience.segments) + ")")
    if audience.exclude:
        # COALESCE: an exclusion on an unknown attribute (NULL) must not drop the person.
        where.append("NOT COALESCE((" + " OR ".join(_raw_segment(s, params, today, day) for s in audience.exclude)
                     + "), FALSE)")
    return raw.all("SELECT COUNT(*) FROM intranet_employee e WHERE " + " AND ".join(where), params)[0][0]


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


def _time_ns(fn: Callable[[], Any], before: Callable[[], None] | None = None) -> tuple[int, Any]:
    if before is not None:
        before()
    start = time.perf_counter_ns()
    result = fn()
    return time.perf_counter_ns() - start, result


def paired(items: list[Any], product: Callable[[Any], Any], baseline: Callable[[Any], Any], *, repeat: int,
           before: Callable[[], None] | None = None) -> tuple[np.ndarray, np.ndarray, list[tuple[Any, Any, Any]]]:
    """Per-item median ms of *product* and *baseline* (alternating), and the warm-up results."""
    prod_ms, base_ms, results = [], [], []
    gc.collect()
    for item in items:
        _, got = _time_ns(lambda: product(item), before)
        _, want = _time_ns(lambda: baseline(item))
        results.append((item, got, want))
        p, b = [], []
        for _ in range(repeat):
            p.append(_time_ns(lambda: product(item), before)[0])
            b.append(_time_ns(lambda: baseline(item))[0])
        prod_ms.append(statistics.median(p) / 1e6)
        base_ms.append(statistics.median(b) / 1e6)
    return np.array(prod_ms), np.array(base_ms), results


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q))


def profile_top(fn: Callable[[], None], n: int = 18) -> str:
    """cProfile *fn* and return the top functions by cumulative time, as text."""
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative").print_stats(n)
    return out.getvalue()


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------


def feed_case(ds: Dataset, *, n_employees: int = 200, repeat: int = 5, seed: int = 42,
              profile: bool = False) -> CaseResult:
    """Feed page of random active employees: product against raw SQL, identical ids required."""
    rng = np.random.default_rng([seed, 1])
    with Session(ds.engine) as session:
        ids = session.exec(select(Employee.id).where(Employee.active.is_(True))).scalars().all()
        chosen = sorted(int(i) for i in rng.choice(ids, size=min(n_employees, len(ids)), replace=False))
        employees = session.exec(select(Employee).where(Employee.id.in_(chosen))).scalars().all()
        session.expunge_all()  # detached but loaded: feed_page only reads their attributes
        raw = Raw(session, ds.dialect)

        def product(e: Employee) -> list[tuple[int, int]]:
            return [(item.post.id, int(item.pinned))
                    for item in feed.feed_page(session, e, now=ds.now, limit=FEED_LIMIT).items]

        prod, base, results = paired(employees, product, lambda e: raw_feed(raw, e, ds.now), repeat=repeat,
                                     before=session.expunge_all)
        wrong = [e.employee_id for e, got, want in results
                 if len(got) != len(want) or _pinned(got) != _pinned(want)]
        short = sum(1 for _, got, _ in results if len(got) < FEED_LIMIT)
        result = CaseResult(
            case="feed", db=ds.dialect, size=ds.size, n_items=len(employees), repeat=repeat,
            p50_ms=_pct(prod, 50), p95_ms=_pct(prod, 95), baseline_p50_ms=_pct(base, 50),
            baseline_p95_ms=_pct(base, 95), goal=f"p50 <= {FEED_GOAL:g}x raw",
            correctness="pass" if not wrong else f"FAIL ({len(wrong)} employees differ, e.g. {wrong[:3]})")
        result.ratio = result.p50_ms / result.baseline_p50_ms
        result.met = result.ratio <= FEED_GOAL
        result.notes.append(f"median per-employee ratio {float(np.median(prod / base)):.2f}x; "
                            f"{short} of {len(employees)} pages shorter than {FEED_LIMIT}")
        if profile:
            sample = employees[:30]

            def run() -> None:
                for e in sample:
                    session.expunge_all()
                    product(e)
            result.notes.append("cProfile of feed_page (30 employees):\n" + profile_top(run))
        session.rollback()
    return result


def audience_cases(ds: Dataset, *, n_audiences: int = 100, repeat: int = 5, seed: int = 42,
                   profile: bool = False) -> list[CaseResult]:
    """count_audience over random stored audiences, and the all-staff count, against raw SQL."""
    rng = np.random.default_rng([seed, 2])
    with Session(ds.engine) as session:
        stored = session.exec(select(Post.id, Post.audience).where(Post.all_staff.is_(False))).all()
        picks = rng.choice(len(stored), size=min(n_audiences, len(stored)), replace=False)
        audiences = [targeting.parse_audience(stored[int(i)][1]) for i in sorted(picks)]
        raw = Raw(session, ds.dialect)
        # At the data set's moment: "hired in the last N days" is relative to it, as the hire dates are.
        prod, base, results = paired(audiences, lambda a: targeting.count_audience(session, a, now=ds.now),
                                     lambda a: raw_count(raw, a, now=ds.now), repeat=repeat)
        wrong = [a.to_json() for a, got, want in results if got != want]
        counts = np.array([got for _, got, _ in results])
        count = CaseResult(
            case="audience", db=ds.dialect, size=ds.size, n_items=len(audiences), repeat=repeat,
            p50_ms=_pct(prod, 50), p95_ms=_pct(prod, 95), baseline_p50_ms=_pct(base, 50),
            baseline_p95_ms=_pct(base, 95), goal=f"p50 <= {AUDIENCE_GOAL:g}x raw",
            correctness="pass" if not wrong else f"FAIL ({len(wrong)} counts differ, e.g. {wrong[:2]})")
        count.ratio = count.p50_ms / count.baseline_p50_ms
        count.met = count.ratio <= AUDIENCE_GOAL
        count.notes.append(f"median per-audience ratio {float(np.median(prod / base)):.2f}x; audience sizes "
                           f"p50 {int(np.median(counts)):,}, max {int(counts.max()):,}")
        if profile:
            def run() -> None:
                for a in audiences[:30]:
                    targeting.count_audience(session, a)
            count.notes.append("cProfile of count_audience (30 audiences):\n" + profile_top(run))

        everyone = targeting.parse_audience({"all": True})
        prod, base, results = paired([everyone], lambda a: targeting.count_audience(session, a, now=ds.now),
                                     lambda a: raw_count(raw, a, now=ds.now), repeat=max(repeat, 9))
        _, got, want = results[0]
        all_staff = CaseResult(
            case="audience all-staff", db=ds.dialect, size=ds.size, n_items=1, repeat=max(repeat, 9),
            p50_ms=float(prod[0]), p95_ms=float(prod[0]), baseline_p50_ms=float(base[0]),
            baseline_p95_ms=float(base[0]), goal=f"< {ALL_STAFF_GOAL_MS:g} ms",
            correctness="pass" if got == want else f"FAIL ({got} != {want})")
        all_staff.ratio = all_staff.p50_ms / all_staff.baseline_p50_ms
        all_staff.met = all_staff.p50_ms < ALL_STAFF_GOAL_MS
        all_staff.notes.append(f"count {got:,} of {ds.n_employees:,} employees (active only)")
        session.rollback()
    return [count, all_staff]


CASES: dict[str, Callable[..., list[CaseResult]]] = {
    "feed": lambda ds, **kw: [feed_case(ds, **kw)],
    "audience": lambda ds, **kw: audience_cases(ds, **kw),
}
