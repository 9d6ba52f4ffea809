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


def test_phone_header_is_two_rows(page, live_server, sign_in_browser, make_employee):
    """At 360 px an admin's header is brand and account on one row, navigation on the next (it wrapped to three)."""
    page.set_viewport_size({"width": 360, "height": 700})
    sign_in_browser(make_employee(is_admin=True, display_name="Alexandra Administrator-Longname"))
    page.goto(f"{live_server}/admin/directory")
    brand = page.locator(".topbar .brand").bounding_box()
    account = page.locator(".topbar .account").bounding_box()
    nav = page.locator(".topbar .nav").bounding_box()
    assert abs(brand["y"] - account["y"]) < 12 and account["x"] + account["width"] <= 360
    assert nav["y"] >= brand["y"] + brand["height"] - 2
    assert page.locator(".topbar").bounding_box()["height"] < 100
    assert page.locator(".topbar .nav a").nth(0).bounding_box()["y"] == page.locator(".topbar .nav a").nth(4).bounding_box()["y"]
    assert page.locator(".topbar .nav [aria-current]").inner_text() == "Directory"
    current = page.locator(".topbar .nav [aria-current]").bounding_box()
    assert 0 <= current["x"] and current["x"] + current["width"] <= 360  # scrolled into view
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
