"""Faults in the delivery channels, on PostgreSQL, with time moved by the app's clock: an SMTP
server down for ten minutes and a Teams workflow answering 429 and 500 are backed off without
losing a digest or crashing, one attempt per batch while the channel is down, with alerts logged."""
from __future__ import annotations

import collections
import datetime as dt
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from intranet.delivery.channels.email import SmtpMailer
from intranet.delivery.channels.teams import TeamsWorkflow
from tests.delivery_support import choose, mailer, make_digest, messages, queue_digest, send

pytestmark = [pytest.mark.faults, pytest.mark.postgres_only]


class Counting:
    """A channel that counts the deliveries it was asked for."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, 0

    def deliver(self, digest: Any, now: dt.datetime) -> None:
        self.calls += 1
        self.inner.deliver(digest, now)


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused: the server is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alerts(caplog, kind: str) -> list[logging.LogRecord]:  # type: ignore[no-untyped-def]
    return [r for r in caplog.records if getattr(r, "alert", None) == kind and r.levelno >= logging.ERROR]


@pytest.mark.settings(INTRANET_OUTBOX_BATCH=50)
def test_smtp_down_for_ten_minutes_then_back(app, config, smtp, db, make_employee, make_post, clock, caplog):
    """Ten minutes of refused connections, a send round a minute: each round tries the server once
    (not once per message), messages back off exponentially, an alert is logged each round; when
    the server is back every digest arrives exactly once."""
    caplog.set_level(logging.WARNING, logger="intranet.delivery.sending")
    make_post(title="Parking closed on Friday")
    people = [make_employee() for _ in range(5)]
    for person in people:
        queue_digest(db, person, clock.now)
    down = Counting(SmtpMailer("127.0.0.1", closed_port(), sender=config.mail.mail_from))
    start, rounds = clock.now, 0
    while clock.now < start + dt.timedelta(minutes=10):
        report = send(app, db, config, clock, channels={"email": down})
        assert report.sent == 0
        rounds += bool(report.retried)
        clock.advance(minutes=1)
    emails = [m for m in messages(db) if m.channel == "email"]
    assert {m.status for m in emails} == {"pending"}
    assert down.calls == rounds, "a down server is tried once per round"
    # Backoff from 60 s doubling (+-20 %): at most 5 attempts in 10 minutes, not 10.
    assert all(2 <= m.attempts <= 5 for m in emails)
    assert len(alerts(caplog, "delivery_channel_down")) == rounds
    for _ in range(30):  # the server is back
        send(app, db, config, clock, channels={"email": mailer(config)})
        if all(m.status == "sent" for m in messages(db) if m.channel == "email"):
            break
        clock.advance(minutes=1)
    assert sorted(smtp.recipients()) == sorted(p.email for p in people)
    assert {m.status for m in messages(db) if m.channel == "email"} == {"sent"}


class ScriptedFlow:
    """A Teams workflow trigger on loopback answering with a script of statuses, then 202."""

    def __init__(self, script: list[tuple[int, dict[str, str]]]) -> None:
        self.script, self.received = list(script), []
        self.lock = threading.Lock()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        with self.lock:
            self.received.append(request.get_json()["messageId"])
            status, headers = self.script.pop(0) if self.script else (202, {})
        return Response("", status=status, headers=headers)(environ, start_response)


@pytest.fixture
def flow() -> Iterator[tuple[ScriptedFlow, str]]:
    app = ScriptedFlow([(429, {"Retry-After": "300"}), (500, {}), (500, {})])
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}/trigger"
    server.shutdown()
    thread.join(5)


@pytest.mark.settings(INTRANET_TEAMS_WORKFLOW_URL="https://flow.invalid/set-by-the-test")
def test_teams_429_and_500_are_backed_off_and_nothing_is_lost(app, config, db, make_employee, make_post, clock,
                                                              caplog, flow):
    """A throttled flow (429, Retry-After 5 minutes) then two 500s: the rest of each batch waits
    without being posted, no card goes before Retry-After, and every card is posted once in the end."""
    from intranet.delivery import enqueue

    caplog.set_level(logging.WARNING, logger="intranet.delivery.sending")
    scripted, url = flow
    make_post(title="Quarterly results")
    people = [make_employee() for _ in range(3)]
    for person in people:
        choose(db, person, channels=["teams"])
        make_digest(db, person, clock.now)
    enqueue.enqueue_due(db, clock.now, teams_enabled=True)
    db.commit()
    teams = [m for m in messages(db) if m.channel == "teams"]
    assert len(teams) == 3
    channel = {"teams": TeamsWorkflow(url)}
    send(app, db, config, clock, channels=channel)
    assert len(scripted.received) == 1  # one 429 holds back the whole batch
    throttled_until = clock.now + dt.timedelta(seconds=300)
    for _ in range(60):
        clock.advance(minutes=1)
        before = len(scripted.received)
        send(app, db, config, clock, channels=channel)
        if len(scripted.received) > before:
            assert clock.now >= throttled_until - dt.timedelta(seconds=1), "posted before Retry-After"
        if all(m.status == "sent" for m in messages(db) if m.channel == "teams"):
            break
    assert {m.status for m in messages(db) if m.channel == "teams"} == {"sent"}
    posted = collections.Counter(scripted.received)
    assert set(posted) == {m.message_id for m in teams}
    assert len(scripted.received) == 3 + 3  # three failed posts, then each card once
    assert len(alerts(caplog, "delivery_channel_down")) == 3
