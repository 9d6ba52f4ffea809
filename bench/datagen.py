"""Deterministic benchmark data: a large organisation and its targeted posts.

``fill(engine, size, seed)`` writes, into a freshly migrated database, an organisation of
``SIZES[size]`` employees (Zipf-sized departments, 20 regions with their countries and offices,
levels 1-10 with some unknown, groups and memberships), posts over the 90 days before :data:`NOW`
with audiences compiled exactly as :func:`intranet.targeting.store_audience` compiles them, and
some read/acknowledge state. Audiences include the relative rules ("hired in the last N days",
"reports to X directly or indirectly") in a realistic share, and new joiners and movers are on
journeys whose steps (``journey_only`` posts) are released to them, pending or skipped, so the
feed, audience and digest benchmarks exercise those rules at scale (see :data:`RELATIVE_SHARE`).

Every table draws from its own numpy stream (``SeedSequence(seed).spawn``), so adding a column or
a table never changes the others. Rows are built in chunks and written with Core ``insert()``
executemany, never as ORM objects.

``sqlite_dataset`` caches the generated file under ``bench-results/cache/`` keyed by size, seed,
the migration head and a hash of the migrations and of this module, so reruns start at once;
``postgres_dataset`` builds a throw-away schema and drops it afterwards.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from intranet import migrate, ranking, ratings, targeting
from intranet.db import make_engine
from intranet.models import (AudienceSegment, AudienceValue, EngagementEvent, Employee, Group, GroupMember, Journey,
                             JourneyEnrolment, JourneyRelease, JourneyStep, Post, PostRatingStats, PostState, Rating)

logger = logging.getLogger(__name__)

SIZES: dict[str, tuple[int, int]] = {"S": (10_000, 1_000), "M": (100_000, 10_000)}
NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
PG_URL = os.environ.get("INTRANET_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / "bench-results" / "cache"
CHUNK = 10_000
#: Feed impressions per person (on distinct posts); about a third are opened, and a fifth of the
#: opened ones rated: at M about 2M events and 120k ratings, what the ranker reads per person and
#: per department.
IMPRESSIONS_PER_PERSON = 12
OPEN_SHARE = 0.35
RATED_SHARE = 0.2

# One stream per table, in a fixed order: append new streams at the end only.
STREAMS = ("org", "employees", "groups", "memberships", "posts", "audiences", "post_state", "events", "ratings",
           "hires", "relative", "journeys")
#: What the generated data holds, in the cache key: bump it when the data change meaning (v2: hire
#: dates, relative audience rules and journeys).
GENERATOR_VERSION = 2

#: Share of posts whose audience uses a relative rule: "hired in the last N days" (alone or with a
#: region), "reports to" a manager (a segment of its own or an exclusion).
RELATIVE_SHARE = {"hired_within": 0.05, "reports_to": 0.05, "exclude_reports_to": 0.01}
HIRED_WITHIN_DAYS = (7, 14, 30, 60, 90, 180, 365)
#: Hire dates: over the last ten years, newer hires more common; some people have none.
HIRE_YEARS = 10
NO_HIRE_DATE_SHARE = 0.02
#: Journeys (trigger, steps as offset days); their step posts are journey_only posts taken from the
#: generated ones. Hires of the last JOURNEY_WINDOW_DAYS are on the hire journey, a few movers on the others.
JOURNEYS = (("hire", (0, 3, 10, 30, 60)), ("department_move", (0, 7, 21)), ("manager_promotion", (0, 14)))
JOURNEY_WINDOW_DAYS = 90
MOVER_SHARE = 0.01
SKIPPED_SHARE = 0.05

N_DEPARTMENTS = 200
N_DIVISIONS = 16
N_GROUPS_PER_1K = 3  # 300 groups at M
REGIONS = (
    "AMER East", "AMER West", "AMER Central", "Canada", "LATAM North", "LATAM South", "UK & Ireland",
    "Nordics", "DACH", "Benelux", "France", "Iberia", "Italy", "CEE", "Middle East", "Africa", "India",
    "Japan", "Greater China", "ANZ",
)
COUNTRIES = (  # two or three per region, in region order
    ("US", "PR"), ("US",), ("US", "MX"), ("CA",), ("CO", "PE", "CR"), ("BR", "AR", "CL"), ("GB", "IE"),
    ("SE", "NO", "DK"), ("DE", "AT", "CH"), ("NL", "BE", "LU"), ("FR",), ("ES", "PT"), ("IT",),
    ("PL", "CZ", "RO"), ("AE", "SA", "IL"), ("ZA", "NG", "KE"), ("IN",), ("JP",), ("CN", "HK", "TW"),
    ("AU", "NZ"),
)
TIMEZONES = (
    "America/New_York", "America/Los_Angeles", "America/Chicago", "America/Toronto", "America/Bogota",
    "America/Sao_Paulo", "Europe/London", "Europe/Stockholm", "Europe/Berlin", "Europe/Amsterdam",
    "Europe/Paris", "Europe/Madrid", "Europe/Rome", "Europe/Warsaw", "Asia/Dubai", "Africa/Johannesburg",
    "Asia/Kolkata", "Asia/Tokyo", "Asia/Shanghai", "Australia/Sydney",
)
DEPARTMENT_WORDS = ("Operations", "Sales", "Engineering", "Support", "Marketing", "Finance", "Research",
                    "People", "Legal", "Logistics", "Manufacturing", "Quality", "Procurement", "Data")
LEVEL_WEIGHTS = np.array([14, 18, 18, 15, 12, 9, 6, 4, 2, 1], dtype=float)
TOPICS = ("Company News", "IT & Security", "People & Culture", "Health & Safety", "Products", "Events")
PARAGRAPH = ("<p>Colleagues, here is what changes and why it matters for your team. Read the details "
             "below and ask your manager or the comms team if anything is unclear.</p>")


@dataclasses.dataclass(frozen=True)
class Org:
    """The fixed structure the generator draws people and audiences from."""

    departments: list[str]
    department_division: list[str]
    department_weights: np.ndarray
    regions: list[str]
    offices: list[str]
    office_region: list[int]
    office_country: list[str]
    office_weights: np.ndarray   # within the whole company


@dataclasses.dataclass
class Dataset:
    """A filled database ready to benchmark."""

    engine: Engine
    dialect: str
    size: str
    seed: int
    n_employees: int
    n_posts: int
    now: dt.datetime
    location: str
    generated_s: float | None  # None when reused from the cache

    @property
    def server_version(self) -> str:
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                return str(conn.execute(text("SHOW server_version")).scalar())
            return str(conn.execute(text("SELECT sqlite_version()")).scalar())


def streams(seed: int) -> dict[str, np.random.Generator]:
    """One independent PCG64 generator per table."""
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {name: np.random.Generator(np.random.PCG64(child)) for name, child in zip(STREAMS, children)}


def _zipf(n: int, s: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    return w / w.sum()


def build_org(rng: np.random.Generator) -> Org:
    divisions = [f"Division {chr(ord('A') + i)}" for i in range(N_DIVISIONS)]
    departments = [f"{DEPARTMENT_WORDS[i % len(DEPARTMENT_WORDS)]} {i + 1:03d}" for i in range(N_DEPARTMENTS)]
    department_division = [divisions[int(d)] for d in rng.integers(0, N_DIVISIONS, N_DEPARTMENTS)]
    region_weights = rng.dirichlet(np.full(len(REGIONS), 2.0))
    offices, office_region, office_country, office_weights = [], [], [], []
    for r, countries in enumerate(COUNTRIES):
        country_share = rng.dirichlet(np.full(len(countries), 3.0))
        for c, country in enumerate(countries):
            n_offices = int(rng.integers(1, 4))
            share = rng.dirichlet(np.full(n_offices, 2.0))
            for k in range(n_offices):
                offices.append(f"{REGIONS[r]} / {country} office {k + 1}")
                office_region.append(r)
                office_country.append(country)
                office_weights.append(region_weights[r] * country_share[c] * share[k])
    w = np.array(office_weights)
    return Org(departments=departments, department_division=department_division,
               department_weights=_zipf(N_DEPARTMENTS, 1.07), regions=list(REGIONS),
               offices=offices, office_region=office_region, office_country=office_country, office_weights=w / w.sum())


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class People:
    """Per-employee arrays kept for the audience generator (index i is employee id i + 1)."""

    department: np.ndarray
    office: np.ndarray
    level: np.ndarray  # 0 = unknown
    active: np.ndarray
    hire_date: list[dt.date | None] = dataclasses.field(default_factory=list)


def hire_dates(rng: np.random.Generator, n: int) -> list[dt.date | None]:
    """Each person's hire date: newer hires more common (a growing company), a few unknown."""
    days_ago = np.floor(HIRE_YEARS * 365 * rng.random(n) ** 1.25).astype(int)
    unknown = rng.random(n) < NO_HIRE_DATE_SHARE
    today = NOW.date()
    return [None if unknown[i] else today - dt.timedelta(days=int(days_ago[i])) for i in range(n)]


def employee_rows(rng: np.random.Generator, org: Org, n: int,
                  hired: list[dt.date | None] | None = None) -> tuple[People, Iterator[list[dict[str, Any]]]]:
    department = rng.choice(N_DEPARTMENTS, size=n, p=org.department_weights)
    office = rng.choice(len(org.office_weights), size=n, p=org.office_weights)
    level = rng.choice(10, size=n, p=LEVEL_WEIGHTS / LEVEL_WEIGHTS.sum()) + 1
    level[rng.random(n) < 0.03] = 0
    active = rng.random(n) >= 0.03
    first = rng.integers(0, 400, n)
    last = rng.integers(0, 900, n)
    language = rng.choice(np.array(["en", "de", "fr", "es", "ja", "pt", "zh"]), size=n,
                          p=[0.55, 0.1, 0.08, 0.08, 0.07, 0.06, 0.06])
    created = rng.integers(0, 5 * 365 * 86400, n)
    hired = hired if hired is not None else [None] * n
    people = People(department=department, office=office, level=level, active=active, hire_date=hired)

    def chunks() -> Iterator[list[dict[str, Any]]]:
        for start in range(0, n, CHUNK):
            rows = []
            for i in range(start, min(n, start + CHUNK)):
                d, o, lv = int(department[i]), int(office[i]), int(level[i])
                r = org.office_region[o]
                at = NOW - dt.timedelta(days=2000) + dt.timedelta(seconds=int(created[i]))
                eid = f"E{i + 1:07d}"
                rows.append({
                    "id": i + 1, "employee_id": eid, "email": f"{eid.lower()}@beacon.example",
                    "display_name": f"Person {int(first[i])} {int(last[i])}",
                    "department": org.departments[d], "division": org.department_division[d],
                    "region": org.regions[r], "country": org.office_country[o], "office": org.offices[o],
                    "job_title": f"Level {lv} role" if lv else None, "level": lv or None,
                    "level_label": f"L{lv}" if lv else None,
                    "manager_id": f"E{max(1, (i + 1) // 8):07d}" if i else None,
                    "timezone": TIMEZONES[r], "language": str(language[i]), "active": bool(active[i]),
                    "hire_date": hired[i],
                    "is_contributor": i % 500 == 0, "is_comms": i % 2000 == 0, "is_admin": i == 0,
                    "created_at": at, "updated_at": at,
                    "deactivated_at": None if active[i] else NOW - dt.timedelta(days=1),
                })
            yield rows

    return people, chunks()


def group_rows(n_groups: int) -> list[dict[str, Any]]:
    created = NOW - dt.timedelta(days=365)
    return [{"id": g + 1, "key": f"group-{g + 1:04d}", "name": f"Group {g + 1}", "description": "",
             "kind": "open" if g % 3 else "managed", "created_at": created} for g in range(n_groups)]


def membership_chunks(rng: np.random.Generator, n_employees: int, n_groups: int) -> Iterator[list[dict[str, Any]]]:
    """About 1.5 Zipf-chosen groups per person (some have none), without duplicates."""
    per_person = rng.poisson(1.5, n_employees)
    weights = _zipf(n_groups, 0.9)
    joined = NOW - dt.timedelta(days=30)
    for start in range(0, n_employees, CHUNK):
        stop = min(n_employees, start + CHUNK)
        counts = per_person[start:stop]
        owners = np.repeat(np.arange(start, stop), counts)
        groups = rng.choice(n_groups, size=len(owners), p=weights)
        pairs = np.unique(np.stack([owners, groups], axis=1), axis=0)
        yield [{"group_id": int(g) + 1, "employee_pk": int(e) + 1, "joined_at": joined} for e, g in pairs]


def random_audience(rng: np.random.Generator, org: Org, n_groups: int) -> dict[str, Any]:
    """An audience as a comms manager might write it (see the module docstring for the mix)."""
    u = rng.random()
    regions = org.regions
    if u < 0.05:
        audience: dict[str, Any] = {"all": True}
        if rng.random() < 0.2:
            audience["exclude"] = [{"level_max": 1}] if rng.random() < 0.5 else [
                {"regions": [regions[int(rng.integers(len(regions)))]]}]
        return audience
    if u < 0.06:  # worst case for the feed and the count: everyone in one region
        return {"segments": [{"regions": [regions[int(rng.integers(len(regions)))]]}]}
    segments: list[dict[str, Any]] = []
    if u < 0.10:  # group-only posts
        segments.append({"groups": [f"group-{int(g) + 1:04d}" for g in rng.choice(n_groups, int(rng.integers(1, 3)), replace=False)]})
    else:
        # Big departments are targeted more often, but not in proportion to their size.
        p = np.sqrt(org.department_weights)
        depts = rng.choice(N_DEPARTMENTS, size=int(rng.integers(1, 6)), replace=False, p=p / p.sum())
        segment: dict[str, Any] = {"departments": [org.departments[int(d)] for d in depts]}
        if rng.random() < 0.5:
            segment["regions"] = [regions[int(r)] for r in rng.choice(len(regions), int(rng.integers(1, 3)), replace=False)]
        if rng.random() < 0.2:
            segment["level_min"] = int(rng.integers(3, 9))
        segments.append(segment)
        if rng.random() < 0.08:
            segments.append({"groups": [f"group-{int(rng.integers(n_groups)) + 1:04d}"]})
    audience = {"segments": segments}
    if rng.random() < 0.1:
        choice = rng.random()
        if choice < 0.4:
            audience["exclude"] = [{"level_max": int(rng.integers(1, 3))}]
        elif choice < 0.8:
            audience["exclude"] = [{"offices": [org.offices[int(rng.integers(len(org.offices)))]]}]
        else:
            audience["exclude"] = [{"groups": [f"group-{int(rng.integers(n_groups)) + 1:04d}"]}]
    return audience


def _manager(rng: np.random.Generator, n_employees: int) -> str:
    """Someone with reports (``manager_id`` makes a tree of eight reports each): log-uniform over them,
    so "reports to" reaches from a division head's thousands down to a team lead's handful."""
    n_managers = max(2, n_employees // 8)
    k = int(np.exp(rng.random() * np.log(n_managers)))
    return f"E{min(n_managers, max(2, k)):07d}"


def relative_audience(rng: np.random.Generator, org: Org, audience: dict[str, Any], n_employees: int
                      ) -> dict[str, Any]:
    """*audience*, or in :data:`RELATIVE_SHARE` of cases one using a relative rule instead or as well."""
    u = rng.random()
    if u < RELATIVE_SHARE["hired_within"]:  # "new joiners (in a region)"
        segment: dict[str, Any] = {"hired_within_days": int(rng.choice(HIRED_WITHIN_DAYS))}
        if rng.random() < 0.4:
            segment["regions"] = [org.regions[int(rng.integers(len(org.regions)))]]
        return {"segments": [segment]}
    u -= RELATIVE_SHARE["hired_within"]
    if u < RELATIVE_SHARE["reports_to"]:  # "my organisation", sometimes its new joiners, or beside other segments
        managers = sorted({_manager(rng, n_employees) for _ in range(int(rng.integers(1, 3)))})
        segment = {"reports_to": managers}
        if rng.random() < 0.25:
            segment["hired_within_days"] = int(rng.choice(HIRED_WITHIN_DAYS))
        if rng.random() < 0.3 and audience.get("segments"):
            return {**audience, "segments": [*audience["segments"], segment]}
        return {"segments": [segment]}
    u -= RELATIVE_SHARE["reports_to"]
    if u < RELATIVE_SHARE["exclude_reports_to"]:  # "everyone but that organisation"
        return {**audience, "exclude": [*audience.get("exclude", []), {"reports_to": [_manager(rng, n_employees)]}]}
    return audience


def compile_audience(audience: targeting.Audience
                     ) -> list[tuple[bool, int, int | None, int | None, int | None, list[tuple[str, str]]]]:
    """The segment rows :func:`targeting.store_audience` writes, in its order, without ids."""
    out = []
    for exclude, segments in ((False, audience.segments), (True, audience.exclude)):
        for segment in segments:
            values = segment.dimension_values()
            out.append((exclude, len(values), segment.level_min, segment.level_max, segment.hired_within_days,
                        [(d, v) for d, vs in values.items() for v in sorted(vs)]))
    return out


def post_chunks(rng: np.random.Generator, arng: np.random.Generator, org: Org, n_posts: int, n_employees: int,
                n_groups: int, relrng: np.random.Generator | None = None, journey_posts: frozenset[int] = frozenset()
                ) -> Iterator[tuple[list[dict], list[dict], list[dict]]]:
    """(posts, segments, values) rows, chunk by chunk.

    :param relrng: the stream that turns some audiences relative (:func:`relative_audience`).
    :param journey_posts: indices of the posts that are journey steps: published long ago, for all
        staff, and seen only by the people a step released them to.
    """
    status = rng.choice(np.array(["published", "scheduled", "draft", "expired", "unpublished"]), size=n_posts,
                        p=[0.86, 0.04, 0.05, 0.03, 0.02])
    age_s = rng.integers(0, 90 * 86400, n_posts)
    expires = rng.random(n_posts)
    must_read = rng.random(n_posts) < 0.06
    topic = rng.integers(0, len(TOPICS), n_posts)
    paragraphs = rng.integers(3, 12, n_posts)
    authors = rng.integers(1, n_employees + 1, n_posts)
    segment_id = 0
    for start in range(0, n_posts, CHUNK):
        posts, segments, values = [], [], []
        for i in range(start, min(n_posts, start + CHUNK)):
            drawn = random_audience(arng, org, n_groups)
            if relrng is not None:
                drawn = relative_audience(relrng, org, drawn, n_employees)
            step = i in journey_posts
            audience = targeting.parse_audience({"all": True} if step else drawn)
            published = NOW - dt.timedelta(seconds=int(age_s[i]))
            st = str(status[i])
            publish_at = None
            if step:
                st, published = "published", NOW - dt.timedelta(days=JOURNEY_WINDOW_DAYS + 90)
            elif st == "draft":
                published = None
            elif st == "scheduled":
                # Most scheduled posts are still due; a few went live already (still "scheduled").
                publish_at = NOW + dt.timedelta(seconds=int(age_s[i]) // 10) if expires[i] < 0.8 else published
                published = publish_at
            expires_at = None
            if not step and (st == "expired" or (published is not None and expires[i] < 0.15)):
                expires_at = (published or NOW) + dt.timedelta(days=int(7 + 60 * expires[i]))
            created = (published or NOW) - dt.timedelta(hours=2)
            body = PARAGRAPH * int(paragraphs[i])
            posts.append({
                "id": i + 1, "title": f"Post {i + 1}: {TOPICS[int(topic[i])]} update", "summary": f"Summary of post {i + 1}.",
                "body_html": body, "body_text": body.replace("<p>", "").replace("</p>", "\n"),
                "topic": TOPICS[int(topic[i])], "must_read": bool(must_read[i]),
                "ack_deadline": published + dt.timedelta(days=14) if must_read[i] and published else None,
                "status": st, "audience": audience.to_json(), "all_staff": audience.all_staff,
                "publish_at": publish_at, "expires_at": expires_at, "published_at": published,
                "rating_style": "stars" if i % 4 else "thumbs", "author_pk": int(authors[i]), "version": 1,
                "journey_only": step,
                "created_at": created, "updated_at": created,
            })
            for exclude, n_dims, level_min, level_max, hired_within, pairs in compile_audience(audience):
                segment_id += 1
                segments.append({"id": segment_id, "post_id": i + 1, "exclude": exclude, "n_dimensions": n_dims,
                                 "level_min": level_min, "level_max": level_max, "hired_within_days": hired_within})
                values.extend({"segment_id": segment_id, "dimension": d, "value": v} for d, v in pairs)
        yield posts, segments, values


def journey_post_indices(rng: np.random.Generator, n_posts: int) -> list[int]:
    """Which generated posts are the journeys' steps, in :data:`JOURNEYS` order."""
    n_steps = sum(len(offsets) for _, offsets in JOURNEYS)
    return [int(i) for i in rng.choice(n_posts, size=min(n_steps, n_posts), replace=False)]


def journey_rows(rng: np.random.Generator, people: People, step_posts: list[int]) -> dict[Any, list[dict]]:
    """Journeys, their steps, enrolments and releases, as the scheduler would have left them at :data:`NOW`.

    Everyone hired in the last :data:`JOURNEY_WINDOW_DAYS` is on the hire journey; a
    :data:`MOVER_SHARE` of people moved department (or were promoted, from level 5) recently. Steps
    due by NOW are released (a :data:`SKIPPED_SHARE` skipped), later ones pending.
    """
    created = NOW - dt.timedelta(days=400)
    journeys, steps, enrolments, releases = [], [], [], []
    posts = iter(step_posts)
    n = len(people.active)
    today = NOW.date()
    moved_days = rng.integers(0, JOURNEY_WINDOW_DAYS, n)
    moved = rng.random(n) < MOVER_SHARE
    skip = rng.random(n * 8) < SKIPPED_SHARE
    for j, (trigger, offsets) in enumerate(JOURNEYS):
        journeys.append({"id": j + 1, "name": f"{trigger.replace('_', ' ').capitalize()} journey", "description": "",
                         "trigger": trigger, "status": "active", "created_by_pk": 1, "created_at": created,
                         "updated_at": created})
        journey_steps = []
        for k, offset in enumerate(offsets):
            post = next(posts, None)
            if post is None:
                break
            journey_steps.append((len(steps) + 1, offset))
            steps.append({"id": len(steps) + 1, "journey_id": j + 1, "key": f"step-{k + 1}", "offset_days": offset,
                          "post_id": post + 1, "skip_unless_read": None, "reminder_after_days": None})
        for i in range(n):
            if trigger == "hire":
                hired = people.hire_date[i]
                if hired is None or not 0 <= (today - hired).days < JOURNEY_WINDOW_DAYS:
                    continue
                event_date = hired
            elif trigger == "department_move" and moved[i] and people.active[i]:
                event_date = today - dt.timedelta(days=int(moved_days[i]))
            elif trigger == "manager_promotion" and moved[i] and people.level[i] >= 5 and i % 2:
                event_date = today - dt.timedelta(days=int(moved_days[i]) // 2)
            else:
                continue
            enrolment_id = len(enrolments) + 1
            enrolled = dt.datetime.combine(event_date, dt.time(0), tzinfo=dt.timezone.utc)
            enrolments.append({"id": enrolment_id, "journey_id": j + 1, "employee_pk": i + 1, "event_key": trigger,
                               "event_date": event_date, "enrolled_at": enrolled})
            for step_id, offset in journey_steps:
                due = enrolled + dt.timedelta(days=offset, hours=9)
                skipped = due <= NOW and bool(skip[len(releases) % len(skip)])
                status = "pending" if due > NOW else "skipped" if skipped else "released"
                releases.append({"id": len(releases) + 1, "enrolment_id": enrolment_id, "step_id": step_id,
                                 "employee_pk": i + 1, "post_id": steps[step_id - 1]["post_id"], "due_at": due,
                                 "status": status, "reason": "not_read" if skipped else "",
                                 "released_at": due if status == "released" else None, "reminded_at": None})
    return {Journey.__table__: journeys, JourneyStep.__table__: steps, JourneyEnrolment.__table__: enrolments,
            JourneyRelease.__table__: releases}


def post_state_chunks(rng: np.random.Generator, n_employees: int, n_posts: int,
                      live: np.ndarray, must_read: np.ndarray, published: list[dt.datetime | None]) -> Iterator[list[dict]]:
    """About three opened posts per person, recent posts more likely; half the must-reads acknowledged."""
    live_ids = np.flatnonzero(live)
    # Newer posts (higher published_at) are read more: weight by rank of recency.
    order = np.argsort([published[i] for i in live_ids])
    weights = np.empty(len(live_ids))
    weights[order] = np.linspace(0.2, 1.0, len(live_ids))
    weights /= weights.sum()
    for start in range(0, n_employees, CHUNK):
        stop = min(n_employees, start + CHUNK)
        counts = rng.poisson(3.0, stop - start)
        owners = np.repeat(np.arange(start, stop), counts)
        posts = live_ids[rng.choice(len(live_ids), size=len(owners), p=weights)]
        pairs = np.unique(np.stack([owners, posts], axis=1), axis=0)
        delays = rng.integers(60, 3 * 86400, len(pairs))
        acks = rng.random(len(pairs)) < 0.5
        rows = []
        for (e, p), delay, ack in zip(pairs, delays, acks):
            read_at = min(NOW, published[int(p)] + dt.timedelta(seconds=int(delay)))
            rows.append({"employee_pk": int(e) + 1, "post_id": int(p) + 1, "read_at": read_at,
                         "acknowledged_at": read_at if (ack and must_read[int(p)]) else None})
        yield rows


def event_chunks(rng: np.random.Generator, rrng: np.random.Generator, n_employees: int, live: np.ndarray,
                 published: list[dt.datetime | None], thumbs: np.ndarray) -> Iterator[tuple[list[dict], list[dict]]]:
    """(events, ratings) rows: feed impressions at a position, some opened with a dwell, some rated."""
    live_ids = np.flatnonzero(live)
    order = np.argsort([published[i] for i in live_ids])
    weights = np.empty(len(live_ids))
    weights[order] = np.linspace(0.2, 1.0, len(live_ids))
    weights /= weights.sum()
    # Posts differ in how well they land: a hidden appeal moves the open rate and the stars.
    appeal = rng.normal(0.0, 0.8, len(published))
    n_events = 0
    for start in range(0, n_employees, CHUNK):
        stop = min(n_employees, start + CHUNK)
        counts = rng.poisson(IMPRESSIONS_PER_PERSON, stop - start)
        owners = np.repeat(np.arange(start, stop), counts)
        posts = live_ids[rng.choice(len(live_ids), size=len(owners), p=weights)]
        pairs = np.unique(np.stack([owners, posts], axis=1), axis=0)
        n = len(pairs)
        position = rng.integers(0, 40, n)
        delay = rng.integers(60, 5 * 86400, n)
        opened = rng.random(n) < OPEN_SHARE * 2 / (1 + np.exp(-appeal[pairs[:, 1]]))
        dwell = np.exp(rng.normal(10.0 + 0.3 * appeal[pairs[:, 1]], 1.0, n)).astype(np.int64)
        rated = opened & (rrng.random(n) < RATED_SHARE)
        stars = np.clip(np.round(3.3 + appeal[pairs[:, 1]] + rrng.normal(0, 0.8, n)), 1, 5).astype(int)
        events, ratings = [], []
        for j, (e, p) in enumerate(pairs):
            seen = min(NOW, published[int(p)] + dt.timedelta(seconds=int(delay[j])))
            base = {"employee_pk": int(e) + 1, "post_id": int(p) + 1, "received_at": seen,
                    "local_hour": seen.hour, "local_weekday": seen.weekday(), "delivery_id": None,
                    "channel": None, "device": "desktop", "source": "client"}
            n_events += 1
            events.append(base | {"client_id": f"bench-{n_events}", "kind": "impression", "occurred_at": seen,
                                  "dwell_ms": None, "surface": "feed", "position": int(position[j])})
            if not opened[j]:
                continue
            n_events += 1
            events.append(base | {"client_id": f"bench-{n_events}", "kind": "read", "occurred_at": seen,
                                  "dwell_ms": int(dwell[j]), "surface": "post", "position": None})
            if rated[j]:
                style = {"stars": None, "thumb": "up" if stars[j] >= 3 else "down"} if thumbs[int(p)] else \
                    {"stars": int(stars[j]), "thumb": None}
                ratings.append({"employee_pk": int(e) + 1, "post_id": int(p) + 1, **style, "comment": None,
                                "signed": False, "created_at": seen, "updated_at": seen})
        yield events, ratings


# --------------------------------------------------------------------------------------------
# Filling a database
# --------------------------------------------------------------------------------------------


def _writer(conn: Any) -> Callable[[Any, list[dict[str, Any]]], None]:
    """Bulk-write rows into a table: COPY on PostgreSQL (about 5x faster), else Core executemany."""
    if conn.dialect.name != "postgresql":
        return lambda table, rows: conn.execute(insert(table), rows) if rows else None
    raw = conn.connection.driver_connection

    def copy(table: Any, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        columns = list(rows[0])
        with raw.cursor() as cursor, cursor.copy(
                f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as out:
            for row in rows:
                out.write_row([json.dumps(v) if isinstance(v, dict) else v for v in row.values()])
    return copy


def fill(engine: Engine, size: str, seed: int, progress: Callable[[str], None] | None = None) -> None:
    """Write the whole data set for (*size*, *seed*) into the migrated, empty database on *engine*."""
    say = progress or (lambda _msg: None)
    n_employees, n_posts = SIZES[size]
    n_groups = max(10, n_employees * N_GROUPS_PER_1K // 1000)
    rng = streams(seed)
    org = build_org(rng["org"])
    with engine.begin() as conn:
        write = _writer(conn)
        people, chunks = employee_rows(rng["employees"], org, n_employees, hire_dates(rng["hires"], n_employees))
        for rows in chunks:
            write(Employee.__table__, rows)
        say(f"{n_employees:,} employees")
        write(Group.__table__, group_rows(n_groups))
        n_members = 0
        for rows in membership_chunks(rng["memberships"], n_employees, n_groups):
            write(GroupMember.__table__, rows)
            n_members += len(rows)
        say(f"{n_groups} groups, {n_members:,} memberships")
        live = np.zeros(n_posts, dtype=bool)
        must_read = np.zeros(n_posts, dtype=bool)
        published: list[dt.datetime | None] = [None] * n_posts
        n_segments = n_values = 0
        step_posts = journey_post_indices(rng["journeys"], n_posts)
        for posts, segments, values in post_chunks(rng["posts"], rng["audiences"], org, n_posts, n_employees, n_groups,
                                                   rng["relative"], frozenset(step_posts)):
            write(Post.__table__, posts)
            write(AudienceSegment.__table__, segments)
            write(AudienceValue.__table__, values)
            n_segments += len(segments)
            n_values += len(values)
            for p in posts:
                i = p["id"] - 1
                published[i] = p["published_at"]
                must_read[i] = p["must_read"]
                # Journey steps reach only their releases: the random reads and impressions skip them.
                live[i] = (p["status"] in targeting.LIVE_STATUSES and p["published_at"] is not None
                           and p["published_at"] <= NOW and (p["expires_at"] is None or p["expires_at"] > NOW)
                           and not p["journey_only"])
        say(f"{n_posts:,} posts, {n_segments:,} segments, {n_values:,} audience values")
        journey_tables = journey_rows(rng["journeys"], people, step_posts)
        for table, rows in journey_tables.items():
            for start in range(0, len(rows), CHUNK):
                write(table, rows[start:start + CHUNK])
        say("journeys: " + ", ".join(f"{len(rows):,} {table.name}" for table, rows in journey_tables.items()))
        n_states = 0
        for rows in post_state_chunks(rng["post_state"], n_employees, n_posts, live, must_read, published):
            write(PostState.__table__, rows)
            n_states += len(rows)
        say(f"{n_states:,} read/acknowledge states")
        n_events = n_ratings = 0
        thumbs = np.arange(n_posts) % 4 == 0  # as post_chunks sets rating_style
        for events, rated in event_chunks(rng["events"], rng["ratings"], n_employees, live, published, thumbs):
            write(EngagementEvent.__table__, events)
            write(Rating.__table__, rated)
            n_events += len(events)
            n_ratings += len(rated)
        say(f"{n_events:,} engagement events, {n_ratings:,} ratings")
        conn.execute(insert(PostRatingStats.__table__).from_select(
            ["post_id", "n_stars", "sum_stars", "ups", "downs"],
            select(Rating.post_id, *ratings.RATING_COUNTS).group_by(Rating.post_id)))
        if engine.dialect.name == "postgresql":
            # Explicit ids were inserted: move the sequences past them, as a real database would be.
            for table in ("intranet_employee", "intranet_group", "intranet_post", "intranet_audience_segment",
                          "intranet_event", "intranet_rating", "intranet_journey", "intranet_journey_step",
                          "intranet_journey_enrolment", "intranet_journey_release"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"))
    # What the hourly ranking-refresh job keeps: every department's topic prior.
    with Session(engine) as session:
        ranking.refresh_job(session, NOW)
        session.commit()
    say("department priors computed")
    # Statistics and visibility map as autovacuum (PG) or `PRAGMA optimize` (SQLite) would leave
    # them in production; without VACUUM, PG never chooses an index-only scan on a fresh table.
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def validate_audiences(engine: Engine, *, sample: int = 200, seed: int = 0) -> dict[str, Any]:
    """Check stored audiences against the targeting module on a sample of posts.

    For every sampled post: ``parse_audience`` accepts the stored JSON and gives it back unchanged,
    and the compiled segments and values equal those derived from the parsed audience. For a
    quarter of the sample, ``targeting.store_audience`` itself is run (inside a transaction that is
    rolled back) and must write the same rows.
    """
    rng = np.random.default_rng(seed)
    problems: list[str] = []
    with Session(engine) as session:
        n_posts = session.exec(select(Post.id).order_by(Post.id.desc()).limit(1)).one()[0]
        ids = sorted(int(i) + 1 for i in rng.choice(n_posts, size=min(sample, n_posts), replace=False))

        def stored(post_id: int) -> list[tuple]:
            segs = session.exec(select(AudienceSegment).where(AudienceSegment.post_id == post_id)
                                .order_by(AudienceSegment.id)).scalars().all()
            out = []
            for s in segs:
                vals = session.exec(select(AudienceValue.dimension, AudienceValue.value)
                                    .where(AudienceValue.segment_id == s.id)).all()
                out.append((s.exclude, s.n_dimensions, s.level_min, s.level_max, s.hired_within_days,
                            sorted(tuple(v) for v in vals)))
            return sorted(out, key=repr)

        for n, post_id in enumerate(ids):
            post = session.get(Post, post_id)
            parsed = targeting.parse_audience(post.audience)
            if parsed.to_json() != post.audience:
                problems.append(f"post {post_id}: audience does not round-trip through parse_audience")
            if parsed.all_staff != post.all_staff:
                problems.append(f"post {post_id}: all_staff flag disagrees with the audience")
            expected = sorted(((e, k, lo, hi, hw, sorted(p)) for e, k, lo, hi, hw, p in compile_audience(parsed)),
                              key=repr)
            before = stored(post_id)
            if before != expected:
                problems.append(f"post {post_id}: compiled segments differ from the parsed audience")
            if n % 4 == 0:
                targeting.store_audience(session, post, parsed)
                if stored(post_id) != before:
                    problems.append(f"post {post_id}: targeting.store_audience writes different rows")
                session.rollback()  # the check must leave the data set as generated
        session.rollback()
    return {"checked": len(ids), "problems": problems}


# --------------------------------------------------------------------------------------------
# Datasets: cached SQLite files, throw-away PostgreSQL schemas
# --------------------------------------------------------------------------------------------


def schema_fingerprint() -> str:
    """The migration head plus a hash of the migrated schema and of this generator (the cache key).

    The schema is read back from an in-memory SQLite database migrated to head, so edits to
    migrations that change nothing (comments, placeholder revisions) keep the cache valid.
    """
    engine = make_engine("sqlite://")
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            ddl = conn.execute(text("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE "
                                    "'%alembic%' ORDER BY type, name")).all()
    finally:
        engine.dispose()
    digest = hashlib.sha256(repr(ddl).encode())
    digest.update(Path(__file__).read_bytes())
    return f"{'+'.join(migrate.heads())}-v{GENERATOR_VERSION}-{digest.hexdigest()[:10]}"


def _say(message: str) -> None:
    print(f"  [datagen] {message}", file=sys.stderr, flush=True)


def sqlite_dataset(size: str, seed: int, *, cache_dir: Path = CACHE_DIR) -> Dataset:
    """A generated SQLite database for (*size*, *seed*), from the cache when possible."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"beacon-{size}-seed{seed}-{schema_fingerprint()}.sqlite"
    generated = None
    if not path.exists():
        for stale in cache_dir.glob(f"beacon-{size}-seed{seed}-*.sqlite*"):
            stale.unlink()
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        _say(f"generating {path.name} (cached for later runs)")
        started = time.perf_counter()
        engine = make_engine(f"sqlite:///{tmp}")
        try:
            migrate.upgrade(engine)
            fill(engine, size, seed, _say)
            validation = validate_audiences(engine)
            if validation["problems"]:
                raise RuntimeError("generated audiences disagree with intranet.targeting: "
                                   + "; ".join(validation["problems"][:5]))
            with engine.begin() as conn:
                conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        finally:
            engine.dispose()
        for suffix in ("-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
        tmp.rename(path)
        generated = time.perf_counter() - started
        _say(f"generated in {generated:.1f} s ({validation['checked']} audiences validated)")
    n_employees, n_posts = SIZES[size]
    return Dataset(engine=make_engine(f"sqlite:///{path}"), dialect="sqlite", size=size, seed=seed,
                   n_employees=n_employees, n_posts=n_posts, now=NOW, location=str(path), generated_s=generated)


def postgres_available(url: str = PG_URL) -> str | None:
    """None when PostgreSQL at *url* answers, else the reason it does not."""
    engine = make_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "skip PostgreSQL"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    finally:
        engine.dispose()


@contextlib.contextmanager
def postgres_dataset(size: str, seed: int, *, url: str = PG_URL) -> Iterator[Dataset]:
    """A generated PostgreSQL schema of its own for (*size*, *seed*), dropped on exit."""
    schema = f"beacon_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        _say(f"generating schema {schema} on PostgreSQL (dropped afterwards)")
        started = time.perf_counter()
        migrate.upgrade(engine)
        fill(engine, size, seed, _say)
        validation = validate_audiences(engine, sample=40)
        if validation["problems"]:
            raise RuntimeError("generated audiences disagree with intranet.targeting: "
                               + "; ".join(validation["problems"][:5]))
        generated = time.perf_counter() - started
        _say(f"generated in {generated:.1f} s")
        n_employees, n_posts = SIZES[size]
        yield Dataset(engine=engine, dialect="postgresql", size=size, seed=seed, n_employees=n_employees,
                      n_posts=n_posts, now=NOW, location=f"{url.rsplit('@', 1)[-1]} schema {schema}",
                      generated_s=generated)
    finally:
        engine.dispose()
        if os.environ.get("BENCH_KEEP_SCHEMA"):
            # Kept for a rerun with ``--database-url ...?options=-csearch_path%3D<schema>`` (hour-long loads).
            _say(f"schema {schema} kept (BENCH_KEEP_SCHEMA); drop it when done")
        else:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@contextlib.contextmanager
def writable(ds: Dataset) -> Iterator[Dataset]:
    """*ds* for a benchmark that writes: a SQLite dataset is switched to a temporary copy of its
    cached file, so the cache stays as other benchmarks expect it; a PostgreSQL schema is the
    run's own already."""
    if ds.dialect != "sqlite":
        yield ds
        return
    with tempfile.TemporaryDirectory(prefix="beacon-bench-") as tmp:
        ds.engine.dispose()
        path = Path(tmp) / "writable.sqlite"
        shutil.copy(ds.location, path)
        ds.engine = make_engine(f"sqlite:///{path}")
        try:
            yield ds
        finally:
            ds.engine.dispose()


def run_on_datasets(db: str, size: str, seed: int, run: Callable[[Dataset], None],
                    on_skip: Callable[[str], None]) -> None:
    """Call *run* on the SQLite and/or PostgreSQL dataset (``db`` is sqlite, pg or both).

    PostgreSQL is skipped, with *on_skip(reason)*, when it does not answer; each dataset is
    released (engine disposed, schema dropped) after its run.
    """
    if db in ("sqlite", "both"):
        ds = sqlite_dataset(size, seed)
        try:
            run(ds)
        finally:
            ds.engine.dispose()
    if db in ("pg", "both"):
        reason = postgres_available()
        if reason:
            on_skip(reason)
        else:
            with postgres_dataset(size, seed) as ds:
                run(ds)
