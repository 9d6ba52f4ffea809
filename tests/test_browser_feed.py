"""In a real browser: an employee signs in, sees their posts, cannot open others, acknowledges."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_employee_reads_feed_and_acknowledges_must_read(page, live_server, sign_in_browser, make_employee,
                                                        make_post, db):
    """The feed lists targeted posts only; the must-read is pinned; acknowledging sticks."""
    me = make_employee(department="Sales")
    must = make_post({"segments": [{"departments": ["Sales"]}]}, title="Safety briefing", must_read=True)
    make_post({"all": True}, title="Company picnic")
    make_post({"segments": [{"departments": ["Finance"]}]}, title="Finance only")

    sign_in_browser(me)
    titles = page.locator(".feed-item h2").all_inner_texts()
    assert titles == ["Safety briefing", "Company picnic"]

    page.click("text=Safety briefing")
    page.wait_for_url(f"{live_server}/posts/{must.id}")
    page.click("text=I have read this")
    assert page.locator(".ack .ok").inner_text().startswith("You acknowledged this")
    page.goto(f"{live_server}/")
    assert page.locator(".feed-item h2").all_inner_texts() == ["Company picnic", "Safety briefing"]


def test_untargeted_post_by_url_is_not_found(page, live_server, sign_in_browser, make_employee, make_post):
    """Typing the URL of a post meant for others shows the same 404 as a missing post."""
    me = make_employee(department="Sales")
    hidden = make_post({"segments": [{"departments": ["Finance"]}]}, title="Finance only")
    sign_in_browser(me)
    response = page.goto(f"{live_server}/posts/{hidden.id}")
    assert response.status == 404
    assert "Finance only" not in page.content()


def test_opening_a_post_marks_it_read_through_a_post_request(page, live_server, sign_in_browser, make_employee,
                                                             make_post, db):
    """The page's script records the read (the GET itself writes nothing)."""
    from intranet.models import PostState

    me = make_employee()
    post = make_post(title="Hello")
    sign_in_browser(me)
    with page.expect_response(lambda r: r.url.endswith(f"/api/v1/posts/{post.id}/read")) as read:
        page.goto(f"{live_server}/posts/{post.id}")
    assert read.value.status == 200
    db.expire_all()
    assert db.get(PostState, (me.id, post.id)).read_at is not None
