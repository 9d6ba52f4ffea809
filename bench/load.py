"""The production shape under load: ``python -m bench load [--duration 600] [--rate 100]``.

Two gunicorn instances (``config/gunicorn.conf.py``: 2 gthread workers x 4 threads each) on one
PostgreSQL database holding a 100,000-employee organisation (``bench.datagen`` size M, kept in its
own database ``bench_load`` and reused when already filled), rate limits in Redis. A bounded
Python load generator on loopback, pinned to another core than the servers where the machine has
one (``taskset``; PostgreSQL and Redis float), drives two phases:

1. **mixed, open loop**: requests start on a fixed schedule at ``--rate`` per second (so a slow
   answer does not slow the arrivals, and latency is measured from the scheduled start: no
   coordinated omission), served by ``--connections`` keep-alive connections alternating between
   the instances, for ``--duration`` seconds. Mix (share of requests): feed page 62 %, feed API 10 %,
   reading-event batches (10 events) 15 %, ratings 8 %, audience previews 4 %, the organisation
   dashboard 1 %. Each request has a 5 s timeout (a timeout counts as a failed request).
2. **feed, closed loop**: ``--feed-connections`` (16) connections reading the feed page back to back
   for ``--feed-duration`` seconds.

Reported: throughput, p50/p95/p99 per kind and overall, errors (5xx and failed requests; 4xx
separately), and the servers' memory (RSS of masters and workers, sampled every 5 s; growth =
last minute against the first minute after warm-up; workers are not recycled during the run,
``--max-requests 0``). Goals (issue 16): 100 mixed requests/s for 10 minutes with p95 <= 250 ms,
p99 <= 1 s and no 5xx; feed p95 < 100 ms at 16 connections; <= 5 % memory growth. The figures
go to ``bench-results/load-<time>.json``.

Everything started is stopped by PID; the generator itself is bounded by the duration and by a
request cap (rate x duration x 1.1).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import http.client
import json
import os
import queue
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import numpy as np

from bench.datagen import DEPARTMENT_WORDS, N_DEPARTMENTS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results"
DEFAULT_URL = os.environ.get("BENCH_LOAD_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/bench_load")
MIX: tuple[tuple[str, float], ...] = (("feed", 0.62), ("feed_api", 0.10), ("events", 0.15), ("rating", 0.08),
                                     ("preview", 0.04), ("dashboard", 0.01))
TIMEOUT_S = 5.0
#: The departments bench.datagen creates (audience previews pick two).
DEPARTMENTS = [f"{DEPARTMENT_WORDS[i % len(DEPARTMENT_WORDS)]} {i + 1:03d}" for i in range(N_DEPARTMENTS)]
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


# ------------------------------------------------------------------------------------------------
# The database
# ------------------------------------------------------------------------------------------------


def prepare_database(url: str, *, seed: int = 42) -> dict[str, Any]:
    """Make sure the database at *url* holds the size-M organisation (created, migrated and filled once)."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from bench import datagen
    from intranet import migrate
    from intranet.db import make_engine

    target = make_url(url)
    admin = make_engine(target.set(database="postgres").render_as_string(hide_password=False))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}).first() is None:
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    engine = make_engine(url)
    started = time.perf_counter()
    migrate.upgrade(engine)
    with engine.connect() as conn:
        employees = conn.execute(text("SELECT count(*) FROM intranet_employee")).scalar_one()
    generated = None
    if employees == 0:
        print("  [load] generating the 100,000-employee organisation (a few minutes, once)", file=sys.stderr)
        datagen.fill(engine, "M", seed, progress=lambda m: print(f"  [load] {m}", file=sys.stderr))
        generated = round(time.perf_counter() - started, 1)
    with engine.connect() as conn:
        employees = conn.execute(text("SELECT count(*) FROM intranet_employee")).scalar_one()
        posts = conn.execute(text("SELECT count(*) FROM intranet_post")).scalar_one()
        events = conn.execute(text("SELECT count(*) FROM intranet_event")).scalar_one()
        version = conn.execute(text("SHOW server_version")).scalar_one()
    engine.dispose()
    return {"employees": employees, "posts": posts, "events_before": events, "generated_s": generated,
            "postgresql": version}


# ------------------------------------------------------------------------------------------------
# The servers
# ------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


@dataclasses.dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def pids(self) -> list[int]:
        """The master and its workers."""
        found = [self.process.pid]
        try:
            for task in Path(f"/proc/{self.process.pid}/task").iterdir():
                children = (task / "children").read_text().split()
                found.extend(int(c) for c in children)
        except OSError:
            pass
        return found

    def cpu_s(self) -> float:
        """User + system CPU seconds of the master and its workers so far (/proc/<pid>/stat)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the line)
            except (OSError, IndexError, ValueError):
                continue
        return total / tick

    def rss_mb(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total / 1024


def server_environment(url: str, *, key: str, redis_url: str, prefix: str, **settings: str) -> dict[str, str]:
    """The environment of a production-shaped Beacon process (gunicorn, or a ``flask intranet`` command
    beside it) on *url*: this process's own ``INTRANET_*`` variables left out, rate limits in Redis."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTRANET_")}
    env.update({
        "INTRANET_ENV": "production", "INTRANET_SECRET_KEY": key, "INTRANET_DATABASE_URL": url,
        # The load generator signs its people in through the development sign-in.
        "INTRANET_DEV_LOGIN": "true", "INTRANET_LOG_FORMAT": "json",
        "INTRANET_RATELIMIT_STORAGE_URI": redis_url, "INTRANET_RATELIMIT_KEY_PREFIX": prefix,
        # Hundreds of people sign in from one address in the first seconds.
        "INTRANET_RATELIMIT_SIGN_IN": "100000/minute",
    })
    env.update(settings)
    return env


def start_servers(url: str, *, instances: int, workers: int, threads: int, cpus: list[int] | None,
                  redis_url: str, log_dir: Path, key: str | None = None,
                  settings: dict[str, str] | None = None) -> list[Server]:
    """Start *instances* gunicorn instances with the production config; wait for /readyz on each.

    :param settings: more ``INTRANET_*`` variables for every instance (e.g. the event buffer's).
    """
    key = key or secrets.token_hex(32)
    prefix = f"bench-load-{uuid.uuid4().hex[:8]}"
    servers = []
    for i in range(instances):
        port = _free_port()
        env = server_environment(url, key=key, redis_url=redis_url, prefix=prefix, **{
            "INTRANET_WEB_BIND": f"127.0.0.1:{port}",
            "INTRANET_WEB_WORKERS": str(workers), "INTRANET_WEB_THREADS": str(threads),
            "INTRANET_DB_POOL_SIZE": str(threads), "INTRANET_DB_MAX_OVERFLOW": "2",
            "INTRANET_INSTANCES": str(instances), **(settings or {})})
        command = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "--max-requests", "0", "app:app"]
        if cpus:
            command = ["taskset", "-c", ",".join(map(str, cpus)), *command]
        log = log_dir / f"gunicorn-{i}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        servers.append(Server(port, process, log))
    for server in servers:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.process.poll() is not None:
                stop_servers(servers)
                raise RuntimeError(f"gunicorn on {server.port} did not become ready; see {server.log}")
            time.sleep(0.3)
    return servers


def stop_servers(servers: list[Server]) -> None:
    for server in servers:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
    for server in servers:
        try:
            server.process.wait(30)
        except subprocess.TimeoutExpired:
            server.process.kill()


# ------------------------------------------------------------------------------------------------
# Virtual people
# ------------------------------------------------------------------------------------------------


class Browser:
    """One person's keep-alive connection to one instance, with their cookies and CSRF token."""

    def __init__(self, port: int, email: str) -> None:
        self.port = port
        self.email = email
        self.cookies: dict[str, str] = {}
        self.csrf = ""
        self.post_ids: list[tuple[int, str]] = []
        self.timeout = TIMEOUT_S
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=self.timeout)

    def _set_timeout(self, seconds: float) -> None:
        self.timeout = self.conn.timeout = seconds
        if self.conn.sock is not None:
            self.conn.sock.settimeout(seconds)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        sent = {"Host": f"127.0.0.1:{self.port}", "Origin": f"http://127.0.0.1:{self.port}",
                "Referer": f"http://127.0.0.1:{self.port}/", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):  # a keep-alive connection the server closed is reopened once
            try:
                self.conn.request(method, path, body=body, headers=sent)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._reconnect()
                if attempt == 2:
                    raise
            except (OSError, http.client.HTTPException):
                self._reconnect()  # a timed-out connection is in an unknown state: start afresh
                raise
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie()
            cookie.load(header)
            for name, morsel in cookie.items():
                self.cookies[name] = morsel.value
        return response.status, data

    def _reconnect(self) -> None:
        self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)

    def sign_in(self) -> None:
        """Sign in through the development sign-in (generous timeouts: this is set-up, not measured)."""
        self._set_timeout(60)
        try:
            self._sign_in()
        finally:
            self._set_timeout(TIMEOUT_S)

    def _sign_in(self) -> None:
        status, page = self.request("GET", "/auth/dev-login")
        token = CSRF_META.search(page.decode())
        if status != 200 or token is None:
            raise RuntimeError(f"dev sign-in page answered {status}")
        body = f"email={self.email}&csrf_token={token.group(1)}".encode()
        status, _ = self.request("POST", "/auth/dev-login", body,
                                 {"Content-Type": "application/x-www-form-urlencoded"})
        if status not in (302, 303):
            raise RuntimeError(f"dev sign-in of {self.email} answered {status}")
        status, page = self.request("GET", "/")
        token = CSRF_META.search(page.decode())
        if status != 200 or token is None:
            raise RuntimeError(f"feed after sign-in answered {status}")
        self.csrf = token.group(1)
        status, data = self.request("GET", "/api/v1/feed")
        if status == 200:
            # bench.datagen gives every fourth post thumbs (the feed API does not say which).
            self.post_ids = [(item["id"], "thumbs" if (item["id"] - 1) % 4 == 0 else "stars")
                             for item in json.loads(data)["items"]]

    def json(self, method: str, path: str, payload: Any) -> tuple[int, bytes]:
        return self.request(method, path, json.dumps(payload).encode(),
                            {"Content-Type": "application/json", "X-CSRFToken": self.csrf})


def people(url: str, n: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    """(readers, authors, comms managers): emails of active people, drawn with *seed*."""
    from sqlalchemy import text

    from intranet.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        readers = [r[0] for r in conn.execute(text(
            "SELECT email FROM intranet_employee WHERE active AND email IS NOT NULL AND NOT is_comms "
            "AND NOT is_contributor ORDER BY md5(email || :s) LIMIT :n"), {"s": str(seed), "n": n})]
        authors = [r[0] for r in conn.execute(text(
            "SELECT email FROM intranet_employee WHERE active AND is_contributor ORDER BY id LIMIT 8"))]
        comms = [r[0] for r in conn.execute(text(
            "SELECT email FROM intranet_employee WHERE active AND is_comms ORDER BY id LIMIT 4"))]
    engine.dispose()
    return readers, authors, comms


# ------------------------------------------------------------------------------------------------
# The load
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Sample:
    kind: str
    scheduled: float
    latency_ms: float
    status: int  # 0: no answer (timeout, connection error); -1: not sent (the run was over, backlog left)


def _one(kind: str, browser: Browser, rng: random.Random) -> int:
    if kind == "feed":
        return browser.request("GET", "/")[0]
    if kind == "feed_api":
        return browser.request("GET", "/api/v1/feed")[0]
    if kind == "events":
        now = dt.datetime.now(dt.timezone.utc).isoformat()
        ids = [pid for pid, _ in browser.post_ids] or [None]
        events = [{"id": uuid.uuid4().hex, "kind": "impression", "post_id": rng.choice(ids), "occurred_at": now,
                   "surface": "feed", "position": i} if ids[0] is not None else
                  {"id": uuid.uuid4().hex, "kind": "session", "post_id": None, "occurred_at": now}
                  for i in range(10)]
        return browser.json("POST", "/api/v1/events", {"events": events})[0]
    if kind == "rating":
        if not browser.post_ids:
            return browser.request("GET", "/")[0]
        post_id, style = rng.choice(browser.post_ids)
        body = {"stars": rng.randint(1, 5)} if style == "stars" else {"thumb": rng.choice(("up", "down"))}
        return browser.json("PUT", f"/api/v1/posts/{post_id}/rating", body)[0]
    if kind == "preview":
        departments = rng.sample(DEPARTMENTS, 2)
        return browser.json("POST", "/api/v1/audiences/preview",
                            {"audience": {"segments": [{"departments": departments}]}})[0]
    if kind == "dashboard":
        return browser.request("GET", "/analytics")[0]
    raise ValueError(kind)


def run_mixed(pools: dict[str, list[list[Browser]]], *, rate: float, duration: float, connections: int,
              seed: int) -> list[Sample]:
    """Open loop: a request is due every 1/rate s; *connections* threads take them in order."""
    rng = random.Random(seed)
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    due: queue.Queue[tuple[float, str] | None] = queue.Queue()
    samples: list[Sample] = []
    lock = threading.Lock()
    start = time.perf_counter() + 0.5
    cap = int(rate * duration * 1.1) + 1

    def producer() -> None:
        for i in range(cap):
            at = start + i / rate
            if at - start > duration:
                break
            due.put((at, rng.choices(kinds, weights)[0]))
        for _ in range(connections):
            due.put(None)

    def worker(index: int) -> None:
        local = random.Random(seed * 1000 + index)
        mine = {kind: pools[kind][index % len(pools[kind])] for kind in pools}
        turn = 0
        while True:
            item = due.get()
            if item is None:
                return
            at, kind = item
            wait = at - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            elif time.perf_counter() > start + duration + TIMEOUT_S:
                # Bounded: past the run (and one timeout of grace), a backlog is not sent but counted
                # as failed, so an overloaded server ends the run on time instead of minutes later.
                with lock:
                    samples.append(Sample(kind, at - start, (time.perf_counter() - at) * 1000, -1))
                continue
            group = mine["authors" if kind == "preview" else "comms" if kind == "dashboard" else "readers"]
            browser = group[turn % len(group)]
            turn += 1
            try:
                status = _one(kind, browser, local)
            except (OSError, http.client.HTTPException):
                status = 0
            latency = (time.perf_counter() - at) * 1000
            with lock:
                samples.append(Sample(kind, at - start, latency, status))

    producer_thread = threading.Thread(target=producer, daemon=True)
    producer_thread.start()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + 60)
    return samples


def run_feed(pool: list[list[Browser]], *, duration: float, connections: int) -> list[Sample]:
    """Closed loop: *connections* threads read the feed page back to back."""
    samples: list[Sample] = []
    lock = threading.Lock()
    start = time.perf_counter()
    stop = start + duration

    def worker(index: int) -> None:
        group = pool[index % len(pool)]
        turn = 0
        while time.perf_counter() < stop:
            browser = group[turn % len(group)]
            turn += 1
            began = time.perf_counter()
            try:
                status = browser.request("GET", "/")[0]
            except (OSError, http.client.HTTPException):
                status = 0
            with lock:
                samples.append(Sample("feed", began - start, (time.perf_counter() - began) * 1000, status))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + 30)
    return samples


def _wait_idle(servers: list[Server], probe: Browser, limit_s: float = 180) -> None:
    """Until a health check answers within 100 ms (the servers' queues have drained), at most *limit_s*."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        began = time.perf_counter()
        try:
            probe.request("GET", "/healthz")
        except (OSError, http.client.HTTPException):
            pass
        if time.perf_counter() - began < 0.1:
            return
        time.sleep(1)


def summary(samples: list[Sample], seconds: float) -> dict[str, Any]:
    def stats(chosen: list[Sample]) -> dict[str, Any]:
        if not chosen:
            return {"n": 0}
        statuses = [s.status for s in chosen]
        sent = [s.latency_ms for s in chosen if s.status != -1] or [float("nan")]
        latency = np.array(sent)
        return {"n": len(chosen), "per_s": round(len(chosen) / seconds, 1),
                "p50_ms": round(float(np.percentile(latency, 50)), 1),
                "p95_ms": round(float(np.percentile(latency, 95)), 1),
                "p99_ms": round(float(np.percentile(latency, 99)), 1),
                "max_ms": round(float(latency.max()), 1),
                "5xx": sum(1 for s in statuses if s >= 500), "failed": statuses.count(0),
                "not_sent": statuses.count(-1),
                "4xx": sum(1 for s in statuses if 400 <= s < 500)}

    out = {"all": stats(samples)}
    for kind in sorted({s.kind for s in samples}):
        out[kind] = stats([s for s in samples if s.kind == kind])
    return out


def _per_request(cpu_s: float, stats: dict[str, Any]) -> float | None:
    answered = stats["all"].get("n", 0) - stats["all"].get("failed", 0) - stats["all"].get("not_sent", 0)
    return round(cpu_s * 1000 / answered, 1) if answered else None


def _sampler(servers: list[Server], stop: threading.Event, out: list[tuple[float, float]], every: float) -> None:
    start = time.perf_counter()
    while not stop.is_set():
        out.append((time.perf_counter() - start, sum(s.rss_mb() for s in servers)))
        stop.wait(every)


def memory_growth(series: list[tuple[float, float]], duration: float) -> dict[str, Any]:
    """Growth of the servers' total RSS: the last minute (or sixth) against the first one after warm-up."""
    if len(series) < 4:
        return {"samples": len(series)}
    window = min(60.0, duration / 6)
    first = [mb for t, mb in series if window <= t < 2 * window] or [series[1][1]]
    last = [mb for t, mb in series if t >= series[-1][0] - window] or [series[-1][1]]
    before, after = float(np.mean(first)), float(np.mean(last))
    return {"first_mb": round(before, 1), "last_mb": round(after, 1), "peak_mb": round(max(mb for _, mb in series), 1),
            "growth_pct": round((after - before) / before * 100, 2), "samples": len(series)}


def _table(name: str, result: dict[str, Any]) -> str:
    lines = [f"{name}", f"  {'kind':<10} {'n':>7} {'req/s':>7} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8} "
                        f"{'5xx':>5} {'fail':>5} {'unsent':>6} {'4xx':>5}"]
    for kind, s in result.items():
        if s.get("n"):
            lines.append(f"  {kind:<10} {s['n']:>7} {s['per_s']:>7} {s['p50_ms']:>6}ms {s['p95_ms']:>6}ms "
                         f"{s['p99_ms']:>6}ms {s['max_ms']:>6}ms {s['5xx']:>5} {s['failed']:>5} {s['not_sent']:>6} {s['4xx']:>5}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench load", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="PostgreSQL database for the run (created and filled once)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--duration", type=float, default=600, help="seconds of mixed load (goal: 600)")
    parser.add_argument("--rate", type=float, default=100, help="mixed requests per second (open loop)")
    parser.add_argument("--connections", type=int, default=32, help="connections serving the mixed load")
    parser.add_argument("--feed-duration", type=float, default=60, help="seconds of the closed-loop feed phase")
    parser.add_argument("--feed-connections", type=int, default=16)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per instance")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--people", type=int, default=128, help="people signed in (readers)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and generator to separate cores")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    dataset = prepare_database(args.url, seed=args.seed)
    load_before = os.getloadavg()  # the box is shared: a busy neighbour shows here
    cpus = _cpus()
    server_cpus = client_cpus = None
    if not args.no_pin and len(cpus) >= 2:
        # The generator gets one core; the servers the rest (PostgreSQL and Redis float over all).
        client_cpus, server_cpus = [cpus[-1]], cpus[:-1]
        os.sched_setaffinity(0, client_cpus)
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    log_dir = RESULTS / f"load-{stamp}"
    log_dir.mkdir()
    servers = start_servers(args.url, instances=args.instances, workers=args.workers, threads=args.threads,
                            cpus=server_cpus, redis_url=args.redis, log_dir=log_dir)
    try:
        readers, authors, comms = people(args.url, args.people, args.seed)
        print(f"  [load] signing in {len(readers)} readers, {len(authors)} authors, {len(comms)} comms managers",
              file=sys.stderr)

        def signed_in(emails: list[str], offset: int) -> list[Browser]:
            out = [Browser(servers[(i + offset) % len(servers)].port, email) for i, email in enumerate(emails)]
            with ThreadPoolExecutor(max_workers=8) as pool:  # the dev sign-in page is slow at 100k people
                list(pool.map(Browser.sign_in, out))
            return out

        reader_browsers = signed_in(readers, 0)
        author_browsers = signed_in(authors, 1)
        comms_browsers = signed_in(comms, 0)

        def split(browsers: list[Browser], parts: int) -> list[list[Browser]]:
            return [browsers[i::parts] or browsers for i in range(parts)]

        pools = {"readers": split(reader_browsers, args.connections), "authors": split(author_browsers, args.connections),
                 "comms": split(comms_browsers, args.connections)}
        rss: list[tuple[float, float]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=_sampler, args=(servers, stop, rss, 5.0), daemon=True)
        sampler.start()
        print(f"  [load] mixed: {args.rate:g} req/s for {args.duration:g} s over {args.connections} connections",
              file=sys.stderr)
        cpu_before = os.times()
        server_cpu_before = sum(server.cpu_s() for server in servers)
        mixed_samples = run_mixed(pools, rate=args.rate, duration=args.duration, connections=args.connections,
                                  seed=args.seed)
        cpu_after = os.times()
        server_cpu_mixed = sum(server.cpu_s() for server in servers) - server_cpu_before
        stop.set()
        sampler.join()
        mixed = summary(mixed_samples, args.duration)
        memory = memory_growth(rss, args.duration)
        # Let the servers finish what the mixed phase left queued in their sockets before measuring the feed.
        _wait_idle(servers, reader_browsers[0])
        print(f"  [load] feed: {args.feed_connections} connections, closed loop, {args.feed_duration:g} s",
              file=sys.stderr)
        server_cpu_before = sum(server.cpu_s() for server in servers)
        feed = summary(run_feed(split(reader_browsers, args.feed_connections), duration=args.feed_duration,
                                connections=args.feed_connections), args.feed_duration)
        server_cpu_feed = sum(server.cpu_s() for server in servers) - server_cpu_before
    finally:
        stop_servers(servers)

    all_mixed = mixed["all"]
    goals = {
        "mixed rate >= 95 % of target": (all_mixed.get("n", 0) - all_mixed.get("failed", 0)
                                         - all_mixed.get("not_sent", 0)) / args.duration >= 0.95 * args.rate,
        "mixed p95 <= 250 ms": all_mixed.get("p95_ms", 1e9) <= 250,
        "mixed p99 <= 1000 ms": all_mixed.get("p99_ms", 1e9) <= 1000,
        "no 5xx or failed request": all_mixed.get("5xx", 1) == 0 and all_mixed.get("failed", 1) == 0
        and all_mixed.get("not_sent", 1) == 0
        and feed["all"].get("5xx", 1) == 0 and feed["all"].get("failed", 1) == 0,
        "feed p95 < 100 ms at 16 connections": feed["all"].get("p95_ms", 1e9) < 100,
        "memory growth <= 5 %": memory.get("growth_pct", 1e9) <= 5,
        "10-minute run": args.duration >= 600,
    }
    report = {
        "when": stamp, "dataset": dataset, "instances": args.instances, "workers": args.workers,
        "threads": args.threads, "server_cpus": server_cpus, "client_cpus": client_cpus,
        "rate": args.rate, "duration_s": args.duration, "connections": args.connections,
        "mix": dict(MIX), "mixed": mixed, "feed_closed_loop": feed, "memory": memory,
        "client_cpu_s": round((cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system), 1),
        # What a request costs the servers, whatever else shares the box: CPU over requests answered.
        "server_cpu_ms_per_request": {"mixed": _per_request(server_cpu_mixed, mixed),
                                      "feed": _per_request(server_cpu_feed, feed)},
        "goals": goals, "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "rss_series": rss,
    }
    (RESULTS / f"load-{stamp}.json").write_text(json.dumps(report, indent=1))
    print(_table(f"Mixed open loop: {args.rate:g} req/s target, {args.duration:g} s, {args.instances} instances x "
                 f"{args.workers} workers x {args.threads} threads (servers on CPUs {server_cpus}, generator on "
                 f"{client_cpus})", mixed))
    print(_table(f"Feed page, closed loop, {args.feed_connections} connections, {args.feed_duration:g} s", feed))
    print(f"Server memory (RSS, masters + workers): {memory}")
    print(f"Server CPU per answered request (ms, masters + workers): {report['server_cpu_ms_per_request']}")
    print(f"Generator CPU: {report['client_cpu_s']} s; load average before {load_before[0]:.1f}, "
          f"after {report['load_average_after'][0]:.1f} (on {os.cpu_count()} CPUs)")
    for name, met in goals.items():
        print(f"  [{'met' if met else 'MISSED'}] {name}")
    print(f"Figures: {RESULTS / f'load-{stamp}.json'}")
    return 0 if all(goals.values()) else 3
