"""Beacon's benchmarks: ``python -m bench [--only feed,audience,...] [--db sqlite|pg|both] [--size S|M]``.

Runs the platform cases (see :mod:`bench.platform_bench`) on each selected database, prints one
table, then runs the benchmark modules that exist (each exposes ``main()``); a failing module is
reported, never allowed to stop the run. Every case and module records its goals and correctness
checks in :data:`bench.goals.RECORDED`; the run ends with one summary over all of them and
writes the figures as JSON under ``bench-results/``.

Exit status: 1 when a correctness check failed or a module crashed, 3 when everything is correct
but a goal was missed, else 0 (see :mod:`bench.goals`).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib
import importlib.util
import inspect
import json
import platform
import sqlite3
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import goals

PLATFORM_CASES = ("feed", "audience")
# --only name -> module; each module exposes main().
MODULES = {
    "publish": "bench.publish_bench",
    "directory": "bench.directory_bench",
    "ingest": "bench.ingest_bench",
    "digest": "bench.digest_eval",
    "plan": "bench.plan_speed",
    "ranking": "bench.ranking_eval",
    "segments": "bench.segment_eval",
    "analytics": "bench.analytics_bench",
    "dashboard": "bench.dashboard_page",
    "compose": "bench.digest_compose",
    "webhooks": "bench.webhooks_bench",
    "delivery": "bench.delivery_scale",
}
# Modules whose main() takes --db sqlite|pg|both: an explicit `python -m bench --db ...` goes on to
# them (without it each keeps its own default, which for some is SQLite alone).
TAKES_DB = frozenset({"bench.analytics_bench", "bench.dashboard_page", "bench.delivery_scale", "bench.digest_compose",
                      "bench.ingest_bench", "bench.publish_bench", "bench.webhooks_bench"})
RESULTS = Path(__file__).resolve().parent.parent / "bench-results"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="",
                        help="comma-separated cases: " + ", ".join((*PLATFORM_CASES, *MODULES))
                        + " (module names like bench.digest_eval work too); default: all")
    parser.add_argument("--db", choices=("sqlite", "pg", "both"), default=None,
                        help="database(s) for the platform cases (default both; pg is skipped when unreachable), "
                        "passed on to the modules that take --db (else each keeps its own default)")
    parser.add_argument("--size", choices=("S", "M"), default="M", help="S = 10k employees, M = 100k")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per audience (median is kept)")
    parser.add_argument("--feed-repeat", type=int, default=3,
                        help="timed calls per feed employee (3 keeps the M run under ~3 minutes)")
    parser.add_argument("--feed-employees", type=int, default=200)
    parser.add_argument("--audiences", type=int, default=100)
    parser.add_argument("--profile", action="store_true",
                        help="add a cProfile of the product path to every case that misses its goal")
    parser.add_argument("--no-json", action="store_true", help="do not write bench-results/*.json")
    return parser.parse_args(argv)


def _selection(only: str) -> tuple[list[str], list[str]]:
    names = [n.strip() for n in only.split(",") if n.strip()]
    if not names:
        return list(PLATFORM_CASES), list(MODULES.values())
    cases, modules = [], []
    for name in names:
        if name in PLATFORM_CASES:
            cases.append(name)
        elif name in MODULES:
            modules.append(MODULES[name])
        elif name.startswith("bench.") or name in {m.split(".", 1)[1] for m in MODULES.values()}:
            modules.append(name if name.startswith("bench.") else f"bench.{name}")
        else:
            raise SystemExit(f"python -m bench: unknown case {name!r}; choose from "
                             + ", ".join((*PLATFORM_CASES, *MODULES)))
    return cases, modules


def _git_sha() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=RESULTS.parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.2f}{unit}" if value < 100 else f"{value:.0f}{unit}"


def print_table(results: list[Any]) -> None:
    header = ("case", "db", "size", "n", "p50 ms", "p95 ms", "raw p50", "raw p95", "ratio", "goal", "met", "correct")
    rows = [header]
    for r in results:
        rows.append((r.case, r.db, r.size, str(r.n_items), _fmt(r.p50_ms), _fmt(r.p95_ms), _fmt(r.baseline_p50_ms),
                     _fmt(r.baseline_p95_ms), _fmt(r.ratio, "x"), r.goal,
                     {True: "yes", False: "NO", None: "-"}[r.met], r.correctness))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print()
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
        if i == 0:
            print(line)
    for r in results:
        for note in r.notes:
            print(f"\n[{r.case} / {r.db}] {note}")


def run_platform(args: argparse.Namespace, cases: list[str]) -> tuple[list[Any], list[dict[str, Any]]]:
    from bench import datagen, platform_bench

    results: list[Any] = []
    datasets: list[dict[str, Any]] = []
    per_case = {"feed": {"n_employees": args.feed_employees, "repeat": args.feed_repeat},
                "audience": {"n_audiences": args.audiences, "repeat": args.repeat}}
    options = {"seed": args.seed}

    def run_on(ds: Any) -> None:
        datasets.append({"db": ds.dialect, "location": ds.location, "generated_s": ds.generated_s,
                         "server_version": ds.server_version})
        for case in cases:
            started = time.perf_counter()
            print(f"  [bench] {case} on {ds.dialect} ...", file=sys.stderr, flush=True)
            found = platform_bench.CASES[case](ds, **options, **per_case[case])
            results.extend(found)
            print(f"  [bench] {case} on {ds.dialect}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
            if args.profile and any(r.met is False for r in found):
                # A separate, short, profiled pass: profiling distorts the timings it would share.
                small = {k: min(v, 30) for k, v in per_case[case].items()}
                small["repeat"] = 1
                profiled = platform_bench.CASES[case](ds, **options, profile=True, **small)
                found[0].notes.extend(n for n in profiled[0].notes if n.startswith("cProfile"))

    def skipped(reason: str) -> None:
        print(f"  [bench] PostgreSQL skipped: unreachable at {datagen.PG_URL} ({reason})", file=sys.stderr)
        datasets.append({"db": "postgresql", "skipped": reason})

    datagen.run_on_datasets(args.db or "both", args.size, args.seed, run_on, skipped)
    return results, datasets


def record_platform(results: list[Any]) -> None:
    """Put each platform case's goal and correctness into the shared list."""
    for r in results:
        source = f"{r.case} ({r.size})"
        if r.met is not None:
            measured = f"{r.ratio:.2f}x raw" if "raw" in r.goal and r.ratio is not None else f"{r.p50_ms:.1f} ms"
            goals.goal(source, "p50", measured=measured, target=r.goal, met=r.met, db=r.db)
        goals.check(source, "same results as raw SQL", passed=r.correctness == "pass", detail=r.correctness,
                    db=r.db)


def run_module(name: str, argv: list[str] | None = None) -> dict[str, Any]:
    """Import *name* and call its ``main()`` with *argv* (none by default); report, never raise.

    A module that exits non-zero without a failed check or missed goal to show for it is
    reported as failed: its own exit status is the only sign of what went wrong.
    """
    if importlib.util.find_spec(name) is None:
        return {"module": name, "status": "absent"}
    print(f"\n===== {name} =====", flush=True)
    started = time.perf_counter()
    first = goals.mark()
    saved_argv = sys.argv
    try:
        module = importlib.import_module(name)
        main = getattr(module, "main")
        # Modules parse their own arguments: give them only those meant for them.
        sys.argv = [name, *(argv or [])]
        takes_argv = bool(inspect.signature(main).parameters)
        rc = main(list(argv or [])) if takes_argv else main()
        # Not `rc in (None, 0, True)`: 1 == True, so that test takes a module's exit 1 for success.
        status = "ok" if rc is None or (type(rc) is int and rc == 0) else f"exit {rc}"
    except SystemExit as exc:
        status = "ok" if exc.code in (None, 0) else f"exit {exc.code}"
    except Exception:  # noqa: BLE001 - a broken module must not stop the other benchmarks
        traceback.print_exc()
        status = "crashed"
    finally:
        sys.argv = saved_argv
    recorded = goals.RECORDED[first:]
    if status.startswith("exit ") and status != f"exit {goals.exit_status(recorded)}":
        status = f"failed ({status})"
    met, n_goals, passed, n_checks = goals.counts(recorded)
    return {"module": name, "status": status, "seconds": round(time.perf_counter() - started, 1),
            "goals": f"{met}/{n_goals} goals met, {passed}/{n_checks} checks passed" if recorded
            else "reported no goals"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["load"]:  # the production shape under load: servers and minutes of its own
        from bench import load

        return load.main(argv[1:])
    args = _parse(argv)
    cases, modules = _selection(args.only)
    started = time.perf_counter()
    results, datasets = run_platform(args, cases) if cases else ([], [])
    if results:
        print_table(results)
        record_platform(results)
    module_reports = [run_module(name, ["--db", args.db] if args.db and name in TAKES_DB else [])
                      for name in modules]
    if module_reports:
        print("\nBenchmark modules:")
        for report in module_reports:
            print(f"  {report['module']:<28} {report['status']}"
                  + (f" ({report['seconds']} s)" if "seconds" in report else "")
                  + (f"; {report['goals']}" if "goals" in report else ""))
    recorded = goals.RECORDED
    broken = [m for m in module_reports if m["status"] == "crashed" or m["status"].startswith("failed")]
    met, n_goals, passed, n_checks = goals.counts(recorded)
    total = time.perf_counter() - started
    if recorded:
        print("\nAll goals and checks of this run:\n" + goals.table(recorded))
    incorrect = passed < n_checks or broken
    print(f"\nTotal {total:.0f} s. Correctness: {'FAIL' if incorrect else 'pass'} ({passed}/{n_checks} checks"
          + (f", {len(broken)} module(s) crashed or failed" if broken else "") + f"); goals met: {met}/{n_goals}.")
    for g in recorded:
        if not g.met:
            print(f"  {'FAILED' if g.correctness else 'MISSED'}: {g.source}"
                  + (f" / {g.db}" if g.db else "") + f": {g.name}: {g.measured} (goal {g.target})")
    if (results or module_reports) and not args.no_json:
        RESULTS.mkdir(exist_ok=True)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = RESULTS / f"platform-{args.size}-{stamp}.json"
        payload = {
            "git_sha": _git_sha(), "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "args": vars(args), "datasets": datasets, "seconds": round(total, 1),
            "results": [dataclasses.asdict(r) for r in results], "modules": module_reports,
            "goals": [dataclasses.asdict(g) for g in recorded],
        }
        path.write_text(json.dumps(payload, indent=2, default=str))
        print(f"JSON: {path.relative_to(RESULTS.parent)}")
    if broken:
        return goals.EXIT_INCORRECT
    return goals.exit_status(recorded)


if __name__ == "__main__":
    sys.exit(main())
