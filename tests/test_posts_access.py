"""Access to posts through the desk and the feed: no route shows anyone else's targeted posts.

Covers the feed preview ("see the feed as this person"), authors whose rights were revoked, group
owners who choose their group's members, 404s that look and work the same whatever the reason,
and the desk's own rules: who sees audience counts, planned times, deleting a draft's files.
"""
from __future__ import annotations

import datetime as dt
import io

import pytest
from sqlalchemy import event
from sqlmodel import select

from intranet import attachments, posts
from intranet.models import Attachment, Employee, GroupOwner, Post, PostTransition
from tests.pages import without_csrf_token

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def people(make_employee):  # type: ignore[no-untyped-def]
    return {
        "comms": make_employee(is_comms=True, department="Comms"),
        "writer": make_employee(is_contributor=True, department="Comms", level=2),
        "sales": make_employee(department="Sales", level=3),
        "director": make_employee(department="Finance", level=9),
    }


def draft(client, **fields):  # type: ignore[no-untyped-def]
    data = {"title": "Canteen reopens", "summary": "New menu", "body_html": "<p>Soup</p>", "audience": {"all": True},
            **fields}
    response = client.api("POST", "/api/v1/posts", json=data)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def preview_as(client, post_id: int, who: Employee) -> str:  # type: ignore[no-untyped-def]
    response = client.get(f"/publish/posts/{post_id}/preview-as?who={who.employee_id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


# --- the feed preview ----------------------------------------------------------------------------


def test_preview_as_hides_posts_the_viewer_may_not_see(client_for, people, make_post):
    """A contributor previewing as a director sees their own post, never the director-only ones."""
    make_post({"segments": [{"departments": ["Finance"], "level_min": 8}]}, title="Restructuring plan",
              summary="Confidential figures")
    make_post({"all": True}, title="Parking rules")
    writer = client_for(people["writer"])
    page = preview_as(writer, draft(writer), people["director"])
    assert "Canteen reopens" in page and "Parking rules" in page
    assert "Restructuring plan" not in page and "Confidential figures" not in page
    assert 'data-post-id' in page and page.count('class="feed-item') == 2  # no placeholder either


def test_preview_as_never_shows_posts_before_they_go_live_for_the_viewer(client_for, people, make_post, clock):
    """Previewing at a future planned time does not reveal posts scheduled in between."""
    make_post({"all": True}, title="Surprise announcement", status="scheduled",
              published_at=clock.now + dt.timedelta(days=1))
    writer = client_for(people["writer"])
    post_id = draft(writer)
    writer.api("PATCH", f"/api/v1/posts/{post_id}", json={"publish_at": (clock.now + dt.timedelta(days=2)).isoformat()})
    page = preview_as(writer, post_id, people["sales"])
    assert "Canteen reopens" in page and "Surprise announcement" not in page


def test_group_owner_cannot_preview_a_newly_added_member(client_for, people, make_post, make_group, db):
    """Adding someone to your managed group and previewing as them shows nothing of their feed."""
    make_post({"segments": [{"departments": ["Finance"], "level_min": 8}]}, title="Restructuring plan")
    owner = people["sales"]  # no contributor role: owning a group is what lets them write
    group = make_group("choir", kind="managed", members=(owner,))
    db.add(GroupOwner(group_id=group.id, employee_pk=owner.id))
    db.commit()
    client = client_for(owner)
    added = client.api("PUT", "/api/v1/groups/choir/members",
                       json={"employee_ids": [owner.employee_id, people["director"].employee_id]})
    assert added.status_code == 200
    post_id = draft(client, title="Rehearsal moved", audience={"segments": [{"groups": ["choir"]}]})
    page = preview_as(client, post_id, people["director"])
    assert "Rehearsal moved" in page and "Restructuring plan" not in page


def test_comms_preview_shows_the_whole_feed(client_for, people, make_post):
    """A comms manager, who may open every post on the desk, sees the member's whole feed around the post."""
    make_post({"segments": [{"departments": ["Finance"], "level_min": 8}]}, title="Restructuring plan")
    comms = client_for(people["comms"])
    page = preview_as(comms, draft(comms), people["director"])
    assert "Canteen reopens" in page and "Restructuring plan" in page


def test_preview_service_limits_to_what_the_viewer_may_read(db, people, make_post, clock):
    """preview_feed keeps the posts in the viewer's own feed and the ones they manage, nothing else."""
    visible_to_both = make_post({"all": True}, title="Both")
    finance_only = make_post({"segments": [{"departments": ["Finance"]}]}, title="Finance only")
    own = make_post({"segments": [{"departments": ["Finance"]}]}, title="Written by the writer",
                    author_pk=people["writer"].id)
    post = posts.create_post(db, posts.PostCreate(title="New", summary="s", audience={"all": True}),
                             author=people["writer"], now=clock.now)
    _, items = posts.preview_feed(db, post, subject=people["director"], viewer=people["writer"], now=clock.now)
    ids = {i.post.id for i in items}
    assert ids == {post.id, visible_to_both.id, own.id} and finance_only.id not in ids


# --- authors whose rights were revoked -----------------------------------------------------------


def test_revoked_contributor_loses_their_drafts(client_for, people, db):
    """Once the contributor role is gone, the author's drafts and their files are out of reach."""
    writer = client_for(people["writer"])
    post_id = draft(writer)
    uploaded = writer.post(f"/api/v1/posts/{post_id}/attachments", data={"file": (io.BytesIO(PNG), "a.png")},
                           headers={"X-CSRFToken": writer.csrf}, content_type="multipart/form-data")
    url = uploaded.get_json()["url"]
    people["writer"].is_contributor = False
    db.add(people["writer"])
    db.commit()
    for path in (f"/publish/posts/{post_id}", f"/publish/posts/{post_id}/preview",
                 f"/api/v1/manage/posts/{post_id}", url):
        assert writer.get(path).status_code == 404, path
    assert writer.api("PATCH", f"/api/v1/posts/{post_id}", json={"title": "Mine"}).status_code == 404
    assert writer.api("DELETE", f"/api/v1/posts/{post_id}").status_code == 404
    assert writer.get("/api/v1/manage/posts").get_json()["items"] == []
    assert writer.get("/publish").status_code == 403
    db.expire_all()
    assert db.get(Post, post_id).title == "Canteen reopens"


def test_former_group_owner_loses_their_drafts(client_for, people, make_group, db):
    """An owner who is no longer an owner (and no contributor) no longer manages what they wrote."""
    owner = people["sales"]
    group = make_group("choir", kind="managed")
    db.add(GroupOwner(group_id=group.id, employee_pk=owner.id))
    db.commit()
    client = client_for(owner)
    post_id = draft(client, audience={"segments": [{"groups": ["choir"]}]})
    assert client.get(f"/publish/posts/{post_id}").status_code == 200
    db.delete(db.get(GroupOwner, (group.id, owner.id)))
    db.commit()
    assert client.get(f"/publish/posts/{post_id}").status_code == 404


@pytest.mark.parametrize("role", ["writer", "revoked", "sales", "comms", "owner"])
def test_manage_filter_and_predicate_agree(db, people, make_post, make_group, role):
    """The desk's list (SQL) and its per-post check (Python) give the same answer for every kind of person."""
    group = make_group("choir", kind="managed")
    person = people["sales" if role in ("sales", "owner") else "comms" if role == "comms" else "writer"]
    if role == "owner":
        db.add(GroupOwner(group_id=group.id, employee_pk=person.id))
    if role == "revoked":
        person.is_contributor = False
        db.add(person)
    db.commit()
    made = [make_post({"all": True}, author_pk=person.id, status="draft"),
            make_post({"segments": [{"groups": ["choir"]}]}),
            make_post({"all": True}, author_pk=people["comms"].id)]
    listed = {p.id for p in posts.manageable_posts(db, person)}
    assert listed == {p.id for p in made if posts.may_manage(db, person, p)}


# --- who reaches the desk ------------------------------------------------------------------------


def test_employee_gets_403_on_the_desk(client_for, people):
    """Someone who may not write posts gets a 403 at /publish, not an empty desk."""
    response = client_for(people["sales"]).get("/publish")
    assert response.status_code == 403
    assert client_for(people["writer"]).get("/publish").status_code == 200


# --- 404s that tell nothing ----------------------------------------------------------------------


def _statements(app, client, url: str) -> tuple[list[str], object]:  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement)

    engine = app.extensions["intranet"].engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.get(url)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen, response


@pytest.mark.parametrize("prefix", ["/posts/", "/api/v1/posts/"])
def test_untargeted_post_404_is_the_missing_post_404(app, client_for, people, make_post, prefix):
    """A live post meant for others, a draft and a missing id get byte-identical 404s from the same queries."""
    sales = client_for(people["sales"])
    others = make_post({"segments": [{"departments": ["Finance"]}]}, title="Finance only")
    unpublished = make_post({"all": True}, status="draft", published_at=None)
    sales.get(f"{prefix}999999")  # warm up: the first request may set up caches the others reuse
    answers = [_statements(app, sales, f"{prefix}{post_id}") for post_id in (999999, others.id, unpublished.id)]
    (missing_sql, missing), *rest = answers
    for sql, response in rest:
        assert response.status_code == missing.status_code == 404
        assert without_csrf_token(response.get_data()) == without_csrf_token(missing.get_data())
        # Every header but the request's own id (a fresh one per request, telling nothing).
        assert sorted(h for h in response.headers.items() if h[0] != "X-Request-ID") == sorted(
            h for h in missing.headers.items() if h[0] != "X-Request-ID")
        assert sql == missing_sql



# --- deleting a draft ----------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["api", "desk"])
def test_deleting_a_draft_deletes_its_files(app, client_for, people, db, route):
    """Deleting a draft removes its attachment rows and, after the commit, the files on disk."""
    writer = client_for(people["writer"])
    post_id = draft(writer)
    attachment_id = writer.post(f"/api/v1/posts/{post_id}/attachments", data={"file": (io.BytesIO(PNG), "a.png")},
                                headers={"X-CSRFToken": writer.csrf},
                                content_type="multipart/form-data").get_json()["id"]
    with app.app_context():
        from intranet.web.publish import upload_dir

        path = attachments.path_for(upload_dir(), db.get(Attachment, attachment_id))
    assert path.exists()
    if route == "api":
        assert writer.api("DELETE", f"/api/v1/posts/{post_id}").status_code == 204
    else:
        assert writer.post(f"/publish/posts/{post_id}/delete", data={"csrf_token": writer.csrf}).status_code == 302
    db.expire_all()
    assert db.get(Post, post_id) is None and db.get(Attachment, attachment_id) is None
    assert not path.exists()


def test_refused_deletion_keeps_the_files(app, client_for, people, db):
    """A deletion that is refused (a published post the author may not touch) leaves the files alone."""
    writer, comms = client_for(people["writer"]), client_for(people["comms"])
    post_id = draft(writer)
    attachment_id = writer.post(f"/api/v1/posts/{post_id}/attachments", data={"file": (io.BytesIO(PNG), "a.png")},
                                headers={"X-CSRFToken": writer.csrf},
                                content_type="multipart/form-data").get_json()["id"]
    writer.api("POST", f"/api/v1/posts/{post_id}/submit")
    comms.api("POST", f"/api/v1/posts/{post_id}/approve")
    with app.app_context():
        from intranet.web.publish import upload_dir

        path = attachments.path_for(upload_dir(), db.get(Attachment, attachment_id))
    assert writer.post(f"/publish/posts/{post_id}/delete", data={"csrf_token": writer.csrf}).status_code == 302
    assert comms.api("DELETE", f"/api/v1/posts/{post_id}").get_json()["status"] == "unpublished"
    assert path.exists()


# --- audience counts -----------------------------------------------------------------------------


def test_authors_get_the_audience_count_live_and_employees_do_not(client_for, people):
    """The live count follows the desk: whoever may write a post sees its headcount, nobody else."""
    audience = {"audience": {"segments": [{"departments": ["Sales"]}]}}
    writer = client_for(people["writer"])
    counted = writer.api("POST", "/api/v1/audiences/preview", json=audience)
    assert counted.status_code == 200 and counted.get_json()["count"] == 1
    assert 'data-live-count="on"' in writer.get("/publish/new").get_data(as_text=True)
    assert client_for(people["sales"]).api("POST", "/api/v1/audiences/preview", json=audience).status_code == 403


# --- planned times on the desk -------------------------------------------------------------------


def test_desk_planned_time_goes_through_the_service(client_for, people, db):
    """A contributor's compose form stores the planned time as a draft, recorded in the create transition."""
    writer = client_for(people["writer"])
    response = writer.post("/publish/new", data={
        "csrf_token": writer.csrf, "title": "Town hall", "summary": "Join us", "topic": "Events",
        "rating_style": "stars", "timezone": "Europe/Berlin", "publish_at": "2026-12-01T10:00", "all_staff": "1"})
    assert response.status_code == 302
    post = db.exec(select(Post).where(Post.title == "Town hall")).one()
    assert post.status == "draft" and post.publish_at == dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)
    created = db.exec(select(PostTransition).where(PostTransition.post_id == post.id)).one()
    assert created.changes == {"action": "create",
                               "fields": {"publish_at": {"from": None, "to": "2026-12-01T09:00:00+00:00"}}}


def test_planned_time_as_draft_is_checked_by_the_service(db, people, clock):
    """as_draft keeps the post a draft (no publishing rights needed) and still checks the times."""
    later = clock.now + dt.timedelta(days=1)
    post = posts.create_post(db, posts.PostCreate(title="t", audience={"all": True}, publish_at=later),
                             author=people["writer"], now=clock.now, as_draft=True)
    assert post.status == "draft" and post.publish_at == later and post.published_at is None
    with pytest.raises(posts.InvalidInput):
        posts.create_post(db, posts.PostCreate(title="t", publish_at=later, expires_at=later - dt.timedelta(hours=1)),
                          author=people["writer"], now=clock.now, as_draft=True)
    with pytest.raises(posts.Forbidden):
        posts.create_post(db, posts.PostCreate(title="t", audience={"all": True}, publish_at=later),
                          author=people["writer"], now=clock.now)
