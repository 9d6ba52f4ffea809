"""Rating from a digest: one link per star or thumb in the email, a button in the Teams card; every
link lands on the confirmation page, and only that page's POST saves."""
from __future__ import annotations

import base64
import datetime as dt
import json
import re
from html import unescape

import pytest
import responses
from sqlalchemy import select

from intranet import jobs
from intranet.delivery import enqueue, sending
from intranet.delivery.channels.email import SmtpMailer
from intranet.models import Digest, Rating

BASE = "https://news.example.com"


def queue(db, person, clock, **kwargs) -> None:  # type: ignore[no-untyped-def]
    db.add(Digest(employee_pk=person.id, local_date=clock.now.date(), ordinal=0, due_at=clock.now,
                  expires_at=clock.now + dt.timedelta(hours=12), timezone="Europe/Berlin", local_hour=10))
    db.commit()
    enqueue.enqueue_due(db, clock.now, **kwargs)
    db.commit()


def stored(db) -> list[tuple]:  # type: ignore[no-untyped-def]
    db.expire_all()
    return [(r.post_id, r.stars, r.thumb) for r in db.execute(select(Rating)).scalars()]


def emailed_html(app, db, config, smtp, clock) -> str:  # type: ignore[no-untyped-def]
    mailer = SmtpMailer(config.mail.smtp_host, config.mail.smtp_port, sender=config.mail.mail_from)
    with app.app_context():
        report = sending.send_due(db, clock, config, jobs.renderer_for(app), channels={"email": mailer})
    mailer.close()
    assert report.sent == 1, report
    return smtp.parsed()[0].get_body(preferencelist=("html",)).get_content()


def rate_links(html: str, title: str) -> list[tuple[str, str]]:
    """(label, path) of each rating link in the email's item titled *title*."""
    block = html[html.index(title):]
    block = block[:block.index("</div>")]
    return [(unescape(label), unescape(href).removeprefix(BASE))
            for href, label in re.findall(r'<a href="([^"]+/rate/[^"]+)"[^>]*>([^<]+)</a>', block)]


def page_client(app):  # type: ignore[no-untyped-def]
    client = app.test_client()
    client.environ_base.update(HTTP_REFERER="https://localhost/")  # the same-origin Referer a browser sends
    return client


def test_digest_email_has_one_link_per_star_and_per_thumb(app, db, config, smtp, make_employee, make_post, clock):
    """A stars post gets five links, a thumbs post two, each to its own confirmation page."""
    person = make_employee(email="ana@example.com")
    make_post(title="Town hall notes")
    make_post(title="Parking changes", rating_style="thumbs")
    queue(db, person, clock)
    html = emailed_html(app, db, config, smtp, clock)
    stars, thumbs = rate_links(html, "Town hall notes"), rate_links(html, "Parking changes")
    assert [label for label, _ in stars] == ["★", "★★", "★★★", "★★★★", "★★★★★"]
    assert [label for label, _ in thumbs] == ["Helpful", "Not helpful"]
    assert len({path for _, path in stars + thumbs}) == 7
    client = page_client(app)
    assert 'name="stars" value="4" checked' in client.get(stars[3][1]).get_data(as_text=True)
    assert 'name="thumb" value="down" checked' in client.get(thumbs[1][1]).get_data(as_text=True)
    text = smtp.parsed()[0].get_body(preferencelist=("plain",)).get_content()
    assert text.count(f"Rate it: {BASE}/rate/") == 2


def test_an_items_links_share_one_signed_token_and_the_value_only_preselects(app, db, config, smtp, make_employee,
                                                                              make_post, clock):
    """The star links of a post differ only in their query; a value edited in the query changes the
    preselection, never whose rating it is, and a meaningless one preselects nothing."""
    person = make_employee(email="ana@example.com")
    make_post(title="Town hall notes")
    queue(db, person, clock)
    stars = rate_links(emailed_html(app, db, config, smtp, clock), "Town hall notes")
    pages = {path.split("?", 1)[0] for _, path in stars}
    assert len(pages) == 1 and [path.split("?", 1)[1] for _, path in stars] == [f"stars={n}" for n in range(1, 6)]
    client = page_client(app)
    [page] = pages
    assert 'name="stars" value="2" checked' in client.get(f"{page}?stars=2").get_data(as_text=True)
    for junk in ("?stars=9", "?stars=x", "?thumb=sideways", ""):
        html = client.get(f"{page}{junk}").get_data(as_text=True)
        assert "Your rating, " in html and " checked" not in html
    assert stored(db) == []


def test_following_a_digest_link_saves_only_when_the_page_is_posted(app, db, config, smtp, make_employee, make_post,
                                                                     clock):
    """GET of the link (as a mail scanner does, repeatedly) writes nothing; the page's POST saves the rating."""
    person = make_employee(email="ana@example.com")
    post = make_post(title="Town hall notes")
    queue(db, person, clock)
    path = rate_links(emailed_html(app, db, config, smtp, clock), "Town hall notes")[1][1]
    client = page_client(app)
    for _ in range(3):
        page = client.get(path)
        assert page.status_code == 200
    assert stored(db) == []
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    done = client.post(path, data={"csrf_token": csrf, "stars": "2", "comment": ""})
    assert done.status_code == 200 and "your rating is saved (2 of 5)" in done.get_data(as_text=True)
    assert stored(db) == [(post.id, 2, None)]


def test_a_digest_link_works_only_for_the_person_it_was_sent_to(app, db, config, smtp, make_employee, make_post, clock):
    """Changing the post id inside a link breaks its signature: a 404, nothing saved."""
    person = make_employee(email="ana@example.com")
    post = make_post(title="Town hall notes")
    other = make_post(title="Something else", published_at=clock.now - dt.timedelta(days=30))
    queue(db, person, clock)
    path = rate_links(emailed_html(app, db, config, smtp, clock), "Town hall notes")[4][1]
    payload, rest = path.rsplit("/", 1)[1].split(".", 1)
    signed = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert signed[1] == post.id
    signed[1] = other.id
    altered = base64.urlsafe_b64encode(json.dumps(signed, separators=(",", ":")).encode()).rstrip(b"=").decode()
    assert page_client(app).get(f"/rate/{altered}.{rest}").status_code == 404
    assert stored(db) == []


@pytest.mark.settings(INTRANET_TEAMS_WORKFLOW_URL="https://flow.example.com/trigger?sig=secret",
                      INTRANET_BASE_URL=BASE)
def test_teams_card_has_a_button_to_the_rating_page(app, db, renderer, make_employee, make_post, clock):
    """Each post in the card has a "Rate this post" button opening the confirmation page, with every choice."""
    from intranet.delivery.channels.in_app import InApp
    from intranet.delivery.channels.teams import TeamsWorkflow

    person = make_employee(email="ana@example.com")
    post = make_post(title="Safety rules", must_read=True, published_at=clock.now - dt.timedelta(days=3),
                     rating_style="thumbs")
    queue(db, person, clock, teams_enabled=True)
    settings = app.extensions["intranet"].settings
    with responses.RequestsMock() as mock, app.app_context():
        mock.post("https://flow.example.com/trigger", status=202)
        sending.send_due(db, clock, settings, renderer, channels={
            "teams": TeamsWorkflow(settings.mail.teams_workflow_url), "in_app": InApp()})
        card = json.loads(mock.calls[0].request.body)["attachments"][0]["content"]
    buttons = [a for block in card["body"] if block["type"] == "ActionSet" for a in block["actions"]]
    assert [(b["type"], b["title"]) for b in buttons] == [("Action.OpenUrl", "Rate this post")]
    assert buttons[0]["url"].startswith(f"{BASE}/rate/")
    page = page_client(app).get(buttons[0]["url"].removeprefix(BASE)).get_data(as_text=True)
    assert 'name="thumb" value="up"' in page and 'name="thumb" value="down"' in page and " checked" not in page
    assert stored(db) == [] and post.id
