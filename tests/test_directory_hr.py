"""HR exports: mapping files, dirty data, quarantine, normalization, merge rules, guard (SQLite and PostgreSQL)."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import select

from intranet import leases
from intranet.directory import guard
from intranet.directory.lifecycle import lifecycle_job
from intranet.directory.runs import AlreadyRunning
from intranet.models import AuthSession, EmployeeDirectory, HrRecord, SyncRun
from intranet.settings import Settings
from tests.directory_support import (
    DIRTY, day, employees, hr_csv, last_run, make_sync, person, quarantine, unmapped,
)


@pytest.fixture
def sync(database, clock):  # type: ignore[no-untyped-def]
    return make_sync(database, clock)


def test_dirty_file_outcomes(sync, db):
    """The deliberately dirty Workday file: normalized, quarantined, unmapped, references and cycles handled."""
    outcome = sync.run_hr(DIRTY.read_bytes(), file_name=DIRTY.name)
    assert outcome.status == "succeeded"
    people = employees(db)
    assert set(people) == {"E0001", "E0003", "E0004", "E0005", "E0006", "E0007", "E0008", "E0009"}
    frank = people["E0008"]
    assert frank.email == "frank@contoso.test"  # trimmed and casefolded
    assert frank.country == "US"  # "United States"
    assert (frank.level, frank.level_label) == (5, "L5")  # "Level 5"
    assert frank.department == "Research & Development"  # "Research and Development"
    assert frank.display_name == "Frank Free"
    assert frank.timezone == "America/Los_Angeles" and frank.region == "AMER"  # office map, country map
    assert frank.manager_id == "E0001"
    bob = people["E0003"]
    assert bob.department == "Research & Development"  # "R & D"
    assert bob.manager_id is None  # E0099 does not exist: kept, without a manager
    assert bob.timezone == "Europe/Berlin"  # the country's zone
    dan = people["E0004"]
    assert dan.email is None and dan.active is False  # terminated on 2025-06-30
    erin = people["E0005"]
    assert erin.department == "Salez" and erin.country is None and erin.level is None
    assert erin.level_label == "Senior-ish" and erin.timezone == "UTC"  # org default
    assert {"E0006", "E0007"} <= set(people) and people["E0006"].manager_id is None
    assert quarantine(db) >= {("E0002", "duplicate_key"), ("line 8", "no_join_key"), ("E0006", "manager_cycle"),
                              ("E0007", "manager_cycle"), ("E0003", "manager_not_found")}
    assert unmapped(db) == {("department", "Salez"), ("country", "Atlantis"), ("level", "Senior-ish")}
    run = last_run(db)
    assert (run.seen, run.created, run.quarantined, run.unmapped, run.reference_failures) == (11, 8, 5, 3, 1)
    assert run.rows == 11 and run.file_sha256 and run.as_of == day("2026-11-23") and run.duration_ms is not None
    assert db.get(EmployeeDirectory, people["E0001"].id).cost_center == "CC-100"


def test_second_identical_run_changes_nothing(sync, db, clock):
    """Importing the same file twice: no creates, no updates, no timestamps touched."""
    sync.run_hr(DIRTY.read_bytes(), file_name=DIRTY.name)
    before = {k: (e.updated_at, e.model_dump()) for k, e in employees(db).items()}
    clock.advance(minutes=5)
    sync.run_hr(DIRTY.read_bytes(), file_name=DIRTY.name)
    run = last_run(db)
    assert (run.status, run.created, run.updated, run.deactivated, run.reactivated) == ("succeeded", 0, 0, 0, 0)
    assert {k: (e.updated_at, e.model_dump()) for k, e in employees(db).items()} == before


@pytest.mark.parametrize("delimiter,bom", [(",", False), (";", True), ("\t", False), ("\t", True)])
def test_delimiters_and_bom(sync, db, delimiter, bom):
    """Comma, semicolon and tab files, with or without a BOM, read the same."""
    data = hr_csv([person("E1"), person("E2", manager="E1")], delimiter=delimiter, bom=bom)
    assert sync.run_hr(data, file_name="export_2026-11-24.csv").status == "succeeded"
    people = employees(db)
    assert people["E2"].manager_id == "E1" and people["E1"].email == "e1@contoso.test"


def test_missing_required_column_refuses_the_file(sync, db):
    """The mapping is never guessed: a file without the mapped key column is refused, nothing applied."""
    data = b"Number,Email,Status\nE1,a@b.test,Active\n"
    outcome = sync.run_hr(data, file_name="x_2026-11-24.csv")
    assert outcome.status == "failed" and "Employee_ID" in outcome.message
    assert employees(db) == {}
    assert last_run(db).status == "failed"


def test_as_of_is_required(sync, db):
    """Without --as-of or a date in its name the file is refused (staleness needs it)."""
    outcome = sync.run_hr(hr_csv([person("E1")]), file_name="export.csv")
    assert outcome.status == "failed" and "--as-of" in outcome.message


def test_empty_cell_never_overwrites_known_value(sync, db):
    """A later file with an empty department keeps the known department."""
    sync.run_hr(hr_csv([person("E1", dept="Sales")]), file_name="a_2026-11-24.csv")
    sync.run_hr(hr_csv([person("E1", dept="")]), file_name="b_2026-11-24.csv")
    assert employees(db)["E1"].department == "Sales"


def test_duplicate_rows_keep_last_good_values(sync, db):
    """A duplicated employee number quarantines both rows; the employee keeps what was last applied."""
    sync.run_hr(hr_csv([person("E1", dept="Sales")]), file_name="a_2026-11-24.csv")
    sync.run_hr(hr_csv([person("E1", dept="Finance"), person("E1", dept="Legal")]), file_name="b_2026-11-24.csv")
    assert employees(db)["E1"].department == "Sales" and employees(db)["E1"].active
    assert ("E1", "duplicate_key") in quarantine(db)
    sync.run_hr(hr_csv([person("E1", dept="Legal")]), file_name="c_2026-11-24.csv")
    assert employees(db)["E1"].department == "Legal" and quarantine(db) == set()


def test_termination_date_is_an_effective_date(sync, db, clock):
    """An employee terminated in the future stays active until the date, then the lifecycle job deactivates."""
    sync.run_hr(hr_csv([person("E1", end="2026-12-01")]), file_name="a_2026-11-24.csv")
    assert employees(db)["E1"].active
    clock.now = day("2026-12-01T01:00:00")
    assert lifecycle_job(db, clock.now, Settings())["terminated"] == 1
    db.commit()
    assert not employees(db)["E1"].active


def test_hire_date_comes_from_hr_and_a_blank_keeps_it(sync, db):
    """The HR hire date lands on the employee (relative audiences and journeys count from it); an
    empty cell later never clears it, and a corrected one replaces it."""
    sync.run_hr(hr_csv([person("E1", hired="2026-11-02")]), file_name="a_2026-11-24.csv")
    assert employees(db)["E1"].hire_date == dt.date(2026, 11, 2)
    sync.run_hr(hr_csv([person("E1", hired="")]), file_name="b_2026-11-24.csv")
    assert employees(db)["E1"].hire_date == dt.date(2026, 11, 2)
    sync.run_hr(hr_csv([person("E1", hired="2026-11-09")]), file_name="c_2026-11-24.csv")
    assert employees(db)["E1"].hire_date == dt.date(2026, 11, 9)


def test_rehire_reactivates(sync, db):
    """A terminated employee who is active again in a later file comes back."""
    sync.run_hr(hr_csv([person("E1", status="Terminated")]), file_name="a_2026-11-24.csv")
    assert not employees(db)["E1"].active
    sync.run_hr(hr_csv([person("E1")]), file_name="b_2026-11-24.csv")
    assert employees(db)["E1"].active and last_run(db).reactivated == 1


def test_missing_from_full_export_deactivates_and_ends_sessions(sync, db):
    """Someone no longer in the (full) export is deactivated through people.deactivate: sessions end."""
    sync.run_hr(hr_csv([person(f"E{i}") for i in range(5)]), file_name="a_2026-11-24.csv")
    gone = employees(db)["E4"]
    db.add(AuthSession(id="s" * 64, employee_pk=gone.id, data={"employee_pk": gone.id}))
    db.commit()
    sync.run_hr(hr_csv([person(f"E{i}") for i in range(4)]), file_name="b_2026-11-24.csv")
    assert not employees(db)["E4"].active
    assert db.exec(select(AuthSession)).all() == []


def test_guard_holds_mass_deactivation_then_admin_approves(sync, db, make_employee, clock):
    """A run that would deactivate more than max(25, 5 %) is held with nothing applied; approval applies it."""
    sync.run_hr(hr_csv([person(f"E{i:03d}") for i in range(60)]), file_name="a_2026-11-24.csv")
    terminated = [person(f"E{i:03d}", status="Terminated") if i < 30 else person(f"E{i:03d}") for i in range(60)]
    outcome = sync.run_hr(hr_csv(terminated), file_name="b_2026-11-24.csv")
    assert outcome.status == "held" and "deactivate 30 of 60" in outcome.message
    assert all(e.active for e in employees(db).values())  # nothing applied
    run, held = guard.held_runs(db)[0]
    assert len(held.diff["deactivations"]) == 30 and held.diff["deactivations"][0]["employee_id"] == "E000"
    admin = make_employee(is_admin=True)
    approved = sync.approve(run.id, admin=admin)
    assert approved.status == "approved"
    assert sum(not e.active for e in employees(db).values()) == 30
    run = db.get(SyncRun, run.id)
    db.refresh(run)
    assert run.status == "approved" and run.decided_by_pk == admin.id and run.decided_at == clock.now


def test_guard_row_drop_and_reject(sync, db, make_employee, clock):
    """An HR file with far fewer rows is held; rejecting it leaves everything as it was (audited)."""
    sync.run_hr(hr_csv([person(f"E{i:03d}") for i in range(30)]), file_name="a_2026-11-24.csv")
    outcome = sync.run_hr(hr_csv([person(f"E{i:03d}") for i in range(20)]), file_name="b_2026-11-24.csv")
    assert outcome.status == "held" and "20 rows, down from 30" in outcome.message
    admin = make_employee(is_admin=True)
    guard.reject(db, outcome.run_id, admin=admin, now=clock.now)
    db.commit()
    assert last_run(db).status == "rejected" and all(e.active for e in employees(db).values())
    assert db.exec(select(HrRecord)).all().__len__() == 30


def test_concurrent_run_is_refused(sync, db, clock):
    """While another process holds the sync lease, a run is refused ('already running') and recorded."""
    assert leases.acquire(db, "directory-sync", "someone-else", ttl=dt.timedelta(minutes=5), now=clock.now)
    db.commit()
    with pytest.raises(AlreadyRunning, match="already running"):
        sync.run_hr(hr_csv([person("E1")]), file_name="a_2026-11-24.csv")
    run = last_run(db)
    assert run.status == "refused" and "already running" in run.error
    assert employees(db) == {}


def test_stale_file_is_demoted(sync, db, clock):
    """An HR file older than the staleness limit is recorded as stale (HR becomes the fallback source)."""
    sync.run_hr(hr_csv([person("E1")]), file_name="a_2026-11-01.csv")
    run = last_run(db)
    assert run.stale_source and "demoted" in run.error
    assert employees(db)["E1"].department == "Finance"  # still fills what nobody else knows


@pytest.mark.parametrize("mapping,header,row", [
    ("bamboohr", "employeeNumber,workEmail,firstName,lastName,department,location,country,supervisorEId,status",
     "42,ann@contoso.test,Ann,Lee,R&D,Berlin,Germany,,Active"),
    ("scim", 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber,'
             'emails[type eq ""work""].value,displayName,'
             'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department,active',
     "42,ann@contoso.test,Ann Lee,R&D,true"),
])
def test_example_mappings(sync, db, mapping, header, row):
    """The BambooHR and SCIM example mappings read their exports."""
    data = f"{header}\n{row}\n".encode()
    assert sync.run_hr(data, file_name="x_2026-11-24.csv", mapping=mapping).status == "succeeded"
    ann = employees(db)["42"]
    assert ann.email == "ann@contoso.test" and ann.department == "Research & Development" and ann.active
