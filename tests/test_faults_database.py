"""PostgreSQL restarted under load: requests fail cleanly (503 with Retry-After, Beacon's error body,
never a 500), nothing accepted is lost, and the app recovers without a restart.

The shared PostgreSQL is never touched: the test starts a private cluster (initdb + pg_ctl in a
temporary folder, on a free port, as the ``postgres`` user when run as root) and restarts that one.
"""
from __future__ import annotations

import datetime as dt
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from intranet import create_app, migrate, targeting
from intranet.db import make_engine, session_factory, utcnow
from intranet.models import Employee, EngagementEvent, Post
from tests.conftest import SECRET, SignedInClient, _free_port
from tests.fault_support import wait_for

pytestmark = [pytest.mark.faults]

BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


class PrivateCluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1 that the test may stop and start."""

    def __init__(self) -> None:
        if not BIN:
            pytest.skip("PostgreSQL's server binaries (/usr/lib/postgresql/*/bin) are not installed")
        self.bin = BIN[-1]
        self.user = None
        if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no postgres user to own a private cluster")
            self.user = "postgres"
        self.dir = tempfile.mkdtemp(prefix="beacon-pg-")
        if self.user:
            shutil.chown(self.dir, self.user)
        self.data = os.path.join(self.dir, "data")
        self.port = _free_port()
        self.run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, tool: str, *args: str) -> None:
        command = [os.path.join(self.bin, tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self.run("pg_ctl", "-D", self.data, "-w", "-l", os.path.join(self.dir, "log"), "-o",
                 f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                 "-c synchronous_commit=off -c full_page_writes=off", "start")

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", self.data, "-w", "-m", mode, "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    pg = PrivateCluster()
    try:
        pg.start()
        yield pg
    finally:
        pg.destroy()


def beacon_on(url: str) -> Any:
    engine = make_engine(url, pool_size=4, max_overflow=4)
    migrate.upgrade(engine)
    app = create_app({"TESTING": True, "INTRANET_ENV": "production", "INTRANET_SECRET_KEY": SECRET,
                      "INTRANET_DEV_LOGIN": True, "PREFERRED_URL_SCHEME": "https", "SERVER_NAME": None,
                      "INTRANET_RATELIMIT_ENABLED": False}, engine=engine)
    return app, engine


def test_postgresql_restarted_under_load(cluster, tmp_path):
    """Four clients post reading events while PostgreSQL stops and starts: every answer is 200 or a
    clean 503 with Retry-After; clients retry their refused batches (same ids); in the end every
    event is stored exactly once and the same app serves again."""
    app, engine = beacon_on(cluster.url)
    now = utcnow()
    with session_factory(engine)() as db:
        people = [Employee(employee_id=f"L{i}", email=f"load{i}@example.test", display_name=f"Load {i}",
                           timezone="UTC", created_at=now, updated_at=now) for i in range(4)]
        post = Post(title="Load", summary="", body_html="<p>x</p>", body_text="x", topic="News",
                    status="published", publish_at=now - dt.timedelta(hours=1),
                    published_at=now - dt.timedelta(hours=1))
        db.add_all([*people, post])
        db.flush()
        targeting.store_audience(db, post, targeting.parse_audience({"all": True}))
        db.commit()
    clients = [SignedInClient(app, person) for person in people]
    statuses: list[int] = []
    refused: list[Any] = []
    accepted = [0]
    stop = threading.Event()
    lock = threading.Lock()

    def post_batches(n: int, client: SignedInClient) -> None:
        batch_no = 0
        pending: list[list[dict]] = []
        while not stop.is_set() or pending:
            if pending:
                batch = pending.pop(0)
            else:
                batch = [{"id": f"c{n}-{batch_no}-{i}", "post_id": post.id, "kind": "read",
                          "occurred_at": utcnow().isoformat(), "dwell_ms": 1000} for i in range(10)]
                batch_no += 1
            response = client.api("POST", "/api/v1/events", {"events": batch})
            with lock:
                statuses.append(response.status_code)
            if response.status_code == 200:
                with lock:
                    accepted[0] += response.get_json()["accepted"]
                continue
            with lock:
                refused.append(response)
            pending.append(batch)  # retried later with the same ids, as the browser's queue does
            stop.wait(0.05)

    threads = [threading.Thread(target=post_batches, args=(n, c)) for n, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: statuses.count(200) >= 20, what="load before the restart")
        cluster.stop("fast")
        wait_for(lambda: len(refused) >= 8, what="requests while PostgreSQL is down")
        cluster.start()
        served = len(statuses)
        wait_for(lambda: statuses[served:].count(200) >= 20, what="the app to recover without a restart")
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert set(statuses) <= {200, 503}, f"unclean answers: {sorted(set(statuses))}"
    for response in refused[:20]:
        assert response.headers.get("Retry-After", "").isdigit()
        body = response.get_json()
        assert body["error"]["code"] == "unavailable" and "Traceback" not in response.get_data(as_text=True)
    with session_factory(engine)() as db:
        stored = db.execute(select(func.count()).select_from(EngagementEvent)).scalar_one()
        distinct = db.execute(select(func.count(func.distinct(EngagementEvent.client_id)))).scalar_one()
    assert stored == distinct == accepted[0], "an accepted event was lost (or stored twice)"
    # A page, too: the same clean refusal while the database is away, as HTML.
    cluster.stop("fast")
    page = clients[0].get("/")
    assert page.status_code == 503 and "Retry-After" in page.headers
    assert "text/html" in page.headers["Content-Type"] and "Traceback" not in page.get_data(as_text=True)
    cluster.start()
    assert clients[0].get("/").status_code == 200
    engine.dispose()
