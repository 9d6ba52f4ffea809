"""Admin pages: roles (admins) and the organisation's digest defaults (comms managers), server-checked and CSRF-protected."""
from __future__ import annotations

from intranet import preferences


def test_admin_gives_and_takes_roles(client_for, make_employee, db):
    """An admin finds someone by name and makes them a comms manager, then takes the role away."""
    admin = client_for(make_employee(is_admin=True))
    casey = make_employee(display_name="Casey Jones")
    page = admin.get("/admin/people?q=casey").get_data(as_text=True)
    assert "Casey Jones" in page.split('id="search-results"')[1]
    response = admin.post(f"/admin/people/{casey.employee_id}/roles",
                          data={"csrf_token": admin.csrf, "roles": ["comms"], "q": "casey"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/people?q=casey")
    db.refresh(casey)
    assert (casey.is_contributor, casey.is_comms, casey.is_admin) == (False, True, False)
    assert "Casey Jones" in admin.get("/admin/people").get_data(as_text=True).split('id="role-holders"')[1]
    admin.post(f"/admin/people/{casey.employee_id}/roles", data={"csrf_token": admin.csrf})
    db.refresh(casey)
    assert not (casey.is_contributor or casey.is_comms or casey.is_admin)


def test_admins_cannot_drop_their_own_admin_role(client_for, make_employee, db):
    me = make_employee(is_admin=True)
    client = client_for(me)
    refused = client.post(f"/admin/people/{me.employee_id}/roles", data={"csrf_token": client.csrf, "roles": ["comms"]},
                          follow_redirects=True)
    assert "You cannot take away your own admin role" in refused.get_data(as_text=True)
    db.refresh(me)
    assert me.is_admin and not me.is_comms


def test_roles_page_is_for_admins_and_needs_the_csrf_token(client_for, make_employee, db):
    """A comms manager gets 403 from the page and the form; a post without the CSRF token is refused."""
    target = make_employee()
    comms = client_for(make_employee(is_comms=True))
    assert comms.get("/admin/people").status_code == 403
    assert comms.post(f"/admin/people/{target.employee_id}/roles",
                      data={"csrf_token": comms.csrf, "roles": ["admin"]}).status_code == 403
    admin = client_for(make_employee(is_admin=True))
    assert admin.post(f"/admin/people/{target.employee_id}/roles", data={"roles": ["admin"]}).status_code == 400
    db.refresh(target)
    assert not target.is_admin
    assert "People" not in comms.get("/").get_data(as_text=True).split("</nav>")[0]


DEFAULTS_FORM = {"cadence": "weekly", "weekly_day": "4", "channels": ["email"], "quiet_start": "21", "quiet_end": "6",
                 "working_days": ["0", "1", "2", "3"], "learned_timing": "on"}


def test_comms_manager_sets_the_organisations_defaults(client_for, make_employee, db):
    """The form sets every default; a person who never chose gets them; "restore" brings back Beacon's."""
    comms = client_for(make_employee(is_comms=True))
    page = comms.get("/admin/digest-defaults").get_data(as_text=True)
    assert 'name="cadence" value="daily" checked' in page
    response = comms.post("/admin/digest-defaults", data={"csrf_token": comms.csrf, **DEFAULTS_FORM})
    assert response.status_code == 302
    expected = {"cadence": "weekly", "weekly_day": 4, "channels": ["email"], "quiet_start": 21, "quiet_end": 6,
                "working_days": [0, 1, 2, 3], "learned_timing": True, "open_tracking": False}
    assert {k: preferences.org_defaults(db)[k] for k in expected} == expected
    someone = preferences.for_employee(db, make_employee())
    assert (someone.cadence, someone.weekly_day, someone.channels) == ("weekly", 4, ("email",))
    assert 'name="weekly_day"' in comms.get("/admin/digest-defaults").get_data(as_text=True)
    comms.post("/admin/digest-defaults", data={"csrf_token": comms.csrf, "restore": "1"})
    db.expire_all()
    assert preferences.org_defaults(db) == preferences.BUILTIN_DEFAULTS


def test_defaults_form_refuses_bad_input_with_a_reason(client_for, make_employee, db):
    """No channel for a digest, or a day that is not on the list, is a 422 page that says why; nothing changes."""
    comms = client_for(make_employee(is_comms=True))
    no_channel = comms.post("/admin/digest-defaults", data={"csrf_token": comms.csrf, **DEFAULTS_FORM, "channels": []})
    assert no_channel.status_code == 422 and "Choose at least one place" in no_channel.get_data(as_text=True)
    bad_day = comms.post("/admin/digest-defaults", data={"csrf_token": comms.csrf, **DEFAULTS_FORM, "weekly_day": "²"})
    assert bad_day.status_code == 422 and "must be chosen from the list" in bad_day.get_data(as_text=True)
    assert preferences.org_defaults(db) == preferences.BUILTIN_DEFAULTS


def test_defaults_page_is_for_comms_managers(client_for, make_employee, db):
    """An employee gets 403 from the page and the form, and no "Organisation" link."""
    employee = client_for(make_employee())
    assert employee.get("/admin/digest-defaults").status_code == 403
    assert employee.post("/admin/digest-defaults", data={"csrf_token": employee.csrf, **DEFAULTS_FORM}).status_code == 403
    assert preferences.org_defaults(db) == preferences.BUILTIN_DEFAULTS
    assert "Organisation" not in employee.get("/").get_data(as_text=True).split("</nav>")[0]
