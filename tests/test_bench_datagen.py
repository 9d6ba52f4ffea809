"""The benchmark data generator's relative audiences and journeys: valid, in their share, and the same for a seed."""
from __future__ import annotations

import collections
import datetime as dt

import pytest

from bench import datagen
from intranet import targeting

pytestmark = pytest.mark.sqlite_only  # no database: plain generator output


def _posts(seed: int, n_posts: int = 2000, n_employees: int = 4000) -> tuple[list[dict], list[dict], list[int]]:
    rng = datagen.streams(seed)
    org = datagen.build_org(rng["org"])
    steps = datagen.journey_post_indices(rng["journeys"], n_posts)
    posts, segments = [], []
    for chunk, segs, _ in datagen.post_chunks(rng["posts"], rng["audiences"], org, n_posts, n_employees, 12,
                                              rng["relative"], frozenset(steps)):
        posts.extend(chunk)
        segments.extend(segs)
    return posts, segments, steps


def test_a_realistic_share_of_audiences_uses_relative_rules_and_all_parse() -> None:
    posts, segments, steps = _posts(7)
    kinds: collections.Counter[str] = collections.Counter()
    for post in posts:
        audience = targeting.parse_audience(post["audience"])  # every generated audience is valid
        rules = [*audience.segments, *audience.exclude]
        kinds["hired_within"] += any(s.hired_within_days is not None for s in rules)
        kinds["reports_to"] += any(s.reports_to for s in rules)
    assert 0.04 * len(posts) < kinds["hired_within"] < 0.09 * len(posts)
    assert 0.04 * len(posts) < kinds["reports_to"] < 0.09 * len(posts)
    assert any(s["hired_within_days"] is not None for s in segments)  # compiled as store_audience does
    step_posts = [p for p in posts if p["journey_only"]]
    assert sorted(p["id"] - 1 for p in step_posts) == sorted(steps)
    assert all(p["status"] == "published" and p["all_staff"] for p in step_posts)


def test_journeys_release_due_steps_to_recent_joiners_and_leave_later_ones_pending() -> None:
    rng = datagen.streams(7)
    org = datagen.build_org(rng["org"])
    n = 4000
    people, _ = datagen.employee_rows(rng["employees"], org, n, datagen.hire_dates(rng["hires"], n))
    tables = datagen.journey_rows(rng["journeys"], people, datagen.journey_post_indices(rng["journeys"], 500))
    rows = {table.name: found for table, found in tables.items()}
    releases = rows["intranet_journey_release"]
    by_status = collections.Counter(r["status"] for r in releases)
    assert by_status["released"] > by_status["pending"] > by_status["skipped"] > 0
    for release in releases:
        due = release["due_at"]
        assert (release["status"] == "pending") == (due > datagen.NOW)
        assert (release["released_at"] == due) == (release["status"] == "released")
    hires = [e for e in rows["intranet_journey_enrolment"] if e["event_key"] == "hire"]
    recent = [d for d in people.hire_date if d and (datagen.NOW.date() - d) < dt.timedelta(days=90)]
    assert len(hires) == len(recent) and 0.02 * n < len(hires) < 0.1 * n


def test_the_same_seed_gives_the_same_data() -> None:
    assert _posts(3, n_posts=300)[0] == _posts(3, n_posts=300)[0]
    assert _posts(3, n_posts=300)[0] != _posts(4, n_posts=300)[0]
