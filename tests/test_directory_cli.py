"""Every ``flask intranet directory ...`` command in README.md, run through the command line.

Graph syncs go through the real msal + requests against the HTTPS fake of Entra ID and Graph;
HR and canonical files are written to disk and named on the command line, as an admin would.
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import select

from intranet.directory import graph
from intranet.models import EmployeeDirectory, SyncRun, SyncState
from tests.directory_support import DIRTY, employees, last_run, quarantine
from tests.fakes.entra_graph import FakeEntraServer


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEntraServer]:
    with FakeEntraServer() as srv:
        # requests lets these variables override verify= (and these machines export them).
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", srv.ca_bundle_path)
        monkeypatch.setenv("CURL_CA_BUNDLE", srv.ca_bundle_path)
        graph.clear_app_cache()
        yield srv
    graph.clear_app_cache()


@pytest.fixture
def graph_app(app, server):  # type: ignore[no-untyped-def]
    """The app configured for Entra ID as a deployment would be (small pages, so rounds span several)."""
    app.config.update(server.config(), INTRANET_GRAPH_PAGE_SIZE=7)
    return app


def cli(app: Any, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["intranet", "directory", *args])


def org(fake: Any, n: int) -> list[str]:
    """A CEO and *n* - 1 reports, as Entra would list them (plus a guest and a room that are not employees)."""
    ids = [fake.add_user(displayName="Carla Chef", employeeId="E0001", department="Executive", country="US",
                         officeLocation="HQ", jobTitle="CEO", mail="carla@contoso.test",
                         onPremisesExtensionAttributes={"extensionAttribute1": "L10"})]
    for i in range(2, n + 1):
        ids.append(fake.add_user(manager=ids[0], displayName=f"Person {i}", employeeId=f"E{i:04d}",
                                 mail=f"person{i}@contoso.test", department="R&D" if i % 2 else "Sales",
                                 country="DE", officeLocation="Berlin", jobTitle="Engineer",
                                 employeeOrgData={"division": "Corp", "costCenter": "CC-9"},
                                 onPremisesExtensionAttributes={"extensionAttribute1": "Level 4"}))
    fake.add_user(displayName="Guest", userType="Guest", employeeId="G1")
    fake.add_user(displayName="Conf Room Adams", employeeId=None)
    return ids


def test_sync_first_run_is_full_with_progress_and_summary(graph_app, server, db):
    """`directory sync` with no deltaLink yet: a full round over several pages, a progress count, a summary."""
    org(server.fake, 20)
    result = cli(graph_app, "sync")
    assert result.exit_code == 0, result.output
    assert "Reading Graph: 22 users" in result.output
    assert "succeeded: 22 seen, 20 created, 0 updated, 0 deactivated" in result.output
    people = employees(db)
    assert len(people) == 20 and "G1" not in people
    assert people["E0003"].department == "Research & Development" and people["E0003"].manager_id == "E0001"
    assert people["E0003"].level == 4 and people["E0001"].level == 10
    assert db.get(EmployeeDirectory, people["E0003"].id).cost_center == "CC-9"
    run = last_run(db)
    assert (run.trigger, run.mode, run.status, run.delta_committed) == ("cli", "full", "succeeded", True)
    assert server.fake.count("/users/delta") >= 4  # 22 users in pages of 7


def test_sync_follows_the_delta_link_through_a_429(graph_app, server, db):
    """The second `directory sync` is incremental from the stored deltaLink and waits out a 429's Retry-After."""
    fake = server.fake
    ids = org(fake, 10)
    assert cli(graph_app, "sync").exit_code == 0
    link = db.get(SyncState, "graph").delta_link
    fake.update_user(ids[3], department="Legal", jobTitle=None)
    fake.remove_user(ids[5], "changed")
    fake.inject(429, times=1, retry_after=1, on_path="/users/delta")
    calls_before = len(fake.calls)
    result = cli(graph_app, "sync")
    assert result.exit_code == 0, result.output
    assert "Reading Graph: 2 users" in result.output
    assert "succeeded: 2 seen, 0 created, 1 updated, 1 deactivated" in result.output
    people = employees(db)
    assert people["E0004"].department == "Legal" and people["E0004"].job_title is None
    assert people["E0004"].country == "DE"  # absent from the round: unchanged
    assert not people["E0006"].active
    db.expire_all()
    assert (last_run(db).mode, db.get(SyncState, "graph").delta_link != link) == ("delta", True)
    deltas = [c for c in fake.calls[calls_before:] if c.path.endswith("/users/delta")]
    token = link.split("$deltatoken=")[1]
    assert [c.query.get("$deltatoken") for c in deltas] == [token, token]  # throttled, then retried as is


def test_sync_full_sweeps_people_gone_from_entra(graph_app, server, db):
    """`directory sync --full` re-reads everything and deactivates who is no longer there (mark and sweep)."""
    fake = server.fake
    ids = org(fake, 8)
    assert cli(graph_app, "sync").exit_code == 0
    fake.remove_user(ids[7], "deleted")
    fake.expire_delta_tokens()  # the sweep must not depend on the delta round reporting the removal
    result = cli(graph_app, "sync", "--full")
    assert result.exit_code == 0, result.output
    assert "succeeded:" in result.output and "1 deactivated" in result.output
    assert last_run(db).mode == "full"
    people = employees(db)
    assert not people["E0008"].active and sum(p.active for p in people.values()) == 7


def test_sync_held_by_the_guard_says_what_to_do(graph_app, server, db):
    """A round that would deactivate most people is held; the command says so and changes nothing."""
    fake = server.fake
    ids = org(fake, 40)
    assert cli(graph_app, "sync").exit_code == 0
    for oid in ids[1:31]:
        fake.remove_user(oid, "changed")
    result = cli(graph_app, "sync")
    assert result.exit_code == 0, result.output
    assert "held" in result.output and "directory admin page" in result.output
    assert all(p.active for p in employees(db).values())


def test_sync_failure_exits_non_zero_with_the_reason(graph_app, server, db):
    """Graph refusing the app (no User.Read.All) ends the command with status 1 and Graph's message."""
    server.fake.inject(403, times=5, on_path="/users/delta")
    result = cli(graph_app, "sync")
    assert result.exit_code == 1
    assert "failed" in result.output and "User.Read.All" in result.output
    assert last_run(db).status == "failed"


def test_sync_source_hr_imports_a_workday_export(app, db, tmp_path):
    """`directory sync --source hr FILE` reads a dirty Workday export: a progress bar, a summary, quarantine."""
    export = shutil.copy(DIRTY, tmp_path / DIRTY.name)
    result = cli(app, "sync", "--source", "hr", str(export))
    assert result.exit_code == 0, result.output
    assert "Reading HR file" in result.output
    assert "succeeded: 11 seen, 8 created" in result.output and "5 quarantined, 3 unmapped values" in result.output
    people = employees(db)
    assert people["E0008"].department == "Research & Development" and people["E0008"].manager_id == "E0001"
    assert not people["E0004"].active
    assert ("E0002", "duplicate_key") in quarantine(db)
    run = last_run(db)
    assert (run.source, run.trigger, run.file_name, run.rows) == ("hr", "cli", DIRTY.name, 11)


def test_sync_source_hr_with_as_of_and_mapping(app, db, tmp_path):
    """--as-of dates a file whose name has no date; --mapping picks another HR system's columns."""
    export = tmp_path / "bamboo.csv"
    export.write_text("employeeNumber,workEmail,firstName,lastName,department,status\n"
                      "1001,ana@contoso.test,Ana,Lima,Sales,Active\n", encoding="utf-8")
    refused = cli(app, "sync", "--source", "hr", str(export), "--mapping", "bamboohr")
    assert refused.exit_code == 1 and "--as-of" in refused.output
    result = cli(app, "sync", "--source", "hr", str(export), "--mapping", "bamboohr", "--as-of", "2026-11-24")
    assert result.exit_code == 0, result.output
    assert employees(db)["1001"].email == "ana@contoso.test"


def test_sync_usage_errors(app, db, tmp_path):
    """--source hr without a file, or a file for Graph, is a usage error that runs nothing."""
    export = shutil.copy(DIRTY, tmp_path / DIRTY.name)
    assert cli(app, "sync", "--source", "hr").exit_code == 2
    assert cli(app, "sync", str(export)).exit_code == 2
    assert db.exec(select(SyncRun)).all() == []


CANONICAL = ("employee_id,email,display_name,department,division,region,country,office,job_title,level,manager_id,"
             "timezone,language,status")


def canonical_org(n: int) -> list[list[str]]:
    """A believable organisation as an HR team would export it: a management tree, quoted names, accents."""
    rows = [["E0001", "Carla.Chef@Contoso.test", "Chef, Carla", "Executive", "Corporate", "AMER", "US", "HQ", "CEO",
             "10", "", "America/New_York", "en-US", "active"]]
    depts = ("Sales", "Finance", "Research & Development", "Legal")
    zones = (("DE", "EMEA", "Europe/Berlin", "de"), ("FR", "EMEA", "Europe/Paris", "fr"),
             ("US", "AMER", "America/Chicago", "en"), ("JP", "APAC", "Asia/Tokyo", "ja"))
    for i in range(2, n + 1):
        country, region, zone, language = zones[i % 4]
        manager = "E0001" if i <= 10 else f"E{(i % 9) + 2:04d}"
        rows.append([f"E{i:04d}", f"person{i}@contoso.test", f"Müller-Łukasz {i}", depts[i % 4], "Corporate",
                     region, country, f"Office {i % 7}", "Analyst, Senior" if i % 3 else "Engineer",
                     str(1 + i % 9), manager, zone, language, "inactive" if i % 50 == 0 else "active"])
    return rows


def write_canonical(path: Any, rows: list[list[str]]) -> Any:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # Excel's "CSV UTF-8": BOM and CRLF
    writer.writerow(CANONICAL.split(","))
    writer.writerows(rows)
    path.write_bytes(b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8"))
    return path


def test_import_csv_realistic_file(app, db, tmp_path):
    """`directory import-csv people.csv`: 300 people with a management tree, quoted cells and accents, then a re-import."""
    path = write_canonical(tmp_path / "people.csv", canonical_org(300))
    result = cli(app, "import-csv", str(path))
    assert result.exit_code == 0, result.output
    assert "Imported 300 employees: 300 created, 0 updated, 0 unchanged" in result.output
    people = employees(db)
    assert len(people) == 300 and sum(not p.active for p in people.values()) == 6
    carla, p43 = people["E0001"], people["E0043"]
    assert (carla.display_name, carla.email, carla.level) == ("Chef, Carla", "carla.chef@contoso.test", 10)
    assert (p43.display_name, p43.manager_id, p43.timezone, p43.job_title) == (
        "Müller-Łukasz 43", "E0009", "Asia/Tokyo", "Analyst, Senior")
    again = cli(app, "import-csv", str(path))
    assert again.exit_code == 0 and "0 created, 0 updated, 300 unchanged" in again.output
