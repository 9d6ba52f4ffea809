"""In Chromium: Beacon's widget and iframe page inside an intranet page served from another origin.

Beacon runs on ``http://127.0.0.1:<port>``; the host intranet on ``http://localhost:<other port>``
(another origin and another site, as SharePoint is for Beacon), with a strict CSP of its own and a
backend that mints embed tokens for its signed-in user. A third server, not in
``INTRANET_EMBED_ORIGINS``, tries the same and gets nothing.
"""
from __future__ import annotations

import datetime as dt
import re
import secrets
import threading
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlmodel import select
from flask import Flask, g, jsonify

from intranet import embed_tokens
from intranet.models import PostState, Rating
from tests.axe import AXE, serious_violations

pytestmark = [pytest.mark.browser, pytest.mark.sqlite_only]

HOST_SECRET = secrets.token_hex(32)
#: Screenshots of the widget, kept with the other pages' (tests/test_accessibility_browser.py).
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"


class Served:
    """A WSGI app on a loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


def host_intranet(where: dict[str, str], email: Callable[[], str], clock: Any) -> Flask:
    """The host: a page with the script tag, a page with the iframe, and its token endpoint.

    *where* says where Beacon is (``where["beacon"]``), known once Beacon is served.
    """
    host = Flask("host_intranet")

    @host.before_request
    def beacon_address() -> None:
        g.beacon = where["beacon"]

    @host.after_request
    def strict_policy(response):  # type: ignore[no-untyped-def]
        # The host's own strict CSP: Beacon's origin added for scripts, styles, calls and frames only.
        response.headers["Content-Security-Policy"] = (
            f"default-src 'self'; script-src 'self' {g.beacon}; style-src 'self' {g.beacon}; "
            f"connect-src 'self' {g.beacon}; frame-src {g.beacon}; img-src 'self'")
        return response

    @host.get("/")
    def home():  # type: ignore[no-untyped-def]
        return (f'<!doctype html><html lang="en"><head><title>Host intranet</title></head><body>'
                f'<h1>Welcome to the intranet</h1><div id="news"></div>'
                f'<script src="{g.beacon}/_beacon/static/intranet/js/widget.js" defer data-target="#news" '
                f'data-token-url="/beacon-token"></script></body></html>')

    @host.get("/same-site")
    def same_site():  # type: ignore[no-untyped-def]
        # No token endpoint: the widget rides on the person's Beacon session (same site, other origin).
        return (f'<!doctype html><html lang="en"><head><title>Host intranet</title></head><body>'
                f'<main><h1>Team site</h1><div id="news"></div></main>'
                f'<script src="{g.beacon}/_beacon/static/intranet/js/widget.js" defer data-target="#news">'
                f'</script></body></html>')

    @host.get("/favicon.ico")
    def favicon():  # type: ignore[no-untyped-def]
        return "", 204

    @host.get("/framed")
    def framed():  # type: ignore[no-untyped-def]
        return (f'<!doctype html><html lang="en"><head><title>Host intranet</title></head><body>'
                f'<iframe id="beacon" title="Your news" src="{g.beacon}/embed/feed" width="600" height="700"></iframe>'
                f'<script src="/hand-token.js"></script></body></html>')

    @host.get("/framed-plain")
    def framed_plain():  # type: ignore[no-untyped-def]
        # A page that only frames Beacon (SharePoint's Embed web part): it mints no tokens.
        return (f'<!doctype html><html lang="en"><head><title>Host intranet</title></head><body>'
                f'<iframe id="beacon" title="Your news" src="{g.beacon}/embed/feed" width="600" height="700">'
                f'</iframe></body></html>')

    @host.get("/hand-token.js")
    def hand_token():  # type: ignore[no-untyped-def]
        # The host page answers the frame's "beacon:ready" with a fresh token, to Beacon's origin only.
        script = (f'window.addEventListener("message", function (event) {{'
                  f'  if (event.origin !== "{g.beacon}" || !event.data || event.data.type !== "beacon:ready") return;'
                  f'  fetch("/beacon-token").then(function (r) {{ return r.json(); }}).then(function (data) {{'
                  f'    event.source.postMessage({{type: "beacon:token", token: data.token}}, "{g.beacon}");'
                  f'  }});'
                  f'}});')
        return script, 200, {"Content-Type": "text/javascript"}

    @host.get("/beacon-token")
    def token():  # type: ignore[no-untyped-def]
        return jsonify(token=embed_tokens.mint(HOST_SECRET, issuer="intranet", audience="beacon", subject=email(),
                                               now=clock.now, lifetime=dt.timedelta(minutes=5)))

    return host


@pytest.fixture
def embedded(make_app: Any, clock: Any, page: Any, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Beacon allowing the host origin (and ``@pytest.mark.settings``); the host; a stranger not on the list."""
    marker = request.node.get_closest_marker("settings")
    where: dict[str, str] = {}
    who: dict[str, str] = {}
    host = Served(host_intranet(where, lambda: who["email"], clock))
    stranger = Served(host_intranet(where, lambda: who["email"], clock))
    # The host on localhost is another site than Beacon's 127.0.0.1; on 127.0.0.1 it is the same site.
    app = make_app(INTRANET_EMBED_ORIGINS=f"http://localhost:{host.port}, http://127.0.0.1:{host.port}",
                   INTRANET_EMBED_TOKEN_SECRET=HOST_SECRET, **(marker.kwargs if marker else {}))
    app.config["SESSION_COOKIE_SECURE"] = False
    app.config["PREFERRED_URL_SCHEME"] = "http"
    served = Served(app)
    beacon = where["beacon"] = f"http://127.0.0.1:{served.port}"
    servers = [served, host, stranger]
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    yield {"beacon": beacon, "host": f"http://localhost:{host.port}", "same_site": f"http://127.0.0.1:{host.port}", "stranger": f"http://localhost:{stranger.port}",
           "who": who, "console_errors": problems}
    for server in servers:
        server.close()


def test_script_widget_on_another_origin_shows_the_feed_rates_and_acknowledges(page, embedded, make_employee,
                                                                               make_post, db, clock):
    """The widget draws only the person's posts; stars, a thumb and the must-read banner all save."""
    me = make_employee(department="Sales", display_name="Ana García")
    embedded["who"]["email"] = me.email
    must = make_post({"segments": [{"departments": ["Sales"]}]}, title="Safety briefing", must_read=True)
    stars = make_post({"all": True}, title="Company picnic")
    thumbs = make_post({"all": True}, title="New coffee machine", rating_style="thumbs")
    make_post({"segments": [{"departments": ["Finance"]}]}, title="Finance only")

    page.goto(embedded["host"] + "/")
    widget = page.locator("#news")
    page.wait_for_selector("#news .bw-item")
    titles = widget.locator(".bw-post-title a").all_text_contents()
    assert [t.replace(" (opens in a new tab)", "") for t in titles] == [
        "Safety briefing", "Company picnic", "New coffee machine"]
    assert widget.locator(".bw-who").inner_text() == "for Ana García"
    assert page.evaluate("document.querySelector('#news').shadowRoot !== null")
    assert page.locator("body > h1").inner_text() == "Welcome to the intranet"  # the host page is untouched

    # Stars: a radio group; the keyboard chooses 4 (focus the first star, arrow three times).
    picnic = widget.locator(f".bw-item[data-post-id='{stars.id}']")
    picnic.locator("label").nth(0).click()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("""(id) => document.querySelector('#news').shadowRoot
        .querySelector(`.bw-item[data-post-id="${id}"] .bw-item-status`).textContent.includes('4 of 5')""",
                           arg=stars.id)
    # Thumbs: toggle buttons. Ten minutes on, the token has expired: Beacon's 401 makes the widget
    # fetch a fresh one from the host and try once more.
    clock.advance(minutes=10)
    coffee = widget.locator(f".bw-item[data-post-id='{thumbs.id}']")
    with page.expect_response(lambda r: r.url.endswith("/beacon-token")):
        coffee.get_by_role("button", name="Helpful", exact=True).click()
    page.wait_for_function("""(id) => document.querySelector('#news').shadowRoot
        .querySelector(`.bw-item[data-post-id="${id}"] .bw-item-status`).textContent.includes('helpful')""",
                           arg=thumbs.id)
    assert coffee.get_by_role("button", name="Helpful", exact=True).get_attribute("aria-pressed") == "true"
    # The must-read banner.
    banner = widget.locator(".bw-banner")
    assert banner.is_visible() and "Safety briefing" in banner.inner_text()
    banner.get_by_role("button", name=re.compile(r"I have read this\s*: Safety briefing")).click()
    page.wait_for_selector("#news .bw-banner", state="hidden")
    assert widget.locator(f".bw-item[data-post-id='{must.id}'] .bw-badge").inner_text() == "Acknowledged"

    db.expire_all()
    mine = {r.post_id: r for r in db.exec(select(Rating).where(Rating.employee_pk == me.id))}
    assert mine[stars.id].stars == 4 and mine[thumbs.id].thumb == "up"
    assert db.get(PostState, (me.id, must.id)).acknowledged_at is not None
    # No CSP violation and no failed call, but the one expired-token 401 the widget recovered from.
    assert embedded["console_errors"] == ["Failed to load resource: the server responded with a status of 401 "
                                          "(UNAUTHORIZED)"]


def test_script_widget_on_an_origin_not_allowed_gets_nothing(page, embedded, make_employee, make_post):
    """A page outside INTRANET_EMBED_ORIGINS: the browser keeps Beacon's answers from it (CORS)."""
    me = make_employee()
    embedded["who"]["email"] = me.email
    make_post(title="Company picnic")
    page.goto(embedded["stranger"] + "/")
    page.wait_for_function("() => document.querySelector('#news').shadowRoot"
                           "?.querySelector('.bw-status')?.textContent.length > 0 && "
                           "document.querySelector('#news').shadowRoot.querySelector('.bw').getAttribute('aria-busy') === 'false'")
    assert page.locator("#news .bw-item").count() == 0
    assert "Company picnic" not in page.locator("#news").inner_text()


def test_iframe_page_signs_in_by_hand_off_and_acknowledges(page, embedded, make_employee, make_post, db):
    """Framed by an allowed origin, the page takes the host's token by postMessage, keeps a frame session,
    and its must-read banner acknowledges."""
    me = make_employee(department="Sales")
    embedded["who"]["email"] = me.email
    must = make_post({"all": True}, title="Safety briefing", must_read=True)
    make_post({"segments": [{"departments": ["Finance"]}]}, title="Finance only")
    page.goto(embedded["host"] + "/framed")
    frame = page.frame_locator("#beacon")
    frame.locator(".embed-banner").wait_for()
    assert "Finance only" not in frame.locator("main").inner_text()
    frame.get_by_role("button", name=re.compile(r"I have read this\s*: Safety briefing")).click()
    frame.locator(".badge.must-read.ok").wait_for()
    db.expire_all()
    assert db.get(PostState, (me.id, must.id)).acknowledged_at is not None


@pytest.mark.settings(INTRANET_FEED_PAGE_SIZE=2)
def test_script_widget_pages_through_the_feed(page, embedded, make_employee, make_post):
    """"More posts" appends the next page of the same ranked order, then goes away on the last."""
    embedded["who"]["email"] = make_employee().email
    for n in range(5):
        make_post({"all": True}, title=f"Post {n}")
    page.goto(embedded["host"] + "/")
    items = page.locator("#news .bw-item")
    items.first.wait_for()
    assert items.count() == 2
    more = page.locator("#news").get_by_role("button", name="More posts")
    more.click()
    page.wait_for_function("() => document.querySelector('#news').shadowRoot.querySelectorAll('.bw-item').length === 4")
    more.click()
    page.wait_for_function("() => document.querySelector('#news').shadowRoot.querySelectorAll('.bw-item').length === 5")
    assert more.is_hidden()
    titles = [t.replace(" (opens in a new tab)", "") for t in page.locator("#news .bw-post-title a").all_text_contents()]
    assert sorted(titles) == [f"Post {n}" for n in range(5)]


def sign_in_to_beacon(page: Any, beacon: str, employee: Any) -> None:
    page.goto(f"{beacon}/auth/dev-login")
    page.fill("#email", employee.email)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{beacon}/")


def test_script_widget_on_a_same_site_page_uses_the_beacon_session_with_csrf(page, embedded, make_employee,
                                                                             make_post, db):
    """Without a token endpoint, the widget calls with the person's Beacon cookie and sends the CSRF token."""
    me = make_employee()
    post = make_post({"all": True}, title="Company picnic", rating_style="thumbs")
    sign_in_to_beacon(page, embedded["beacon"], me)
    page.goto(embedded["same_site"] + "/same-site")
    widget = page.locator("#news")
    page.wait_for_selector("#news .bw-item")
    with page.expect_request(lambda r: r.method == "PUT") as put:
        widget.get_by_role("button", name="Not helpful").click()
    assert put.value.headers.get("x-csrftoken") and "authorization" not in put.value.headers
    page.wait_for_function("() => document.querySelector('#news').shadowRoot"
                           ".querySelector('.bw-item-status').textContent.includes('not helpful')")
    db.expire_all()
    assert db.exec(select(Rating).where(Rating.employee_pk == me.id, Rating.post_id == post.id)).one().thumb == "down"


@pytest.mark.parametrize("third_party_cookies", ["context default", "phased out"])
def test_iframe_page_on_another_site_signs_in_through_beacons_own_window(_browser, embedded, make_employee,
                                                                        make_post, third_party_cookies):
    """The SharePoint path: no token from the host; "Sign in" opens Beacon's window, which hands the frame
    a token by postMessage; the frame then shows the feed from its own partitioned session. Playwright's
    browser contexts, like incognito windows, already refuse unpartitioned third-party cookies (without
    Partitioned this test fails); the second run also sets Chrome's third-party cookie phase-out flag."""
    from tests.conftest import CHROMIUM, CHROMIUM_ARGS

    me = make_employee()
    make_post({"all": True}, title="Company picnic")
    browser = _browser
    if third_party_cookies == "phased out":
        browser = _browser.browser_type.launch(executable_path=CHROMIUM, headless=True,
                                               args=[*CHROMIUM_ARGS, "--test-third-party-cookie-phaseout"])
    try:
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(10_000)
        sign_in_to_beacon(page, embedded["beacon"], me)  # signed in to Beacon first-party, as after Entra sign-in
        page.goto(embedded["host"] + "/framed-plain")
        frame = page.frame_locator("#beacon")
        frame.get_by_role("button", name="Sign in").wait_for()  # the frame does not see Beacon's own cookie
        with page.expect_popup() as opened:
            frame.get_by_role("button", name="Sign in").click()
        opened.value.wait_for_event("close")
        frame.locator(".feed-item").wait_for()
        assert "Company picnic" in frame.locator(".feed").inner_text()
        page.reload()  # the frame's session outlives the page
        frame.locator(".feed-item").wait_for()
        context.close()
    finally:
        if browser is not _browser:
            browser.close()


def test_iframe_page_refuses_to_be_framed_by_an_origin_not_allowed(page, embedded, make_employee):
    """frame-ancestors: the browser shows a stranger's frame no Beacon page (an error page instead)."""
    embedded["who"]["email"] = make_employee().email
    with page.expect_response(embedded["beacon"] + "/embed/feed") as answer:
        page.goto(embedded["stranger"] + "/framed")
    assert "frame-ancestors http://localhost:" in answer.value.headers["content-security-policy"]
    [frame] = page.main_frame.child_frames
    frame.wait_for_url(re.compile(r"^chrome-error://"))  # Chromium's page for a refused frame
    assert "data-embed-connect" not in frame.content()


@pytest.mark.parametrize("width", [320, 900])
def test_script_widget_is_accessible_and_fits_its_container(page, embedded, make_employee, make_post, width):
    """axe finds no serious WCAG 2.1 AA violation in the widget (shadow DOM included), at a narrow and a
    wide container, and the widget is never wider than its container."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: `make test` installs it (cd tests && npm ci)")
    embedded["who"]["email"] = make_employee().email
    make_post({"all": True}, title="Safety briefing with a rather long title that has to wrap", must_read=True)
    make_post({"all": True}, title="Company picnic")
    make_post({"all": True}, title="New coffee machine", rating_style="thumbs")
    page.set_viewport_size({"width": width, "height": 800})
    page.goto(embedded["host"] + "/")
    page.wait_for_selector("#news .bw-item")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"widget-{width}.png"), full_page=True)
    assert serious_violations(page) == []
    overflow = page.evaluate("""() => { const host = document.querySelector('#news');
        const inner = host.shadowRoot.querySelector('.bw');
        return inner.scrollWidth - host.clientWidth; }""")
    assert overflow <= 0
    assert page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0


def test_script_widget_speaks_the_readers_language(page, embedded, make_employee, make_post):
    """For a Catalan reader the widget's own words come from Beacon in Catalan (none are written into widget.js):
    heading, who it is for, the must-read banner, star labels, and the saved rating's announcement."""
    me = make_employee(department="Sales", display_name="Pau Serra", language="ca")
    embedded["who"]["email"] = me.email
    make_post({"all": True}, title="Safety briefing", must_read=True)
    picnic = make_post({"all": True}, title="Company picnic")
    page.goto(embedded["host"] + "/")
    widget = page.locator("#news")
    page.wait_for_selector("#news .bw-item")
    assert widget.locator(".bw-title").inner_text() == "Les teves notícies"
    assert widget.locator(".bw-who").inner_text() == "per a Pau Serra"
    assert widget.locator(".bw-banner-title").inner_text() == "Lectura obligatòria"
    item = widget.locator(f".bw-item[data-post-id='{picnic.id}']")
    assert item.locator("legend").inner_text().startswith("Valora aquesta publicació")
    assert item.locator("label").nth(3).get_attribute("title") == "4 de 5"
    item.locator("label").nth(1).click()
    page.wait_for_function("""(id) => document.querySelector('#news').shadowRoot
        .querySelector(`.bw-item[data-post-id="${id}"] .bw-item-status`).textContent === "S'ha desat: li has donat 2 de 5." """,
                           arg=picnic.id)
    assert embedded["console_errors"] == []
