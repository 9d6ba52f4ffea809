"""Feeds through the API and pages: exactly the posts meant for each person."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import delete

from tests.pages import without_csrf_token
from tests.pages import feed_ids


def test_feed_shows_only_targeted_posts(make_employee, make_post, client_for):
    """A Sales employee sees the all-staff and Sales posts, not the Finance one."""
    me = make_employee(department="Sales")
    everyone = make_post({"all": True})
    sales = make_post({"segments": [{"departments": ["Sales"]}]})
    make_post({"segments": [{"departments": ["Finance"]}]})
    assert sorted(feed_ids(client_for(me))) == sorted([everyone.id, sales.id])


def test_feed_item_shape(make_employee, make_post, client_for):
    """Feed items carry the documented fields."""
    me = make_employee()
    make_post({"all": True}, must_read=True)
    item = client_for(me).get("/api/v1/feed").get_json()["items"][0]
    assert set(item) == {"id", "title", "summary", "topic", "must_read", "published_at", "language", "read", "acknowledged",
                         "why"}
    assert item["why"] and all(isinstance(reason, str) and reason for reason in item["why"])


def test_unacknowledged_must_read_is_pinned_first(make_employee, make_post, client_for, clock):
    """An older must-read the person owes comes before newer posts, until acknowledged."""
    me = make_employee()
    must = make_post(must_read=True, published_at=clock.now - dt.timedelta(days=3))
    newer = make_post(published_at=clock.now - dt.timedelta(hours=1))
    client = client_for(me)
    assert feed_ids(client) == [must.id, newer.id]
    assert client.api("POST", f"/api/v1/posts/{must.id}/acknowledge").status_code == 200
    assert feed_ids(client) == [newer.id, must.id]


@pytest.mark.settings(INTRANET_FEED_PAGE_SIZE=3)
def test_feed_paginates_without_gaps_or_repeats(app, make_employee, make_post, client_for, clock):
    """Walking the cursor yields every visible post exactly once, newest first."""
    me = make_employee()
    posts = [make_post(published_at=clock.now - dt.timedelta(minutes=i)) for i in range(8)]
    assert feed_ids(client_for(me)) == [p.id for p in posts]


def test_bad_cursor_is_a_clear_error(make_employee, client_for):
    """A tampered cursor is a 422 with the error envelope."""
    response = client_for(make_employee()).get("/api/v1/feed?cursor=bogus")
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid"


def test_scheduled_expired_and_draft_posts_are_hidden(make_employee, make_post, client_for, clock):
    """Only live posts appear: not future, not expired, not drafts or unpublished ones."""
    me = make_employee()
    live = make_post()
    make_post(status="scheduled", published_at=clock.now + dt.timedelta(hours=1))
    make_post(expires_at=clock.now - dt.timedelta(minutes=1))
    make_post(status="draft")
    make_post(status="unpublished")
    assert feed_ids(client_for(me)) == [live.id]


def test_untargeted_post_is_identical_to_missing(make_employee, make_post, client_for):
    """GET of an untargeted post answers exactly like a post that does not exist."""
    me = make_employee(department="Sales")
    hidden = make_post({"segments": [{"departments": ["Finance"]}]}, title="Secret reorganisation")
    client = client_for(me)
    untargeted = client.get(f"/api/v1/posts/{hidden.id}")
    missing = client.get("/api/v1/posts/999999")
    assert untargeted.status_code == missing.status_code == 404
    assert untargeted.get_data() == missing.get_data()
    page, missing_page = client.get(f"/posts/{hidden.id}"), client.get("/posts/999999")
    assert page.status_code == missing_page.status_code == 404
    assert without_csrf_token(page.get_data()) == without_csrf_token(missing_page.get_data())
    assert b"Secret" not in page.get_data()


def test_actions_on_untargeted_post_write_nothing(make_employee, make_post, client_for, db):
    """Read and acknowledge on an untargeted post are 404s and store no state."""
    from intranet.models import PostState

    me = make_employee(department="Sales")
    hidden = make_post({"segments": [{"departments": ["Finance"]}]}, must_read=True)
    client = client_for(me)
    for action in ("read", "acknowledge"):
        assert client.api("POST", f"/api/v1/posts/{hidden.id}/{action}").status_code == 404
    assert client.post(f"/posts/{hidden.id}/acknowledge", data={"csrf_token": client.csrf}).status_code == 404
    assert db.get(PostState, (me.id, hidden.id)) is None


def test_post_detail_has_body_and_read_is_a_post(make_employee, make_post, client_for):
    """GET /api/v1/posts/<id> returns the body and does not mark it read; POST .../read does."""
    me = make_employee()
    post = make_post(body_html="<p>Hello</p>")
    client = client_for(me)
    body = client.get(f"/api/v1/posts/{post.id}").get_json()
    assert body["body_html"] == "<p>Hello</p>" and body["read"] is False
    assert client.api("POST", f"/api/v1/posts/{post.id}/read").status_code == 200
    assert client.get(f"/api/v1/posts/{post.id}").get_json()["read"] is True


def test_acknowledging_a_normal_post_is_refused(make_employee, make_post, client_for):
    """Only must-read posts can be acknowledged."""
    me = make_employee()
    post = make_post()
    assert client_for(me).api("POST", f"/api/v1/posts/{post.id}/acknowledge").status_code == 422


def test_writes_without_csrf_token_are_refused(make_employee, make_post, client_for):
    """A cookie-authenticated write without X-CSRFToken is a 400 and changes nothing."""
    me = make_employee()
    post = make_post(must_read=True)
    client = client_for(me)
    response = client.post(f"/api/v1/posts/{post.id}/acknowledge")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "csrf"
    assert client.get(f"/api/v1/posts/{post.id}").get_json()["acknowledged"] is False


def test_api_requires_sign_in(app):
    """Anonymous API calls get a 401 in the error envelope."""
    response = app.test_client().get("/api/v1/feed")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthenticated"


def test_moving_department_changes_what_is_visible(make_employee, make_post, client_for, db):
    """Audiences follow current directory data on the next request."""
    me = make_employee(department="Sales")
    finance = make_post({"segments": [{"departments": ["Finance"]}]})
    client = client_for(me)
    assert finance.id not in feed_ids(client)
    me.department = "Finance"
    db.add(me)
    db.commit()
    assert finance.id in feed_ids(client)
    assert client.get(f"/api/v1/posts/{finance.id}").status_code == 200


def test_group_posts_follow_membership(make_employee, make_post, make_group, client_for):
    """Joining an open group brings its posts into the feed; leaving removes them."""
    me = make_employee()
    make_group("runners")
    post = make_post({"segments": [{"groups": ["runners"]}]})
    client = client_for(me)
    assert post.id not in feed_ids(client)
    assert client.api("POST", "/api/v1/groups/runners/join").status_code == 200
    assert post.id in feed_ids(client)
    assert client.api("POST", "/api/v1/groups/runners/leave").status_code == 200
    assert post.id not in feed_ids(client)


def test_managed_group_cannot_be_joined(make_employee, make_group, client_for):
    """Managed groups are set by their owners; self-join is a 403."""
    me = make_employee()
    make_group("leadership", kind="managed")
    assert client_for(me).api("POST", "/api/v1/groups/leadership/join").status_code == 403


def test_feed_page_renders_posts_and_empty_state(make_employee, make_post, client_for):
    """The HTML feed lists targeted posts, and says so clearly when there are none."""
    me = make_employee()
    client = client_for(me)
    assert "Nothing for you right now" in client.get("/").get_data(as_text=True)
    make_post(title="Welcome aboard")
    assert "Welcome aboard" in client.get("/").get_data(as_text=True)


def test_read_and_acknowledge_arriving_together_both_succeed(app, make_employee, make_post, db, clock):
    """The page's read beacon racing an acknowledge click: both answer 200 and the first times stay."""
    import threading

    from intranet.models import PostState
    from tests.conftest import SignedInClient

    me = make_employee()
    post = make_post(must_read=True)
    statuses: list[int] = []
    for _ in range(5):
        db.exec(delete(PostState))
        db.commit()
        clients = [SignedInClient(app, me), SignedInClient(app, me)]
        barrier = threading.Barrier(2)

        def go(client, action):  # type: ignore[no-untyped-def]
            barrier.wait()
            statuses.append(client.api("POST", f"/api/v1/posts/{post.id}/{action}").status_code)

        threads = [threading.Thread(target=go, args=(c, a)) for c, a in zip(clients, ("read", "acknowledge"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert statuses == [200] * 10
    db.expire_all()
    state = db.get(PostState, (me.id, post.id))
    assert state.read_at == state.acknowledged_at == clock.now
