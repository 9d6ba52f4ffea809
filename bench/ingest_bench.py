"""How fast does ``POST /api/v1/events`` ingest? (goal: >= 0.05x raw executemany, >= 20,000 events/s on SQLite)

Posts batches of 50 events through the whole HTTP stack (Flask test client: session cookie,
CSRF check, validation, the targeting query for the posts a batch mentions, one multi-row
``INSERT ... ON CONFLICT DO NOTHING RETURNING``, commit) and compares the rate with a raw
``executemany`` of the very same rows into the very same table (one transaction, no checks).
Run: ``python -m bench.ingest_bench [--events 100000] [--batch 50] [--postgres]``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import secrets
import tempfile
import time
import uuid

from sqlalchemy import delete, insert, text
from sqlmodel import Session, select

from intranet import create_app, migrate, targeting
from intranet.db import make_engine
from intranet.engagement.events import local_hour_weekday, zone_of
from intranet.models import EngagementEvent, Employee, Post

KINDS = ("impression", "impression", "impression", "open", "read", "session")
CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
PG_URL = os.environ.get("INTRANET_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _setup(url: str, n_posts: int) -> tuple[object, list[int]]:
    app = create_app({"INTRANET_DATABASE_URL": url, "INTRANET_ENV": "development", "INTRANET_DEV_LOGIN": True,
                      "INTRANET_SECRET_KEY": secrets.token_hex(32), "INTRANET_EVENTS_MAX_BATCH": 1000})
    engine = app.extensions["intranet"].engine
    migrate.upgrade(engine)
    now = dt.datetime.now(dt.timezone.utc)
    with Session(engine) as session:
        person = Employee(employee_id="B0001", email="bench@example.com", display_name="Bench", department="Sales",
                          region="EMEA", country="DE", level=3, timezone="Europe/Berlin", created_at=now, updated_at=now)
        session.add(person)
        post_ids = []
        for i in range(n_posts):
            post = Post(title=f"Post {i}", status="published", published_at=now - dt.timedelta(hours=i + 1),
                        publish_at=now - dt.timedelta(hours=i + 1))
            session.add(post)
            session.flush()
            audience = {"all": True} if i % 2 else {"segments": [{"departments": ["Sales"]}]}
            targeting.store_audience(session, post, targeting.parse_audience(audience))
            post_ids.append(post.id)
        session.commit()
    return app, post_ids


def _events(n: int, post_ids: list[int], prefix: str) -> list[dict]:
    now = dt.datetime.now(dt.timezone.utc)
    out = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        out.append({"id": f"{prefix}{i}", "post_id": None if kind == "session" else post_ids[i % len(post_ids)],
                    "kind": kind, "occurred_at": (now - dt.timedelta(seconds=i % 3600)).isoformat(),
                    "dwell_ms": 1500 if kind == "read" else None, "surface": "feed", "position": i % 20})
    return out


def run(url: str, n: int, batch: int) -> dict[str, float]:
    app, post_ids = _setup(url, 50)
    engine = app.extensions["intranet"].engine
    client = app.test_client()
    page = client.get("/auth/dev-login").get_data(as_text=True)
    token = CSRF.search(page).group(1)
    client.post("/auth/dev-login", data={"email": "bench@example.com", "csrf_token": token})
    token = CSRF.search(client.get("/").get_data(as_text=True)).group(1)
    headers = {"X-CSRFToken": token, "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126"}

    events = _events(n, post_ids, "api-")
    start = time.perf_counter()
    accepted = 0
    for i in range(0, n, batch):
        r = client.post("/api/v1/events", json={"events": events[i:i + batch]}, headers=headers)
        assert r.status_code == 200, r.get_data(as_text=True)
        accepted += r.get_json()["accepted"]
    api_seconds = time.perf_counter() - start
    assert accepted == n, f"accepted {accepted} of {n}"

    # The same rows, raw: one executemany in one transaction, straight into the same table.
    zone = zone_of("Europe/Berlin")
    with Session(engine) as session:
        employee_pk = session.exec(select(Employee.id)).first()
    raw_rows = []
    received = dt.datetime.now(dt.timezone.utc)
    for e in _events(n, post_ids, "raw-"):
        occurred = dt.datetime.fromisoformat(e["occurred_at"])
        hour, weekday = local_hour_weekday(occurred, zone)
        raw_rows.append({"employee_pk": employee_pk, "client_id": e["id"], "kind": e["kind"], "post_id": e["post_id"],
                         "occurred_at": occurred, "received_at": received, "local_hour": hour, "local_weekday": weekday,
                         "dwell_ms": e["dwell_ms"], "delivery_id": None, "channel": None, "surface": e["surface"],
                         "position": e["position"], "device": "desktop", "source": "client"})
    start = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(insert(EngagementEvent.__table__), raw_rows)  # type: ignore[attr-defined]
    raw_seconds = time.perf_counter() - start
    with engine.begin() as conn:
        conn.execute(delete(EngagementEvent.__table__).where(text("client_id LIKE 'raw-%'")))  # type: ignore[attr-defined]
    return {"events": n, "batch": batch, "api_per_s": n / api_seconds, "raw_per_s": n / raw_seconds,
            "ratio": raw_seconds / api_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--postgres", action="store_true", help="also run on PostgreSQL (a throw-away schema)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="beacon-ingest-") as tmp:
        results = {"sqlite": run(f"sqlite:///{tmp}/bench.db", args.events, args.batch)}
    if args.postgres:
        schema = f"beacon_bench_{uuid.uuid4().hex[:8]}"
        admin = make_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            sep = "&" if "?" in PG_URL else "?"
            results["postgresql"] = run(f"{PG_URL}{sep}options=-csearch_path%3D{schema}", args.events, args.batch)
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    print(f"{'backend':<11} {'events':>8} {'batch':>5} {'API ev/s':>10} {'raw ev/s':>10} {'ratio':>7}  goal")
    for name, r in results.items():
        goal = r["ratio"] >= 0.05 and (name != "sqlite" or r["api_per_s"] >= 20_000)
        print(f"{name:<11} {r['events']:>8} {r['batch']:>5} {r['api_per_s']:>10,.0f} {r['raw_per_s']:>10,.0f} "
              f"{r['ratio']:>6.3f}x  {'met' if goal else 'NOT met'}")


if __name__ == "__main__":
    main()
