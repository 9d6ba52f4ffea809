"""What one request costs the server, by endpoint: ``python -m bench.request_cost [--n 200] [--profile rating]``.

In-process (Flask's test client over ``https://``, so cookies are ``Secure`` and CSRF checks the
referrer as in production), on the load test's PostgreSQL organisation (``bench_load``, see
:mod:`bench.load`; ``--url`` to change), with the rate limits counting in Redis and the access
log written as JSON (to ``/dev/null``), as gunicorn runs the app. For each kind of request of the
load mix that is not the feed (ratings, audience previews, a post's page, ``/api/v1/me``, an
event batch, and the feed for reference) it reports the serving thread's CPU per request (a WSGI
wrapper's ``thread_time``: the test client's own work is left out), the wall time, and the SQL
statements and Redis commands sent per request. ``--profile KIND`` adds a cProfile of that kind.

CPU-ms are what bounds throughput on a 2-core box: at 100 mixed requests/s the whole mix must
average under ~10 CPU-ms per request across both cores, the database's own work included.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import pstats
import random
import re
import secrets
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.pool import NullPool

from bench.load import DEFAULT_URL, DEPARTMENTS, people

CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
BASE = "https://127.0.0.1"
REDIS_URL = os.environ.get("INTRANET_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class ServerClock:
    """WSGI middleware adding up the serving thread's CPU and wall time inside the app."""

    def __init__(self, app: Any) -> None:
        self.wrapped, self.cpu, self.wall = app.wsgi_app, 0.0, 0.0
        app.wsgi_app = self

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            return list(self.wrapped(environ, start_response))
        finally:
            self.cpu += time.thread_time() - cpu
            self.wall += time.perf_counter() - wall


class Counter:
    """SQL statements sent by the app's engine, and Redis commands sent by any redis-py client."""

    def __init__(self, engine: Any) -> None:
        self.sql = 0
        self.redis = 0
        #: The statements of the request being traced, when tracing.
        self.trace: list[str] | None = None
        event.listen(engine, "before_cursor_execute", self._statement)
        import redis.connection

        original = redis.connection.AbstractConnection.send_packed_command

        def counted(conn: Any, command: Any, check_health: bool = True) -> Any:
            self.redis += 1  # one write to the socket: a command, or a whole pipeline
            return original(conn, command, check_health)

        redis.connection.AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.sql += 1
        if self.trace is not None:
            self.trace.append(" ".join(statement.split())[:160])


def database_cpu(engine: Any) -> float:
    """CPU seconds used so far by the PostgreSQL backends serving *engine*'s database (same machine only)."""
    with engine.connect() as conn:
        pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND pid <> pg_backend_pid()")).scalars().all()
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def build(url: str) -> Any:
    from intranet import create_app
    from intranet.web import request_log

    app = create_app({
        "INTRANET_DATABASE_URL": url, "INTRANET_ENV": "production", "INTRANET_DEV_LOGIN": True,
        "INTRANET_SECRET_KEY": secrets.token_hex(32), "INTRANET_RATELIMIT_STORAGE_URI": REDIS_URL,
        "INTRANET_RATELIMIT_KEY_PREFIX": f"bench-cost-{uuid.uuid4().hex[:8]}",
        "INTRANET_RATELIMIT_SIGN_IN": "100000/minute", "INTRANET_RATELIMIT_EVENTS": "100000/minute",
        "INTRANET_RATELIMIT_AUDIENCE_PREVIEW": "100000/minute", "INTRANET_RATINGS_PER_MINUTE": 100000,
    })
    # As under gunicorn: the root logger writes JSON lines (here to /dev/null), one access line per request.
    root = logging.getLogger()
    root.handlers[:] = [request_log.handler("json", open(os.devnull, "w"))]  # noqa: SIM115
    root.setLevel(logging.INFO)
    return app


class Person:
    def __init__(self, app: Any, email: str) -> None:
        self.client = app.test_client()
        page = self.client.get("/auth/dev-login", base_url=BASE).get_data(as_text=True)
        token = CSRF.search(page).group(1)  # type: ignore[union-attr]
        r = self.client.post("/auth/dev-login", base_url=BASE, data={"email": email, "csrf_token": token},
                             headers={"Referer": BASE + "/"})
        assert r.status_code in (302, 303), (email, r.status_code)
        self.csrf = CSRF.search(self.client.get("/", base_url=BASE).get_data(as_text=True)).group(1)  # type: ignore[union-attr]
        items = self.client.get("/api/v1/feed", base_url=BASE).get_json()["items"]
        self.posts = [(i["id"], "thumbs" if (i["id"] - 1) % 4 == 0 else "stars") for i in items]

    def get(self, path: str) -> int:
        return int(self.client.get(path, base_url=BASE).status_code)

    def send(self, method: str, path: str, payload: Any) -> int:
        return int(self.client.open(path, method=method, base_url=BASE, data=json.dumps(payload),
                                    content_type="application/json",
                                    headers={"X-CSRFToken": self.csrf, "Referer": BASE + "/"}).status_code)


def requests(rng: random.Random) -> dict[str, Callable[[Person], int]]:
    def events(p: Person) -> int:
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        return p.send("POST", "/api/v1/events", {"events": [
            {"id": uuid.uuid4().hex, "kind": "impression", "post_id": rng.choice(p.posts)[0], "occurred_at": now,
             "surface": "feed", "position": i} for i in range(10)]})

    def rating(p: Person) -> int:
        post_id, style = rng.choice(p.posts)
        body = {"stars": rng.randint(1, 5)} if style == "stars" else {"thumb": rng.choice(("up", "down"))}
        return p.send("PUT", f"/api/v1/posts/{post_id}/rating", body)

    def preview(p: Person) -> int:
        return p.send("POST", "/api/v1/audiences/preview",
                      {"audience": {"segments": [{"departments": rng.sample(DEPARTMENTS, 2)}]}})

    return {
        "me": lambda p: p.get("/api/v1/me"),
        "post_page": lambda p: p.get(f"/posts/{rng.choice(p.posts)[0]}"),
        "rating": rating,
        "events": events,
        "preview": preview,
        "feed_api": lambda p: p.get("/api/v1/feed"),
        "feed": lambda p: p.get("/"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--n", type=int, default=200, help="requests per kind")
    parser.add_argument("--only", default="", help="comma-separated kinds")
    parser.add_argument("--profile", default="", help="a kind to cProfile (top 30 by cumulative time)")
    parser.add_argument("--people", type=int, default=8)
    parser.add_argument("--sort", default="cumulative", help="the profile's order (cumulative, tottime)")
    parser.add_argument("--sql", action="store_true", help="print the SQL of one request of each kind")
    args = parser.parse_args(argv)

    app = build(args.url)
    engine = app.extensions["intranet"].engine
    from intranet.db import make_engine

    probe = make_engine(args.url, poolclass=NullPool)  # its own connection, never one of the app's
    readers, authors, _ = people(args.url, args.people, 42)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    crowd = [Person(app, e) for e in readers] + [Person(app, e) for e in authors[:2]]
    writers = crowd[-2:]
    counter = Counter(engine)
    clock = ServerClock(app)
    rng = random.Random(7)
    kinds = requests(rng)
    chosen = [k for k in (args.only.split(",") if args.only else kinds)]
    load1 = os.getloadavg()[0]
    print(f"{'kind':10} {'n':>5} {'CPU ms/req':>11} {'wall ms p50':>12} {'DB CPU ms':>9} {'SQL/req':>8} {'Redis/req':>10}  statuses")
    for kind in chosen:
        call = kinds[kind]
        pool = writers if kind == "preview" else crowd
        for p in pool[:2]:
            call(p)  # warm
        walls, statuses = [], {}
        db0 = database_cpu(probe)
        cpu0, sql0, redis0 = clock.cpu, counter.sql, counter.redis
        # The serving thread's CPU, not wall time: waiting for PostgreSQL is not what bounds throughput.
        profiler = cProfile.Profile(time.thread_time) if kind == args.profile else None
        for i in range(args.n):
            wall0 = clock.wall
            if profiler:
                profiler.enable()
            status = call(pool[i % len(pool)])
            if profiler:
                profiler.disable()
            walls.append(clock.wall - wall0)
            statuses[status] = statuses.get(status, 0) + 1
        n = args.n
        db_ms = 1000 * (database_cpu(probe) - db0) / n
        if args.sql:
            counter.trace = []
            call(pool[0])
            print("\n".join(f"    {s}" for s in counter.trace))
            counter.trace = None
        print(f"{kind:10} {n:>5} {1000 * (clock.cpu - cpu0) / n:>11.2f} {1000 * statistics.median(walls):>12.2f} {db_ms:>9.2f} "
              f"{(counter.sql - sql0) / n:>8.2f} {(counter.redis - redis0) / n:>10.2f}  {statuses}", flush=True)
        if profiler:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(45)
            print(out.getvalue())
    print(f"load average {load1:.1f} -> {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
