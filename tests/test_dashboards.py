"""Engagement dashboards: pages for comms managers and admins, charts that hide small groups everywhere,
CSV downloads that are formula-safe, figure JSON that no label can break out of."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from pathlib import Path

import plotly.offline
import pytest

from intranet.analytics import charts, post_detail
from intranet.models import AnalyticsDeliveryDay
from tests.conftest import NOW
from tests.dashboard_support import figures, organisation, rate_by, read_by

ROOT = Path(__file__).resolve().parent.parent


def _csv(response) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_employees_get_403_and_no_link(client_for, make_employee, make_post):
    """An employee (or a contributor) is refused every dashboard page and CSV, and has no link to them."""
    post = make_post()
    for person in (make_employee(), make_employee(is_contributor=True)):
        client = client_for(person)
        for url in ("/analytics", f"/analytics/posts/{post.id}", "/analytics/charts/reading-hours.csv",
                    f"/analytics/posts/{post.id}/charts/funnel.csv"):
            assert client.get(url).status_code == 403, url
        assert 'href="/analytics"' not in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("role", ["is_comms", "is_admin"])
def test_comms_managers_and_admins_see_every_chart(role, client_for, make_employee, make_post, db):
    """The organisation page and the post page carry a figure per chart, a CSV link each, and the nav link."""
    org = organisation(make_employee, make_post, db)
    client = client_for(make_employee(**{role: True}))
    assert 'href="/analytics"' in client.get("/").get_data(as_text=True)
    page = client.get("/analytics").get_data(as_text=True)
    assert {"reading-hours", "rate-department", "rate-region", "rate-level", "topics", "coverage"} <= set(figures(page))
    for key in ("digests", "acknowledgements", "timing-lift"):  # nothing sent, no must-read: said, not drawn
        assert f'id="card-{key}"' in page
    assert f'href="/analytics/posts/{org["post"].id}"' in page
    post_page = client.get(f"/analytics/posts/{org['post'].id}").get_data(as_text=True)
    shown = figures(post_page)
    assert {"funnel", "readership", "ratings", "by-department", "by-region", "by-level"} <= set(shown)
    for key in shown:
        assert f'href="/analytics/posts/{org["post"].id}/charts/{key}.csv"' in post_page


def test_post_charts_and_their_csv_agree(client_for, make_employee, make_post, db):
    """The funnel counts audience, reached and read; the CSV holds the same numbers as the figure."""
    org = organisation(make_employee, make_post, db)
    client = client_for(make_employee(is_comms=True, department="Comms"))
    post = org["post"]
    funnel = figures(client.get(f"/analytics/posts/{post.id}").get_data(as_text=True))["funnel"]
    assert funnel["data"][0]["y"] == ["Audience", "Reached", "Read"]
    audience = 6 + 2 + 5 + 1  # everyone, the viewer included
    assert funnel["data"][0]["x"] == [audience, 13, 8]
    rows = _csv(client.get(f"/analytics/posts/{post.id}/charts/funnel.csv"))
    assert [(r["stage"], int(r["people"])) for r in rows] == [("Audience", audience), ("Reached", 13), ("Read", 8)]
    stars = _csv(client.get(f"/analytics/posts/{post.id}/charts/ratings.csv"))
    assert [(r["rating"], r["people"]) for r in stars] == [("1", "0"), ("2", "0"), ("3", "0"), ("4", "5"), ("5", "0")]


def test_small_groups_are_hidden_in_the_figure_its_hover_and_the_csv(client_for, make_employee, make_post, db):
    """Legal (2 readers) is absent from the page, the figure JSON and the CSV; Finance is hidden with it, so
    the total minus the shown rows cannot reveal Legal; Sales is shown."""
    org = organisation(make_employee, make_post, db)
    client = client_for(make_employee(is_comms=True))
    post = org["post"]
    page = client.get(f"/analytics/posts/{post.id}").get_data(as_text=True)
    assert "Legal" not in page and "Finance<" not in page
    by_department = figures(page)["by-department"]
    assert by_department["data"][0]["x"] == ["Sales"]
    rows = _csv(client.get(f"/analytics/posts/{post.id}/charts/by-department.csv"))
    assert [r["department"] for r in rows] == ["Sales"]


def test_few_ratings_and_few_readers_are_not_shown(client_for, make_employee, make_post, db):
    """Four ratings (fewer than five people): no distribution; three readers: no curve, no read count."""
    readers = [make_employee() for _ in range(3)]
    post = make_post()
    read_by(db, readers, post)
    rate_by(db, readers, post, 5)
    client = client_for(make_employee(is_comms=True))
    page = client.get(f"/analytics/posts/{post.id}").get_data(as_text=True)
    shown = figures(page)
    assert "ratings" not in shown and "readership" not in shown
    assert "Fewer than 5 people rated it" in page and "Fewer than 5 people have read it" in page
    assert shown["funnel"]["data"][0]["y"] == ["Audience"]
    assert _csv(client.get(f"/analytics/posts/{post.id}/charts/ratings.csv")) == []


def test_labels_cannot_break_out_of_the_json_or_become_markup(client_for, make_employee, make_post, db):
    """A department named like a closing script tag stays inside its JSON block, escaped for plotly."""
    evil = "</script><script>alert(1)</script><a href='javascript:x'>"
    org = organisation(make_employee, make_post, db, department=evil)
    client = client_for(make_employee(is_comms=True))
    page = client.get(f"/analytics/posts/{org['post'].id}").get_data(as_text=True)
    assert "<script>alert(1)" not in page and "javascript:x'" not in page
    shown = figures(page)
    assert shown["by-department"]["data"][0]["x"] == [
        "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;a href='javascript:x'&gt;"]


def test_csv_cells_that_look_like_formulas_are_neutralized(client_for, make_employee, make_post, db):
    """A department starting with = is exported with a leading ' (and the page still shows it as typed)."""
    org = organisation(make_employee, make_post, db, department="=HYPERLINK(\"http://x\")")
    client = client_for(make_employee(is_comms=True))
    rows = _csv(client.get(f"/analytics/posts/{org['post'].id}/charts/by-department.csv"))
    assert [r["department"] for r in rows] == ["'=HYPERLINK(\"http://x\")"]


def test_reading_hours_follow_the_zone_filter(client_for, make_employee, make_post, db):
    """Eight people in Berlin reading at 08:30 UTC on a Tuesday: Tuesday 08:00 in UTC, 17:00 in Tokyo, 09:00
    in their own local time."""
    readers = [make_employee(timezone="Europe/Berlin") for _ in range(8)]
    post = make_post()
    read_by(db, readers, post, at=dt.datetime(2026, 11, 24, 8, 30, tzinfo=dt.timezone.utc))
    client = client_for(make_employee(is_comms=True))
    for zone, hour in (("UTC", 8), ("Asia/Tokyo", 17), ("local", 9)):
        rows = _csv(client.get(f"/analytics/charts/reading-hours.csv?zone={zone}&from=2026-11-20&to=2026-11-24"))
        assert [(r["weekday"], int(r["hour"]), int(r["readers"])) for r in rows] == [("Tuesday", hour, 8)], zone


def test_bad_filters_are_refused_with_the_reason(client_for, make_employee):
    """An unknown department, a bad date, an upside-down window or a made-up zone is a 422 page."""
    client = client_for(make_employee(is_comms=True))
    for query in ("department=Nowhere", "from=yesterday", "from=2026-11-24&to=2026-11-01", "zone=Mars/Base"):
        response = client.get(f"/analytics?{query}")
        assert response.status_code == 422, query


def test_filters_narrow_the_list_of_posts(client_for, make_employee, make_post):
    """Topic and date range choose the posts listed."""
    make_post(title="Canteen menu", topic="Facilities")
    make_post(title="Sales kick-off", topic="Sales")
    make_post(title="Old news", topic="Sales", published_at=NOW - dt.timedelta(days=60))
    client = client_for(make_employee(is_comms=True))
    listed = client.get("/analytics?topic=Sales").get_data(as_text=True).split('id="dashboard-posts"')[1]
    assert "Sales kick-off" in listed and "Canteen menu" not in listed and "Old news" not in listed


def test_only_dashboard_pages_allow_inline_styles(client_for, make_employee, make_post):
    """Dashboards relax style-src for plotly.js; every other page keeps the strict policy; no page allows eval."""
    post = make_post()
    client = client_for(make_employee(is_admin=True))
    for url in ("/analytics", f"/analytics/posts/{post.id}"):
        policy = client.get(url).headers["Content-Security-Policy"]
        assert "style-src 'self' 'unsafe-inline'" in policy and "script-src 'self';" in policy
        assert "unsafe-eval" not in policy
    for url in ("/", "/preferences", "/admin/people"):
        policy = client.get(url).headers["Content-Security-Policy"]
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_the_vendored_plotly_js_is_the_version_the_python_package_bundles():
    """Figures are built by the Python package and drawn by the vendored strict bundle: same plotly.js."""
    head = (ROOT / "static/intranet/vendor/plotly-strict.min.js").read_text(encoding="utf-8")[:300]
    found = re.search(r"plotly\.js \(strict - minified\) v(\d+\.\d+\.\d+)", head)
    assert found and found.group(1) == plotly.offline.get_plotlyjs_version()


def test_reading_curve_steps_each_add_at_least_k_people():
    """Days are merged until they add k readers; a remainder joins the last step; under k readers, nothing."""
    day = dt.date(2026, 11, 1)
    daily = [(day + dt.timedelta(days=i), n) for i, n in enumerate([3, 1, 2, 6, 1])]
    points, hidden = post_detail.k_steps(daily, 5)
    assert points == [(day + dt.timedelta(days=2), 6), (day + dt.timedelta(days=4), 13)] and hidden == 0
    assert post_detail.k_steps([(day, 4)], 5) == ([], 4)


def test_organisation_charts_follow_the_rollups_and_hide_small_groups(client_for, make_employee, make_post, db):
    """Read rate by department per week shows Sales (6 of 6 read) and neither Legal nor Finance; topics
    show the Finance topic; the CSV of each says the same."""
    organisation(make_employee, make_post, db)
    client = client_for(make_employee(is_comms=True, department="Comms"))
    shown = figures(client.get("/analytics").get_data(as_text=True))
    assert [trace["name"] for trace in shown["rate-department"]["data"]] == ["Sales"]
    rows = _csv(client.get("/analytics/charts/rate-department.csv"))
    assert [(r["department"], r["reached"], r["read"]) for r in rows] == [("Sales", "6", "6")]
    topics = _csv(client.get("/analytics/charts/topics.csv"))
    assert [(r["topic"], r["read"]) for r in topics] == [("Finance", "8")]


def test_a_filter_that_leaves_too_few_people_shows_only_the_hidden_count(client_for, make_employee, make_post, db):
    """Narrowed to Legal (two readers), the department chart shows no rate, only that 2 people are hidden."""
    organisation(make_employee, make_post, db)
    client = client_for(make_employee(is_comms=True))
    page = client.get("/analytics?department=Legal").get_data(as_text=True)
    assert "rate-department" not in figures(page)
    card = page.split('id="card-rate-department"')[1].split("</section>")[0]
    assert "fewer than 5 people" in card and "2 people are hidden" in card
    assert _csv(client.get("/analytics/charts/rate-department.csv?department=Legal")) == []


def test_timing_lift_shows_both_arms_the_interval_and_the_sample_sizes(client_for, make_employee, db):
    """Learned times 60 of 100 read within 24 h, control 40 of 80: +10 points with its 95 % interval."""
    db.add(AnalyticsDeliveryDay(day=NOW.date(), channel="email", arm="personal", recipients=100, sent=100, opened=70, read_2h=30,
                                read_24h=60))
    db.add(AnalyticsDeliveryDay(day=NOW.date(), channel="email", arm="control", recipients=80, sent=80, opened=50, read_2h=20,
                                read_24h=40))
    db.commit()
    client = client_for(make_employee(is_comms=True))
    page = client.get("/analytics").get_data(as_text=True)
    lift = figures(page)["timing-lift"]
    assert lift["data"][0]["y"] == [0.6, 0.5] and lift["data"][0]["customdata"] == [[60, 100], [40, 80]]
    assert "n = 100 and 80" in page and "+10.0%" in page
    rows = _csv(client.get("/analytics/charts/timing-lift.csv"))
    assert [(r["arm"], r["sent"], r["read_24h"]) for r in rows[:2]] == [("Learned times", "100", "60"),
                                                                          ("Default hour (control)", "80", "40")]
    assert float(rows[2]["rate"]) == pytest.approx(0.1) and float(rows[3]["rate"]) < 0.1 < float(rows[4]["rate"])
    digests = _csv(client.get("/analytics/charts/digests.csv"))
    assert [(r["channel"], r["sent"], r["read_24h"]) for r in digests] == [("email", "180", "100")]


def test_labels_from_data_are_escaped_for_plotly_and_the_figure_is_json():
    """A label is HTML-escaped (plotly shows entities as characters, so it reads as typed, never as a tag);
    the chart's figure is plain JSON data."""
    assert charts.text("<a href='javascript:x'>R&D</a>") == "&lt;a href='javascript:x'&gt;R&amp;D&lt;/a&gt;"
    chart = charts.coverage({"active": 3, **{name: {"count": 3, "share": 1.0}
                                             for name in ("department", "region", "level", "timezone")}})
    assert chart.data == json.loads(chart.figure) and chart.data["data"][0]["type"] == "bar"


def test_opening_the_dashboard_keeps_a_post_published_again_refiled(client_for, make_employee, make_post, db):
    """A post published again a week earlier is filed under its new day once, by the page, and stays so."""
    from intranet.models import AnalyticsPostFiled

    post = organisation(make_employee, make_post, db)["post"]
    post.published_at = post.published_at - dt.timedelta(days=7)
    db.add(post)
    db.commit()
    client = client_for(make_employee(is_comms=True, department="Comms"))
    assert client.get("/analytics").status_code == 200
    db.expire_all()
    assert db.get(AnalyticsPostFiled, post.id).day == post.published_at.astimezone(dt.timezone.utc).date()


def _count_builds(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many times each chart builder of :mod:`intranet.analytics.charts` runs (wrapped in place)."""
    builds: dict[str, int] = {}
    for name in ("reading_hours", "rate_over_time", "topics", "digests", "acknowledgements", "timing_lift", "coverage",
                 "funnel", "readership", "ratings", "by_dimension"):
        def counted(*args, _name=name, _real=getattr(charts, name), **kwargs):  # type: ignore[no-untyped-def]
            builds[_name] = builds.get(_name, 0) + 1
            return _real(*args, **kwargs)
        monkeypatch.setattr(charts, name, counted)
    return builds


def test_a_csv_download_builds_only_the_chart_it_serves(client_for, make_employee, make_post, db, monkeypatch):
    """Each organisation and post chart's CSV builds that one chart (not the whole page to pick one);
    an unknown chart is a 404 that builds none."""
    org = organisation(make_employee, make_post, db)
    client = client_for(make_employee(is_comms=True))
    builds = _count_builds(monkeypatch)
    client.get("/analytics")
    assert builds == {"reading_hours": 1, "rate_over_time": 4, "topics": 1, "digests": 1, "acknowledgements": 1,
                      "timing_lift": 1, "coverage": 1}
    for key, builder in (("reading-hours", "reading_hours"), ("rate-region", "rate_over_time"), ("topics", "topics"),
                         ("digests", "digests"), ("acknowledgements", "acknowledgements"),
                         ("timing-lift", "timing_lift"), ("coverage", "coverage")):
        builds.clear()
        assert client.get(f"/analytics/charts/{key}.csv").status_code == 200, key
        assert builds == {builder: 1}, key
    post = org["post"].id
    for key, builder in (("funnel", "funnel"), ("readership", "readership"), ("ratings", "ratings"),
                         ("by-level", "by_dimension")):
        builds.clear()
        assert client.get(f"/analytics/posts/{post}/charts/{key}.csv").status_code == 200, key
        assert builds == {builder: 1}, key
    builds.clear()
    assert client.get("/analytics/charts/nothing.csv").status_code == 404
    assert client.get(f"/analytics/posts/{post}/charts/nothing.csv").status_code == 404
    assert builds == {}


def test_the_readership_csv_alone_counts_the_same_audience_as_the_page(client_for, make_employee, make_post, db):
    """Built alone, the read-rate curve's CSV divides by the same exact headcount as on the post page."""
    org = organisation(make_employee, make_post, db)
    client = client_for(make_employee(is_comms=True))
    post = org["post"].id
    shown = figures(client.get(f"/analytics/posts/{post}").get_data(as_text=True))["readership"]
    rows = _csv(client.get(f"/analytics/posts/{post}/charts/readership.csv"))
    assert [float(r["read_rate"]) for r in rows] == shown["data"][0]["y"][1:]


def test_must_reads_are_shown_a_page_at_a_time_newest_first(client_for, make_employee, make_post, db, monkeypatch):
    """One must-read a page: the newest first with a link to the older one, which links back; the CSV
    holds the page it is linked from."""
    from intranet.analytics import queries

    organisation(make_employee, make_post, db)
    older = make_post(must_read=True, title="Older policy", published_at=NOW - dt.timedelta(days=2))
    newer = make_post(must_read=True, title="Newer policy", published_at=NOW - dt.timedelta(days=1))
    monkeypatch.setattr(queries, "MUST_READS_PER_PAGE", 1)
    client = client_for(make_employee(is_comms=True))
    page = client.get("/analytics").get_data(as_text=True)
    assert figures(page)["acknowledgements"]["data"][0]["y"] == ["Newer policy"]
    card = page.split('id="card-acknowledgements"')[1].split("</section>")[0]
    assert "Must-reads 1–1 of 2" in card and "must_reads_page=2" in card and "Newer</a>" not in card
    page = client.get("/analytics?must_reads_page=2").get_data(as_text=True)
    assert figures(page)["acknowledgements"]["data"][0]["y"] == ["Older policy"]
    card = page.split('id="card-acknowledgements"')[1].split("</section>")[0]
    assert "Must-reads 2–2 of 2" in card and "must_reads_page=1" in card and "Older</a>" not in card
    rows = _csv(client.get("/analytics/charts/acknowledgements.csv?must_reads_page=2"))
    assert [int(r["post_id"]) for r in rows] == [older.id]
    assert [int(r["post_id"]) for r in _csv(client.get("/analytics/charts/acknowledgements.csv"))] == [newer.id]
    for bad in ("0", "x", "-1"):
        assert client.get(f"/analytics?must_reads_page={bad}").status_code == 422, bad


def test_many_authors_are_chosen_by_employee_id_or_email(client_for, make_employee, make_post, db, monkeypatch):
    """Past the number of authors a list holds, the author filter is a box taking an employee ID or e-mail."""
    from intranet.web import dashboards

    author = make_employee(email="Writer@Example.test")
    make_post(title="By the writer", author_pk=author.id)
    make_post(title="By someone else")
    client = client_for(make_employee(is_comms=True))
    assert '<select name="author">' in client.get("/analytics").get_data(as_text=True)
    monkeypatch.setattr(dashboards, "AUTHORS_LISTED", 0)
    page = client.get("/analytics").get_data(as_text=True)
    assert '<select name="author">' not in page and 'type="search" name="author"' in page
    for typed in (author.employee_id, "writer@example.test"):
        page = client.get(f"/analytics?author={typed}").get_data(as_text=True)
        assert "By the writer" in page and "By someone else" not in page, typed
        assert f'name="author" autocomplete="off" value="{author.employee_id}"' in page
    assert client.get("/analytics?author=nobody@example.test").status_code == 422
