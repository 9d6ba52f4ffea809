"""Delivery at scale: N digests through Beacon's outbox to a local SMTP server, against raw smtplib.

``python -m bench.delivery_scale [--db sqlite|pg|both] [--n 100000] [--batch 30] [--posts 1] [--profile]`` (also
run by ``python -m bench``, with 2,000 digests). A database of its own (a temporary SQLite file, a PostgreSQL schema)
gets N people, ``--posts`` all-staff posts and N digest slots due now; then, in the same run:

* **enqueue** — ``enqueue.enqueue_due`` until every slot is queued (one outbox row per channel);
* **send** (the product path) — the ``digests-send`` job's run, ``sending.send_batch``, again and
  again until a run sends nothing: batches of ``--batch`` (default: the product's
  ``INTRANET_OUTBOX_BATCH``) with pacing off (``INTRANET_MAIL_RATE_PER_MINUTE=0``), over one SMTP
  connection per run (a run goes on for up to 45 s): per batch the claim, composing every digest of
  the batch again at that moment (``content.compose_many``), lease renewals and the rollup fold of
  the batch's ``digest_sent`` events; per message rendering, the MIME message, the SMTP transaction
  and the committed result; ``--profile`` prints where the send phase's CPU went (cProfile);
* **raw** (the baseline) — the very messages the server received, sent again with
  ``smtplib.SMTP.sendmail`` over one connection: the SMTP transport alone.

Both go to the same aiosmtpd server on loopback, in a process of its own (sharing the two cores with
it; in the sender's process its thread fought the sender for the GIL at every SMTP round trip). The ratio
send / raw says what Beacon adds per message on top of SMTP. Microsoft says a Viva announcement
to 100,000 people "may take several hours"; the goals are >= 300 digests a second (100,000 in under
six minutes of sending) and at most 5x raw smtplib on this 2-core box, figures printed and
recorded, never asserted.
"""
from __future__ import annotations

import argparse
import cProfile
import collections
import datetime as dt
import email
import email.policy
import multiprocessing
import os
import pstats
import smtplib
import socket
import sys
import threading
import time
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import insert, select

from intranet import create_app, jobs, targeting
from intranet.db import session_factory, utcnow
from intranet.delivery import enqueue, sending
from intranet.models import Digest, Employee, OutboxMessage, Post

from bench import goals
from bench.webhooks_bench import _engines

GOAL_PER_S = 300.0  # 100k digests in under 6 minutes of sending
RATIO_GOAL = 5.0  # send / raw smtplib, as the other product-vs-raw goals
CHUNK = 5000


class Sink:
    """An SMTP handler keeping each message (envelope and bytes) or only counting them."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.keep = True
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.count += 1
            if self.keep:
                self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int, control: Any) -> None:
    """The SMTP server's process: a :class:`Sink` on *port*, answering *control* ("take": the messages
    so far, then count only; "count": how many arrived; "stop")."""
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    control.send("ready")
    try:
        while True:
            command = control.recv()
            if command == "take":
                with sink.lock:
                    control.send(sink.messages)
                    sink.messages, sink.keep = [], False
            elif command == "count":
                control.send(sink.count)
            else:
                break
    finally:
        controller.stop()


class SmtpServer:
    """An aiosmtpd server on loopback in a process of its own, as a real mail server is: in this
    process its thread would take the GIL from the sender between the SMTP round trips."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.control, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("fork").Process(target=_serve, args=(self.port, child),
                                                                   daemon=True)
        self.process.start()
        if not self.control.poll(30) or self.control.recv() != "ready":
            raise RuntimeError("the SMTP server did not start")

    def take(self) -> list[tuple[str, list[str], bytes]]:
        self.control.send("take")
        return self.control.recv()  # type: ignore[no-any-return]

    def count(self) -> int:
        self.control.send("count")
        return self.control.recv()  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.control.send("stop")
        self.process.join(10)


def populate(sessions: Any, n: int, now: dt.datetime, posts: int = 1) -> None:
    """N people, *posts* all-staff posts an hour old, N digest slots due a minute ago (Core inserts)."""
    with sessions() as db:
        for start in range(0, n, CHUNK):
            db.execute(insert(Employee), [
                {"employee_id": f"D{i:07d}", "email": f"person{i}@example.test", "display_name": f"Person {i}",
                 "department": "Sales", "timezone": "UTC", "created_at": now, "updated_at": now}
                for i in range(start, min(n, start + CHUNK))])
        for k in range(posts):
            post = Post(title=f"The canteen reopens on Monday ({k + 1})", summary="New menu, longer hours.",
                        body_html="<p>New menu.</p>", body_text="New menu.", topic="News", status="published",
                        publish_at=now - dt.timedelta(hours=1, minutes=k),
                        published_at=now - dt.timedelta(hours=1, minutes=k),
                        rating_style="thumbs" if k % 3 == 2 else "stars")
            db.add(post)
            db.flush()
            targeting.store_audience(db, post, targeting.parse_audience({"all": True}))
        pks = list(db.execute(select(Employee.id).order_by(Employee.id)).scalars())
        due = now - dt.timedelta(minutes=1)
        for start in range(0, n, CHUNK):
            db.execute(insert(Digest), [
                {"employee_pk": pk, "local_date": due.date(), "ordinal": 0, "due_at": due,
                 "expires_at": due + dt.timedelta(hours=12), "timezone": "UTC", "local_hour": due.hour,
                 "basis": "peers"} for pk in pks[start:start + CHUNK]])
        db.commit()


def run_case(engine: Any, n: int, batch: int | None, *, posts: int = 1, profile: bool = False) -> dict[str, Any]:
    server = SmtpServer()
    try:
        app = create_app({"INTRANET_ENV": "development", "INTRANET_SECRET_KEY": "b" * 64,
                          "INTRANET_SMTP_HOST": "127.0.0.1", "INTRANET_SMTP_PORT": server.port,
                          "INTRANET_MAIL_RATE_PER_MINUTE": 0,
                          **({"INTRANET_OUTBOX_BATCH": batch} if batch else {}),
                          "INTRANET_BASE_URL": "https://news.example.com",
                          "INTRANET_MAIL_FROM": "Beacon <news@example.com>", "INTRANET_RUN_SCHEDULER": False},
                         engine=engine)
        state = app.extensions["intranet"]
        sessions = session_factory(engine)
        now = utcnow()
        t = time.perf_counter()
        populate(sessions, n, now, posts)
        setup_s = time.perf_counter() - t

        t, c = time.perf_counter(), time.process_time()
        with sessions() as db:
            while enqueue.enqueue_job(db, utcnow(), state.settings):
                db.commit()
            db.commit()
        enqueue_s, enqueue_cpu = time.perf_counter() - t, time.process_time() - c

        renderer = jobs.renderer_for(app)
        report, runs = sending.SendReport(), 0
        profiler = cProfile.Profile(time.process_time) if profile else None
        load_before = os.getloadavg()
        t, c = time.perf_counter(), time.process_time()
        with app.app_context():
            if profiler:
                profiler.enable()
            while True:  # the digests-send job, run after run, until a run finds nothing to send
                got = sending.send_batch(sessions, utcnow, state.settings, renderer)
                report.add(got)
                runs += 1
                if not (got.sent or got.retried or got.skipped or got.expired or got.failed):
                    break
            if profiler:
                profiler.disable()
        send_s, send_cpu = time.perf_counter() - t, time.process_time() - c
        load_after = os.getloadavg()

        sent_messages = server.take()
        ids = collections.Counter(email.message_from_bytes(raw, policy=email.policy.compat32)["Message-ID"]
                                  for _, _, raw in sent_messages)
        with sessions() as db:
            pending = db.execute(select(OutboxMessage.id).where(OutboxMessage.channel == "email",
                                                                OutboxMessage.status != "sent")).all()

        before = server.count()
        t, c = time.perf_counter(), time.process_time()
        smtp = smtplib.SMTP("127.0.0.1", server.port)
        for mail_from, rcpts, raw in sent_messages:
            smtp.sendmail(mail_from, rcpts, raw)
        smtp.quit()
        raw_s, raw_cpu = time.perf_counter() - t, time.process_time() - c
        raw_count = server.count() - before
    finally:
        server.stop()
    return {"n": n, "setup_s": setup_s, "enqueue_s": enqueue_s, "send_s": send_s, "raw_s": raw_s, "runs": runs,
            "batch": state.settings.mail.batch, "load": (load_before, load_after), "profiler": profiler,
            "enqueue_cpu": enqueue_cpu, "send_cpu": send_cpu, "raw_cpu": raw_cpu,
            "received": len(sent_messages), "distinct": len(ids), "raw_count": raw_count, "report": report,
            "unsent": len(pending), "bytes": sum(len(raw) for _, _, raw in sent_messages)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "pg", "both"), default="both")
    # 2,000 by default, so `python -m bench` stays within minutes; the goal run is --n 100000.
    parser.add_argument("--n", type=int, default=2_000, help="digests to send (the goal run: 100000)")
    parser.add_argument("--batch", type=int, default=None,
                        help="messages claimed per sender round (default: INTRANET_OUTBOX_BATCH's default)")
    parser.add_argument("--posts", type=int, default=1, help="all-staff posts, i.e. items in each digest")
    parser.add_argument("--profile", action="store_true", help="print where the send phase's CPU went (cProfile)")
    args = parser.parse_args(argv)
    first = goals.mark()
    for name, engine, cleanup in _engines(args.db):
        try:
            out = run_case(engine, args.n, args.batch, posts=args.posts, profile=args.profile)
        finally:
            cleanup()
        per_s, raw_per_s = out["received"] / out["send_s"], out["raw_count"] / out["raw_s"]
        ratio = out["send_s"] / out["raw_s"]
        size_kb = out["bytes"] / max(out["received"], 1) / 1024
        print(f"\n[delivery] {name}: {out['n']:,} digests, {size_kb:.1f} KB each, batches of {out['batch']}, {out['runs']} sending runs; load average "
              f"{out['load'][0][0]:.1f} before sending, {out['load'][1][0]:.1f} after")
        print(f"  set-up {out['setup_s']:.1f} s; enqueue {out['enqueue_s']:.1f} s, {out['enqueue_cpu']:.1f} CPU s "
              f"({out['n'] / out['enqueue_s']:.0f} slots/s)")
        print(f"  send through the outbox: {out['send_s']:.1f} s, {out['send_cpu']:.1f} CPU s, {per_s:.0f} messages/s "
              f"({1000 / per_s:.2f} ms each; {out['received'] / max(out['send_cpu'], 1e-9):.0f} per CPU s); "
              f"{out['report']}")
        print(f"  raw smtplib, same messages, one connection: {out['raw_s']:.1f} s, {out['raw_cpu']:.1f} CPU s, "
              f"{raw_per_s:.0f} messages/s")
        print(f"  ratio send / raw: {ratio:.1f}x (CPU: {out['send_cpu'] / max(out['raw_cpu'], 1e-9):.1f}x); 100,000 "
              f"digests would take {100_000 / per_s / 60:.1f} min of sending "
              f"(+ {100_000 / out['n'] * out['enqueue_s'] / 60:.1f} min of queueing)")
        print("  CPU s are this process's: Beacon, the database driver and, on SQLite, the database (not the SMTP "
              "server's process, nor PostgreSQL's).")
        if out["profiler"]:
            stats = pstats.Stats(out["profiler"], stream=sys.stdout)
            stats.sort_stats("cumulative").print_stats(40)
        goals.goal("delivery", "digests sent per second through the outbox (pacing off)", measured=f"{per_s:.0f}/s",
                   target=f">= {GOAL_PER_S:.0f}/s (100k in minutes)", met=per_s >= GOAL_PER_S, db=name)
        goals.goal("delivery", "send through the outbox / raw smtplib", measured=f"{ratio:.1f}x",
                   target=f"<= {RATIO_GOAL:g}x", met=ratio <= RATIO_GOAL, db=name)
        goals.check("delivery", "every digest sent once, none left",
                    passed=out["received"] == out["distinct"] == out["n"] and not out["unsent"]
                    and out["raw_count"] == out["received"],
                    detail=f"{out['received']} received, {out['distinct']} distinct, {out['unsent']} unsent",
                    db=name)
    return goals.exit_status(goals.RECORDED[first:])


if __name__ == "__main__":
    sys.exit(main())
