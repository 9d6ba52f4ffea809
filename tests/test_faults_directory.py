"""Faults in the directory sync, on PostgreSQL: a `directory sync` process SIGKILLed mid-round
applies nothing and the next run resumes from the last committed deltaLink; Graph answering 503
is waited out, and past the retry budget fails the run cleanly with an alert."""
from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select

from intranet.db import utcnow
from intranet.directory.graph import GraphClient, GraphSettings
from intranet.models import Lease, SyncRun, SyncState
from tests.directory_support import employees, last_run, make_sync
from tests.fault_support import Beacon, environment, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.postgres_only]


def graph_config(entra_server, **more: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {**entra_server.config(), "INTRANET_GRAPH_PAGE_SIZE": 5, "INTRANET_GRAPH_MAX_TOTAL_WAIT_S": 120, **more}


def sync_in_process(database, clock, entra_server, sleeps=None, **more):  # type: ignore[no-untyped-def]
    config = graph_config(entra_server, **more)
    client = GraphClient(GraphSettings.from_config(config), sleep=sleeps if sleeps is not None else (lambda s: None))
    return make_sync(database, clock, config=config, graph_client=client).run_graph()


def departments(db) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    found = {e.employee_id: e.department for e in employees(db).values()}
    db.rollback()
    return found


def test_a_sync_killed_mid_round_applies_nothing_and_the_next_run_resumes(database, db, clock, entra_server,
                                                                         tmp_path):
    """SIGKILL `directory sync` between two pages of a delta round: no change is applied and the
    deltaLink stays; once the dead run's lease lapses the next run closes it as abandoned and applies
    the whole round."""
    fake = entra_server.fake
    ids = fake.populate(20, departments=("Sales",))
    assert sync_in_process(database, clock, entra_server).status == "succeeded"
    before = departments(db)
    link = db.get(SyncState, "graph").delta_link
    db.rollback()
    for user in ids[:12]:  # three pages of changes at five a page
        fake.update_user(user, department="Legal")
    # The round's second page is throttled for a minute: the process waits there, mid-round.
    fake.inject(429, times=1, retry_after=60, on_path="/users/delta", with_arg="$skiptoken")
    env = environment(database, DIRECTORY_LEASE_SECONDS=2,
                      **{k.removeprefix("INTRANET_"): v for k, v in graph_config(entra_server).items()})
    earlier = len(fake.calls)
    with Beacon(["directory", "sync"], env, tmp_path / "killed.log") as killed:
        wait_for(lambda: any("$skiptoken" in call.query for call in fake.calls[earlier:]),
                 what="the round's second page",
                 process=killed)
        killed.kill()
    assert departments(db) == before, "a killed round applied some of its changes"
    state = db.get(SyncState, "graph", populate_existing=True)
    assert state.delta_link == link
    dead = last_run(db)
    assert dead.status == "running"
    lease = db.get(Lease, "directory-sync", populate_existing=True)
    db.rollback()
    wait_for(lambda: utcnow() > lease.expires_at, what="the dead run's lease to lapse")
    again = Beacon(["directory", "sync"], env, tmp_path / "again.log")
    assert again.wait() == 0, again.output()
    after = departments(db)
    assert sum(1 for d in after.values() if d == "Legal") == 12 and set(after) == set(before)
    db.expire_all()
    closed = db.get(SyncRun, dead.id)
    assert closed.status == "failed" and "Abandoned" in closed.error
    assert db.execute(select(SyncRun.status).order_by(SyncRun.id.desc())).scalars().first() == "succeeded"


def test_graph_503s_are_waited_out(database, db, clock, entra_server):
    """503 with Retry-After on the round's pages: the client waits as told and the round completes."""
    fake = entra_server.fake
    fake.populate(12)
    fake.inject(503, times=2, retry_after=3, on_path="/users/delta")
    fake.inject(503, times=1, retry_after=4, on_path="/users/delta", with_arg="$skiptoken")
    waits: list[float] = []
    assert sync_in_process(database, clock, entra_server, sleeps=waits.append).status == "succeeded"
    assert waits == [3.0, 3.0, 4.0] and len(employees(db)) == 12


def test_graph_down_fails_the_run_cleanly_with_an_alert(database, db, clock, entra_server, caplog):
    """Graph answering 503 past the retry budget: the run is recorded failed with Graph's request id,
    nothing is applied, an error is logged; the next run (Graph back) succeeds."""
    fake = entra_server.fake
    fake.populate(8)
    fake.inject(503, times=50, retry_after=1, on_path="/users/delta")
    caplog.set_level(logging.ERROR, logger="intranet.directory.runs")
    outcome = sync_in_process(database, clock, entra_server, INTRANET_GRAPH_MAX_ATTEMPTS=3)
    assert outcome.status == "failed"
    assert employees(db) == {} and last_run(db).request_id
    assert any("Directory sync run" in r.getMessage() and "failed" in r.getMessage() for r in caplog.records)
    fake._faults.clear()
    assert sync_in_process(database, clock, entra_server).status == "succeeded"
    assert len(employees(db)) == 8
