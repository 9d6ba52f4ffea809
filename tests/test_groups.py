"""Groups: open ones people join themselves, managed ones set by owners, created by admins."""
from __future__ import annotations

import pytest
from sqlmodel import select

from intranet.models import Group, GroupMember


def test_admin_creates_group_through_the_api(make_employee, client_for, db):
    """Admins create groups with a key, a name, a kind and owners."""
    admin = make_employee(is_admin=True)
    owner = make_employee()
    response = client_for(admin).api("POST", "/api/v1/groups", json={
        "key": "green-team", "name": "Green team", "kind": "managed", "owner_ids": [owner.employee_id]})
    assert response.status_code == 201
    assert db.exec(select(Group.kind).where(Group.key == "green-team")).one() == "managed"


def test_only_admins_create_groups(make_employee, client_for):
    """A comms manager cannot create groups (403)."""
    response = client_for(make_employee(is_comms=True)).api("POST", "/api/v1/groups",
                                                           json={"key": "x1", "name": "X", "kind": "open"})
    assert response.status_code == 403


def test_duplicate_or_malformed_keys_are_refused(make_employee, make_group, client_for):
    """A taken key is a 409, a malformed one a 422."""
    client = client_for(make_employee(is_admin=True))
    make_group("runners")
    assert client.api("POST", "/api/v1/groups", json={"key": "runners", "name": "R"}).status_code == 409
    assert client.api("POST", "/api/v1/groups", json={"key": "Bad Key!", "name": "R"}).status_code == 422


def test_owner_sets_managed_members_others_cannot(make_employee, make_group, client_for, db):
    """Owners (and admins) replace a managed group's members; anyone else gets a 403."""
    owner, member, stranger = make_employee(), make_employee(), make_employee()
    group = make_group("leadership", kind="managed")
    client_for(make_employee(is_admin=True)).api("POST", "/api/v1/groups", json={
        "key": "board", "name": "Board", "kind": "managed", "owner_ids": [owner.employee_id]})
    body = {"employee_ids": [member.employee_id]}
    assert client_for(stranger).api("PUT", "/api/v1/groups/board/members", json=body).status_code == 403
    assert client_for(owner).api("PUT", "/api/v1/groups/board/members", json=body).get_json() == {"members": 1}
    assert client_for(owner).api("PUT", f"/api/v1/groups/{group.key}/members", json=body).status_code == 403


def test_groups_page_join_and_leave(make_employee, make_group, client_for, db):
    """The groups page's forms join and leave open groups."""
    me = make_employee()
    group = make_group("runners")
    client = client_for(me)
    assert "Runners" in client.get("/groups").get_data(as_text=True)
    client.post("/groups/runners/join", data={"csrf_token": client.csrf})
    assert db.get(GroupMember, (group.id, me.id)) is not None
    client.post("/groups/runners/leave", data={"csrf_token": client.csrf})
    db.expire_all()
    assert db.get(GroupMember, (group.id, me.id)) is None


def test_unknown_group_is_404(make_employee, client_for):
    """Joining a group that does not exist is a 404."""
    assert client_for(make_employee()).api("POST", "/api/v1/groups/nope/join").status_code == 404


# --- the members page: a people picker -------------------------------------------------------------


def _owned(make_group, db, owner, key="choir", kind="open", members=()):  # type: ignore[no-untyped-def]
    from intranet.models import GroupOwner

    group = make_group(key, kind=kind, members=members)
    db.add(GroupOwner(group_id=group.id, employee_pk=owner.id))
    db.commit()
    return group


def test_owner_finds_people_by_name_and_adds_them(make_employee, make_group, client_for, db):
    """Searching 'ada lov' finds Ada Lovelace (not people who left); Add puts her in the group, others stay."""
    owner, joined = make_employee(display_name="Olga Owner"), make_employee(display_name="Jo Joined")
    ada = make_employee(display_name="Ada Lovelace", job_title="Engineer")
    make_employee(display_name="Ada Lovelace-Gone", active=False)
    group = _owned(make_group, db, owner, members=(joined,))
    client = client_for(owner)
    page = client.get("/groups/choir/members?q=ada lov").get_data(as_text=True)
    results = page.split('id="search-results"')[1].split("</ul>")[0]
    assert "Ada Lovelace" in results and "Lovelace-Gone" not in results and "Engineer" in results
    assert "<textarea" not in page  # an open group is never replaced wholesale
    response = client.post("/groups/choir/members/add", data={"csrf_token": client.csrf, "employee_id": ada.employee_id,
                                                              "q": "ada lov"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/groups/choir/members?q=ada+lov")
    members = set(db.exec(select(GroupMember.employee_pk).where(GroupMember.group_id == group.id)).all())
    assert members == {joined.id, ada.id}
    page = client.get("/groups/choir/members").get_data(as_text=True)
    assert "2 members" in page and "Ada Lovelace" in page


def test_owner_removes_one_member(make_employee, make_group, client_for, db):
    """Remove takes one person out and leaves everyone else (who may have joined themselves)."""
    owner, stay, go = make_employee(), make_employee(), make_employee()
    group = _owned(make_group, db, owner, kind="managed", members=(stay, go))
    client = client_for(owner)
    assert "<textarea" in client.get("/groups/choir/members").get_data(as_text=True)  # bulk, for managed groups
    client.post("/groups/choir/members/remove", data={"csrf_token": client.csrf, "employee_id": go.employee_id})
    assert set(db.exec(select(GroupMember.employee_pk).where(GroupMember.group_id == group.id)).all()) == {stay.id}


def test_only_owners_and_admins_change_members(make_employee, make_group, client_for, db):
    """Anyone else gets a 403 from the page, Add and Remove; people who left cannot be added."""
    owner, member, stranger = make_employee(), make_employee(), make_employee()
    group = _owned(make_group, db, owner, members=(member,))
    client = client_for(stranger)
    assert client.get("/groups/choir/members").status_code == 403
    for action in ("add", "remove"):
        response = client.post(f"/groups/choir/members/{action}",
                               data={"csrf_token": client.csrf, "employee_id": member.employee_id})
        assert response.status_code == 403
    gone = make_employee(active=False)
    admin = client_for(make_employee(is_admin=True))
    refused = admin.post("/groups/choir/members/add", data={"csrf_token": admin.csrf, "employee_id": gone.employee_id},
                         follow_redirects=True)
    assert "has left the organisation" in refused.get_data(as_text=True)
    assert set(db.exec(select(GroupMember.employee_pk).where(GroupMember.group_id == group.id)).all()) == {member.id}


@pytest.mark.browser
def test_people_picker_searches_as_you_type(page, live_server, sign_in_browser, make_employee, make_group, db):
    """In the browser, results follow the typing (no Search click) and Add works from them."""
    owner = make_employee(display_name="Olga Owner")
    ada = make_employee(display_name="Ada Lovelace")
    make_employee(display_name="Grace Hopper")
    group = _owned(make_group, db, owner, kind="managed")
    sign_in_browser(owner)
    page.goto(f"{live_server}/groups/choir/members")
    page.fill("#person-search", "lovel")
    results = page.locator("#search-results li")
    results.first.wait_for()
    assert results.all_inner_texts()[0].startswith("Ada Lovelace") and results.count() == 1
    assert page.url.endswith("?q=lovel")
    page.click('button[aria-label="Add Ada Lovelace"]')
    page.wait_for_selector("text=Ada Lovelace added to Choir.")
    assert db.exec(select(GroupMember.employee_pk).where(GroupMember.group_id == group.id)).all() == [ada.id]
