"""In a real browser: rating from the feed with the keyboard and the mouse, and from a digest link."""
from __future__ import annotations

import pytest
from sqlmodel import select

from intranet import ratings
from intranet.models import Rating

pytestmark = pytest.mark.browser


def stored(db) -> list[tuple]:  # type: ignore[no-untyped-def]
    db.expire_all()
    return sorted((r.post_id, r.stars, r.thumb) for r in db.exec(select(Rating)).all())


def test_rating_from_the_feed_with_keyboard_and_toggles(page, live_server, sign_in_browser, make_employee, make_post,
                                                         db):
    """Stars are chosen with the arrow keys and saved where the person stops; a thumb toggles on and off;
    the status line announces each result, and the page runs under the CSP without errors."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    me = make_employee()
    starred = make_post(title="Town hall notes")
    thumbed = make_post(title="Parking changes", rating_style="thumbs")
    sign_in_browser(me)
    card = page.locator(f"#post-{starred.id}")
    card.locator("label[for$='-1']").click()  # one star...
    with page.expect_response(lambda r: r.url.endswith(f"/api/v1/posts/{starred.id}/rating")
                              and r.request.method == "PUT" and r.request.post_data_json["stars"] == 4) as saved:
        for _ in range(3):  # ...then three steps right with the keyboard, as a screen-reader user would
            page.keyboard.press("ArrowRight")
    assert saved.value.status == 200
    assert card.locator(".rating-status").inner_text() == "Saved: you rated it 4 of 5."
    assert card.locator("input[name=stars]:checked").get_attribute("value") == "4"
    assert card.locator("fieldset legend").inner_text().startswith("Rate this post")
    assert card.locator(".rating-withdraw").is_visible()

    helpful = page.locator(f"#post-{thumbed.id} button.thumb[value=up]")
    helpful.click()
    page.wait_for_function("b => b.getAttribute('aria-pressed') === 'true'", arg=helpful.element_handle())
    assert stored(db) == sorted([(starred.id, 4, None), (thumbed.id, None, "up")])
    helpful.click()
    page.wait_for_function("b => b.getAttribute('aria-pressed') === 'false'", arg=helpful.element_handle())
    assert page.locator(f"#post-{thumbed.id} .rating-status").inner_text() == "Rating removed."
    assert stored(db) == [(starred.id, 4, None)]

    page.reload()  # what was saved is what the page shows
    assert page.locator(f"#post-{starred.id} input[name=stars]:checked").get_attribute("value") == "4"
    assert errors == []


def test_changing_the_stars_in_the_feed_keeps_the_comment(page, live_server, sign_in_browser, make_employee,
                                                          make_post, db):
    """A comment written on the post page survives a new star rating from the feed's compact form."""
    me = make_employee()
    post = make_post(title="Canteen menu")
    ratings.rate(db, employee=me, post=post, rating=ratings.RatingIn(stars=2, comment="More soup", signed=True),
                 now=post.published_at)
    db.commit()
    sign_in_browser(me)
    card = page.locator(f"#post-{post.id}")
    with page.expect_response(lambda r: r.url.endswith(f"/api/v1/posts/{post.id}/rating")
                              and r.request.method == "PUT") as saved:
        card.locator("label[for$='-5']").click()
    assert saved.value.status == 200
    assert saved.value.request.post_data_json == {"stars": 5, "comment": "More soup", "signed": True}
    db.expire_all()
    assert [(r.stars, r.comment, r.signed) for r in db.exec(select(Rating)).all()] == [(5, "More soup", True)]


def test_rating_from_a_digest_link(page, live_server, app, make_employee, make_post, db):
    """The link opens a confirmation page (nothing saved yet); its button saves the rating."""
    me = make_employee()
    post = make_post(title="Canteen survey")
    token = ratings.link_token(app.config["SECRET_KEY"], ratings.RatingLink(me.employee_id, post.id, stars=2))
    page.goto(f"{live_server}/rate/{token}")
    assert page.locator("input[name=stars][value='2']").is_checked()
    assert stored(db) == []
    page.fill("textarea[name=comment]", "Too long")
    page.click("text=Save rating")
    assert "your rating is saved (2 of 5)" in page.locator("[role=status]").inner_text()
    assert stored(db) == [(post.id, 2, None)]
