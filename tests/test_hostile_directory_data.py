"""Hostile directory data stays text (SECURITY.md D6, D7, E5, G8).

Names, departments, job titles and offices come from Entra ID and HR files, which Beacon does not
control. Here they carry script tags, attribute breakouts, ``</script>`` (to escape a JSON block),
template syntax and plotly/MathJax link markup, and every place that shows them is checked the way a
browser reads it: re-parsed with an HTML5 parser (html5lib), JSON blocks parsed as JSON.
"""
from __future__ import annotations

import email
import email.policy
import json
import xml.etree.ElementTree as ET
from typing import Any

from bleach._vendor import html5lib

from intranet.delivery.channels import RenderedDigest
from intranet.delivery.channels.email import build_message
from intranet.delivery.channels.teams import adaptive_card
from tests.conftest import NOW
from tests.dashboard_support import read_by
from tests.delivery_support import choose, queue_digest, send

NAME = "Eve <script>alert('name')</script>\"onmouseover=\"alert(2)\" '><img src=x onerror=alert(3)>"
DEPARTMENT = "</script><script>alert('dept')</script><svg onload=alert(4)>"
JOB_TITLE = "\"><svg/onload=alert(5)> {{7*7}}"
OFFICE = "<a href=\"javascript:alert(6)\">Berlin</a> $\\href{javascript:alert(7)}{x}$"
HOSTILE = {"display_name": NAME, "department": DEPARTMENT, "job_title": JOB_TITLE, "office": OFFICE}
#: What the payloads would create if any reached the page as markup.
PLANTED_TAGS = {"svg", "iframe", "object", "embed"}


def _inert(page: str, where: str) -> list[str]:
    """What in *page*, parsed as a browser would, could run script (empty: nothing)."""
    tree = html5lib.parse(page, treebuilder="etree", namespaceHTMLElements=False)
    problems = []
    for element in tree.iter():
        if element.tag is ET.Comment or not isinstance(element.tag, str):
            continue
        tag = element.tag.split("}")[-1]
        attributes = {k.split("}")[-1].lower(): v for k, v in element.attrib.items()}
        if any(name.startswith("on") for name in attributes):
            problems.append(f"{where}: <{tag}> with {sorted(attributes)}")
        if tag in PLANTED_TAGS or (tag == "img" and attributes.get("src") == "x"):
            problems.append(f"{where}: planted <{tag}>")
        if any(v.strip().lower().startswith("javascript:") for v in attributes.values()):
            problems.append(f"{where}: javascript: URL in <{tag}>")
        if tag == "script" and "src" not in attributes:
            if attributes.get("type") != "application/json":
                problems.append(f"{where}: inline script {element.text!r:.80}")
            else:
                json.loads(element.text or "null")  # a </script> breakout would leave broken JSON
    return problems


def _people(make_employee: Any) -> tuple[Any, list[Any], Any, Any]:
    """A hostile author (a contributor), six hostile colleagues (enough to appear in charts), an admin
    and a comms manager."""
    author = make_employee(is_contributor=True, **HOSTILE)
    colleagues = [make_employee(**{**HOSTILE, "display_name": f"{NAME} {n}"}) for n in range(6)]
    return author, colleagues, make_employee(is_admin=True), make_employee(is_comms=True)


def test_hostile_directory_strings_are_inert_on_every_page_that_shows_people(
        make_employee, make_post, make_group, client_for, db):
    """The feed's byline, the post page, the people and group-member tables, the acknowledgement
    roster, the feedback inbox and the dashboards show hostile names and departments as text (the
    figure JSON of a hostile department label: tests/test_dashboards.py)."""
    author, colleagues, admin, comms = _people(make_employee)
    post = make_post({"all": True}, title="Quarterly results", author_pk=author.id, must_read=True)
    make_group("choir", kind="managed", members=(author, *colleagues))
    read_by(db, colleagues, post)
    reader = client_for(colleagues[0])
    reader.api("POST", f"/api/v1/posts/{post.id}/acknowledge")
    rated = reader.api("PUT", f"/api/v1/posts/{post.id}/rating",
                       json={"stars": 2, "comment": "Signed by a hostile name", "signed": True})
    assert rated.status_code == 200
    pages = {
        "feed": (reader, "/"), "post": (reader, f"/posts/{post.id}"),
        "people": (client_for(admin), "/admin/people"), "members": (client_for(admin), "/groups/choir/members"),
        "acknowledgements": (client_for(admin), f"/publish/posts/{post.id}/acks"),
        "feedback": (client_for(comms), "/feedback?status=all"),
        "dashboard": (client_for(comms), "/analytics"), "post dashboard": (client_for(comms), f"/analytics/posts/{post.id}"),
    }
    problems, shown = [], {}
    for where, (client, url) in pages.items():
        response = client.get(url)
        assert response.status_code == 200, where
        page = response.get_data(as_text=True)
        problems += _inert(page, where)
        shown[where] = page
    assert problems == []
    # Shown, escaped, not dropped (and template syntax not evaluated).
    assert "Eve &lt;script&gt;" in shown["feed"] and "Eve &lt;script&gt;" in shown["people"]
    assert "{{7*7}}" in shown["people"] and "49" not in shown["people"].split("{{7*7}}")[0][-20:]
    assert "&lt;/script&gt;&lt;script&gt;alert(&#39;dept&#39;)" in shown["members"]


def test_a_hostile_name_is_one_recipient_in_the_digest_email(app, config, db, make_employee, make_post, clock, smtp):
    """A digest to someone named like an address list (or carrying markup) goes to exactly that person,
    and its HTML is inert (G6, E5: one To address; the name is quoted, never parsed as addresses)."""
    person = make_employee(display_name='Eve <eve@evil.example>, "Mallory" <mallory@evil.example>\r\nBcc: x@evil.example',
                           department=DEPARTMENT, email="eve@example.com")
    author = make_employee(display_name=NAME, is_contributor=True)
    make_post({"all": True}, title="Canteen reopens", author_pk=author.id)
    choose(db, person, cadence="daily")
    queue_digest(db, person, clock.now)
    report = send(app, db, config, clock)
    assert report.sent == 1
    assert smtp.recipients() == ["eve@example.com"]
    [message] = smtp.parsed()
    to = message["To"]
    assert len(to.addresses) == 1 and to.addresses[0].addr_spec == "eve@example.com"
    assert "Bcc" not in message and "\n" not in str(to)
    html = message.get_body(("html",)).get_content()
    assert _inert(html, "digest") == []


def test_teams_card_texts_escape_markdown_links():
    """A title or summary written as a Markdown link stays text in the Adaptive Card (G8); each
    post's link points at Beacon."""
    title = "[Click me](javascript:alert(1)) *urgent* <b>x</b>"
    card = adaptive_card("Digest", [{"title": title, "summary": "](https://evil.example)", "must_read": False,
                                     "url": "https://news.example.com/posts/1"}], None, 0)
    link = card["body"][1]["text"]
    assert link.startswith("[") and link.endswith("](https://news.example.com/posts/1)")
    assert "\\[Click me\\]\\(javascript:alert\\(1\\)\\)" in link
    assert card["body"][2]["text"] == "\\]\\(https://evil.example\\)"


def test_newlines_in_a_display_name_cannot_forge_a_log_record(make_employee, client_for, caplog):
    """A display name holding a line break and a fake log line stays inside one record (E5)."""
    person = make_employee(display_name="Eve\n2026-01-01 INFO admin signed in", entra_object_id="oid-eve")
    client = client_for(person)
    for _ in range(40):  # past INTRANET_RATINGS_PER_MINUTE: a security event naming the person
        client.api("PUT", "/api/v1/posts/999999/rating", json={"stars": 3})
    events = [r for r in caplog.records if r.name == "intranet.security"]
    assert events, "no security event was logged"
    for record in events:
        assert "\n" not in record.getMessage()


def test_a_long_accented_name_with_commas_keeps_one_address():
    """Python's header folding unquotes long display names; "Müller, Zoë" repeated past a line's
    length still names one recipient, the right one."""
    digest = RenderedDigest(message_id="<m@x>", recipient_email="zoe@example.com",
                            recipient_name="Müller, Zoë <x@evil.example> " * 6, subject="s", html="<p>h</p>",
                            text="t", card={}, unsubscribe_url=None, escalation=False)
    raw = build_message(digest, sender="Beacon <news@example.com>", now=NOW).as_bytes()
    [address] = email.message_from_bytes(raw, policy=email.policy.default)["To"].addresses
    assert address.addr_spec == "zoe@example.com" and address.display_name.startswith("Müller Zoë")
