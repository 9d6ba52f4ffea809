"""In a real browser: a contributor drafts and submits, a comms manager targets and publishes, targeting holds."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlmodel import select

from intranet.models import Attachment, Post

pytestmark = pytest.mark.browser

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def choose(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """Pick *name* in the first audience segment's type-ahead."""
    search = page.locator("#include-segments .picker-search").first
    search.fill(name)
    page.locator("#include-segments .picker-option[aria-selected=true]").first.wait_for()
    search.press("Enter")


def switch_to(page, sign_in_browser, employee):  # type: ignore[no-untyped-def]
    """Sign out whoever is signed in (drop the cookies) and sign *employee* in."""
    page.context.clear_cookies()
    return sign_in_browser(employee)


def test_draft_review_target_publish(page, live_server, sign_in_browser, make_employee, db, tmp_path):
    """Contributor drafts and submits; comms manager widens the audience, sees the live count, approves."""
    writer = make_employee(is_contributor=True, department="Sales", display_name="Wanda Writer")
    comms = make_employee(is_comms=True, department="Comms", display_name="Carl Comms")
    seller = make_employee(department="Sales")
    accountant = make_employee(department="Finance")
    outsider = make_employee(department="HR")

    # The contributor writes a draft in the editor, aims it at Sales, attaches a file and submits it.
    switch_to(page, sign_in_browser, writer)
    page.goto(f"{live_server}/publish/new")
    page.fill("#title", "New expense tool")
    page.fill("#summary", "Claims move to the new tool on Monday")
    page.click(".ql-editor")
    page.keyboard.type("From Monday, file every claim in the new tool.")
    choose(page, "Sales")
    page.click("#save")
    page.wait_for_url(re.compile(r".*/publish/posts/\d+$"))
    post_id = int(page.url.rsplit("/", 1)[1])
    photo = tmp_path / "tool.png"
    photo.write_bytes(PNG)
    page.set_input_files('input[name="file"]', str(photo))
    page.click("#attach")
    page.wait_for_selector("text=File attached.")
    page.click('button[data-action="submit"]')
    assert page.locator("#post-status").text_content() == "in review"
    assert page.locator('button[data-action="approve"]').count() == 0

    # The comms manager widens the audience and sees the exact count update live, then approves.
    switch_to(page, sign_in_browser, comms)
    page.goto(f"{live_server}/publish/posts/{post_id}")
    assert page.locator("#audience-count").inner_text() == "2"  # the writer and the seller
    with page.expect_response(lambda r: r.url.endswith("/api/v1/audiences/preview")) as preview:
        choose(page, "Finance")
    assert preview.value.status == 200
    expect(page.locator("#audience-count")).to_have_text("3")
    assert page.locator("#audience-breakdown li", has_text="Finance").inner_text().split() == ["Finance", "1"]
    page.click("#save")
    page.wait_for_selector("text=Saved.")
    page.click('button[data-action="approve"]')
    page.wait_for_selector("text=Approved.")
    assert page.locator("#post-status").text_content() == "published"
    assert "approve" in page.locator("#history").inner_text()

    db.expire_all()
    post = db.get(Post, post_id)
    assert post.status == "published" and "new tool" in post.body_text
    attachment = db.exec(select(Attachment).where(Attachment.post_id == post_id)).one()

    # A targeted employee sees it; an untargeted one gets 404 for the post and its file.
    for reader in (seller, accountant):
        switch_to(page, sign_in_browser, reader)
        assert "New expense tool" in page.locator(".feed").inner_text()
    switch_to(page, sign_in_browser, outsider)
    assert "New expense tool" not in page.content()
    assert page.goto(f"{live_server}/posts/{post_id}").status == 404
    assert page.goto(f"{live_server}/attachments/{attachment.id}").status == 404
    switch_to(page, sign_in_browser, seller)
    assert page.goto(f"{live_server}/attachments/{attachment.id}").status == 200


def test_request_changes_in_the_browser(page, live_server, sign_in_browser, make_employee, db):
    """A comms manager sends a submitted post back with a comment; the author sees it in the history."""
    writer = make_employee(is_contributor=True, department="Sales")
    comms = make_employee(is_comms=True, department="Comms")
    switch_to(page, sign_in_browser, writer)
    page.goto(f"{live_server}/publish/new")
    page.fill("#title", "Draft to fix")
    page.fill("#summary", "Needs work")
    choose(page, "Sales")
    page.click("#save")
    page.wait_for_url(re.compile(r".*/publish/posts/\d+$"))
    post_id = int(page.url.rsplit("/", 1)[1])
    page.click('button[data-action="submit"]')

    switch_to(page, sign_in_browser, comms)
    page.goto(f"{live_server}/publish/posts/{post_id}")
    page.fill("#change-comment", "Please add the date")
    page.click('button[data-action="request-changes"]')
    page.wait_for_selector("text=Sent back to the author.")

    switch_to(page, sign_in_browser, writer)
    page.goto(f"{live_server}/publish/posts/{post_id}")
    assert page.locator("#post-status").text_content() == "draft"
    assert "Please add the date" in page.locator("#history").inner_text()
