"""Publishing cases: saving a 50 KB post, and the audience preview of an all-staff audience.

``python -m bench.publish_bench [--db sqlite|pg|both] [--size S|M] [--repeat N]`` (also run by
``python -m bench``). Each case times Beacon's product path and the raw work it cannot avoid, in
the same process, on the same connection, alternating the two so noise hits both alike:

* **save** — ``intranet.posts.create_post`` for a ~50 KB body (just under
  :data:`intranet.sanitize.MAX_BODY_BYTES`), i.e. validation, permission and audience checks,
  sanitizing, the plain-text version, the post row, its compiled audience and its transition,
  flushed and then rolled back. Raw work: ``sanitize.clean_html`` + ``html_to_text`` on the same
  body plus one hand-written ``INSERT`` of the post row (rolled back). Goal: p95 < 100 ms; the
  ratio shows what the service adds on top of the sanitizer.
* **preview** — what ``POST /api/v1/audiences/preview`` does for ``{"all": true}`` over the
  whole organisation (``parse_audience``, ``check_known_values``, ``audience_breakdown``).
  Raw work: hand-written SQL returning the same count and the three breakdowns. The results must
  be equal. Goal: < 50 ms.
* **refuse hostile bodies** — ``sanitize.clean_html`` on bodies over its limits (500 KB,
  20,000 nested ``<div>``, 5,000 ``<ul><li>``, nesting one deeper than allowed, too many attributes):
  each must raise ``BodyTooLarge`` before any parsing. No database. Goal: the slowest body's p50
  < 1 ms (cleaning a legal 50 KB body takes tens of ms; the parser on these bodies, seconds).

Timings are medians of ``repeat`` calls after a warm-up; figures are printed, never asserted.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from sqlmodel import Session, select

from intranet import posts, sanitize, targeting
from intranet.models import Employee

from bench import datagen, goals

SAVE_GOAL_MS = 100.0
PREVIEW_GOAL_MS = 50.0
REFUSE_GOAL_MS = 1.0


def fifty_kb_body(limit: int = sanitize.MAX_BODY_BYTES - 200) -> str:
    """A realistic post body just under the size limit: headings, paragraphs, lists, links, a table."""
    chunks: list[str] = []
    i = 0
    while sum(map(len, chunks)) < limit - 1200:
        i += 1
        chunks.append(f"<h2>Section {i}: what changes for your team</h2>")
        chunks.append(f"<p>From <strong>Monday</strong>, the <em>expense tool</em> replaces the old forms. Read the "
                      f'<a href="https://intranet.example/guides/{i}">guide</a> or ask your manager. '
                      "Claims filed before the switch are paid as usual; anything after goes through the new "
                      "tool, which checks receipts automatically and pays within five working days.</p>")
        chunks.append("<ul>" + "".join(f"<li>Step {j}: open the tool, choose a category, attach the receipt</li>"
                                       for j in range(1, 5)) + "</ul>")
        if i % 5 == 0:
            chunks.append("<table><thead><tr><th>Region</th><th>Date</th></tr></thead><tbody>"
                          + "".join(f"<tr><td>Region {k}</td><td>2026-12-0{k}</td></tr>" for k in range(1, 6))
                          + "</tbody></table>")
    body = "".join(chunks)
    assert len(body.encode()) <= sanitize.MAX_BODY_BYTES, len(body.encode())
    return body


def _time(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter_ns()
    result = fn()
    return (time.perf_counter_ns() - started) / 1e6, result


def _alternate(product: Callable[[], Any], raw: Callable[[], Any], repeat: int) -> tuple[list[float], list[float]]:
    product()
    raw()  # warm-up
    p_times, r_times = [], []
    for _ in range(repeat):
        p_times.append(_time(product)[0])
        r_times.append(_time(raw)[0])
    return p_times, r_times


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def save_case(ds: datagen.Dataset, repeat: int) -> dict[str, Any]:
    body = fifty_kb_body()
    with Session(ds.engine, expire_on_commit=False) as session:
        author = session.exec(select(Employee).where(Employee.active.is_(True)).limit(1)).one()
        author.is_comms = True  # in this transaction only (rolled back)
        department = author.department
        data = posts.PostCreate(title="Expense tool", summary="New tool", body_html=body, topic="News",
                                audience={"segments": [{"departments": [department]}]})
        connection = session.connection().connection.dbapi_connection
        placeholder = "%s" if ds.dialect == "postgresql" else "?"

        def product() -> Any:
            savepoint = session.begin_nested()
            post = posts.create_post(session, data, author=author, now=ds.now)
            session.flush()
            savepoint.rollback()
            session.expunge_all()
            session.add(author)
            return post

        def raw() -> Any:
            clean = sanitize.clean_html(body)
            text = sanitize.html_to_text(clean)
            cursor = connection.cursor()
            try:
                cursor.execute("SAVEPOINT raw_save")
                cursor.execute(
                    "INSERT INTO intranet_post (title, summary, body_html, body_text, topic, must_read, status, audience,"
                    " all_staff, rating_style, version, created_at, updated_at) VALUES "
                    f"({', '.join([placeholder] * 13)})",
                    ("Expense tool", "New tool", clean, text, "News", False, "draft", '{"segments": []}', False,
                     "stars", 1, ds.now.replace(tzinfo=None) if ds.dialect == "sqlite" else ds.now,
                     ds.now.replace(tzinfo=None) if ds.dialect == "sqlite" else ds.now))
                cursor.execute("ROLLBACK TO SAVEPOINT raw_save")
            finally:
                cursor.close()
            return clean

        p_times, r_times = _alternate(product, raw, repeat)
        sanitize_only = [_time(lambda: sanitize.clean_html(body))[0] for _ in range(max(3, repeat // 2))]
        session.rollback()
    p50, r50 = statistics.median(p_times), statistics.median(r_times)
    return {"case": "save 50 KB post", "db": ds.dialect, "body_bytes": len(body.encode()), "repeat": repeat,
            "p50_ms": p50, "p95_ms": _p95(p_times), "raw_p50_ms": r50, "raw_p95_ms": _p95(r_times),
            "ratio": p50 / r50, "bleach_only_p50_ms": statistics.median(sanitize_only),
            "goal": f"p95 < {SAVE_GOAL_MS:.0f} ms", "met": _p95(p_times) < SAVE_GOAL_MS, "correct": True}


def _raw_breakdown(ds: datagen.Dataset, session: Session) -> dict[str, Any]:
    connection = session.connection().connection.dbapi_connection
    cursor = connection.cursor()
    active = "active = TRUE" if ds.dialect == "postgresql" else "active = 1"
    try:
        cursor.execute(f"SELECT COUNT(*) FROM intranet_employee WHERE {active}")
        result: dict[str, Any] = {"count": cursor.fetchone()[0]}
        for name, column in (("by_department", "department"), ("by_region", "region"), ("by_level", "level")):
            cursor.execute(f"SELECT {column}, COUNT(*) FROM intranet_employee WHERE {active} GROUP BY {column}")
            result[name] = {("unknown" if key is None else str(key)): n for key, n in cursor.fetchall()}
        return result
    finally:
        cursor.close()


def preview_case(ds: datagen.Dataset, repeat: int) -> dict[str, Any]:
    with Session(ds.engine, expire_on_commit=False) as session:
        def product() -> dict[str, Any]:
            audience = targeting.parse_audience({"all": True})
            targeting.check_known_values(session, audience)
            return targeting.audience_breakdown(session, audience)

        p_times, r_times = _alternate(product, lambda: _raw_breakdown(ds, session), repeat)
        ours, theirs = product(), _raw_breakdown(ds, session)
        session.rollback()
    correct = ours["count"] == theirs["count"] and all(ours[k] == theirs[k] for k in ("by_department", "by_region",
                                                                                       "by_level"))
    p50, r50 = statistics.median(p_times), statistics.median(r_times)
    return {"case": f"preview all-staff ({ours['count']:,})", "db": ds.dialect, "repeat": repeat,
            "p50_ms": p50, "p95_ms": _p95(p_times), "raw_p50_ms": r50, "raw_p95_ms": _p95(r_times),
            "ratio": p50 / r50, "goal": f"< {PREVIEW_GOAL_MS:.0f} ms", "met": p50 < PREVIEW_GOAL_MS, "correct": correct}


def hostile_bodies() -> dict[str, str]:
    """Bodies beyond each of the sanitizer's limits (SECURITY.md D5)."""
    attributes = " ".join(f"a{i}=1" for i in range(sanitize.MAX_ATTRIBUTES + 1))
    return {
        "500 KB": "<p>" + "x" * 500_000 + "</p>",
        "20,000 nested <div>": "<div>" * 20_000,
        "5,000 <ul><li>": "<ul><li>" * 5_000,
        f"{sanitize.MAX_NESTING + 1} nested <blockquote>": "<blockquote>" * (sanitize.MAX_NESTING + 1),
        f"{sanitize.MAX_ATTRIBUTES + 1} attributes": f"<a {attributes}>",
    }


def refuse_case(repeat: int) -> list[dict[str, Any]]:
    """Time ``clean_html`` refusing each hostile body; each must raise ``BodyTooLarge``."""
    rows = []
    for name, body in hostile_bodies().items():
        def refuse(body: str = body) -> str | None:
            try:
                sanitize.clean_html(body)
            except sanitize.BodyTooLarge as exc:
                return exc.what
            return None

        refuse()  # warm-up
        timed = [_time(refuse) for _ in range(repeat)]
        times = [ms for ms, _ in timed]
        rows.append({"body": name, "p50_ms": statistics.median(times), "p95_ms": _p95(times),
                     "refused": all(what is not None for _, what in timed), "limit": timed[0][1] or "none"})
    return rows


def _print(rows: list[dict[str, Any]]) -> None:
    header = ("case", "db", "p50 ms", "p95 ms", "raw p50", "raw p95", "ratio", "goal", "met", "correct")
    table = [header] + [(r["case"], r["db"], f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}", f"{r['raw_p50_ms']:.1f}",
                         f"{r['raw_p95_ms']:.1f}", f"{r['ratio']:.2f}x", r["goal"], "yes" if r["met"] else "NO",
                         "pass" if r["correct"] else "FAIL") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print()
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for r in rows:
        if "bleach_only_p50_ms" in r:
            print(f"\n[{r['case']} / {r['db']}] body {r['body_bytes']:,} bytes; bleach alone p50 "
                  f"{r['bleach_only_p50_ms']:.1f} ms (raw = bleach + text + one INSERT)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.publish_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "pg", "both"), default="sqlite")
    parser.add_argument("--size", choices=("S", "M"), default="M", help="M = 100,000 employees")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []

    def run(ds: datagen.Dataset) -> None:
        print(f"  [publish] {ds.dialect}, {ds.n_employees:,} employees", file=sys.stderr, flush=True)
        rows.append(save_case(ds, args.repeat))
        rows.append(preview_case(ds, args.repeat))

    datagen.run_on_datasets(args.db, args.size, args.seed, run,
                            lambda reason: print(f"  [publish] PostgreSQL skipped: {reason}", file=sys.stderr))
    _print(rows)
    refused = refuse_case(args.repeat)
    print("\n[refuse hostile bodies] clean_html raising BodyTooLarge before parsing")
    for r in refused:
        print(f"  {r['body']:<26} p50 {r['p50_ms']:.3f} ms  p95 {r['p95_ms']:.3f} ms  limit: {r['limit']}")
    first = goals.mark()
    worst = max(refused, key=lambda r: r["p50_ms"])
    goals.goal("publish", "refuse hostile bodies (slowest p50)",
               measured=f"{worst['p50_ms']:.3f} ms ({worst['body']})", target=f"< {REFUSE_GOAL_MS:.0f} ms",
               met=worst["p50_ms"] < REFUSE_GOAL_MS)
    goals.check("publish", "every hostile body refused with BodyTooLarge", passed=all(r["refused"] for r in refused),
                detail=", ".join(f"{r['body']}: {r['limit']}" for r in refused))
    for r in rows:
        goals.goal("publish", r["case"], measured=f"p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms",
                   target=r["goal"], met=r["met"], db=r["db"])
        goals.check("publish", f"{r['case']}: same result as the raw work", passed=r["correct"], db=r["db"])
    return goals.exit_status(goals.RECORDED[first:])


if __name__ == "__main__":
    sys.exit(main())
