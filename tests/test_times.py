"""Times on pages are in the viewer's zone, relative in feeds; time-zone pickers offer canonical zones only."""
from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from intranet import zones
from intranet.errors import InvalidInput
from intranet.models import Post
from intranet.web.times import relative

UTC = dt.timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
AT = dt.datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # the tests' clock: 10:00 in Berlin


def test_feed_says_how_long_ago_in_the_readers_zone(client_for, make_employee, make_post, clock):
    """A post published two hours ago reads "2 hours ago", with the local time in the title, and no UTC."""
    reader = make_employee(timezone="Europe/Berlin")
    make_post(title="Canteen opens", published_at=clock.now - dt.timedelta(hours=2))
    page = client_for(reader).get("/").get_data(as_text=True)
    assert re.search(r'<time datetime="2026-11-24T07:00:00\+00:00" title="Tue 24 Nov 2026, 08:00 \(Europe/Berlin\)">'
                     r'2 hours ago</time>', page)
    assert "UTC" not in page


def test_post_page_shows_the_local_time(client_for, make_employee, make_post, clock):
    """The post page shows when it was published in the reader's zone (New York: 5 hours behind UTC)."""
    reader = make_employee(timezone="America/New_York")
    post = make_post(published_at=clock.now - dt.timedelta(hours=2))
    page = client_for(reader).get(f"/posts/{post.id}").get_data(as_text=True)
    assert ">24 Nov 2026, 02:00</time>" in page and "UTC" not in page


def test_desk_and_editor_agree_on_times(client_for, make_employee, db, clock):
    """The desk and the editor show a scheduled post's time the same way, in the viewer's zone."""
    comms = make_employee(is_comms=True, timezone="America/New_York")
    client = client_for(comms)
    created = client.api("POST", "/api/v1/posts", json={"title": "Town hall", "summary": "s", "audience": {"all": True}})
    post_id = created.get_json()["id"]
    post = db.get(Post, post_id)
    post.status, post.published_at = "scheduled", dt.datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
    db.commit()
    desk = client.get("/publish?status=scheduled").get_data(as_text=True)
    editor = client.get(f"/publish/posts/{post_id}").get_data(as_text=True)
    for page in (desk, editor):
        assert ">26 Nov 2026, 09:00</time>" in page
        assert ", 14:00<" not in page and " UTC" not in page


@pytest.mark.settings(INTRANET_ORG_TIMEZONE="Europe/Berlin")
def test_viewer_without_zone_sees_the_organisations(app, client_for, make_employee, make_post, clock):
    """Someone the directory has no zone for sees the organisation's zone (here Europe/Berlin)."""
    reader = make_employee(timezone=None)
    post = make_post(published_at=clock.now - dt.timedelta(hours=2))
    assert ">24 Nov 2026, 08:00</time>" in client_for(reader).get(f"/posts/{post.id}").get_data(as_text=True)


@pytest.mark.parametrize(("value", "expected"), [
    (AT - dt.timedelta(seconds=20), "just now"),
    (AT - dt.timedelta(minutes=1), "1 minute ago"),
    (AT - dt.timedelta(minutes=59), "59 minutes ago"),
    (AT - dt.timedelta(hours=2), "2 hours ago"),
    (AT - dt.timedelta(hours=30), "yesterday"),
    (AT - dt.timedelta(days=3), "3 days ago"),
    (AT - dt.timedelta(days=20), "04 Nov"),
    (AT - dt.timedelta(days=400), "20 Oct 2025"),
    (AT + dt.timedelta(hours=3), "in 3 hours"),
    (AT + dt.timedelta(days=1, hours=1), "tomorrow"),
])
def test_relative_times(value, expected):
    assert relative(value, AT, BERLIN) == expected


def test_yesterday_is_a_local_calendar_day():
    """47 hours ago is "yesterday" late at night and "2 days ago" early in the morning (Berlin days)."""
    late = dt.datetime(2026, 11, 24, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
    assert relative(late - dt.timedelta(hours=47), late, BERLIN) == "yesterday"
    early = dt.datetime(2026, 11, 24, 0, 30, tzinfo=UTC)  # 01:30 in Berlin
    assert relative(early - dt.timedelta(hours=47), early, BERLIN) == "2 days ago"


# --- which zones people may choose ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["Factory", "localtime", "posix/Europe/Berlin", "right/UTC", "US/Eastern",
                                  "Etc/GMT+5", "EST5EDT", "Europe/Atlantis", ""])
def test_non_canonical_zones_are_refused(name):
    with pytest.raises(InvalidInput, match="not a time zone you can choose"):
        zones.parse_zone(name)
    assert name not in zones.canonical_zones()


def test_a_link_suggests_its_canonical_zone():
    with pytest.raises(InvalidInput, match="another name for America/New_York"):
        zones.parse_zone("US/Eastern")


def test_choices_are_canonical_and_grouped():
    """Pickers list about 420 canonical zones grouped by area, each labelled with its countries."""
    grouped = dict(zones.choices())
    names = [z.name for group in grouped.values() for z in group]
    assert len(names) == len(set(names)) == len(zones.canonical_zones())
    assert 400 < len(names) < 450
    assert {"Africa", "America", "Asia", "Europe", "Pacific"} <= set(grouped)
    berlin = next(z for z in grouped["Europe"] if z.name == "Europe/Berlin")
    assert berlin.city == "Berlin" and "Germany" in berlin.countries
    assert zones.parse_zone(" Europe/Berlin ") == "Europe/Berlin" and zones.parse_zone("UTC") == "UTC"


def test_editor_offers_canonical_zones_only(client_for, make_employee):
    page = client_for(make_employee(is_comms=True)).get("/publish/new").get_data(as_text=True)
    assert '<optgroup label="Europe">' in page and 'value="Europe/Berlin" selected' in page
    for junk in ("Factory", "localtime", "posix/", "US/Eastern"):
        assert f'value="{junk}' not in page


def test_editor_refuses_localtime(client_for, make_employee, db):
    """`localtime` (the server's zone) is refused with a clear message; nothing is stored."""
    comms = client_for(make_employee(is_comms=True))
    response = comms.post("/publish/new", data={
        "csrf_token": comms.csrf, "title": "Party", "summary": "s", "topic": "Events", "rating_style": "stars",
        "timezone": "localtime", "publish_at": "2026-12-01T10:00", "all_staff": "1"})
    assert response.status_code == 422
    assert "“localtime” is not a time zone you can choose" in response.get_data(as_text=True)
    assert db.exec(select(Post)).first() is None


def test_directory_zones_follow_the_same_rule():
    """The directory keeps canonical zones only: links become the zone they name, `localtime` is unmapped."""
    from intranet.directory.normalize import Maps, Normalizer

    normalizer = Normalizer(Maps.from_config({}))
    assert normalizer.zone("Asia/Calcutta") == "Asia/Kolkata" and normalizer.zone("Europe/Berlin") == "Europe/Berlin"
    assert normalizer.zone("localtime") is None and normalizer.zone("Factory") is None
    assert zones.canonical_for("Etc/UTC") == "UTC" and zones.canonical_for("Zulu") == "UTC"


@pytest.mark.browser
def test_zone_search_picks_the_first_match(page, live_server, sign_in_browser, make_employee, db):
    """Typing "japan" in the preferences' zone search narrows the list to Tokyo and picks it; saving keeps it."""
    me = make_employee(timezone="Europe/Berlin")
    sign_in_browser(me)
    page.goto(f"{live_server}/preferences")
    page.fill("input.zone-search", "japan")
    assert page.eval_on_selector("#timezone", "s => [s.value, s.options.length]") == ["Asia/Tokyo", 2]
    page.fill("input.zone-search", "no such place")
    assert page.eval_on_selector("#timezone", "s => s.value") == "Asia/Tokyo"  # nothing matches: choice kept
    page.click("form.settings button[type=submit]")
    page.wait_for_selector("text=Your preferences are saved.")
    db.refresh(me)
    assert me.timezone == "Asia/Tokyo"
