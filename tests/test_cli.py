"""The command line: init-db, canonical CSV import, roles and the demo seed, through Flask's runner."""
from __future__ import annotations

import csv
import io
import os
import subprocess
from pathlib import Path

import pytest
from sqlmodel import select

from intranet.directory.csv_import import HEADER
from intranet.models import Employee, Post

ROOT = Path(__file__).resolve().parent.parent


def write_csv(path, rows, header=HEADER):  # type: ignore[no-untyped-def]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(h, "") for h in header] if isinstance(row, dict) else row)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def person(eid: str, **values: str) -> dict[str, str]:
    base = {"employee_id": eid, "email": f"{eid.lower()}@example.test", "display_name": f"Person {eid}",
            "department": "Sales", "region": "EMEA", "country": "DE", "level": "4", "timezone": "Europe/Berlin",
            "language": "en", "status": "active"}
    return base | values


def run(app, *args):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=["intranet", *args], catch_exceptions=False)


def test_init_db_is_idempotent(app):
    """init-db on an up-to-date database says so and succeeds."""
    result = run(app, "init-db")
    assert result.exit_code == 0 and "up to date" in result.output


def test_import_creates_then_updates_without_duplicates(app, db, tmp_path):
    """Re-importing updates people in place; nobody is duplicated."""
    path = write_csv(tmp_path / "p.csv", [person("A1"), person("A2", manager_id="A1")])
    assert run(app, "directory", "import-csv", str(path)).exit_code == 0
    write_csv(path, [person("A1", department="Finance"), person("A2", manager_id="A1")])
    result = run(app, "directory", "import-csv", str(path))
    assert "0 created, 1 updated, 1 unchanged" in result.output
    rows = db.exec(select(Employee).order_by(Employee.employee_id)).all()
    assert [(e.employee_id, e.department, e.manager_id) for e in rows] == [("A1", "Finance", None),
                                                                          ("A2", "Sales", "A1")]


def test_empty_cells_never_erase_known_values(app, db, tmp_path):
    """An empty cell means unknown: the stored value stays."""
    path = write_csv(tmp_path / "p.csv", [person("A1", office="Berlin")])
    run(app, "directory", "import-csv", str(path))
    write_csv(path, [person("A1", office="", level="")])
    run(app, "directory", "import-csv", str(path))
    employee = db.exec(select(Employee)).one()
    assert (employee.office, employee.level) == ("Berlin", 4)


def test_bad_file_is_rejected_whole_with_line_numbers(app, db, tmp_path):
    """One bad row rejects the file; the report names each problem's line; nothing is imported."""
    path = write_csv(tmp_path / "p.csv", [
        person("A1"), person("A2", level="11"), person("A3", timezone="Mars/Olympus"), person("A1"),
        person("A4", country="Germany"), person("", email="nobody@example.test"), person("A5", status="maybe"),
        person("A6", email="not-an-email"), person("A7", manager_id="ZZZ"),
    ])
    result = app.test_cli_runner().invoke(args=["intranet", "directory", "import-csv", str(path)])
    assert result.exit_code == 1
    for expected in ("line 3: level", "line 4: timezone", "line 5: employee_id 'A1' also appears on line 2",
                     "line 6: country", "line 7: employee_id is empty", "line 8: status", "line 9: email"):
        assert expected in result.output, result.output
    assert db.exec(select(Employee)).all() == []


def test_unknown_manager_is_rejected(app, db, tmp_path):
    """A manager_id that is neither in the file nor the directory is reported."""
    path = write_csv(tmp_path / "p.csv", [person("A1", manager_id="ZZZ")])
    result = app.test_cli_runner().invoke(args=["intranet", "directory", "import-csv", str(path)])
    assert result.exit_code == 1 and "line 2: manager_id 'ZZZ'" in result.output


def test_wrong_header_is_explained(app, tmp_path):
    """A file with missing or unknown columns is refused with the expected header."""
    path = write_csv(tmp_path / "p.csv", [["A1", "a@x.test"]], header=["employee_id", "mail"])
    result = app.test_cli_runner().invoke(args=["intranet", "directory", "import-csv", str(path)])
    assert result.exit_code == 1 and "missing columns" in result.output and "unknown columns: mail" in result.output


def test_import_accepts_bom_and_deactivates_by_status(app, db, tmp_path, client_for):
    """A UTF-8 BOM is fine; status=inactive deactivates and ends that person's sessions."""
    path = write_csv(tmp_path / "p.csv", [person("A1")])
    run(app, "directory", "import-csv", str(path))
    client = client_for(db.exec(select(Employee)).one())
    path.write_text("\ufeff" + path.read_text().replace(",active", ",inactive"), encoding="utf-8")
    result = run(app, "directory", "import-csv", str(path))
    assert "1 deactivated" in result.output
    assert client.get("/api/v1/feed").status_code == 401


def test_people_missing_from_the_file_stay_active(app, db, tmp_path):
    """import-csv never deactivates people who are simply absent from the file."""
    run(app, "directory", "import-csv", str(write_csv(tmp_path / "a.csv", [person("A1"), person("A2")])))
    run(app, "directory", "import-csv", str(write_csv(tmp_path / "b.csv", [person("A1")])))
    assert all(e.active for e in db.exec(select(Employee)).all())


def test_roles_grant_and_revoke(app, db, make_employee):
    """roles grant/revoke resolve the email (case-insensitively) and store the role."""
    employee = make_employee(email="casey@example.test")
    assert run(app, "roles", "grant", "Casey@Example.test", "comms").exit_code == 0
    db.refresh(employee)
    assert employee.is_comms
    run(app, "roles", "revoke", "casey@example.test", "comms")
    db.refresh(employee)
    assert not employee.is_comms


@pytest.mark.parametrize("email", ["nobody@example.test", "shared@example.test"])
def test_roles_need_exactly_one_person(app, make_employee, email):
    """Granting a role to an unknown or shared email fails with a clear message."""
    make_employee(email="shared@example.test")
    make_employee(email="shared@example.test")
    result = app.test_cli_runner().invoke(args=["intranet", "roles", "grant", email, "admin"])
    assert result.exit_code == 1 and email in result.output


def test_demo_seed_is_deterministic_and_believable(app, db):
    """The same seed gives the same organisation, with several regions, levels and targeted posts."""
    result = run(app, "demo", "seed", "--employees", "120", "--seed", "3")
    assert result.exit_code == 0 and "admin@beacon.example" in result.output
    first = [(e.employee_id, e.department, e.region, e.level, e.manager_id)
             for e in db.exec(select(Employee).order_by(Employee.id))]
    assert len({r[2] for r in first}) == 3 and len({r[3] for r in first}) >= 6
    assert db.exec(select(Post)).all()
    assert run(app, "demo", "seed", "--if-empty").exit_code == 0
    assert app.test_cli_runner().invoke(args=["intranet", "demo", "seed"]).exit_code == 1


def test_demo_seed_includes_a_running_journey_to_click_through(app, db, client_for):
    """The demo has one journey for new joiners; the demo employee, hired yesterday, has its welcome
    in their feed, and a colleague hired long ago does not."""
    from intranet import demo
    from intranet.models import Journey

    assert run(app, "demo", "seed", "--employees", "60").exit_code == 0
    [journey] = db.exec(select(Journey)).all()
    assert journey.trigger == "hire" and journey.status == "active"
    emma = db.exec(select(Employee).where(Employee.email == demo.ACCOUNTS["employee"])).one()
    feed = [item["title"] for item in client_for(emma).get("/api/v1/feed").get_json()["items"]]
    assert demo.JOURNEY_STEPS[0][2] in feed and demo.JOURNEY_STEPS[1][2] not in feed
    admin = db.exec(select(Employee).where(Employee.email == demo.ACCOUNTS["admin"])).one()
    feed = [item["title"] for item in client_for(admin).get("/api/v1/feed").get_json()["items"]]
    assert demo.JOURNEY_STEPS[0][2] not in feed
    comms = db.exec(select(Employee).where(Employee.email == demo.ACCOUNTS["comms"])).one()
    assert "Welcome to the company" in client_for(comms).get(f"/journeys/{journey.id}").get_data(as_text=True)


def test_make_run_prints_each_demo_account_once(app):
    """`make run` names each demo account exactly once, on the first run and on later ones."""
    from intranet import demo

    recipe = subprocess.run(["make", "--dry-run", "run"], cwd=ROOT, capture_output=True, text=True, check=True,
                            env={**os.environ, "MAKEFLAGS": ""}).stdout
    seeding = run(app, "demo", "seed", "--if-empty", "--employees", "40").output
    later = run(app, "demo", "seed", "--if-empty").output
    for output in (seeding, later):
        for email in demo.ACCOUNTS.values():
            assert (recipe + output).count(email) == 1, (email, recipe, output)


def test_same_seed_same_organisation(tmp_path):
    """Two seeds with the same value produce identical people."""
    from sqlmodel import Session

    from intranet import demo, migrate
    from intranet.db import make_engine
    from tests.conftest import NOW

    signatures = []
    for n in range(2):
        engine = make_engine(f"sqlite:///{tmp_path / f'{n}.db'}")
        migrate.upgrade(engine)
        with Session(engine) as session:
            demo.seed(session, employees=80, seed=11, now=NOW)
            session.commit()
            signatures.append([(e.employee_id, e.email, e.department, e.office, e.level, e.manager_id)
                               for e in session.exec(select(Employee).order_by(Employee.id))])
        engine.dispose()
    assert signatures[0] == signatures[1]
