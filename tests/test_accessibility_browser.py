"""Every page, at phone and desktop width, in Chromium: axe-core finds no serious or critical
WCAG 2.1 AA violation, and nothing is wider than a 360 px screen.

axe-core comes from the npm registry (``tests/package.json``, installed by ``make test``) and is
evaluated in the page through the DevTools protocol, which Beacon's Content-Security-Policy does not
cover, so the pages are checked under the production policy. Screenshots of every page at both
widths are kept in ``test-artifacts/screenshots/`` for people to look at.
"""
from __future__ import annotations

import dataclasses
import re
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from intranet import api_keys, feedback, ratings
from intranet.journeys import definitions
from intranet.delivery import rendering
from intranet.models import Employee, Feedback, SyncRun, WebhookDelivery
from intranet.webhooks import endpoints
from intranet.webhooks.events import post_published_event
from intranet.webhooks.sealing import SecretBox
from tests.axe import AXE, serious_violations

pytestmark = [pytest.mark.browser, pytest.mark.sqlite_only]

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
WIDTHS = {"phone": {"width": 360, "height": 740}, "desktop": {"width": 1280, "height": 900}}


@dataclasses.dataclass(frozen=True)
class Org:
    employee: Employee
    contributor: Employee
    comms: Employee
    admin: Employee
    post_id: int
    draft_id: int
    run_id: int
    group_key: str
    secret: str
    feedback_id: int
    journey_id: int = 0
    step_id: int = 0


@pytest.fixture
def org(app: Any, db: Any, make_employee: Any, make_group: Any, make_post: Any, clock: Any) -> Org:
    employee = make_employee(display_name="Ana García", department="Sales")
    contributor = make_employee(display_name="Chris Writer", department="People", is_contributor=True)
    comms = make_employee(display_name="Casey Comms", department="Communications", is_comms=True)
    admin = make_employee(display_name="Alex Admin", department="IT", is_admin=True)
    group = make_group("runners", kind="managed", members=(employee, admin))
    post = make_post({"all": True}, title="Budget for next year", summary="What changes and when.", must_read=True,
                     body_html="<h2>Highlights</h2><p>The <a href='https://example.org'>budget</a> grows.</p>",
                     body_text="Highlights The budget grows.", author_pk=comms.id)
    make_post({"segments": [{"departments": ["Sales"]}]}, title="Sales kickoff", topic="Sales")
    draft = make_post({"all": True}, title="A draft", status="draft", published_at=None, author_pk=contributor.id)
    run = SyncRun(source="graph", mode="delta", status="succeeded", started_at=clock.now - dt.timedelta(hours=1),
                  finished_at=clock.now, seen=4, updated=1)
    db.add(run)
    ratings.rate(db, employee=employee, post=post, now=clock.now,
                 rating=ratings.RatingIn(stars=2, comment="Which teams get the new budget first?"))
    db.commit()
    [feedback_item] = feedback.mine(db, employee)
    feedback.reply(db, comms, db.get(Feedback, feedback_item.id), feedback.ReplyIn(body="Sales and IT, in May."),
                   now=clock.now)
    portal, _ = api_keys.create(db, api_keys.ApiKeyCreate(name="Intranet portal", scopes=["feed:read", "analytics:read"],
                                                          expires_at=clock.now + dt.timedelta(days=90)),
                                by=admin, now=clock.now)
    api_keys.touch(db, portal, now=clock.now)
    old, _ = api_keys.create(db, api_keys.ApiKeyCreate(name="Old CMS", scopes=["posts:publish"]), by=None, now=clock.now)
    api_keys.revoke(db, old, by=admin, now=clock.now)
    db.commit()
    # A webhook endpoint with a delivery being retried, so the page shows its table of failures.
    endpoints.create(db, endpoints.EndpointIn(url="https://hooks.example.com/beacon", event_types=["post.published"]),
                     actor=admin, now=clock.now, box=SecretBox(), allow_private=True)
    db.commit()
    event_pk = post_published_event(db, post, now=clock.now)
    db.execute(update(WebhookDelivery).where(WebhookDelivery.event_pk == event_pk).values(
        attempts=2, last_status=503, last_attempt_at=clock.now, last_error="answered 503: busy"))
    db.commit()
    journey = definitions.create_journey(db, definitions.JourneyIn(name="New joiners", trigger="hire"),
                                         author=comms, now=clock.now)
    step = definitions.add_step(db, journey, definitions.StepIn(key="welcome", offset_days=0, title="Welcome"),
                                author=comms, now=clock.now)
    definitions.add_step(db, journey, definitions.StepIn(key="tools", offset_days=3, title="Your tools",
                                                         skip_unless_read="welcome"), author=comms, now=clock.now)
    db.commit()
    return Org(employee, contributor, comms, admin, post.id, draft.id, run.id, group.key,
               str(app.config["SECRET_KEY"]), feedback_item.id, journey.id, step.id)


def pages_for(org: Org) -> list[tuple[str, Employee | None, str]]:
    """(name, who is signed in, path) for every page Beacon serves."""
    rate = ratings.link_token(org.secret, ratings.RatingLink(org.employee.employee_id, org.post_id, stars=4))
    unsubscribe = rendering.unsubscribe_token(org.secret, org.employee.employee_id)
    return [
        ("sign-in", None, "/auth/sign-in"),
        ("dev-login", None, "/auth/dev-login"),
        ("offline", None, "/offline"),
        ("feed", org.employee, "/"),
        ("post", org.employee, f"/posts/{org.post_id}"),
        ("not-found", org.employee, "/posts/999999"),
        ("search", org.employee, "/search?q=budget"),
        ("preferences", org.employee, "/preferences"),
        ("groups", org.employee, "/groups"),
        ("rate-link", None, f"/rate/{rate}"),
        ("unsubscribe", None, f"/digest/unsubscribe/{unsubscribe}"),
        ("desk", org.contributor, "/publish"),
        ("compose", org.contributor, "/publish/new"),
        ("edit", org.contributor, f"/publish/posts/{org.draft_id}"),
        ("preview", org.contributor, f"/publish/posts/{org.draft_id}/preview"),
        ("preview-as", org.comms, f"/publish/posts/{org.post_id}/preview-as?who={org.employee.email}"),
        ("group-members", org.admin, f"/groups/{org.group_key}/members"),
        ("digest-defaults", org.comms, "/admin/digest-defaults"),
        ("people", org.admin, "/admin/people"),
        ("erase", org.admin, f"/admin/people/{org.employee.employee_id}/erase"),
        ("acknowledgements", org.comms, f"/publish/posts/{org.post_id}/acks"),
        ("dashboards", org.comms, "/analytics"),
        ("post-dashboard", org.comms, f"/analytics/posts/{org.post_id}"),
        ("directory", org.admin, "/admin/directory/"),
        ("directory-run", org.admin, f"/admin/directory/runs/{org.run_id}"),
        ("quarantine", org.admin, "/admin/directory/quarantine"),
        ("unmapped", org.admin, "/admin/directory/unmapped"),
        ("webhooks", org.admin, "/admin/webhooks"),
        ("api-keys", org.admin, "/admin/api-keys"),
        ("feedback-inbox", org.comms, "/feedback?status=all"),
        ("feedback-thread", org.comms, f"/feedback/{org.feedback_id}"),
        ("my-feedback", org.employee, "/feedback/mine"),
        ("post-reception", org.comms, f"/publish/posts/{org.post_id}"),
        ("embed-sign-in", None, "/embed/feed"),
        ("embed-feed", org.employee, "/embed/feed"),
        ("embed-hand-off", org.employee, "/embed/hand-off"),
        ("journeys", org.comms, "/journeys"),
        ("journey-new", org.comms, "/journeys/new"),
        ("journey", org.comms, f"/journeys/{org.journey_id}"),
        ("journey-step", org.comms, f"/journeys/{org.journey_id}/steps/{org.step_id}"),
        ("journey-timeline", org.comms, f"/journeys/{org.journey_id}/timeline?employee={org.employee.email}"),
    ]


#: GET routes that are not pages a person reads: downloads, and the sign-in hand-offs.
NOT_PAGES = {"intranet.static", "intranet_publish.attachment", "intranet_entra.start", "intranet_entra.callback",
             "intranet_acknowledgements.export", "intranet_my_data.download", "intranet_dashboards.organisation_csv",
             "intranet_dashboards.post_csv", "intranet_feedback.export", "intranet_pwa.manifest",
             "intranet_pwa.service_worker",
             "intranet_health.healthz", "intranet_health.readyz"}  # health checks answer JSON to load balancers


def test_every_page_route_is_checked(app: Any, org: Org) -> None:
    """A new page must join the list above (or say why it is not a page)."""
    checked = {path.split("?")[0] for _, _, path in pages_for(org)}
    adapter = app.url_map.bind("localhost")
    missing = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.endpoint in NOT_PAGES or "_api" in rule.endpoint:
            continue
        if rule.endpoint.startswith("intranet") and not any(
                adapter.match(path, method="GET")[0] == rule.endpoint for path in checked
                if _matches(adapter, path)):
            missing.append(f"{rule.endpoint} ({rule.rule})")
    assert missing == [], "\n".join(missing)


def _matches(adapter: Any, path: str) -> bool:
    try:
        adapter.match(path, method="GET")
    except Exception:  # noqa: BLE001 - werkzeug raises routing exceptions for paths it does not know
        return False
    return True


def sign_in(page: Any, live_server: str, person: Employee | None) -> None:
    page.context.clear_cookies()
    if person is None:
        return
    page.goto(f"{live_server}/auth/dev-login")
    page.fill("#email", person.email)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{live_server}/")


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_pages_are_accessible_and_fit_the_screen(page: Any, live_server: str, org: Org, width: str) -> None:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: `make test` installs it (cd tests && npm ci)")
    page.set_viewport_size(WIDTHS[width])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: dict[str, list[str]] = {}
    signed_in: Any = object()
    for name, person, path in pages_for(org):
        if person is not signed_in:
            sign_in(page, live_server, person)
            signed_in = person
        response = page.goto(live_server + path)
        assert response is not None and response.status in (200, 404), (name, response and response.status)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
        found = serious_violations(page)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        if overflow > 0:
            found.append(f"the page is {overflow} px wider than the screen")
        if found:
            problems[name] = found
    assert problems == {}, "\n".join(f"{name}: {p}" for name, ps in problems.items() for p in ps)


def test_motion_is_reduced_for_people_who_ask(page: Any, live_server: str, org: Org) -> None:
    """With prefers-reduced-motion, no transition or animation runs anywhere on the feed."""
    page.emulate_media(reduced_motion="reduce")
    sign_in(page, live_server, org.employee)
    durations = page.evaluate("""() => [...document.querySelectorAll("*")].flatMap(el => {
        const style = getComputedStyle(el);
        return [style.transitionDuration, style.animationDuration];
    }).filter(d => d.split(",").some(part => parseFloat(part) > 0.01))""")
    assert durations == []


def test_keyboard_users_see_where_focus_is_and_can_skip_to_the_content(page: Any, live_server: str,
                                                                       org: Org) -> None:
    sign_in(page, live_server, org.employee)
    page.keyboard.press("Tab")
    first = page.evaluate("() => ({text: document.activeElement.textContent.trim(), "
                          "href: document.activeElement.getAttribute('href')})")
    assert first == {"text": "Skip to content", "href": "#content"}
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    inside_main = page.evaluate("() => document.querySelector('main').contains(document.activeElement)")
    assert inside_main
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", "")


def test_an_admin_creates_an_api_key_and_sees_it_once(page: Any, live_server: str, org: Org) -> None:
    """The new key is shown in a labelled field, once, on an accessible page that fits a phone; the
    list shows it no more."""
    if not AXE.exists():
        pytest.skip("axe-core is missing: run `cd tests && npm ci`")
    page.set_viewport_size(WIDTHS["phone"])
    sign_in(page, live_server, org.admin)
    page.goto(f"{live_server}/admin/api-keys")
    page.get_by_label("Name (what the key is for)").fill("Team site")
    page.get_by_label(re.compile("Read feeds")).check()
    page.get_by_role("button", name="Create key").click()
    key_text = page.get_by_label("The new key").input_value()
    assert re.fullmatch(r"bcn_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", key_text)
    assert serious_violations(page) == []
    assert page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
    page.goto(f"{live_server}/admin/api-keys")
    assert key_text not in page.content() and "Team site" in page.content()
