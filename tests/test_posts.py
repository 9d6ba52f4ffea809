"""Publishing API: states, permissions, targeting after publishing, history (SQLite and PostgreSQL)."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import select

from intranet import posts, sanitize
from intranet.models import Post, PostPreview, PostRevision, PostTransition

SALES = {"segments": [{"departments": ["Sales"]}]}


def iso(value: dt.datetime) -> str:
    return value.isoformat()


def body(**overrides):  # type: ignore[no-untyped-def]
    data = {"title": "Quarterly results", "summary": "How we did", "body_html": "<p>Good quarter.</p>",
            "topic": "News", "must_read": False, "audience": SALES}
    data.update(overrides)
    return data


@pytest.fixture
def people(make_employee):  # type: ignore[no-untyped-def]
    """A comms manager, two contributors, a salesperson and someone in finance."""
    return {
        "comms": make_employee(is_comms=True, department="Comms"),
        "writer": make_employee(is_contributor=True, department="Sales"),
        "other_writer": make_employee(is_contributor=True, department="Sales"),
        "sales": make_employee(department="Sales"),
        "finance": make_employee(department="Finance"),
    }


def create(client, **overrides):  # type: ignore[no-untyped-def]
    response = client.api("POST", "/api/v1/posts", json=body(**overrides))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def feed_ids(client) -> set[int]:  # type: ignore[no-untyped-def]
    return {item["id"] for item in client.get("/api/v1/feed").get_json()["items"]}


# --- creating ------------------------------------------------------------------------------


def test_create_without_publish_at_is_a_draft(client_for, people):
    """POST /api/v1/posts without publish_at answers 201 with a draft nobody sees yet."""
    post = create(client_for(people["comms"]))
    assert post["status"] == "draft" and isinstance(post["id"], int)
    assert post["id"] not in feed_ids(client_for(people["sales"]))
    assert client_for(people["sales"]).get(f"/api/v1/posts/{post['id']}").status_code == 404


def test_publish_at_now_publishes_to_the_audience_only(client_for, people, clock):
    """publish_at = now publishes at once: targeted people see it in feed and by id, others get 404."""
    post = create(client_for(people["comms"]), publish_at=iso(clock.now))
    assert post["status"] == "published"
    sales, finance = client_for(people["sales"]), client_for(people["finance"])
    assert post["id"] in feed_ids(sales)
    assert sales.get(f"/api/v1/posts/{post['id']}").status_code == 200
    assert post["id"] not in feed_ids(finance)
    missing = finance.get("/api/v1/posts/999999")
    refused = finance.get(f"/api/v1/posts/{post['id']}")
    assert refused.status_code == missing.status_code == 404
    assert refused.get_json() == missing.get_json()


def test_employee_routes_apply_targeting_to_authors_too(client_for, people, clock):
    """The author of a post outside its audience gets 404 on the employee route, 200 on manage."""
    comms = client_for(people["comms"])
    post = create(comms, publish_at=iso(clock.now))
    assert comms.get(f"/api/v1/posts/{post['id']}").status_code == 404
    assert comms.get(f"/api/v1/manage/posts/{post['id']}").status_code == 200


def test_future_publish_at_schedules(client_for, people, clock, app, db):
    """A future publish_at schedules the post: invisible until then, visible after, job stores 'published'."""
    comms, sales = client_for(people["comms"]), client_for(people["sales"])
    post = create(comms, publish_at=iso(clock.now + dt.timedelta(hours=2)))
    assert post["status"] == "scheduled"
    assert post["id"] not in feed_ids(sales)
    clock.advance(hours=2, seconds=1)
    comms, sales = client_for(people["comms"]), client_for(people["sales"])  # sessions idle out meanwhile
    assert post["id"] in feed_ids(sales)
    assert comms.get(f"/api/v1/manage/posts/{post['id']}").get_json()["status"] == "published"
    assert posts.publish_due(db, clock.now) == 1
    db.commit()
    assert posts.publish_due(db, clock.now) == 0
    stored = db.get(Post, post["id"])
    db.refresh(stored)
    assert stored.status == "published"


def test_publish_at_in_another_time_zone_is_respected(client_for, people, clock):
    """publish_at with an offset is converted to UTC: 11:00+02:00 is 09:00 UTC."""
    when = dt.datetime(2026, 11, 25, 11, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    post = create(client_for(people["comms"]), publish_at=when.isoformat())
    assert dt.datetime.fromisoformat(post["published_at"]) == dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.timezone.utc)


def test_naive_publish_at_is_refused(client_for, people):
    """A publish_at without a time zone is a 422 (no guessing whose 9 o'clock it is)."""
    response = client_for(people["comms"]).api("POST", "/api/v1/posts", json=body(publish_at="2026-11-25T09:00:00"))
    assert response.status_code == 422


@pytest.mark.parametrize("audience", [{}, {"segments": []}, {"exclude": [{"departments": ["Sales"]}]}])
def test_empty_audience_is_refused(client_for, people, clock, audience):
    """An audience with no criteria is refused, never read as everyone."""
    response = client_for(people["comms"]).api("POST", "/api/v1/posts",
                                                json=body(audience=audience, publish_at=iso(clock.now)))
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid"


def test_unknown_department_is_a_422_naming_it(client_for, people):
    """A misspelled department is refused with the message from the targeting rule."""
    response = client_for(people["comms"]).api("POST", "/api/v1/posts",
                                                json=body(audience={"segments": [{"departments": ["Salse"]}]}))
    assert response.status_code == 422
    assert "'Salse'" in response.get_json()["error"]["message"]
    assert "'Sales'" in response.get_json()["error"]["message"]


def test_publishing_needs_an_audience(client_for, people, clock):
    """publish_at without an audience is a 422."""
    data = body(publish_at=iso(clock.now))
    del data["audience"]
    assert client_for(people["comms"]).api("POST", "/api/v1/posts", json=data).status_code == 422


def test_oversized_body_is_refused_before_sanitizing(client_for, people, monkeypatch):
    """A body over the limit is a 413, and bleach never runs."""
    def boom(_html):  # type: ignore[no-untyped-def]
        raise AssertionError("sanitized an oversized body")

    monkeypatch.setattr(sanitize, "clean_html", boom)
    big = "<p>" + "x" * (sanitize.MAX_BODY_BYTES + 1) + "</p>"
    response = client_for(people["comms"]).api("POST", "/api/v1/posts", json=body(body_html=big))
    assert response.status_code == 413
    assert str(sanitize.MAX_BODY_BYTES) in response.get_json()["error"]["message"]


def test_body_is_sanitized_once_and_text_kept(client_for, people, db):
    """The stored body is clean HTML; a plain-text version is stored with it."""
    post = create(client_for(people["comms"]),
                  body_html='<p onclick="x()">Hi <script>alert(1)</script><a href="https://e.example">link</a></p>')
    stored = db.get(Post, post["id"])
    assert "script" not in stored.body_html and "onclick" not in stored.body_html
    assert 'rel="noopener noreferrer"' in stored.body_html
    assert stored.body_text.startswith("Hi")


def test_unknown_fields_are_refused(client_for, people):
    """A misspelled field is a 422, not silently ignored."""
    response = client_for(people["comms"]).api("POST", "/api/v1/posts", json=body(mustread=True))
    assert response.status_code == 422


def test_ack_deadline_needs_must_read(client_for, people, clock):
    """An acknowledgement deadline only makes sense on a must-read."""
    response = client_for(people["comms"]).api("POST", "/api/v1/posts",
                                                json=body(ack_deadline=iso(clock.now + dt.timedelta(days=3))))
    assert response.status_code == 422
    post = create(client_for(people["comms"]), must_read=True, publish_at=iso(clock.now),
                  ack_deadline=iso(clock.now + dt.timedelta(days=3)))
    assert post["must_read"] and post["ack_deadline"]


def test_expiry_must_follow_publication(client_for, people, clock):
    """expires_at before publish_at is a 422."""
    response = client_for(people["comms"]).api("POST", "/api/v1/posts", json=body(
        publish_at=iso(clock.now + dt.timedelta(days=1)), expires_at=iso(clock.now)))
    assert response.status_code == 422


def test_expired_post_leaves_feeds(client_for, people, clock, db):
    """After expires_at the post leaves the feed; the job stores 'expired' once."""
    post = create(client_for(people["comms"]), publish_at=iso(clock.now), expires_at=iso(clock.now + dt.timedelta(days=1)))
    sales = client_for(people["sales"])
    assert post["id"] in feed_ids(sales)
    clock.advance(days=1, seconds=1)
    assert post["id"] not in feed_ids(client_for(people["sales"]))
    assert posts.expire_due(db, clock.now) == 1
    db.commit()
    assert posts.expire_due(db, clock.now) == 0


# --- permissions and review ------------------------------------------------------------------


def test_plain_employee_cannot_write_posts(client_for, people):
    """Someone without a publishing role gets 403."""
    assert client_for(people["sales"]).api("POST", "/api/v1/posts", json=body()).status_code == 403


def test_contributor_drafts_and_submits_but_cannot_publish(client_for, people, clock):
    """Contributors write drafts and submit them; publishing is refused with 403."""
    writer = client_for(people["writer"])
    assert writer.api("POST", "/api/v1/posts", json=body(publish_at=iso(clock.now))).status_code == 403
    post = create(writer)
    assert writer.api("POST", f"/api/v1/posts/{post['id']}/publish").status_code == 403
    submitted = writer.api("POST", f"/api/v1/posts/{post['id']}/submit")
    assert submitted.status_code == 200 and submitted.get_json()["status"] == "in_review"
    assert writer.api("POST", f"/api/v1/posts/{post['id']}/approve").status_code == 403


def test_comms_manager_approves_a_submitted_post(client_for, people):
    """Approving publishes the post to its audience; each step is recorded with its actor."""
    writer, comms = client_for(people["writer"]), client_for(people["comms"])
    post = create(writer)
    writer.api("POST", f"/api/v1/posts/{post['id']}/submit")
    approved = comms.api("POST", f"/api/v1/posts/{post['id']}/approve")
    assert approved.status_code == 200 and approved.get_json()["status"] == "published"
    assert post["id"] in feed_ids(client_for(people["sales"]))
    detail = comms.get(f"/api/v1/manage/posts/{post['id']}").get_json()
    steps = [(t["changes"]["action"], t["from"], t["to"], t["by"]) for t in detail["transitions"]]
    assert steps == [("create", None, "draft", people["writer"].display_name),
                     ("submit", "draft", "in_review", people["writer"].display_name),
                     ("approve", "in_review", "published", people["comms"].display_name)]


def test_request_changes_needs_a_comment_and_returns_the_draft(client_for, people):
    """Requesting changes without a comment is refused; with one, the post is a draft again."""
    writer, comms = client_for(people["writer"]), client_for(people["comms"])
    post = create(writer)
    writer.api("POST", f"/api/v1/posts/{post['id']}/submit")
    assert comms.api("POST", f"/api/v1/posts/{post['id']}/request-changes", json={"comment": " "}).status_code == 422
    sent_back = comms.api("POST", f"/api/v1/posts/{post['id']}/request-changes", json={"comment": "Add the numbers"})
    assert sent_back.get_json()["status"] == "draft"
    detail = writer.get(f"/api/v1/manage/posts/{post['id']}").get_json()
    assert detail["transitions"][-1]["comment"] == "Add the numbers"
    assert writer.api("PATCH", f"/api/v1/posts/{post['id']}", json={"summary": "With numbers"}).status_code == 200
    assert writer.api("POST", f"/api/v1/posts/{post['id']}/submit").get_json()["status"] == "in_review"


def test_wrong_state_is_a_conflict(client_for, people, clock):
    """Submitting a published post, or approving a draft, is a 409."""
    comms = client_for(people["comms"])
    post = create(comms, publish_at=iso(clock.now))
    assert comms.api("POST", f"/api/v1/posts/{post['id']}/submit").status_code == 409
    draft = create(comms)
    assert comms.api("POST", f"/api/v1/posts/{draft['id']}/approve").status_code == 409


def test_others_drafts_are_not_found(client_for, people):
    """A contributor cannot read or change another contributor's draft: 404, as if missing."""
    post = create(client_for(people["writer"]))
    other = client_for(people["other_writer"])
    assert other.get(f"/api/v1/manage/posts/{post['id']}").status_code == 404
    assert other.api("PATCH", f"/api/v1/posts/{post['id']}", json={"title": "Mine"}).status_code == 404
    assert other.api("DELETE", f"/api/v1/posts/{post['id']}").status_code == 404
    assert client_for(people["sales"]).get(f"/api/v1/manage/posts/{post['id']}").status_code == 404


def test_manage_list_shows_what_each_person_manages(client_for, people):
    """Authors list their own posts, comms managers every post, other employees none."""
    mine = create(client_for(people["writer"]))
    theirs = create(client_for(people["other_writer"]))
    listed = lambda who: {p["id"] for p in client_for(people[who]).get("/api/v1/manage/posts").get_json()["items"]}  # noqa: E731
    assert listed("writer") == {mine["id"]}
    assert listed("comms") >= {mine["id"], theirs["id"]}
    assert listed("sales") == set()


def test_manage_list_paginates(client_for, people):
    """The manage list pages with next_cursor."""
    comms = client_for(people["comms"])
    ids = {create(comms, title=f"Post {i}")["id"] for i in range(3)}
    first = comms.get("/api/v1/manage/posts?limit=2").get_json()
    second = comms.get(f"/api/v1/manage/posts?limit=2&cursor={first['next_cursor']}").get_json()
    assert {p["id"] for p in first["items"] + second["items"]} == ids and second["next_cursor"] is None


def test_group_owner_publishes_for_their_group_only(client_for, people, make_employee, make_group, db):
    """An owner of a group may publish a post aimed only at that group, not one aimed wider."""
    from intranet.models import GroupOwner

    owner = make_employee(department="Finance")
    member = make_employee(department="Finance")
    group = make_group("runners", members=(member,))
    db.add(GroupOwner(group_id=group.id, employee_pk=owner.id))
    db.commit()
    client = client_for(owner)
    mine = create(client, audience={"segments": [{"groups": ["runners"]}]})
    assert client.api("POST", f"/api/v1/posts/{mine['id']}/publish").get_json()["status"] == "published"
    assert mine["id"] in feed_ids(client_for(member))
    wider = create(client, audience={"segments": [{"groups": ["runners"]}, {"departments": ["Sales"]}]})
    assert client.api("POST", f"/api/v1/posts/{wider['id']}/publish").status_code == 403
    widened = client.api("PATCH", f"/api/v1/posts/{mine['id']}", json={"audience": {"all": True}})
    assert widened.status_code == 403


# --- after publishing --------------------------------------------------------------------------


def test_edits_after_publishing_keep_history(client_for, people, clock, db):
    """Editing a published post makes a new version; the old one stays in the revisions."""
    comms = client_for(people["comms"])
    post = create(comms, publish_at=iso(clock.now))
    clock.advance(minutes=5)
    edited = comms.api("PATCH", f"/api/v1/posts/{post['id']}", json={"title": "Quarterly results (corrected)",
                                                                      "body_html": "<p>Better quarter.</p>"})
    assert edited.status_code == 200 and edited.get_json()["version"] == 2
    detail = comms.get(f"/api/v1/manage/posts/{post['id']}").get_json()
    assert [r["version"] for r in detail["revisions"]] == [2, 1]
    assert detail["revisions"][1]["title"] == "Quarterly results"
    edit = detail["transitions"][-1]
    assert edit["changes"]["action"] == "edit"
    assert edit["changes"]["fields"]["title"] == {"from": "Quarterly results", "to": "Quarterly results (corrected)"}
    assert client_for(people["sales"]).get(f"/api/v1/posts/{post['id']}").get_json()["title"].endswith("(corrected)")


def test_contributor_cannot_edit_after_publishing(client_for, people):
    """Once out, only a publisher may change a post."""
    writer, comms = client_for(people["writer"]), client_for(people["comms"])
    post = create(writer)
    writer.api("POST", f"/api/v1/posts/{post['id']}/submit")
    comms.api("POST", f"/api/v1/posts/{post['id']}/approve")
    assert writer.api("PATCH", f"/api/v1/posts/{post['id']}", json={"title": "Sneaky"}).status_code == 403
    assert writer.get(f"/api/v1/manage/posts/{post['id']}").status_code == 200


def test_retargeting_a_published_post_applies_at_once(client_for, people, clock):
    """Changing the audience of a live post changes who sees it immediately."""
    comms = client_for(people["comms"])
    post = create(comms, publish_at=iso(clock.now))
    comms.api("PATCH", f"/api/v1/posts/{post['id']}", json={"audience": {"segments": [{"departments": ["Finance"]}]}})
    assert client_for(people["sales"]).get(f"/api/v1/posts/{post['id']}").status_code == 404
    assert client_for(people["finance"]).get(f"/api/v1/posts/{post['id']}").status_code == 200


def test_unpublish_removes_from_feeds(client_for, people, clock):
    """Unpublishing takes the post out of every feed and its page is a 404."""
    comms, sales = client_for(people["comms"]), client_for(people["sales"])
    post = create(comms, publish_at=iso(clock.now))
    response = comms.api("POST", f"/api/v1/posts/{post['id']}/unpublish")
    assert response.get_json()["status"] == "unpublished"
    assert post["id"] not in feed_ids(sales)
    assert sales.get(f"/api/v1/posts/{post['id']}").status_code == 404
    again = comms.api("POST", f"/api/v1/posts/{post['id']}/publish")
    assert again.get_json()["status"] == "published" and post["id"] in feed_ids(sales)


def test_delete_removes_a_draft(client_for, people, db):
    """DELETE on a draft removes it."""
    writer = client_for(people["writer"])
    post = create(writer)
    assert writer.api("DELETE", f"/api/v1/posts/{post['id']}").status_code == 204
    assert db.get(Post, post["id"]) is None
    assert writer.get(f"/api/v1/manage/posts/{post['id']}").status_code == 404


def test_delete_unpublishes_a_published_post(client_for, people, clock, db):
    """DELETE on a published post unpublishes it and keeps its history."""
    comms = client_for(people["comms"])
    post = create(comms, publish_at=iso(clock.now))
    response = comms.api("DELETE", f"/api/v1/posts/{post['id']}")
    assert response.status_code == 200 and response.get_json()["status"] == "unpublished"
    assert post["id"] not in feed_ids(client_for(people["sales"]))
    assert db.exec(select(PostTransition).where(PostTransition.post_id == post["id"])).all()


def test_rescheduling_a_scheduled_post(client_for, people, clock):
    """Changing publish_at of a scheduled post moves it; a past time publishes it now."""
    comms = client_for(people["comms"])
    post = create(comms, publish_at=iso(clock.now + dt.timedelta(days=2)))
    later = comms.api("PATCH", f"/api/v1/posts/{post['id']}", json={"publish_at": iso(clock.now + dt.timedelta(days=3))})
    assert later.get_json()["status"] == "scheduled"
    now = comms.api("POST", f"/api/v1/posts/{post['id']}/publish", json={"publish_at": iso(clock.now)})
    assert now.get_json()["status"] == "published"


def test_writes_need_the_csrf_header(client_for, people):
    """A cookie-authenticated write without X-CSRFToken is refused."""
    client = client_for(people["comms"])
    response = client.client.post("/api/v1/posts", json=body())
    assert response.status_code == 400


# --- preview -----------------------------------------------------------------------------------


def test_feed_preview_as_a_member_is_logged_and_shows_visibility_only(app, db, people, make_post, clock):
    """The preview lists what a member would see with the post in it, and is logged."""
    older = make_post({"segments": [{"departments": ["Sales"]}]}, title="Older")
    hidden = make_post({"segments": [{"departments": ["Finance"]}]}, title="Finance only")
    draft = posts.create_post(db, posts.PostCreate.model_validate(body()), author=people["comms"], now=clock.now)
    at, items = posts.preview_feed(db, draft, subject=people["sales"], viewer=people["comms"], now=clock.now)
    db.commit()
    ids = [i.post.id for i in items]
    assert draft.id in ids and older.id in ids and hidden.id not in ids
    log = db.exec(select(PostPreview)).one()
    assert (log.viewer_pk, log.subject_pk, log.post_id) == (people["comms"].id, people["sales"].id, draft.id)
    with pytest.raises(posts.InvalidInput):
        posts.preview_feed(db, draft, subject=people["finance"], viewer=people["comms"], now=clock.now)


def test_first_publication_is_revision_one(db, people, clock):
    """Publishing stores the published content as version 1."""
    post = posts.create_post(db, posts.PostCreate.model_validate(body(publish_at=clock.now)), author=people["comms"],
                             now=clock.now)
    db.commit()
    revisions = db.exec(select(PostRevision).where(PostRevision.post_id == post.id)).all()
    assert [(r.version, r.title) for r in revisions] == [(1, "Quarterly results")]
