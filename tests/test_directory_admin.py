"""Directory admin pages: sync health, held runs with their diff (approve/reject with CSRF), admins only."""
from __future__ import annotations

import pytest

from tests.directory_support import DIRTY, employees, hr_csv, last_run, make_sync, person

PAGES = ["/admin/directory/", "/admin/directory/quarantine", "/admin/directory/unmapped"]


@pytest.fixture
def sync(database, clock):  # type: ignore[no-untyped-def]
    return make_sync(database, clock)


def test_pages_are_admin_only(client_for, make_employee, sync):
    """Employees and comms managers get 403 on every directory admin page and action."""
    run_id = sync.run_hr(DIRTY.read_bytes(), file_name=DIRTY.name).run_id
    for role in ({}, {"is_comms": True}):
        client = client_for(make_employee(**role))
        for url in PAGES + [f"/admin/directory/runs/{run_id}"]:
            assert client.get(url).status_code == 403, url
        for action in ("approve", "reject"):
            assert client.post(f"/admin/directory/runs/{run_id}/{action}",
                               data={"csrf_token": client.csrf}).status_code == 403


def test_health_page_shows_runs_coverage_quarantine_unmapped(client_for, make_employee, sync):
    """The health page lists the last runs with counts, attribute coverage, quarantined and unmapped values."""
    sync.run_hr(DIRTY.read_bytes(), file_name=DIRTY.name)
    client = client_for(make_employee(is_admin=True, department=None, timezone=None))
    page = client.get("/admin/directory/").get_data(as_text=True)
    assert "Attribute coverage" in page and "Time zone" in page
    assert "duplicate_key" in page and "Salez" in page
    assert "#1" in page and "succeeded" in page
    assert "manager_cycle" in client.get("/admin/directory/quarantine").get_data(as_text=True)
    assert "Atlantis" in client.get("/admin/directory/unmapped").get_data(as_text=True)


def test_held_run_diff_then_approve(client_for, make_employee, sync, db):
    """An admin sees who a held run would deactivate and approves it with a CSRF-protected POST."""
    sync.run_hr(hr_csv([person(f"E{i:03d}") for i in range(40)]), file_name="a_2026-11-24.csv")
    held = sync.run_hr(hr_csv([person(f"E{i:03d}", status="Terminated" if i < 30 else "Active")
                               for i in range(40)]), file_name="b_2026-11-24.csv")
    assert held.status == "held"
    admin = make_employee(is_admin=True)
    client = client_for(admin)
    page = client.get(f"/admin/directory/runs/{held.run_id}").get_data(as_text=True)
    assert "Would be deactivated" in page and "E000" in page and "Approve and apply" in page
    assert client.post(f"/admin/directory/runs/{held.run_id}/approve").status_code == 400  # no CSRF token
    assert all(e.active for k, e in employees(db).items() if k.startswith("E"))
    response = client.post(f"/admin/directory/runs/{held.run_id}/approve", data={"csrf_token": client.csrf})
    assert response.status_code == 302
    assert sum(not e.active for e in employees(db).values()) == 30
    run = last_run(db)
    assert run.status == "approved" and run.decided_by_pk == admin.id


def test_held_run_reject(client_for, make_employee, sync, db):
    """Rejecting a held run applies nothing and records who decided."""
    sync.run_hr(hr_csv([person(f"E{i:03d}") for i in range(40)]), file_name="a_2026-11-24.csv")
    held = sync.run_hr(hr_csv([person(f"E{i:03d}") for i in range(10)]), file_name="b_2026-11-24.csv")
    admin = make_employee(is_admin=True)
    client = client_for(admin)
    client.post(f"/admin/directory/runs/{held.run_id}/reject", data={"csrf_token": client.csrf})
    assert all(e.active for e in employees(db).values())
    assert last_run(db).status == "rejected"
    page = client.get(f"/admin/directory/runs/{held.run_id}").get_data(as_text=True)
    assert "rejected" in page and "Approve and apply" not in page
