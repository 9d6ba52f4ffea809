"""The organisation dashboard page in-process: ``GET /analytics`` as a comms manager would open it,
and how much of it is building the chart figures (goal: the page p95 <= 500 ms, figures <= 10 % of it).

On the generated organisation (:mod:`bench.datagen`, size M: 100k people, 10k posts and the
1.6M engagement events the generator writes), with the rollups rebuilt from those events, the
page is requested ``--repeat`` times through Flask's test client (no network, no browser: the
server's own cost) after one warm-up request. Figure time is the time spent inside the
:mod:`intranet.analytics.charts` builders during those requests.

Run: ``python -m bench.dashboard_page [--db sqlite|pg|both] [--size M] [--repeat 10]``.
"""
from __future__ import annotations

import argparse
import cProfile
import functools
import pstats
import re
import secrets
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlmodel import Session

from intranet import create_app
from intranet.analytics import charts, rollups
from intranet.models import Employee

from bench import datagen, goals

SOURCE = "dashboard page"
PAGE_GOAL_MS, FIGURE_SHARE_GOAL = 500.0, 0.10
CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
#: The chart builders the organisation page calls (their time is the figure-building time).
BUILDERS = ("reading_hours", "rate_over_time", "topics", "digests", "acknowledgements", "timing_lift", "coverage")


def _say(message: str) -> None:
    print(f"  [dashboard page] {message}", file=sys.stderr, flush=True)


def measure(engine: Any, now: Any, repeat: int, profile: bool = False) -> dict[str, Any]:
    """Time ``GET /analytics`` for an admin; the page's and the figures' times in seconds."""
    app = create_app({"INTRANET_ENV": "development", "INTRANET_DEV_LOGIN": True, "TESTING": True,
                      "INTRANET_SECRET_KEY": secrets.token_hex(32)}, engine=engine, clock=lambda: now)
    with Session(engine) as session:
        admin = session.execute(select(Employee.email).where(Employee.is_admin.is_(True), Employee.active.is_(True),
                                                             Employee.email.is_not(None)).limit(1)).scalar_one()
    client = app.test_client()
    token = CSRF.search(client.get("/auth/dev-login").get_data(as_text=True)).group(1)
    client.post("/auth/dev-login", data={"email": admin, "csrf_token": token})
    spent = [0.0]
    originals: dict[str, Callable[..., Any]] = {name: getattr(charts, name) for name in BUILDERS}

    def timed(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - started
        return wrapper

    pages, figures, size = [], [], 0
    try:
        for name, fn in originals.items():
            setattr(charts, name, timed(fn))
        for i in range(repeat + 1):
            spent[0] = 0.0
            started = time.perf_counter()
            response = client.get("/analytics")
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise RuntimeError(f"GET /analytics answered {response.status_code}")
            size = len(response.get_data())
            if i:  # the first request warms caches (templates, compiled statements)
                pages.append(elapsed)
                figures.append(spent[0])
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            client.get("/analytics")
            profiler.disable()
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(35)
    finally:
        for name, fn in originals.items():
            setattr(charts, name, fn)
    return {"page_p50_ms": float(np.percentile(pages, 50) * 1000), "page_p95_ms": float(np.percentile(pages, 95) * 1000),
            "figures_ms": float(np.mean(figures) * 1000), "figure_share": float(np.sum(figures) / np.sum(pages)),
            "bytes": size}


def run(ds: Any, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    with Session(ds.engine) as session:
        rollups.rebuild(session)
        session.commit()
    _say(f"{ds.dialect}: rollups rebuilt in {time.perf_counter() - started:.0f} s; timing the page")
    return measure(ds.engine, ds.now, args.repeat, args.profile)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("S", "M"), default="M")
    parser.add_argument("--db", choices=("sqlite", "pg", "both"), default="both")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="print a profile of one more request")
    args = parser.parse_args(argv)
    results: dict[str, dict[str, Any]] = {}

    def on_dataset(ds: Any) -> None:
        with datagen.writable(ds):  # the events go into a copy of the cached SQLite organisation
            results[ds.dialect] = run(ds, args)

    datagen.run_on_datasets(args.db, args.size, args.seed, on_dataset,
                            lambda reason: _say(f"PostgreSQL skipped: {reason}"))
    for db, r in results.items():
        print(f"{db}: GET /analytics p50 {r['page_p50_ms']:.0f} ms, p95 {r['page_p95_ms']:.0f} ms; figures "
              f"{r['figures_ms']:.1f} ms per page ({r['figure_share']:.1%}); {r['bytes']:,} bytes")
    first = goals.mark()
    for db, r in results.items():
        goals.goal(SOURCE, "organisation page p95 (in-process, 100k people)", measured=f"{r['page_p95_ms']:.0f} ms",
                   target=f"<= {PAGE_GOAL_MS:.0f} ms", met=r["page_p95_ms"] <= PAGE_GOAL_MS, db=db)
        goals.goal(SOURCE, "share of the page spent building figures", measured=f"{r['figure_share']:.1%}",
                   target=f"<= {FIGURE_SHARE_GOAL:.0%}", met=r["figure_share"] <= FIGURE_SHARE_GOAL, db=db)
    print("\n" + goals.table(goals.RECORDED[first:]))
    return goals.exit_status(goals.RECORDED[first:])


if __name__ == "__main__":
    sys.exit(main())
