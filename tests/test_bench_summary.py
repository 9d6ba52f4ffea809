"""``python -m bench`` counts every module's goals and checks, and its exit status says what it found."""
from __future__ import annotations

import textwrap

import pytest

from bench import __main__ as bench_main
from bench import goals


@pytest.fixture
def fake_modules(tmp_path, monkeypatch):
    """Write benchmark modules (name -> source) that ``python -m bench --only`` can run."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(goals, "RECORDED", [])

    def write(**sources: str) -> None:
        for name, source in sources.items():
            (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.setattr(bench_main, "MODULES", {name: name for name in sources})

    return write


MET = """
    from bench import goals
    def main(argv=None):
        goals.goal("fast", "p50", measured="2 ms", target="< 5 ms", met=True)
        goals.check("fast", "counts equal", passed=True)
        return 0
"""
MISSED = """
    from bench import goals
    def main(argv=None):
        first = goals.mark()
        goals.goal("slow", "sync / download", measured="4.07x", target="<= 3x", met=False, db="sqlite")
        goals.check("slow", "nothing lost", passed=True)
        return goals.exit_status(goals.RECORDED[first:])
"""


def test_a_goal_missed_in_a_module_counts_in_the_summary(fake_modules, capsys):
    """A module's missed goal shows in the final count and sets exit status 3."""
    fake_modules(fast_bench=MET, slow_bench=MISSED)
    status = bench_main.main(["--only", "fast_bench,slow_bench", "--no-json"])
    out = capsys.readouterr().out
    assert "goals met: 1/2" in out
    assert "Correctness: pass (2/2 checks)" in out
    assert "MISSED: slow / sqlite: sync / download: 4.07x (goal <= 3x)" in out
    assert status == goals.EXIT_GOAL_MISSED


def test_every_goal_met_exits_zero(fake_modules, capsys):
    fake_modules(fast_bench=MET)
    assert bench_main.main(["--only", "fast_bench", "--no-json"]) == goals.EXIT_OK
    assert "goals met: 1/1" in capsys.readouterr().out


def test_a_failed_check_outranks_missed_goals(fake_modules, capsys):
    """Wrong results exit 1 even when goals were missed too."""
    fake_modules(slow_bench=MISSED, wrong_bench="""
        from bench import goals
        def main(argv=None):
            goals.check("wrong", "counts equal", passed=False, detail="96,942 != 96,941")
            return 1
    """)
    status = bench_main.main(["--only", "slow_bench,wrong_bench", "--no-json"])
    out = capsys.readouterr().out
    assert "Correctness: FAIL (1/2 checks)" in out
    assert "FAILED: wrong: counts equal: 96,942 != 96,941" in out
    assert status == goals.EXIT_INCORRECT


def test_a_crash_or_an_unexplained_exit_status_is_a_failure(fake_modules, capsys):
    """A module that crashes, or exits 1 without a failed check, fails the run."""
    fake_modules(crash_bench="""
        def main(argv=None):
            raise ZeroDivisionError("boom")
    """, silent_bench="""
        def main(argv=None):
            return 1
    """, fast_bench=MET)
    status = bench_main.main(["--only", "crash_bench,silent_bench,fast_bench", "--no-json"])
    captured = capsys.readouterr()
    assert "ZeroDivisionError: boom" in captured.err
    assert "2 module(s) crashed or failed" in captured.out
    assert "silent_bench                 failed (exit 1)" in captured.out
    assert "reported no goals" in captured.out
    assert status == goals.EXIT_INCORRECT


ECHO_DB = """
    from bench import goals
    def main(argv=None):
        goals.check("echo", "arguments", passed=True, detail=repr(argv))
        return 0
"""


def test_db_goes_on_to_the_modules_that_take_it(fake_modules, monkeypatch):
    """`--db pg` reaches a module that takes --db; one that does not, and a run without --db, pass nothing."""
    fake_modules(db_bench=ECHO_DB, plain_bench=ECHO_DB)
    monkeypatch.setattr(bench_main, "TAKES_DB", frozenset({"db_bench"}))
    bench_main.main(["--only", "db_bench,plain_bench", "--db", "pg", "--no-json"])
    bench_main.main(["--only", "db_bench", "--no-json"])
    assert [g.measured for g in goals.RECORDED] == ["['--db', 'pg']", "[]", "[]"]



def test_an_ingest_path_that_cannot_be_measured_is_a_missed_goal(monkeypatch, capsys):
    """Without wrk the served ingest run (the 20,000 events/s goal's measure) is not skipped silently:
    it is a goal reported as not measured, so the run cannot end with every goal met."""
    from bench import ingest_bench

    monkeypatch.setattr(goals, "RECORDED", [])
    monkeypatch.setattr(ingest_bench.shutil, "which", lambda name: None)
    assert ingest_bench.main(["--path", "served", "--db", "sqlite"]) == goals.EXIT_GOAL_MISSED
    [missed] = goals.RECORDED
    assert missed.source == "ingest" and not missed.met and "not measured" in missed.measured
