"""``python -m bench load``'s parts: its virtual people against a served Beacon, the open-loop mix, and
the figures it reports (no timing is asserted: the figures themselves are the benchmark's output)."""
from __future__ import annotations

import os
import types
from pathlib import Path

import pytest

from bench import load


@pytest.mark.sqlite_only
def test_virtual_people_sign_in_and_the_mix_runs_against_a_served_beacon(live_server, make_employee, make_post):
    """Every kind of request in the mix gets an answer, none a 5xx, and each is recorded once."""
    port = int(live_server.rsplit(":", 1)[1])
    readers = [make_employee() for _ in range(3)]
    author = make_employee(is_contributor=True, department="Sales")
    boss = make_employee(is_comms=True)
    make_post(title="Hello")

    def signed_in(people):  # type: ignore[no-untyped-def]
        browsers = []
        for person in people:
            browser = load.Browser(port, person.email)
            browser.sign_in()
            browsers.append(browser)
        return [browsers]

    pools = {"readers": signed_in(readers), "authors": signed_in([author]), "comms": signed_in([boss])}
    assert pools["readers"][0][0].post_ids  # the feed API gave the posts to rate and report on
    samples = load.run_mixed(pools, rate=40, duration=3, connections=1, seed=1)
    assert 100 <= len(samples) <= 125  # 40/s for 3 s, bounded
    assert all(s.status and s.status < 500 for s in samples), sorted({(s.kind, s.status) for s in samples})
    assert {s.kind for s in samples} >= {"feed", "feed_api", "events"}


def test_summary_reports_percentiles_and_errors_per_kind():
    """p50/p95/p99 over the samples, 5xx and failed (no answer) apart from 4xx."""
    samples = [load.Sample("feed", i / 100, float(i), 200) for i in range(1, 101)]
    samples += [load.Sample("events", 1.0, 5.0, 503), load.Sample("events", 1.0, 5000.0, 0),
                load.Sample("rating", 1.0, 3.0, 429)]
    report = load.summary(samples, seconds=10)
    assert report["feed"]["n"] == 100 and report["feed"]["p50_ms"] == 50.5 and report["feed"]["p99_ms"] == 99.0
    assert report["all"]["5xx"] == 1 and report["all"]["failed"] == 1 and report["all"]["4xx"] == 1
    assert report["all"]["not_sent"] == 0
    assert report["all"]["per_s"] == 10.3


def test_memory_growth_compares_the_last_minute_with_the_first_after_warm_up():
    """Warm-up (the first minute) is left out; growth is last against first, in percent."""
    series = [(t, 100.0 if t < 60 else 200.0 if t < 120 else 210.0) for t in range(0, 600, 5)]
    growth = load.memory_growth(series, duration=600)
    assert growth["first_mb"] == 200.0 and growth["last_mb"] == 210.0 and growth["growth_pct"] == 5.0


def test_server_cpu_is_read_from_proc_and_divided_by_requests_answered():
    """CPU per request counts only answered requests; a process's CPU seconds come from /proc and grow with work."""
    assert load._per_request(2.0, {"all": {"n": 110, "failed": 5, "not_sent": 5}}) == 20.0
    assert load._per_request(1.0, {"all": {"n": 0}}) is None
    me = load.Server(port=0, process=types.SimpleNamespace(pid=os.getpid()), log=Path("."))  # type: ignore[arg-type]
    before = me.cpu_s()
    sum(i * i for i in range(3_000_000))
    assert me.cpu_s() > before
