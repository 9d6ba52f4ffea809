"""Engagement dashboards at 10 million events: rollup answers against the raw ``GROUP BY`` (goal: >= 10x faster,
p95 <= 300 ms, identical results), and what keeping the rollups current costs the event ingest (goal: <= 20 %).

On the generated organisation (:mod:`bench.datagen`, size M: 100k people, 10k posts) it adds
``--events`` reading events over the 90 days before the data set's "now" (Zipf post popularity
with a decay after publishing, lognormal activity per person, kinds mixed like a feed: impressions,
opens, reads, a few acknowledgements, digest clicks and sessions), bulk-loaded (executemany on
SQLite, COPY on PostgreSQL, secondary indexes rebuilt after), then:

1. **rebuild**: the rollups recounted from the events (``rollups.rebuild``), timed for information;
2. **ingest**: ``POST /api/v1/events`` in batches of 50 for one person, rounds with the rollup
   queue on (plus the fold job's time for what they queued) alternating with rounds with it off;
   the loss is ``1 - off rate / (on rate incl. folding)``;
3. **dashboards**: each dashboard query from the rollups and as a raw ``GROUP BY`` over the event
   table in the same run (reading hours in readers' local time over 7 and 28 days, in UTC over 90
   days; a post's reach and readers by department for the most read and some random posts; read
   rate by department per week over 30 days), p95 of each, and the answers compared (before the
   minimum-group rule, which is applied to both alike).

Run: ``python -m bench.analytics_bench [--events 10000000] [--db sqlite|pg|both] [--size M]``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import json
import re
import secrets
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import distinct, func, select, text
from sqlmodel import Session

from intranet import create_app
from intranet.analytics import queries, rollups
from intranet.db import make_engine
from intranet.models import EngagementEvent, Employee, Post

from bench import datagen, goals

SOURCE = "analytics"
RATIO_GOAL, P95_GOAL_MS, LOSS_GOAL = 10.0, 300.0, 0.20
KINDS = np.array(["impression", "open", "read", "acknowledge", "digest_click", "session"])
KIND_P = [0.45, 0.25, 0.2, 0.01, 0.04, 0.05]
CHUNK = 250_000
EVENT_COLUMNS = ("employee_pk", "client_id", "kind", "post_id", "occurred_at", "received_at", "local_hour",
                 "local_weekday", "source")
SECONDARY = {"ix_intranet_event_employee_occurred": "(employee_pk, occurred_at)",
             "ix_intranet_event_post_id": "(post_id)"}
CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def _say(message: str) -> None:
    print(f"  [analytics] {message}", file=sys.stderr, flush=True)


def _p95(samples: list[float]) -> float:
    return float(np.percentile(np.array(samples) * 1000, 95))


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


def event_chunks(engine: Any, n_events: int, seed: int, now: dt.datetime) -> Iterator[list[tuple]]:
    """Rows in :data:`EVENT_COLUMNS` order, employee by employee (the unique key grows in order)."""
    with Session(engine) as session:
        people = session.execute(select(Employee.id, Employee.timezone).order_by(Employee.id)).all()
        posts = session.execute(select(Post.id, Post.published_at).where(
            Post.published_at.is_not(None), Post.published_at <= now).order_by(Post.id)).all()
    rng = np.random.default_rng(seed + 7)
    pks = np.array([p for p, _ in people])
    offsets = {}
    for _, zone in people:
        if zone not in offsets:
            offsets[zone] = int(now.astimezone(ZoneInfo(zone or "UTC")).utcoffset().total_seconds())
    offset = np.array([offsets[z] for _, z in people])
    activity = rng.lognormal(0, 1, len(people))
    counts = rng.multinomial(n_events, activity / activity.sum())
    post_ids = np.array([p for p, _ in posts])
    published = np.array([int(at.timestamp()) for _, at in posts])
    popularity = 1 / np.arange(1, len(posts) + 1) ** 0.9
    popularity = rng.permutation(popularity / popularity.sum())
    end = int(now.timestamp())
    received = now
    made = 0
    rows: list[tuple] = []
    for i, n in enumerate(counts):
        if not n:
            continue
        which = rng.choice(len(posts), size=n, p=popularity)
        delay = rng.exponential(2 * 86400, n).astype(np.int64)
        at = np.minimum(published[which] + delay, end - 1)
        kinds = rng.choice(len(KINDS), size=n, p=KIND_P)
        local = at + offset[i]
        hours = (local // 3600) % 24
        weekdays = ((local // 86400) + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
        pk = int(pks[i])
        for j in range(n):
            kind = str(KINDS[kinds[j]])
            rows.append((pk, f"g{made}", kind, None if kind == "session" else int(post_ids[which[j]]),
                         dt.datetime.fromtimestamp(int(at[j]), dt.timezone.utc), received, int(hours[j]),
                         int(weekdays[j]), "import"))
            made += 1
        if len(rows) >= CHUNK:
            yield rows
            rows = []
    if rows:
        yield rows


def load_events(engine: Any, n_events: int, seed: int, now: dt.datetime) -> float:
    """Bulk-load the events; seconds taken (secondary indexes dropped during the load, rebuilt after)."""
    started = time.perf_counter()
    dialect = engine.dialect.name
    with engine.begin() as conn:
        for name in SECONDARY:
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        loaded = 0
        for rows in event_chunks(engine, n_events, seed, now):
            if dialect == "postgresql":
                with cursor.copy(f"COPY intranet_event ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(
                    f"INSERT INTO intranet_event ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * 9)})",
                    [(*r[:4], r[4].strftime("%Y-%m-%d %H:%M:%S.%f"), r[5].strftime("%Y-%m-%d %H:%M:%S.%f"), *r[6:])
                     for r in rows])
            raw.commit()
            loaded += len(rows)
            _say(f"{loaded:,} events loaded")
    finally:
        raw.close()
    with engine.begin() as conn:
        for name, columns in SECONDARY.items():
            conn.execute(text(f"CREATE INDEX {name} ON intranet_event {columns}"))
    if dialect == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return time.perf_counter() - started


# --------------------------------------------------------------------------------------------
# Ingest: the rollup queue on and off, and the fold job's time
# --------------------------------------------------------------------------------------------


def ingest_cost(engine: Any, now: dt.datetime, rounds: int, per_round: int, run: str) -> dict[str, Any]:
    """Ingest rounds; their event ids start with *run* (a rerun on the same database, ``--database-url``,
    would otherwise post the earlier run's ids again and time duplicates, which are not stored)."""
    # One person posts every batch: the per-person event rate limit would answer 429 (this times throughput).
    app = create_app({"INTRANET_ENV": "development", "INTRANET_DEV_LOGIN": True, "TESTING": True,
                      "INTRANET_SECRET_KEY": secrets.token_hex(32), "INTRANET_EVENTS_MAX_BATCH": 1000,
                      "INTRANET_RATELIMIT_EVENTS": "1000000/minute"},
                     engine=engine, clock=lambda: now)
    with Session(engine) as session:
        person = session.execute(select(Employee).where(Employee.active.is_(True), Employee.email.is_not(None))
                                 .order_by(Employee.id)).scalars().first()
        live = [p for (p,) in session.execute(select(Post.id).where(
            Post.all_staff.is_(True), Post.status == "published", Post.published_at <= now,
            (Post.expires_at.is_(None)) | (Post.expires_at > now)).limit(50))]
    client = app.test_client()
    token = CSRF.search(client.get("/auth/dev-login").get_data(as_text=True)).group(1)
    client.post("/auth/dev-login", data={"email": person.email, "csrf_token": token})
    token = CSRF.search(client.get("/").get_data(as_text=True)).group(1)
    headers = {"X-CSRFToken": token, "User-Agent": "Mozilla/5.0 Chrome/126"}
    kinds = ("impression", "impression", "impression", "open", "read", "session")

    def post_round(prefix: str) -> tuple[float, int]:
        bodies = []
        for first in range(0, per_round, 50):
            batch = []
            for i in range(first, first + 50):
                kind = kinds[i % len(kinds)]
                batch.append({"id": f"{prefix}{i}", "kind": kind,
                              "post_id": None if kind == "session" else live[i % len(live)],
                              "occurred_at": (now - dt.timedelta(seconds=i % 3000)).isoformat()})
            bodies.append(json.dumps({"events": batch}))
        accepted = 0
        started = time.perf_counter()
        for body in bodies:
            r = client.post("/api/v1/events", data=body, content_type="application/json", headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"POST /api/v1/events answered {r.status_code}: {r.get_data(as_text=True)[:200]}")
            accepted += r.get_json()["accepted"]
        return time.perf_counter() - started, accepted

    real_queue = rollups.queue
    post_round(f"{run}warm-")
    with Session(engine) as session:
        rollups.fold_pending(session)
        session.commit()
    on = off = fold = 0.0
    folded = accepted_on = 0
    try:
        for r in range(2 * rounds):
            if r % 2 == 0:
                rollups.queue = real_queue
                seconds, accepted = post_round(f"{run}on{r}-")
                on += seconds
                accepted_on += accepted
                started = time.perf_counter()
                with Session(engine) as session:
                    folded += rollups.fold_pending(session)
                    session.commit()
                fold += time.perf_counter() - started
            else:
                rollups.queue = lambda *_a, **_k: None  # type: ignore[assignment]
                seconds, _ = post_round(f"{run}off{r}-")
                off += seconds
                # What those rounds stored unqueued is folded in a catch-up below (not timed).
    finally:
        rollups.queue = real_queue
    n = rounds * per_round
    return {"on_per_s": n / on, "off_per_s": n / off, "with_fold_per_s": n / (on + fold),
            "fold_per_s": folded / fold if fold else 0.0, "loss": 1 - (n / (on + fold)) / (n / off),
            "queue_loss": 1 - (n / on) / (n / off), "folded": folded, "accepted": accepted_on}


# --------------------------------------------------------------------------------------------
# Dashboards: rollups against the raw GROUP BY
# --------------------------------------------------------------------------------------------


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[Any, list[float]]:
    samples, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - started)
    return result, samples


def _bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    return (dt.datetime.combine(start, dt.time(), dt.timezone.utc),
            dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.timezone.utc))


def raw_hours(session: Session, zone: str, start: dt.date, end: dt.date) -> dict[tuple[int, int], tuple[int, int]]:
    e = EngagementEvent
    lo, hi = _bounds(start, end)
    if zone == "local":
        weekday, hour = e.local_weekday, e.local_hour
    else:  # UTC, as the rollups' rebuild computes it
        part = rollups.sql_parts(session.get_bind().dialect.name)
        weekday = text(part["weekday"].format(c="occurred_at"))
        hour = text(part["hour"].format(c="occurred_at"))
    rows = session.execute(select(weekday, hour, func.count(), func.count(distinct(e.employee_pk)))
                           .where(e.kind.in_(("open", "read")), e.post_id.is_not(None), e.occurred_at >= lo,
                                  e.occurred_at < hi).group_by(weekday, hour)).all()
    return {(int(w), int(h)): (int(n), int(r)) for w, h, n, r in rows}


def rollup_hours(session: Session, zone: str, start: dt.date, end: dt.date) -> dict[tuple[int, int], tuple[int, int]]:
    answer = queries.reading_hours(session, zone=zone, start=start, end=end, k=1)
    return {(c.weekday, c.hour): (c.reads, c.readers) for c in answer.cells}


def raw_post(session: Session, post: Post) -> dict[str | None, tuple[int, int]]:
    """The same figures from the event table (with the same audience headcount, a directory query)."""
    queries._audience_breakdown(session, post)
    post_id = post.id
    e, p = EngagementEvent, Employee
    reached = func.count(distinct(e.employee_pk))
    rows = session.execute(
        select(p.department, reached,
               func.count(distinct(text("CASE WHEN intranet_event.kind IN ('open', 'read') "
                                        "THEN intranet_event.employee_pk END"))))
        .join(p, p.id == e.employee_pk)
        .where(e.post_id == post_id, e.kind.in_(("impression", "open", "read"))).group_by(p.department)).all()
    return {d: (int(a), int(b)) for d, a, b in rows}


def rollup_post(session: Session, post: Post) -> dict[str | None, tuple[int, int]]:
    answer = queries.post_analytics(session, post, k=1)
    return {r.value: (r.reached, r.read) for r in answer.by["department"] if r.reached}


def raw_rates(session: Session, start: dt.date, end: dt.date,
              dimension: str = "department") -> dict[tuple[dt.date, str | int | None], tuple[int, int]]:
    lo, hi = _bounds(start, end)
    e, p, emp = EngagementEvent, Post, Employee
    group = getattr(emp, dimension)
    read = func.count(distinct(text("CASE WHEN intranet_event.kind IN ('open', 'read') "
                                    "THEN intranet_event.employee_pk END")))
    rows = session.execute(
        select(p.published_at, group, func.count(distinct(e.employee_pk)), read)
        .join(p, p.id == e.post_id).join(emp, emp.id == e.employee_pk)
        .where(p.published_at >= lo, p.published_at < hi, e.kind.in_(("impression", "open", "read")))
        .group_by(e.post_id, p.published_at, group)).all()
    sums: dict[tuple[dt.date, str | int | None], list[int]] = defaultdict(lambda: [0, 0])
    for published, value, reached, n_read in rows:
        day = published.astimezone(dt.timezone.utc).date()
        key = (day - dt.timedelta(days=day.weekday()), value)
        sums[key][0] += int(reached)
        sums[key][1] += int(n_read)
    return {k: (a, b) for k, (a, b) in sums.items()}


def rollup_rates(session: Session, start: dt.date, end: dt.date,
                 dimension: str = "department") -> dict[tuple[dt.date, str | int | None], tuple[int, int]]:
    series = queries.read_rate_by_group(session, dimension=dimension, filters=queries.Filters(start, end), k=1)
    return {(r.period, r.value): (r.reached, r.read) for r in series.rows if r.reached}


def dashboards(engine: Any, now: dt.datetime, repeat: int, raw_repeat: int, n_posts: int, seed: int) -> list[dict]:
    today = now.date()
    found = []
    with Session(engine) as session:
        cases: list[tuple[str, Callable[[], Any], Callable[[], Any], int, int]] = []
        for label, zone, days in (("reading hours, local, 7 days", "local", 7),
                                  ("reading hours, local, 28 days", "local", 28),
                                  ("reading hours, UTC, 90 days", "UTC", 90)):
            start = today - dt.timedelta(days=days - 1)
            cases.append((label, lambda z=zone, s=start: rollup_hours(session, z, s, today),
                          lambda z=zone, s=start: raw_hours(session, z, s, today), repeat, raw_repeat))
        start = today - dt.timedelta(days=29)
        for dimension in ("department", "region", "level"):
            cases.append((f"read rate by {dimension} per week, 30 days",
                          lambda d=dimension: rollup_rates(session, start, today, d),
                          lambda d=dimension: raw_rates(session, start, today, d), repeat, raw_repeat))
        for label, make, make_raw, rep, raw_rep in cases:
            _say(f"{label} ...")
            mine, t_mine = _timed(make, rep)
            raw, t_raw = _timed(make_raw, raw_rep)
            found.append({"case": label, "p95_ms": _p95(t_mine), "raw_p95_ms": _p95(t_raw), "same": mine == raw,
                          "detail": "" if mine == raw else _difference(mine, raw)})
        # A post's figures: the most read posts and a random sample.
        top = [p for (p,) in session.execute(
            select(EngagementEvent.post_id).where(EngagementEvent.post_id.is_not(None))
            .group_by(EngagementEvent.post_id).order_by(func.count().desc()).limit(5))]
        rng = np.random.default_rng(seed)
        ids = [p for (p,) in session.execute(select(Post.id).where(Post.published_at.is_not(None)))]
        sample = top + [int(i) for i in rng.choice(ids, size=min(n_posts, len(ids)), replace=False)]
        t_mine, t_raw, same, bad = [], [], True, ""
        _say(f"post analytics for {len(sample)} posts ...")
        for post_id in sample:
            post = session.get(Post, post_id)
            mine, t = _timed(lambda: rollup_post(session, post), 1)
            t_mine += t
            raw, t = _timed(lambda: raw_post(session, post), 1)
            t_raw += t
            if mine != raw:
                same, bad = False, f"post {post_id}: " + _difference(mine, raw)
        found.append({"case": f"post reach and readers by department ({len(sample)} posts, 5 most read)",
                      "p95_ms": _p95(t_mine), "raw_p95_ms": _p95(t_raw), "same": same, "detail": bad})
    return found


def _difference(mine: dict, raw: dict) -> str:
    keys = sorted(set(mine) ^ set(raw), key=repr)[:3]
    changed = sorted((k for k in set(mine) & set(raw) if mine[k] != raw[k]), key=repr)[:3]
    return f"only one side: {keys}; differing: {[(k, mine[k], raw[k]) for k in changed]}"


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def run(ds: Any, args: argparse.Namespace, *, loaded: bool = False) -> dict[str, Any]:
    """Load, rebuild, ingest rounds, dashboards; *loaded*: the events and rollups are there already."""
    now = ds.now
    load_s = rebuild_s = 0.0
    if not loaded:
        _say(f"{ds.dialect}: loading {args.events:,} events")
        load_s = load_events(ds.engine, args.events, args.seed, now)
        _say(f"{ds.dialect}: loaded in {load_s:.0f} s; rebuilding rollups")
        started = time.perf_counter()
        with Session(ds.engine) as session:
            rollups.rebuild(session)
            session.commit()
        rebuild_s = time.perf_counter() - started
    _say(f"{ds.dialect}: rebuilt in {rebuild_s:.0f} s; ingest rounds")
    run_prefix = f"r{secrets.token_hex(3)}-"
    ingest = ingest_cost(ds.engine, now, args.rounds, args.per_round, run_prefix)
    # Rounds ingested with the queue off are queued and folded now, so the dashboards see every stored event.
    with Session(ds.engine) as session:
        ids = [i for (i,) in session.execute(select(EngagementEvent.id).where(
            EngagementEvent.client_id.like(f"{run_prefix}off%")))]
        rollups.queue(session, ids)
        rollups.fold_pending(session)
        session.commit()
    cases = dashboards(ds.engine, now, args.repeat, args.raw_repeat, args.posts, args.seed)
    return {"load_s": load_s, "rebuild_s": rebuild_s, "ingest": ingest, "cases": cases}


def record(db: str, r: dict[str, Any]) -> None:
    ingest = r["ingest"]
    goals.goal(SOURCE, "ingest lost to rollups (queue + fold job) vs none", measured=f"{ingest['loss']:.1%}",
               target=f"<= {LOSS_GOAL:.0%}", met=ingest["loss"] <= LOSS_GOAL, db=db)
    goals.check(SOURCE, "every queued live event folded once", passed=ingest["folded"] == ingest["accepted"],
                detail=f"{ingest['folded']:,} folded of {ingest['accepted']:,} stored", db=db)
    for case in r["cases"]:
        ratio = case["raw_p95_ms"] / case["p95_ms"] if case["p95_ms"] else float("inf")
        goals.goal(SOURCE, f"{case['case']}: raw p95 / rollup p95", measured=f"{ratio:.1f}x",
                   target=f">= {RATIO_GOAL:.0f}x", met=ratio >= RATIO_GOAL, db=db)
        goals.goal(SOURCE, f"{case['case']}: rollup p95", measured=f"{case['p95_ms']:.1f} ms",
                   target=f"<= {P95_GOAL_MS:.0f} ms", met=case["p95_ms"] <= P95_GOAL_MS, db=db)
        goals.check(SOURCE, f"{case['case']}: same answer as raw GROUP BY", passed=case["same"],
                    detail=case["detail"] or "identical", db=db)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="  [%(name)s] %(message)s")
    logging.getLogger("intranet.analytics.rollups").setLevel(logging.INFO)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--size", choices=("S", "M"), default="M")
    parser.add_argument("--db", choices=("sqlite", "pg", "both"), default="both")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=20, help="timed calls of each rollup answer")
    parser.add_argument("--raw-repeat", type=int, default=3, help="timed calls of each raw GROUP BY")
    parser.add_argument("--posts", type=int, default=20, help="random posts besides the 5 most read")
    parser.add_argument("--rounds", type=int, default=4, help="ingest rounds with the queue on (and as many off)")
    parser.add_argument("--per-round", type=int, default=5_000)
    parser.add_argument("--database-url", help="go on with a database an earlier run loaded and rebuilt (kept from "
                                               "its temporary copy): ingest rounds and dashboards only")
    args = parser.parse_args(argv)
    results: dict[str, dict[str, Any]] = {}
    if args.database_url:
        engine = make_engine(args.database_url)
        ds = datagen.Dataset(engine=engine, dialect=engine.dialect.name, size=args.size, seed=args.seed,
                             n_employees=datagen.SIZES[args.size][0], n_posts=datagen.SIZES[args.size][1],
                             now=datagen.NOW, location=args.database_url, generated_s=None)
        try:
            results[ds.dialect] = run(ds, args, loaded=True)
        finally:
            engine.dispose()

    def on_dataset(ds: Any) -> None:
        with datagen.writable(ds):  # the events go into a copy of the cached SQLite organisation
            results[ds.dialect] = run(ds, args)

    if not args.database_url:
        datagen.run_on_datasets(args.db, args.size, args.seed, on_dataset,
                                lambda reason: _say(f"PostgreSQL skipped: {reason}"))
    for db, r in results.items():
        ing = r["ingest"]
        print(f"\n{db}: {args.events:,} events loaded in {r['load_s']:.0f} s; rollups rebuilt in {r['rebuild_s']:.0f} s")
        print(f"  ingest: {ing['off_per_s']:,.0f} ev/s without rollups, {ing['on_per_s']:,.0f} with the queue, "
              f"{ing['with_fold_per_s']:,.0f} counting the fold job ({ing['fold_per_s']:,.0f} ev/s folded); "
              f"loss {ing['loss']:.1%} (queue alone {ing['queue_loss']:.1%})")
        print(f"  {'dashboard query':<62} {'rollup p95':>11} {'raw p95':>10} {'ratio':>8}  same")
        for c in r["cases"]:
            print(f"  {c['case']:<62} {c['p95_ms']:>9.1f}ms {c['raw_p95_ms']:>8.0f}ms "
                  f"{c['raw_p95_ms'] / max(c['p95_ms'], 1e-9):>7.1f}x  {'yes' if c['same'] else 'NO ' + c['detail']}")
    first = goals.mark()
    for db, r in results.items():
        record(db, r)
    print("\n" + goals.table(goals.RECORDED[first:]))
    return goals.exit_status(goals.RECORDED[first:])


if __name__ == "__main__":
    sys.exit(main())
