"""Faults in webhook delivery, on PostgreSQL with real processes: a sender killed (SIGKILL) while a
receiver holds its request; another sender delivers every event, at most one once more, under the
same webhook-id."""
from __future__ import annotations

import collections
import threading

import pytest
from sqlalchemy import select

from intranet import posts
from intranet.db import utcnow
from intranet.models import WebhookDelivery
from tests.fault_support import Beacon, environment, wait_for
from tests.webhook_support import Receiver, register

pytestmark = [pytest.mark.faults, pytest.mark.postgres_only]

EVENTS = 12
LEASE_SECONDS = 2


class HoldingReceiver(Receiver):
    """Answers the first *answered* requests, then holds every later one until released."""

    def __init__(self, answered: int) -> None:
        super().__init__()
        self.answered, self.release = answered, threading.Event()

    def app(self, environ, start_response):  # type: ignore[no-untyped-def]
        answer = super().app(environ, start_response)  # records the request, then answers
        if len(self.received) > self.answered:
            self.release.wait(60)
        return answer


def statuses(db) -> collections.Counter:  # type: ignore[no-untyped-def]
    db.expire_all()
    found = collections.Counter(d.status for d in db.execute(select(WebhookDelivery)).scalars())
    db.rollback()
    return found


def test_a_sender_killed_mid_request_loses_no_event(database, db, make_employee, make_post, tmp_path):
    """Killed while the receiver holds its 4th request: the next sender (after the lease) delivers all
    12 events; only the held one arrives twice, with the same webhook-id both times."""
    with HoldingReceiver(answered=3) as receiver:
        now = utcnow()  # the processes use the real clock
        register(db, receiver.url, now, "post.published")
        comms = make_employee(is_comms=True)
        for n in range(EVENTS):
            posts.publish(db, make_post(status="draft", published_at=None, publish_at=None, title=f"P{n}"),
                          actor=comms, now=now)
        db.commit()
        env = environment(database, WEBHOOKS_ALLOW_PRIVATE="true", WEBHOOKS_LEASE_SECONDS=LEASE_SECONDS,
                          WEBHOOKS_TIMEOUT_SECONDS=30, WEBHOOKS_RETRY_SECONDS=1)
        with Beacon(["webhooks", "send"], env, tmp_path / "first.log") as first:
            wait_for(lambda: len(receiver.received) == 4, what=f"the held 4th request ({len(receiver.received)} came)",
                     process=first, timeout=90)
            first.kill()
        receiver.release.set()
        assert statuses(db)["delivered"] == 3
        for attempt in range(20):
            with Beacon(["webhooks", "send"], env, tmp_path / f"next-{attempt}.log") as later:
                assert later.wait(60) == 0, later.output()
            if statuses(db) == {"delivered": EVENTS}:
                break
            wait_for(lambda: utcnow() > now, what="time to pass")
        assert statuses(db) == {"delivered": EVENTS}
        got = collections.Counter(receiver.ids())
        assert len(got) == EVENTS and sum(got.values()) == EVENTS + 1
        [(held_id, times)] = [(i, n) for i, n in got.items() if n > 1]
        assert times == 2 and receiver.ids()[3] == held_id
