"""Rating posts through API v1: one rating per person and post, of the kind the post asks for."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy.exc import DataError, IntegrityError
from sqlmodel import Session, select

from intranet import ratings
from intranet.db import session_factory
from intranet.models import Rating


def stored(db: Session) -> list[tuple]:
    db.expire_all()
    return [(r.employee_pk, r.post_id, r.stars, r.thumb, r.comment, r.signed)
            for r in db.exec(select(Rating).order_by(Rating.id)).all()]


def rate(client, post_id: int, body):  # type: ignore[no-untyped-def]
    return client.api("PUT", f"/api/v1/posts/{post_id}/rating", body)


def test_rating_with_stars_answers_the_stored_rating(make_employee, make_post, client_for, db, clock):
    """PUT {"stars": 4} stores the rating and answers it."""
    me = make_employee()
    post = make_post()
    response = rate(client_for(me), post.id, {"stars": 4, "comment": " Clear and useful ", "signed": True})
    assert response.status_code == 200
    assert response.get_json() == {"post_id": post.id, "stars": 4, "thumb": None, "comment": "Clear and useful",
                                   "signed": True, "created_at": clock.now.isoformat(),
                                   "updated_at": clock.now.isoformat()}
    assert stored(db) == [(me.id, post.id, 4, None, "Clear and useful", True)]


def test_second_rating_replaces_the_first(make_employee, make_post, client_for, db, clock):
    """A second PUT updates the same row (signed back to its default), keeping when it was first given."""
    me = make_employee()
    post = make_post()
    client = client_for(me)
    rate(client, post.id, {"stars": 2, "comment": "Too long", "signed": True})
    clock.advance(minutes=5)
    body = rate(client, post.id, {"stars": 5}).get_json()
    assert stored(db) == [(me.id, post.id, 5, None, None, False)]
    assert body["created_at"] == (clock.now - dt.timedelta(minutes=5)).isoformat()
    assert body["updated_at"] == clock.now.isoformat()


def test_ratings_of_different_people_and_posts_are_separate(make_employee, make_post, client_for, db):
    """The unique key is (employee, post): others' ratings and other posts are untouched."""
    me, colleague = make_employee(), make_employee()
    first, second = make_post(), make_post(rating_style="thumbs")
    rate(client_for(me), first.id, {"stars": 3})
    rate(client_for(colleague), first.id, {"stars": 1})
    rate(client_for(me), second.id, {"thumb": "down"})
    assert sorted(stored(db)) == sorted([(me.id, first.id, 3, None, None, False),
                                         (colleague.id, first.id, 1, None, None, False),
                                         (me.id, second.id, None, "down", None, False)])


def test_delete_withdraws_the_rating(make_employee, make_post, client_for, db):
    """DELETE answers 204 and removes the rating; the post then shows my_rating null."""
    me = make_employee()
    post = make_post()
    client = client_for(me)
    rate(client, post.id, {"stars": 4})
    assert client.api("DELETE", f"/api/v1/posts/{post.id}/rating").status_code == 204
    assert stored(db) == []
    assert client.get(f"/api/v1/posts/{post.id}").get_json()["my_rating"] is None
    assert client.api("DELETE", f"/api/v1/posts/{post.id}/rating").status_code == 204  # nothing left: still done


def test_post_shows_my_rating(make_employee, make_post, client_for):
    """GET /posts/<id> carries the reader's own rating, not a colleague's."""
    me, colleague = make_employee(), make_employee()
    post = make_post(rating_style="thumbs")
    rate(client_for(colleague), post.id, {"thumb": "down"})
    assert client_for(me).get(f"/api/v1/posts/{post.id}").get_json()["my_rating"] is None
    rate(client_for(me), post.id, {"thumb": "up"})
    mine = client_for(me).get(f"/api/v1/posts/{post.id}").get_json()["my_rating"]
    assert (mine["thumb"], mine["stars"], mine["post_id"]) == ("up", None, post.id)


def test_thumbs_post_takes_a_thumb_and_refuses_stars(make_employee, make_post, client_for, db):
    """The post's rating_style decides: stars on a thumbs post are a 422."""
    me = make_employee()
    post = make_post(rating_style="thumbs")
    response = rate(client_for(me), post.id, {"stars": 5})
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "invalid"
    assert stored(db) == []
    assert rate(client_for(me), post.id, {"thumb": "up"}).status_code == 200


def test_stars_post_refuses_a_thumb(make_employee, make_post, client_for, db):
    """A thumb on a stars post (the default style) is a 422."""
    me = make_employee()
    post = make_post()
    assert post.rating_style == "stars"
    assert rate(client_for(me), post.id, {"thumb": "up"}).status_code == 422
    assert stored(db) == []


INVALID = {
    "zero stars": {"stars": 0},
    "six stars": {"stars": 6},
    "negative stars": {"stars": -1},
    "fractional stars": {"stars": 3.5},
    "whole float stars": {"stars": 4.0},
    "NaN as text": {"stars": "NaN"},
    "1e309 as text": {"stars": "1e309"},
    "digit as text": {"stars": "4"},
    "empty text": {"stars": ""},
    "boolean stars": {"stars": True},
    "null stars": {"stars": None},
    "list of stars": {"stars": [4]},
    "object stars": {"stars": {"value": 4}},
    "both fields": {"stars": 4, "thumb": "up"},
    "neither field": {},
    "only a comment": {"comment": "Nice"},
    "huge comment": {"stars": 4, "comment": "x" * 2001},
    "control characters in the comment": {"stars": 4, "comment": "a\x00b"},
    "signed as text": {"stars": 4, "signed": "yes"},
    "extra field": {"stars": 4, "weight": 10},
    "a list body": [{"stars": 4}],
    "a number body": 4,
    "null body": None,
}


@pytest.mark.parametrize("body", INVALID.values(), ids=INVALID.keys())
def test_invalid_ratings_are_refused_and_write_nothing(body, make_employee, make_post, client_for, db):
    """Each invalid body is a 400/422, and the earlier rating stays exactly as it was."""
    me = make_employee()
    post = make_post()
    client = client_for(me)
    rate(client, post.id, {"stars": 2, "comment": "Before"})
    before = stored(db)
    response = rate(client, post.id, body)
    assert response.status_code in (400, 422), response.get_json()
    assert "error" in response.get_json()
    assert stored(db) == before


@pytest.mark.parametrize("raw", [b'{"stars": 1e309}', b'{"stars": NaN}', b'{"stars": Infinity}', b'{"stars": 4',
                                 b'{"thumb": "\\ud800"}'])
def test_unreadable_numbers_and_json_are_refused(raw, make_employee, make_post, client_for, db):
    """Numbers JSON cannot hold as an integer (1e309 parses to infinity) and broken JSON are 400/422."""
    me = make_employee()
    post = make_post(rating_style="thumbs" if b"thumb" in raw else "stars")
    response = client_for(me).api("PUT", f"/api/v1/posts/{post.id}/rating", data=raw,
                                  content_type="application/json")
    assert response.status_code in (400, 422)
    assert stored(db) == []


def test_thumb_values_other_than_up_and_down_are_refused(make_employee, make_post, client_for, db):
    """Only "up" and "down" are thumbs."""
    me = make_employee()
    post = make_post(rating_style="thumbs")
    for thumb in ("UP", "sideways", 1, True, None, ["up"]):
        assert rate(client_for(me), post.id, {"thumb": thumb}).status_code == 422, thumb
    assert stored(db) == []


def test_a_comment_of_exactly_2000_characters_is_kept(make_employee, make_post, client_for, db):
    """The limit is inclusive, and the text is stored as sent (plain text, not HTML)."""
    me = make_employee()
    post = make_post()
    comment = "<b>" + "x" * 1993 + "</b>"
    assert rate(client_for(me), post.id, {"stars": 3, "comment": comment}).status_code == 200
    assert stored(db)[0][4] == comment


def test_a_post_you_cannot_see_is_the_same_404_as_a_missing_one(make_employee, make_post, client_for, db, clock):
    """Untargeted, draft and expired posts answer exactly like an id that does not exist."""
    me = make_employee(department="Sales")
    untargeted = make_post({"segments": [{"departments": ["Finance"]}]})
    draft = make_post(status="draft", published_at=None)
    expired = make_post(expires_at=clock.now - dt.timedelta(minutes=1))
    client = client_for(me)
    missing = rate(client, 999_999, {"stars": 4})
    assert missing.status_code == 404
    for post in (untargeted, draft, expired):
        response = rate(client, post.id, {"stars": 4})
        assert (response.status_code, response.get_json()) == (404, missing.get_json())
        withdrawn = client.api("DELETE", f"/api/v1/posts/{post.id}/rating")
        assert (withdrawn.status_code, withdrawn.get_json()) == (404, missing.get_json())
    assert stored(db) == []


def test_rating_needs_a_signed_in_person_and_the_csrf_token(make_employee, make_post, client_for, db):
    """Anonymous callers get a 401; a cookie-authenticated write without the CSRF header a 400."""
    me = make_employee()
    post = make_post()
    assert rate(client_for(None), post.id, {"stars": 4}).status_code == 401
    client = client_for(me)
    response = client.client.put(f"/api/v1/posts/{post.id}/rating", json={"stars": 4})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "csrf"
    assert stored(db) == []


@pytest.mark.settings(INTRANET_RATINGS_PER_MINUTE=3)
def test_rating_is_rate_limited_per_person_across_instances(make_app, app, make_employee, make_post, client_for,
                                                            db, clock):
    """Two app instances share one budget: the 4th write in a minute is a 429 with Retry-After, a colleague
    is unaffected, and the next minute the person may rate again."""
    clock.now = clock.now.replace(second=15)
    me, colleague = make_employee(), make_employee()
    post = make_post()
    other_instance = make_app(INTRANET_RATINGS_PER_MINUTE=3)
    here, there = client_for(me), type(client_for(me))(other_instance, me)
    assert rate(here, post.id, {"stars": 1}).status_code == 200
    assert rate(there, post.id, {"stars": 2}).status_code == 200
    assert there.api("DELETE", f"/api/v1/posts/{post.id}/rating").status_code == 204
    refused = rate(here, post.id, {"stars": 5})
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "45"
    assert refused.get_json()["error"]["code"] == "too_many_requests"
    assert rate(there, post.id, {"stars": 5}).status_code == 429
    assert stored(db) == []
    assert rate(client_for(colleague), post.id, {"stars": 4}).status_code == 200
    clock.advance(seconds=45)
    assert rate(here, post.id, {"stars": 5}).status_code == 200


@pytest.mark.settings(INTRANET_RATINGS_PER_MINUTE=1)
def test_a_refused_rating_is_logged_as_a_structured_security_event(make_employee, make_post, client_for, clock,
                                                                    caplog):
    """A 429 leaves one JSON record on the intranet.security logger: who (never their email), what, when, which request."""
    me = make_employee(display_name="Eve\n2026-01-01 INFO admin signed in", entra_object_id="0b1c-oid")
    post = make_post()
    client = client_for(me)
    assert rate(client, post.id, {"stars": 3}).status_code == 200
    with caplog.at_level("WARNING", logger="intranet.security"):
        refused = client.api("PUT", f"/api/v1/posts/{post.id}/rating", {"stars": 4},
                             headers={"X-Request-ID": "req-42"})
    assert refused.status_code == 429
    records = [r for r in caplog.records if r.name == "intranet.security"]
    assert len(records) == 1 and "\n" not in records[0].getMessage()
    event = json.loads(records[0].getMessage())
    assert event == records[0].security_event
    assert event["event"] == "rate_limited" and event["actor"] == "0b1c-oid" and event["request_id"] == "req-42"
    assert event["method"] == "PUT" and event["path"] == f"/api/v1/posts/{post.id}/rating"
    assert event["endpoint"] == "intranet_ratings_api.rate" and event["retry_after"] == int(refused.headers["Retry-After"])
    assert event["at"] == clock.now.isoformat()
    assert me.email not in records[0].getMessage()


@pytest.mark.settings(INTRANET_RATINGS_PER_MINUTE=2)
def test_invalid_attempts_count_against_the_limit(make_employee, make_post, client_for, db):
    """Hammering with bad bodies uses up the budget too."""
    me = make_employee()
    post = make_post()
    client = client_for(me)
    assert rate(client, post.id, {"stars": 9}).status_code == 422
    assert rate(client, post.id, {"stars": 0}).status_code == 422
    assert rate(client, post.id, {"stars": 4}).status_code == 429
    assert stored(db) == []


def test_the_database_keeps_one_rating_per_person_and_post(make_employee, make_post, db):
    """The unique constraint refuses a second row for the same (employee, post)."""
    me = make_employee()
    post = make_post()
    db.add(Rating(employee_pk=me.id, post_id=post.id, stars=3))
    db.commit()
    db.add(Rating(employee_pk=me.id, post_id=post.id, stars=4))
    with pytest.raises(IntegrityError):
        db.commit()
    db.rollback()


@pytest.mark.parametrize("values", [{"stars": 3, "thumb": "up"}, {}, {"stars": 0}, {"stars": 6},
                                    {"thumb": "left"}, {"stars": 3, "comment": "x" * 2001}],
                         ids=["both", "neither", "zero", "six", "left", "long comment"])
def test_the_database_refuses_a_rating_that_is_not_exactly_one_value(values, make_employee, make_post, db):
    """The CHECK constraints (and PostgreSQL's column length) hold even for a writer that skips validation."""
    me = make_employee()
    post = make_post()
    db.add(Rating(employee_pk=me.id, post_id=post.id, **values))
    with pytest.raises((IntegrityError, DataError)):
        db.commit()
    db.rollback()


def test_concurrent_first_ratings_leave_one_row(make_employee, make_post, database, clock):
    """Two transactions that both saw no rating and then both rate end with one row, the later value."""
    me = make_employee()
    post = make_post()
    sessions = session_factory(database)
    with sessions() as first, sessions() as second:
        employee, target = first.get(type(me), me.id), first.get(type(post), post.id)
        assert ratings.my_rating(second, employee=employee, post=target) is None
        second.rollback()  # the read is done; the write below starts after the other commits
        ratings.rate(first, employee=employee, post=target, rating=ratings.RatingIn(stars=2), now=clock.now)
        first.commit()
        ratings.rate(second, employee=second.get(type(me), me.id), post=second.get(type(post), post.id),
                     rating=ratings.RatingIn(stars=5), now=clock.now)
        second.commit()
    with sessions() as check:
        assert [(r.stars, r.employee_pk) for r in check.exec(select(Rating)).all()] == [(5, me.id)]
