"""Outgoing webhooks: what recording an event adds to the change that causes it, and how fast the
sender delivers to a receiver on loopback.

``python -m bench.webhooks_bench [--db sqlite|pg|both] [--events N] [--repeat N]`` (also run by
``python -m bench``). Small databases of its own (a temporary SQLite file, a PostgreSQL schema
dropped afterwards); no generated organisation is needed.

* **record** — ``feed.acknowledge`` of a must-read (flushed, rolled back) with the one endpoint
  subscribed to ``post.acknowledged`` paused and active, interleaved: the difference is the outbox's cost on that
  path (one endpoint lookup, the event, its delivery). Goal: p50 + 2 ms at most.
* **deliver** — *events* recorded events sent by ``sender.send_due`` rounds (batch 50) to a
  threaded HTTP receiver on 127.0.0.1 that checks each signature with Beacon's
  :func:`intranet.webhooks.signing.verify`. On PostgreSQL two senders run at once (claims with
  ``FOR UPDATE SKIP LOCKED``). Checks: every event arrives, none twice, every signature holds.
  Goal: >= 100 deliveries/s (the receiver answers at once; real receivers bound this instead).

Timings are medians after a warm-up; printed, never asserted in tests.
"""
from __future__ import annotations

import argparse
import datetime as dt
import http.server
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from intranet import feed, migrate
from intranet.db import make_engine
from intranet.models import Employee, Post
from intranet.settings import Settings
from intranet.webhooks import endpoints, network, sender, signing
from intranet.webhooks.sealing import SecretBox

from bench import datagen, goals

NOW = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.timezone.utc)
RECORD_GOAL_MS = 2.0
DELIVER_GOAL_PER_S = 100.0


class _Receiver(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, secret: str) -> None:
        self.secret, self.ids, self.bad, self.lock = secret, [], 0, threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        server: _Receiver = self.server  # type: ignore[assignment]
        ok = signing.verify(server.secret, dict(self.headers), body, now=time.time())
        with server.lock:
            server.ids.append(self.headers["webhook-id"])
            server.bad += not ok
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _engines(db: str) -> list[tuple[str, Any, Any]]:
    """(name, engine, cleanup) for each selected database, migrated and empty."""
    out = []
    if db in ("sqlite", "both"):
        path = os.path.join(tempfile.mkdtemp(prefix="beacon-webhooks-"), "bench.db")
        engine = make_engine(f"sqlite:///{path}")
        migrate.upgrade(engine)
        out.append(("sqlite", engine, lambda e=engine: e.dispose()))
    if db in ("pg", "both"):
        reason = datagen.postgres_available()
        if reason:
            print(f"  [webhooks] PostgreSQL skipped: {reason}", file=sys.stderr)
        else:
            schema = f"beacon_bench_wh_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            admin = make_engine(datagen.PG_URL)
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            engine = make_engine(datagen.PG_URL, connect_args={"options": f"-csearch_path={schema}"})
            migrate.upgrade(engine)

            def drop(e: Any = engine, s: str = schema, a: Any = admin) -> None:
                e.dispose()
                with a.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{s}" CASCADE'))
                a.dispose()

            out.append(("postgresql", engine, drop))
    return out


def _setup(session: Session, n_posts: int) -> tuple[Employee, list[Post]]:
    person = Employee(employee_id="B1", email="b1@example.test", display_name="Bench", created_at=NOW,
                      updated_at=NOW)
    session.add(person)
    posts_ = [Post(title=f"P{i}", summary="s", body_html="<p>b</p>", body_text="b", topic="News", must_read=True,
                   status="published", publish_at=NOW, published_at=NOW, all_staff=True) for i in range(n_posts)]
    session.add_all(posts_)
    session.commit()
    return person, posts_


def record_case(engine: Any, repeat: int) -> dict[str, Any]:
    """Median acknowledge time without and with a subscribed endpoint (rolled back each time).

    The two are interleaved (the endpoint is paused and resumed between calls, untimed), so the
    load of a shared machine weighs on both alike.
    """
    with Session(engine, expire_on_commit=False) as session:
        person, posts_ = _setup(session, repeat)
        endpoint = endpoints.create(session, endpoints.EndpointIn(url="https://hooks.example.com/b",
                                                                  event_types=["post.acknowledged"]),
                                    actor=None, now=NOW, box=SecretBox(), allow_private=True).endpoint
        session.commit()
        timings: dict[bool, list[float]] = {False: [], True: []}
        for i, post in enumerate(posts_):
            for subscribed in (False, True):
                endpoints.set_active(session, endpoint, subscribed)
                session.commit()
                started = time.perf_counter()
                feed.acknowledge(session, person, post, now=NOW)
                session.flush()
                elapsed = time.perf_counter() - started
                session.rollback()
                if i >= 3:  # warm-up
                    timings[subscribed].append(elapsed * 1000)
    without, with_ = statistics.median(timings[False]), statistics.median(timings[True])
    return {"without_ms": without, "with_ms": with_, "extra_ms": with_ - without}


def deliver_case(engine: Any, name: str, n_events: int) -> dict[str, Any]:
    """Record *n_events* events, deliver them all, and time it (two senders on PostgreSQL)."""
    settings = Settings.from_config({"INTRANET_WEBHOOKS_ALLOW_PRIVATE": True})
    with Session(engine, expire_on_commit=False) as session:
        for endpoint in endpoints.all_endpoints(session):  # the record case's, which nobody answers
            endpoints.remove(session, endpoint)
        receiver = _Receiver("")
        created = endpoints.create(session, endpoints.EndpointIn(
            url=f"http://127.0.0.1:{receiver.server_address[1]}/hook", event_types=["post.acknowledged"]),
            actor=None, now=NOW, box=SecretBox(), allow_private=True)
        session.commit()
        receiver.secret = created.secret
        people = [Employee(employee_id=f"D{i}", created_at=NOW, updated_at=NOW) for i in range(n_events)]
        post = Post(title="P", summary="s", body_html="<p>b</p>", body_text="b", must_read=True, status="published",
                    publish_at=NOW, published_at=NOW, all_staff=True)
        session.add_all([*people, post])
        session.commit()
        for person in people:
            feed.acknowledge(session, person, post, now=NOW)
        session.commit()
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    senders = 2 if name == "postgresql" else 1
    errors: list[BaseException] = []

    def run(owner: str) -> None:
        try:
            with Session(engine, expire_on_commit=False) as own, network.client(allow_private=True) as http:
                while True:
                    report = sender.send_due(own, lambda: NOW, settings, http=http, owner=owner)
                    if report.sent == 0 and report.lost == 0:
                        return
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(f"bench-{i}",)) for i in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    receiver.shutdown()
    receiver.server_close()
    return {"senders": senders, "events": n_events, "received": len(receiver.ids), "distinct": len(set(receiver.ids)),
            "bad_signatures": receiver.bad, "seconds": elapsed, "per_s": len(receiver.ids) / elapsed,
            "errors": [repr(e) for e in errors]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "pg", "both"), default="both")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=203)
    args = parser.parse_args(argv)
    first = goals.mark()
    for name, engine, cleanup in _engines(args.db):
        try:
            rec = record_case(engine, args.repeat)
            out = deliver_case(engine, name, args.events)
        finally:
            cleanup()
        print(f"\n[webhooks] {name}")
        print(f"  acknowledge p50: {rec['without_ms']:.2f} ms without an endpoint, {rec['with_ms']:.2f} ms with one "
              f"(+{rec['extra_ms']:.2f} ms for the event and its delivery)")
        print(f"  delivered {out['received']:,} of {out['events']:,} events in {out['seconds']:.2f} s with "
              f"{out['senders']} sender(s): {out['per_s']:.0f}/s; duplicates {out['received'] - out['distinct']}, "
              f"bad signatures {out['bad_signatures']}")
        goals.goal("webhooks", "recording an event: extra acknowledge p50", measured=f"{rec['extra_ms']:.2f} ms",
                   target=f"<= {RECORD_GOAL_MS:.0f} ms", met=rec["extra_ms"] <= RECORD_GOAL_MS, db=name)
        goals.goal("webhooks", f"deliveries per second ({out['senders']} sender(s), loopback)",
                   measured=f"{out['per_s']:.0f}/s", target=f">= {DELIVER_GOAL_PER_S:.0f}/s",
                   met=out["per_s"] >= DELIVER_GOAL_PER_S, db=name)
        goals.check("webhooks", "every event delivered once, signature valid",
                    passed=out["received"] == out["distinct"] == out["events"] and not out["bad_signatures"]
                    and not out["errors"],
                    detail=f"{out['received']} received, {out['distinct']} distinct, {out['bad_signatures']} bad, "
                           f"errors {out['errors'][:2]}", db=name)
    return goals.exit_status(goals.RECORDED[first:])


if __name__ == "__main__":
    sys.exit(main())
