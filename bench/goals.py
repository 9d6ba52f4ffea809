"""Every benchmark's goals and correctness checks, in one list that ``python -m bench`` counts.

Each benchmark module records what it measured here, with :func:`goal` for a target a figure
should meet (timing, ratio, share) and :func:`check` for a correctness condition that must hold
(counts equal, nothing lost or duplicated). The modules keep printing their own tables; the
driver reads :data:`RECORDED` after running them and prints one summary over all of them, so a
goal missed in any module shows in the final count.

Exit statuses (:func:`exit_status`), for ``python -m bench`` and for each module run alone:
0 when every check passed and every goal was met, 1 when a check failed (or a module crashed),
3 when everything is correct but a goal was missed (2 is argparse's usage error).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

EXIT_OK = 0
EXIT_INCORRECT = 1
EXIT_GOAL_MISSED = 3


@dataclasses.dataclass
class Goal:
    """One goal or check, as measured in this run."""

    source: str
    """The case or module that measured it: ``feed``, ``ingest``, ``directory`` ..."""
    name: str
    """What was measured, e.g. ``full sync / (download + parse)``."""
    target: str
    """The goal as text, e.g. ``<= 3x``; for a check, what must hold."""
    measured: str
    """The figure this run got, as text, e.g. ``4.07x``."""
    met: bool
    db: str = ""
    correctness: bool = False
    """A correctness check (must pass) rather than a performance goal."""


#: Everything recorded in this process, in order.
RECORDED: list[Goal] = []


def goal(source: str, name: str, *, measured: str, target: str, met: bool, db: str = "") -> Goal:
    """Record a performance goal and whether this run met it."""
    item = Goal(source, name, target, measured, bool(met), db)
    RECORDED.append(item)
    return item


def check(source: str, name: str, *, passed: bool, detail: str = "", db: str = "") -> Goal:
    """Record a correctness check; *detail* says what was found (shown when it fails)."""
    item = Goal(source, name, "must hold", detail or ("pass" if passed else "FAIL"), bool(passed), db,
                correctness=True)
    RECORDED.append(item)
    return item


def mark() -> int:
    """A position in :data:`RECORDED`; ``RECORDED[mark():]`` is what was recorded since."""
    return len(RECORDED)


def exit_status(items: Iterable[Goal]) -> int:
    """1 if a check failed, else 3 if a goal was missed, else 0."""
    items = list(items)
    if any(not g.met for g in items if g.correctness):
        return EXIT_INCORRECT
    if any(not g.met for g in items if not g.correctness):
        return EXIT_GOAL_MISSED
    return EXIT_OK


def counts(items: Sequence[Goal]) -> tuple[int, int, int, int]:
    """(goals met, goals, checks passed, checks)."""
    goals = [g for g in items if not g.correctness]
    checks = [g for g in items if g.correctness]
    return sum(g.met for g in goals), len(goals), sum(g.met for g in checks), len(checks)


def table(items: Sequence[Goal]) -> str:
    """Every goal and check as an aligned text table (missed ones marked ``NO``)."""
    header = ("source", "db", "what", "measured", "goal", "met")
    rows = [header] + [(g.source, g.db or "-", g.name, g.measured, g.target, "yes" if g.met else "NO")
                       for g in items]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
