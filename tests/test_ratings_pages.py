"""Rating from pages: the feed's and post page's forms (no JavaScript needed) and rating links."""
from __future__ import annotations

import re
import time

import pytest
from sqlmodel import select

from intranet import ratings
from intranet.models import Rating


def stored(db) -> list[tuple]:  # type: ignore[no-untyped-def]
    db.expire_all()
    return [(r.employee_pk, r.post_id, r.stars, r.thumb, r.comment, r.signed)
            for r in db.exec(select(Rating).order_by(Rating.id)).all()]


def form_rate(client, post_id: int, **fields):  # type: ignore[no-untyped-def]
    return client.post(f"/posts/{post_id}/rating", data={"csrf_token": client.csrf, **fields})


def test_feed_shows_a_star_radio_group_and_thumb_toggles(make_employee, make_post, client_for):
    """Each feed card has its rating control: a labelled radio group for stars, pressed state for thumbs."""
    me = make_employee()
    starred = make_post(title="Starred")
    thumbed = make_post(title="Thumbed", rating_style="thumbs")
    client = client_for(me)
    form_rate(client, starred.id, stars="4", return_to="feed")
    form_rate(client, thumbed.id, thumb="down", return_to="feed")
    html = client.get("/").get_data(as_text=True)
    radios = re.findall(rf'<input type="radio"[^>]*name="stars" value="(\d)"( checked)?', html)
    assert [(v, bool(c)) for v, c in radios] == [(str(n), n == 4) for n in range(1, 6)]
    assert "<legend>Rate this post" in html and ">4 stars<" in html
    assert re.search(r'name="thumb" value="down" aria-pressed="true"', html)
    assert re.search(r'name="thumb" value="up" aria-pressed="false"', html)
    assert 'src="/_beacon/static/intranet/js/ratings.js"' in html and "<script>" not in html


def test_rating_form_works_without_javascript(make_employee, make_post, client_for, db):
    """A plain form POST saves the rating and goes back to the card in the feed."""
    me = make_employee()
    post = make_post()
    response = form_rate(client_for(me), post.id, stars="5", return_to="feed")
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/#post-{post.id}")
    assert stored(db) == [(me.id, post.id, 5, None, None, False)]


def test_post_page_form_takes_a_comment_and_signature(make_employee, make_post, client_for, db):
    """The post page's form sends a comment and whether to sign it; back to the post's rating."""
    me = make_employee()
    post = make_post(rating_style="thumbs")
    client = client_for(me)
    assert 'name="comment"' in client.get(f"/posts/{post.id}").get_data(as_text=True)
    response = form_rate(client, post.id, thumb="up", comment="Thanks!", signed="1", return_to="post")
    assert response.headers["Location"].endswith(f"/posts/{post.id}#rating")
    assert stored(db) == [(me.id, post.id, None, "up", "Thanks!", True)]
    page = client.get(f"/posts/{post.id}").get_data(as_text=True)
    assert ">Thanks!</textarea>" in page and 'name="signed" value="1" checked' in page


def test_changing_the_stars_in_the_feed_keeps_the_comment(make_employee, make_post, client_for, db):
    """The feed's compact form shows no comment box, yet re-rating there keeps the comment and its
    signature: a rating replaces the last one whole, so the form sends them back as it got them."""
    me = make_employee()
    post = make_post()
    client = client_for(me)
    form_rate(client, post.id, stars="2", comment="Needs <dates> & a map", signed="1", return_to="post")
    feed = client.get("/").get_data(as_text=True)
    card = re.search(rf'<li class="feed-item[^>]*id="post-{post.id}">.*?</form>', feed, re.S).group(0)
    assert "<textarea" not in card
    hidden = dict(re.findall(r'<input type="hidden" name="(comment|signed)" value="([^"]*)"', card))
    assert hidden == {"comment": "Needs &lt;dates&gt; &amp; a map", "signed": "1"}
    form_rate(client, post.id, stars="5", comment="Needs <dates> & a map", signed=hidden["signed"], return_to="feed")
    assert stored(db) == [(me.id, post.id, 5, None, "Needs <dates> & a map", True)]


def test_rating_form_can_withdraw(make_employee, make_post, client_for, db):
    """The "Remove my rating" button deletes the rating."""
    me = make_employee()
    post = make_post()
    client = client_for(me)
    form_rate(client, post.id, stars="2")
    assert re.search(r'<form class="rating[^"]* rated"', client.get(f"/posts/{post.id}").get_data(as_text=True))
    form_rate(client, post.id, withdraw="1")
    assert stored(db) == []


@pytest.mark.parametrize("fields", [{"stars": "0"}, {"stars": "6"}, {"stars": "3.5"}, {"stars": "NaN"},
                                    {"stars": "1e309"}, {"stars": "٣"}, {"thumb": "up"}, {}, {"stars": "4", "thumb": "up"},
                                    {"stars": "4", "comment": "x" * 2001}])
def test_invalid_form_ratings_write_nothing(fields, make_employee, make_post, client_for, db):
    """Bad form values are a 422 page and store nothing."""
    me = make_employee()
    post = make_post()
    assert form_rate(client_for(me), post.id, **fields).status_code == 422
    assert stored(db) == []


def test_rating_form_needs_the_csrf_token(make_employee, make_post, client_for, db):
    """A cross-site form POST without the token is refused."""
    me = make_employee()
    post = make_post()
    assert client_for(me).post(f"/posts/{post.id}/rating", data={"stars": "5"}).status_code == 400
    assert stored(db) == []


def test_rating_form_on_a_post_you_cannot_see_is_a_404(make_employee, make_post, client_for, db):
    """The form route answers untargeted posts like missing ones."""
    me = make_employee(department="Sales")
    hidden = make_post({"segments": [{"departments": ["Finance"]}]})
    client = client_for(me)
    assert form_rate(client, hidden.id, stars="5").status_code == 404
    assert form_rate(client, 999_999, stars="5").status_code == 404
    assert stored(db) == []


# --------------------------------------------------------------------------------------------
# Rating links
# --------------------------------------------------------------------------------------------


def link(app, employee, post, **value) -> str:  # type: ignore[no-untyped-def]
    token = ratings.link_token(app.config["SECRET_KEY"], ratings.RatingLink(employee.employee_id, post.id, **value))
    return f"/rate/{token}"


def browser(app):  # type: ignore[no-untyped-def]
    """A client that is not signed in, sending the same-origin Referer a browser sends over HTTPS."""
    client = app.test_client()
    client.environ_base.update(HTTP_REFERER="https://localhost/")
    return client


def confirm_csrf(client, url: str) -> str:  # type: ignore[no-untyped-def]
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).get_data(as_text=True)).group(1)


def test_opening_a_rating_link_saves_nothing(app, make_employee, make_post, db):
    """GET of a rating link (a mail scanner, a preview) shows the confirmation and writes nothing."""
    me = make_employee()
    post = make_post(title="Town hall")
    client = browser(app)
    for _ in range(3):
        page = client.get(link(app, me, post, stars=4))
        assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Rate “Town hall”" in html and 'name="stars" value="4" checked' in html
    assert stored(db) == []


def test_the_confirmation_page_post_saves_the_rating(app, make_employee, make_post, db):
    """POST of the confirmation page saves the rating, without signing in."""
    me = make_employee(display_name="Rita")
    post = make_post(rating_style="thumbs")
    client = browser(app)
    url = link(app, me, post, thumb="up")
    response = client.post(url, data={"csrf_token": confirm_csrf(client, url), "thumb": "up", "comment": "Good"})
    assert response.status_code == 200 and "your rating is saved" in response.get_data(as_text=True)
    assert stored(db) == [(me.id, post.id, None, "up", "Good", False)]


@pytest.mark.settings(INTRANET_RATINGS_PER_MINUTE=1)
def test_a_refused_link_rating_names_the_links_person_in_the_security_log(app, make_employee, make_post, db, caplog):
    """Nobody is signed in on a rating link: the 429's security event names the person the link is for."""
    me = make_employee(entra_object_id="oid-of-rita")
    post = make_post()
    client = browser(app)
    url = link(app, me, post, stars=4)
    token = confirm_csrf(client, url)
    assert client.post(url, data={"csrf_token": token, "stars": "4"}).status_code == 200
    with caplog.at_level("WARNING", logger="intranet.security"):
        assert client.post(url, data={"csrf_token": token, "stars": "5"}).status_code == 429
    [event] = [r.security_event for r in caplog.records if r.name == "intranet.security"]
    assert event["event"] == "rate_limited" and event["actor"] == "oid-of-rita"
    assert event["endpoint"] == "intranet_ratings.confirm"


def test_the_confirmation_post_needs_its_csrf_token(app, make_employee, make_post, db):
    """A cross-site POST to a leaked link is refused."""
    me = make_employee()
    post = make_post()
    assert browser(app).post(link(app, me, post, stars=5), data={"stars": "5"}).status_code == 400
    assert stored(db) == []


def test_a_teams_link_without_a_value_lets_the_person_choose(app, make_employee, make_post, db):
    """A link with no value (the Teams card's button) shows every choice, none selected."""
    me = make_employee()
    post = make_post()
    html = browser(app).get(link(app, me, post)).get_data(as_text=True)
    assert len(re.findall(r'name="stars" value="\d"', html)) == 5 and "checked" not in html


def test_altered_expired_and_stale_links_are_404s(app, make_employee, make_post, db, monkeypatch):
    """A forged or altered token, an old one, a departed person and a post no longer visible all 404."""
    me, gone = make_employee(), make_employee(active=False)
    post = make_post()
    hidden = make_post({"segments": [{"departments": ["Finance"]}]})
    client = browser(app)
    good = link(app, me, post, stars=3)
    assert client.get(good[:-2] + ("AA" if not good.endswith("AA") else "BB")).status_code == 404
    forged = ratings.link_token("another secret", ratings.RatingLink(me.employee_id, post.id, 3))
    assert client.get(f"/rate/{forged}").status_code == 404
    assert client.get(link(app, gone, post, stars=3)).status_code == 404
    assert client.get(link(app, me, hidden, stars=3)).status_code == 404
    real = time.time
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: real() - 31 * 86400)
    old = link(app, me, post, stars=3)
    monkeypatch.undo()
    assert client.get(old).status_code == 404
    assert client.post(old, data={"stars": "3"}).status_code in (400, 404)
    assert stored(db) == []
