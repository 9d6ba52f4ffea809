"""In a real browser: the audience builder's chips, type-ahead, segments, exclusions and the count beside them."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from intranet.models import Post

pytestmark = pytest.mark.browser


@pytest.fixture
def org(make_employee, make_group):  # type: ignore[no-untyped-def]
    """A comms manager in Berlin and a small organisation: 3 in Germany (2 Sales), 2 in the US, 1 in Japan."""
    people = {
        "comms": make_employee(is_comms=True, department="Comms", country="DE", region="EMEA"),
        "de_sales": make_employee(department="Sales", country="DE", region="EMEA", level=2),
        "de_sales_senior": make_employee(department="Sales", country="DE", region="EMEA", level=8),
        "us_sales": make_employee(department="Sales", country="US", region="AMER", timezone="America/New_York"),
        "us_finance": make_employee(department="Finance", country="US", region="AMER", timezone="America/New_York"),
        "jp": make_employee(department="Engineering", country="JP", region="APAC", timezone="Asia/Tokyo"),
    }
    make_group("green-team", members=(people["us_finance"], people["jp"]))
    return people


def open_editor(page, live_server, sign_in_browser, who):  # type: ignore[no-untyped-def]
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    sign_in_browser(who)
    page.goto(f"{live_server}/publish/new")
    page.fill("#title", "Winter party")
    page.fill("#summary", "Food, music, and a quiz")
    return errors


def choose(page, query: str, segment: str = "#include-segments fieldset.segment", nth: int = 0) -> None:
    """Type *query* in a segment's search box and take the first suggestion with Enter."""
    box = page.locator(segment).nth(nth)
    search = box.locator(".picker-search")
    search.fill(query)
    box.locator(".picker-option[aria-selected=true]").wait_for()
    search.press("Enter")


def count_is(page, n: int) -> None:
    expect(page.locator("#audience-count")).to_have_text(str(n))


def test_type_ahead_shows_names_and_stores_codes(page, live_server, sign_in_browser, org, db):
    """Typing "germ" offers the country Germany, "green" the group Green-Team; chips show names, codes are saved."""
    errors = open_editor(page, live_server, sign_in_browser, org["comms"])
    assert page.locator("#include-segments select[multiple]").count() == 0
    search = page.locator("#include-segments .picker-search")
    search.fill("germ")
    assert page.locator("#include-segments .picker-option").all_inner_texts() == ["Germany\nCOUNTRY"]
    search.press("Enter")
    count_is(page, 3)
    choose(page, "green")
    count_is(page, 0)  # Germany AND Green team: nobody
    assert page.locator("#include-segments .chip-label").all_inner_texts() == ["Green-Team", "Germany"]
    page.locator('#include-segments button[aria-label="Remove group Green-Team"]').click()
    count_is(page, 3)
    assert "Comms" in page.locator("#audience-breakdown").inner_text()  # the breakdown beside the count
    page.click("#save")
    page.wait_for_url(re.compile(r".*/publish/posts/\d+$"))
    post = db.get(Post, int(page.url.rsplit("/", 1)[1]))
    assert post.audience == {"segments": [{"countries": ["DE"]}]}
    assert page.locator("#include-segments .chip-label").all_inner_texts() == ["Germany"]
    assert page.locator("#audience-count").inner_text() == "3"
    assert errors == []  # nothing refused by the CSP, no script errors


def test_keyboard_only(page, live_server, sign_in_browser, org):
    """Arrow keys move through suggestions, Enter takes one without submitting, Backspace drops the last chip."""
    open_editor(page, live_server, sign_in_browser, org["comms"])
    search = page.locator("#include-segments .picker-search")
    search.fill("s")  # Sales, Comms? no: every name with an "s"
    search.press("ArrowDown")
    chosen = page.locator("#include-segments .picker-option[aria-selected=true] span").first.inner_text()
    search.press("Enter")
    assert page.url.endswith("/publish/new")
    assert page.locator("#include-segments .chip-label").all_inner_texts() == [chosen]
    search.press("Backspace")
    assert page.locator("#include-segments .chip").count() == 0


def test_add_and_remove_segments_and_exclusions(page, live_server, sign_in_browser, org, db):
    """A second group of people widens the audience, a left-out group narrows it; both can be removed."""
    open_editor(page, live_server, sign_in_browser, org["comms"])
    assert page.locator("#exclude-segments fieldset.segment").count() == 0  # no blank exclusion to puzzle over
    choose(page, "sales")
    count_is(page, 3)
    page.click("#add-include")
    choose(page, "japan", nth=1)
    count_is(page, 4)
    page.click("#add-exclude")
    page.locator("#exclude-segments input[name$='-level_min']").fill("5")
    count_is(page, 3)  # the senior salesperson is left out
    page.locator("#include-segments fieldset.segment").nth(1).locator(".remove-segment").click()
    count_is(page, 2)
    page.click("#save")
    page.wait_for_url(re.compile(r".*/publish/posts/\d+$"))
    post = db.get(Post, int(page.url.rsplit("/", 1)[1]))
    assert post.audience == {"segments": [{"departments": ["Sales"]}], "exclude": [{"level_min": 5}]}
    page.locator("#exclude-segments .remove-segment").click()
    count_is(page, 3)


def test_count_survives_a_refused_save(page, live_server, sign_in_browser, org):
    """After a 422 the choices are kept and the panel counts them (it used to say "No audience yet")."""
    open_editor(page, live_server, sign_in_browser, org["comms"])
    choose(page, "sales")
    count_is(page, 3)
    page.fill('input[name="ack_deadline"]', "2026-12-01T10:00")  # a deadline on a post that is not a must-read
    page.click("#save")
    page.wait_for_selector("text=Only a must-read post can have an acknowledgement deadline.")
    # The page came back from the server: the count is fetched again, so wait for it rather than read it once.
    expect(page.locator("#include-segments .chip-label")).to_have_text(["Sales"])
    count_is(page, 3)
    expect(page.locator(".hint-empty")).to_be_hidden()


def test_count_stays_in_view_on_a_phone(page, live_server, sign_in_browser, org):
    """On a 360 px phone the count is pinned above the criteria while choosing, even scrolled to the exclusions."""
    page.set_viewport_size({"width": 360, "height": 700})
    open_editor(page, live_server, sign_in_browser, org["comms"])
    choose(page, "sales")
    page.click("#add-exclude")
    exclusion = page.locator("#exclude-segments .picker-search")
    exclusion.scroll_into_view_if_needed()
    exclusion.fill("germ")
    exclusion.press("Enter")
    count_is(page, 1)
    panel, box = page.locator("#audience-summary").bounding_box(), exclusion.bounding_box()
    assert 0 <= panel["y"] and panel["y"] + panel["height"] <= box["y"] <= 700
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # nothing pushes the page sideways


def test_builder_works_without_javascript(_browser, live_server, org, db):
    """Without JavaScript the builder is checkboxes labelled with names; saving stores the codes."""
    context = _browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(f"{live_server}/auth/dev-login")
        page.fill("#email", org["comms"].email)
        page.click("form.stack button[type=submit]")
        page.goto(f"{live_server}/publish/new")
        page.fill("#title", "Winter party")
        page.fill("#summary", "Food")
        page.locator("#include-segments details[data-dimension=countries] summary").click()
        page.locator("#include-segments label.option", has_text="Japan").click()
        page.locator("#exclude-segments details[data-dimension=groups] summary").click()
        page.locator("#exclude-segments label.option", has_text="Green-Team").click()
        page.click("#save")
        page.wait_for_url(re.compile(r".*/publish/posts/\d+$"))
        post = db.get(Post, int(page.url.rsplit("/", 1)[1]))
        assert post.audience == {"segments": [{"countries": ["JP"]}], "exclude": [{"groups": ["green-team"]}]}
        assert page.locator("#audience-count").inner_text() == "0"
    finally:
        context.close()


def test_the_builder_speaks_the_writers_language(page, live_server, sign_in_browser, org, make_employee):
    """For a Catalan comms manager the script's own words are Catalan too: search box, segment titles, buttons,
    the remove control's label, the breakdown (served by the page, not written into publish.js)."""
    catalan = make_employee(is_comms=True, department="Comms", country="DE", region="EMEA", language="ca")
    errors = open_editor(page, live_server, sign_in_browser, catalan)
    search = page.locator("#include-segments .picker-search")
    assert search.get_attribute("placeholder") == "Cerca departaments, països, grups…"
    assert search.get_attribute("aria-label").startswith("Persones que compleixin: cerca departaments")
    choose(page, "sales")
    count_is(page, 3)
    assert page.locator("#include-segments button.chip-remove").first.get_attribute("aria-label") == \
        "Treu departament Sales"
    assert "Departament" in page.locator("#audience-breakdown").inner_text()
    expect(page.locator("#add-exclude")).to_have_text("Exclou algunes persones")
    page.click("#add-exclude")
    expect(page.locator("#add-exclude")).to_have_text("Exclou més persones")
    assert page.locator("#exclude-segments .segment-title").inner_text() == "Exclou les persones que compleixin"
    page.click("#add-include")
    assert page.locator("#include-segments .segment-title").nth(1).inner_text() == "O persones que compleixin"
    assert page.locator("#include-segments .remove-segment").first.inner_text() == "Treu el grup"
    page.locator("#include-segments .picker-search").nth(1).fill("zzz")
    expect(page.locator("#include-segments .picker-empty").nth(0)).to_have_text("Res no coincideix amb «zzz».")
    assert errors == []
