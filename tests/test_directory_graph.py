"""Graph delta sync through the real msal + requests against the HTTPS fake of Entra ID and Graph."""
from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlmodel import select

from intranet.directory import guard
from intranet.directory.graph import GraphClient, GraphSettings
from intranet.directory.lifecycle import lifecycle_job
from intranet.models import AuthSession, EmployeeDirectory, SyncState
from intranet.settings import Settings
from tests.directory_support import employees, hr_csv, last_run, make_sync, person, quarantine


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def run(entra_server, database, clock, sleeps):  # type: ignore[no-untyped-def]
    """Run a Graph sync (``run(full=False, **graph settings)``) and return its outcome."""

    def go(full: bool = False, **settings: Any):  # type: ignore[no-untyped-def]
        config = {**entra_server.config(), "INTRANET_GRAPH_PAGE_SIZE": 10, "INTRANET_GRAPH_MAX_TOTAL_WAIT_S": 60,
                  **settings}
        client = GraphClient(GraphSettings.from_config(config), sleep=sleeps, clock=lambda: 0.0)
        return make_sync(database, clock, config=config, graph_client=client).run_graph(full=full)

    return go


def staff(fake, n: int = 12) -> list[str]:  # type: ignore[no-untyped-def]
    ids = [fake.add_user(displayName="Boss", employeeId="B1", department="Executive", country="US",
                         officeLocation="HQ", jobTitle="CEO",
                         onPremisesExtensionAttributes={"extensionAttribute1": "L10"})]
    for i in range(n - 1):
        ids.append(fake.add_user(manager=ids[0], displayName=f"Person {i}", employeeId=f"P{i:03d}",
                                 department="R&D" if i % 2 else "Sales", country="DE", officeLocation="Berlin",
                                 jobTitle="Engineer", employeeOrgData={"division": "Corp", "costCenter": "CC-9"},
                                 onPremisesExtensionAttributes={"extensionAttribute1": "Level 4"}))
    return ids


def test_full_round_with_paging_and_inclusion_rule(run, entra_server, db):
    """A full round over several pages (empty ones included) creates employees only; guests and rooms stay out."""
    fake = entra_server.fake
    fake.empty_page_every = 2
    ids = staff(fake, 25)
    fake.add_user(displayName="Guest", userType="Guest", employeeId="G1")
    fake.add_user(displayName="Conf Room Adams", employeeId=None)
    outcome = run()
    assert outcome.status == "succeeded", outcome.message
    people = employees(db)
    assert len(people) == 25 and "G1" not in people
    boss, p1 = people["B1"], people["P001"]
    assert (boss.entra_tenant_id, boss.entra_object_id) == (fake.tenant_id, ids[0])
    assert (boss.level, boss.timezone, boss.region) == (10, "America/New_York", "AMER")
    assert p1.department == "Research & Development" and p1.level == 4 and p1.manager_id == "B1"
    assert p1.timezone == "Europe/Berlin" and p1.division == "Corporate"  # division alias map
    assert db.get(EmployeeDirectory, p1.id).cost_center == "CC-9"
    run_row = last_run(db)
    assert (run_row.mode, run_row.seen, run_row.created, run_row.delta_committed) == ("full", 27, 25, True)
    assert db.get(SyncState, "graph").delta_link.startswith(entra_server.graph_base_url)
    assert fake.count("/users/delta") > 3


def test_incremental_rounds_absent_and_null(run, entra_server, db):
    """Incremental (return=minimal) rounds: an absent property is unchanged, null clears it."""
    fake = entra_server.fake
    ids = staff(fake, 3)
    run()
    fake.update_user(ids[1], department="Marketing", jobTitle=None)
    outcome = run(INTRANET_GRAPH_RETURN_MINIMAL=True)
    assert outcome.status == "succeeded"
    person_ = employees(db)["P000"]
    assert person_.department == "Marketing" and person_.job_title is None
    assert person_.country == "DE" and person_.level == 4 and person_.manager_id == "B1"  # untouched
    row = last_run(db)
    assert (row.mode, row.seen, row.updated, row.created) == ("delta", 1, 1, 0)
    minimal = [c for c in fake.calls if "$deltatoken" in str(c.query) or c.query.get("$deltatoken")]
    assert minimal and "return=minimal" in minimal[-1].headers.get("Prefer", "")


def test_second_identical_run_and_replays_change_nothing(run, entra_server, db, clock):
    """Replayed and duplicated users in a round change nothing; neither does a second identical full run."""
    fake = entra_server.fake
    ids = staff(fake, 4)
    run()
    before = {k: e.model_dump() for k, e in employees(db).items()}
    fake.replay(ids[2], times=3)
    clock.advance(minutes=30)
    assert run().status == "succeeded"
    row = last_run(db)
    assert (row.seen, row.created, row.updated, row.deactivated) == (1, 0, 0, 0)
    run(full=True)
    row = last_run(db)
    assert (row.mode, row.created, row.updated, row.deactivated) == ("full", 0, 0, 0)
    assert {k: e.model_dump() for k, e in employees(db).items()} == before


def test_removed_changed_then_restored(run, entra_server, db, make_employee):
    """@removed changed deactivates (sessions end); a restore brings the same employee row back active."""
    fake = entra_server.fake
    ids = staff(fake, 4)
    run()
    person_ = employees(db)["P001"]
    db.add(AuthSession(id="x" * 64, employee_pk=person_.id, data={"employee_pk": person_.id}))
    db.commit()
    fake.remove_user(ids[2], "changed")
    assert run().status == "succeeded"
    assert not employees(db)["P001"].active and db.exec(select(AuthSession)).all() == []
    assert last_run(db).deactivated == 1
    fake.restore_user(ids[2])
    run()
    back = employees(db)["P001"]
    assert back.active and back.id == person_.id and back.deactivated_at is None
    assert last_run(db).reactivated == 1


def test_removed_deleted_schedules_erasure(run, entra_server, db, clock):
    """@removed deleted deactivates and schedules erasure; the lifecycle job anonymizes after retention."""
    fake = entra_server.fake
    ids = staff(fake, 3)
    run()
    fake.remove_user(ids[1], "deleted")
    run()
    gone = employees(db)["P000"]
    assert not gone.active
    directory = db.get(EmployeeDirectory, gone.id)
    db.refresh(directory)
    assert directory.erase_after == clock.now + dt.timedelta(days=30)
    assert lifecycle_job(db, clock.now + dt.timedelta(days=31), Settings())["erased"] == 1
    db.commit()
    erased = employees(db)["P000"]
    assert erased.display_name == "Former employee" and erased.email is None and erased.department is None


def test_manager_delta_add_and_remove(run, entra_server, db):
    """manager@delta sets and clears the manager (resolved to employee ids in a second pass)."""
    fake = entra_server.fake
    ids = staff(fake, 3)
    run()
    fake.update_user(ids[2], manager=ids[1])
    run()
    assert employees(db)["P001"].manager_id == "P000"
    fake.update_user(ids[2], manager=None)
    run()
    assert employees(db)["P001"].manager_id is None


@pytest.mark.parametrize("fault", ["expired", "410"])
def test_expired_delta_triggers_full_resync_with_sweep(run, entra_server, db, fault):
    """syncStateNotFound or 410 Gone: a full resync; users gone meanwhile are swept (deactivated)."""
    fake = entra_server.fake
    ids = staff(fake, 4)
    run()
    fake.remove_user(ids[3], "deleted")
    if fault == "expired":
        fake.expire_delta_tokens()
    else:
        fake.inject(410, on_path="/users/delta")
    outcome = run()
    assert outcome.status == "succeeded", outcome.message
    row = last_run(db)
    assert row.mode == "full" and row.delta_committed and "full resync" in (row.error or "")
    assert not employees(db)["P002"].active and employees(db)["P001"].active


def test_429_retry_after_is_honoured(run, entra_server, db, sleeps):
    """429 with Retry-After: the client waits exactly that long and the round completes."""
    fake = entra_server.fake
    staff(fake, 3)
    fake.inject(429, times=2, retry_after=7, on_path="/users/delta")
    assert run().status == "succeeded"
    assert sleeps == [7.0, 7.0] and len(employees(db)) == 3


def test_out_of_budget_commits_no_delta_link(run, entra_server, db):
    """Throttled beyond the wait budget: the run fails, nothing is applied, the old deltaLink stays."""
    fake = entra_server.fake
    ids = staff(fake, 3)
    run()
    link = db.get(SyncState, "graph").delta_link
    fake.update_user(ids[1], department="Legal")
    fake.inject(429, times=1, retry_after=120, on_path="/users/delta")
    outcome = run()
    assert outcome.status == "failed"
    row = last_run(db)
    assert not row.delta_committed and row.request_id and "exceed" in row.error
    db.expire_all()
    assert db.get(SyncState, "graph").delta_link == link
    assert employees(db)["P000"].department == "Sales"
    assert run().status == "succeeded"  # resumes from the last committed deltaLink
    assert employees(db)["P000"].department == "Legal"


def test_403_fails_fast_naming_the_permission(run, entra_server, db, sleeps):
    """A missing User.Read.All consent fails at once, with the permission and Graph's request id."""
    entra_server.fake.app_roles = []
    staff(entra_server.fake, 2)
    outcome = run()
    assert outcome.status == "failed" and "User.Read.All" in outcome.message
    row = last_run(db)
    assert row.request_id and not row.delta_committed and sleeps == []


def test_select_change_forces_full_resync(run, entra_server, db):
    """A different $select list discards the deltaLink: the next run is a full one."""
    staff(entra_server.fake, 2)
    run()
    run(INTRANET_GRAPH_SELECT="id,displayName,mail,userPrincipalName,userType,accountEnabled,employeeId,"
        "department,manager")
    assert last_run(db).mode == "full"


def test_guard_holds_mass_removal(run, entra_server, db):
    """Removing most of the directory at once is held for an admin; nothing is applied, no deltaLink."""
    fake = entra_server.fake
    ids = staff(fake, 40)
    run()
    link = db.get(SyncState, "graph").delta_link
    for oid in ids[1:31]:
        fake.remove_user(oid, "changed")
    outcome = run()
    assert outcome.status == "held"
    assert sum(e.active for e in employees(db).values()) == 40
    db.expire_all()
    assert db.get(SyncState, "graph").delta_link == link
    _, held = guard.held_runs(db)[0]
    assert held.diff["deactivations_total"] == 30


def test_hr_owns_department_entra_owns_email(run, entra_server, db, database, clock):
    """Per-field ownership: HR's department beats Entra's, Entra's email beats HR's; the most restrictive status wins."""
    fake = entra_server.fake
    ids = staff(fake, 3)
    run()
    make_sync(database, clock).run_hr(
        hr_csv([person("P000", "other@contoso.test", dept="Legal"), person("P001", status="Terminated"),
                person("B1")]), file_name="hr_2026-11-24.csv")
    people = employees(db)
    assert people["P000"].department == "Legal"
    assert people["P000"].email == fake.user(ids[1])["mail"]
    assert not people["P001"].active  # HR terminated, Entra still enabled
    fake.update_user(ids[1], department="Finance")
    run()
    assert employees(db)["P000"].department == "Legal"
    assert quarantine(db) == set()


def test_scheduled_round_runs_through_the_job_table(make_app, entra_server, db):
    """The directory-graph-sync job, run by the scheduler's runner with the app's settings and session
    factory: a first round is full, the next one incremental from the committed deltaLink."""
    from intranet import jobs

    staff(entra_server.fake, 5)
    app = make_app(**entra_server.config(), INTRANET_GRAPH_PAGE_SIZE=2)
    job = next(j for j in jobs.periodic_job_definitions() if j.id == "directory-graph-sync")
    assert job.commits
    assert jobs.run_once(app, job) == "succeeded"
    assert len(employees(db)) == 5 and last_run(db).mode == "full" and last_run(db).trigger == "schedule"
    assert jobs.run_once(app, job) == "succeeded"
    assert last_run(db).mode == "delta"


def test_scheduled_round_does_nothing_without_entra(app, db):
    """Without a tenant and client id the scheduled Graph job is a no-op (no run recorded)."""
    from intranet import jobs

    job = next(j for j in jobs.periodic_job_definitions() if j.id == "directory-graph-sync")
    assert jobs.run_once(app, job) is None
    assert last_run(db) is None
