"""Directory sync benchmark (PERFORMANCE.md G5): ``python -m bench.directory_bench [--users N] [--database-url URL] [--profile PREFIX]``.

Against the local HTTPS fake of Entra ID + Graph (pages of 200, connections kept alive as Graph
keeps them), in one run:

* baseline: download and JSON-parse every page of a full delta round (the same client and pages),
  the better of two passes;
* full sync of all users into an empty database, as a ratio to the baseline (goal <= 3x);
* zero users lost or duplicated (checked against the fake's directory);
* three 1 % incremental rounds, the median reported (goal < 0.5 s);
* a 1 % round with injected 429s (goal: extra time <= sum of Retry-After + 10 %; on SQLite the
  time spent waiting plus any extra CPU the retries cost).

Every figure is taken in wall-clock and in CPU seconds of this process (the fake server's thread
included). On SQLite all the work is in this process, so the full-sync ratio and the 1 % round
are judged in CPU seconds: with up to eight jobs on the two cores, wall time measured the
neighbours (one run: 51 s wall for 5.9 s CPU of download). On PostgreSQL the database's CPU is
elsewhere, so they are judged in wall-clock time.
"""
from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import logging
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from sqlalchemy import func, text
from sqlmodel import Session, select

from intranet import migrate
from intranet.db import make_engine, session_factory
from intranet.directory import graph
from intranet.directory.graph import GraphClient, GraphSettings
from intranet.directory.policy import load as load_policy
from intranet.directory.runs import DirectorySync
from intranet.models import Employee, EntraUser
from intranet.settings import Settings
from tests.fakes.entra_graph import FakeEntraServer

from bench import goals

DELTA_ROUNDS = 3


def _engine(url: str | None) -> Any:
    if url is None:
        path = os.path.join(tempfile.mkdtemp(prefix="beacon-bench-"), "bench.db")
        engine = make_engine(f"sqlite:///{path}")
    else:
        schema = f"bench_{os.getpid()}"
        admin = make_engine(url)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    migrate.upgrade(engine)
    return engine


def _profiled(prefix: str | None, name: str, run: Any) -> Any:
    if prefix is None:
        return run()
    profile = cProfile.Profile()
    try:
        return profile.runcall(run)
    finally:
        profile.dump_stats(f"{prefix}-{name}.prof")
        print(f"profile: {prefix}-{name}.prof (python -m pstats)", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--throttles", type=int, default=3)
    parser.add_argument("--profile", metavar="PREFIX", default=None,
                        help="cProfile the full sync and the 1 %% round into PREFIX-full.prof and PREFIX-delta.prof "
                             "(this thread only: the fake server's thread is not profiled); the figures then "
                             "include the profiler's overhead")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    now = dt.datetime.now(dt.timezone.utc)
    failures: list[str] = []

    with FakeEntraServer() as server:
        os.environ["REQUESTS_CA_BUNDLE"] = os.environ["CURL_CA_BUNDLE"] = server.ca_bundle_path
        graph.clear_app_cache()
        started = time.perf_counter()
        ids = server.fake.populate(args.users, seed=1)
        print(f"fake directory: {len(ids)} users in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        config = {**server.config(), "INTRANET_GRAPH_PAGE_SIZE": args.page_size, "INTRANET_ORG_TIMEZONE": "UTC"}
        settings = GraphSettings.from_config(config)
        slept: list[float] = []  # wall seconds actually spent in each backoff wait

        def sleep(seconds: float) -> None:
            started = time.perf_counter()
            time.sleep(seconds)
            slept.append(time.perf_counter() - started)

        client = GraphClient(settings, sleep=sleep)
        engine = _engine(args.database_url)
        sync = DirectorySync(session_factory(engine), Settings.from_config(config), clock=lambda: now,
                             policy=load_policy(), graph_client=client)

        # Warm up TLS, discovery and the token (neither side should pay for it).
        next(iter(client.iter_delta(None)))

        # CPU seconds of this process (the fake server's thread included) as well as wall time: on the
        # shared 2-core box other work stretches wall times unevenly; CPU time shows the work done.
        baseline = baseline_cpu = float("inf")
        for _ in range(2):  # the better of two passes: the floor the sync is compared with
            started, cpu = time.perf_counter(), time.process_time()
            users = pages = 0
            for page in client.iter_delta(None):
                users += len(page.users)
                pages += 1
            baseline = min(baseline, time.perf_counter() - started)
            baseline_cpu = min(baseline_cpu, time.process_time() - cpu)

        started, cpu = time.perf_counter(), time.process_time()
        outcome = _profiled(args.profile, "full", lambda: sync.run_graph(full=True, trigger="bench"))
        full, full_cpu = time.perf_counter() - started, time.process_time() - cpu
        if outcome.status != "succeeded":
            failures.append(f"full sync {outcome.status}: {outcome.message}")
        ratio, ratio_cpu = full / baseline, full_cpu / baseline_cpu

        with Session(engine) as db:
            count = db.exec(select(func.count()).select_from(Employee)).one()
            distinct = db.exec(select(func.count(func.distinct(Employee.entra_object_id)))).one()
            stored = set(db.exec(select(Employee.entra_object_id)))
        lost = set(ids) - stored
        duplicated = count - distinct
        if lost or duplicated or count != len(ids):
            failures.append(f"{len(lost)} users lost, {duplicated} duplicated, {count} stored of {len(ids)}")

        # Three 1 % incremental rounds (a different 1 % each time); the median is reported.
        step = max(1, len(ids) // max(1, len(ids) // 100))
        deltas, deltas_cpu = [], []
        for round_ in range(DELTA_ROUNDS):
            changed = ids[round_::step][: max(1, len(ids) // 100)]
            for i, oid in enumerate(changed):
                server.fake.update_user(oid, department="Marketing" if (i + round_) % 2 else "Finance",
                                        jobTitle=f"Title {round_}.{i}")
            started, cpu = time.perf_counter(), time.process_time()
            outcome = _profiled(args.profile if round_ == 0 else None, "delta",
                                lambda: sync.run_graph(trigger="bench"))
            deltas.append(time.perf_counter() - started)
            deltas_cpu.append(time.process_time() - cpu)
            if outcome.status != "succeeded":
                failures.append(f"delta round {round_ + 1} {outcome.status}: {outcome.message}")
        delta, delta_cpu = statistics.median(deltas), statistics.median(deltas_cpu)

        # The same size of round again, with injected 429 + Retry-After.
        for i, oid in enumerate(changed):
            server.fake.update_user(oid, jobTitle=f"Retitled {i}")
        server.fake.inject(429, times=args.throttles, retry_after=args.retry_after, on_path="/users/delta")
        slept.clear()
        started, cpu = time.perf_counter(), time.process_time()
        outcome = sync.run_graph(trigger="bench")
        throttled, throttled_cpu = time.perf_counter() - started, time.process_time() - cpu
        if outcome.status != "succeeded":
            failures.append(f"throttled round {outcome.status}: {outcome.message}")
        waits = args.throttles * args.retry_after
        extra_wall = throttled - delta
        # Judged as the time spent waiting plus any extra work (CPU) the retries caused; the wall
        # difference between two rounds measured the other jobs on the box as much as the waits.
        extra = extra_wall if args.database_url else sum(slept) + max(0.0, throttled_cpu - delta_cpu)
        with Session(engine) as db:
            updated = db.exec(select(func.count()).select_from(Employee)
                              .where(Employee.job_title.like("Retitled %"))).one()
            entra_rows = db.exec(select(func.count()).select_from(EntraUser)).one()
        if updated != len(changed):
            failures.append(f"throttled round applied {updated} of {len(changed)} changes")

    engine.dispose()
    if args.database_url:  # the schema holds 100,000 employees: do not leave it behind
        admin = make_engine(args.database_url)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "bench_{os.getpid()}" CASCADE'))
        admin.dispose()
    backend = "postgresql" if args.database_url else "sqlite"
    # SQLite: every bit of the work is this process's CPU time; PostgreSQL's is not.
    judged = "wall" if args.database_url else "CPU"
    judged_ratio, judged_delta = (ratio, delta) if args.database_url else (ratio_cpu, delta_cpu)
    print(f"Directory sync benchmark ({backend}, {len(ids)} users, pages of {args.page_size}, {pages} pages)")
    print(f"  download + parse (baseline) : {baseline:7.2f} s wall, {baseline_cpu:.2f} s CPU (better of 2)")
    print(f"  full sync                   : {full:7.2f} s wall = {ratio:.2f}x; {full_cpu:.2f} s CPU = "
          f"{ratio_cpu:.2f}x baseline (goal <= 3x, judged in {judged} time)")
    print(f"  users stored / lost / dupes : {count} / {len(lost)} / {duplicated}  (entra records {entra_rows})")
    print(f"  1 % delta round ({len(changed)} users)  : median {delta:.3f} s wall, {delta_cpu:.3f} s CPU of "
          f"{DELTA_ROUNDS} rounds (wall {', '.join(f'{d:.2f}' for d in deltas)}; goal < 0.5 s, {judged} time)")
    print(f"  same round with {args.throttles} x 429  : {throttled:7.3f} s wall ({extra_wall:+.3f} s), "
          f"{len(slept)} waits of {sum(slept):.3f} s in all, CPU {throttled_cpu:.3f} s; extra {extra:.3f} s for "
          f"{waits:.1f} s of Retry-After (goal <= {waits * 1.1:.2f} s)")
    for failure in failures:
        print(f"  FAILED: {failure}")
    first = goals.mark()
    goals.check("directory", "full, delta and throttled rounds exact (0 lost, 0 duplicated)", passed=not failures,
                detail="; ".join(failures) or f"{count} stored, 0 lost, 0 duplicated", db=backend)
    goals.goal("directory", f"full sync / (download + parse), {judged} time",
               measured=f"{judged_ratio:.2f}x (wall {ratio:.2f}x, CPU {ratio_cpu:.2f}x)", target="<= 3x",
               met=judged_ratio <= 3, db=backend)
    goals.goal("directory", f"1 % delta round, median of {DELTA_ROUNDS}, {judged} time",
               measured=f"{judged_delta:.3f} s (wall {delta:.3f} s, CPU {delta_cpu:.3f} s)", target="< 0.5 s",
               met=judged_delta < 0.5, db=backend)
    goals.goal("directory", f"extra time with {args.throttles} x 429"
               + ("" if args.database_url else " (time waited + extra CPU)"), measured=f"{extra:.3f} s",
               target=f"<= {waits * 1.1:.2f} s (Retry-After + 10 %)", met=extra <= waits * 1.1, db=backend)
    return goals.exit_status(goals.RECORDED[first:])


if __name__ == "__main__":
    sys.exit(main())
