"""The feed is never staler than the database: what instances share, and what each request reads afresh.

Several app instances share one PostgreSQL; a feed must stop showing a post the moment it is
unpublished, re-targeted or expired, on whichever instance the next request lands. Beacon keeps no
copy of who may see what between requests (the targeting rule runs in the one candidate statement
of every first page, and later pages re-check their posts), so these tests fail if a cache of
candidates or visibility is ever added without invalidation that reaches other instances.
"""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event

from intranet import feed, posts, ranking, targeting
from intranet.models import Post
from tests.conftest import SignedInClient
from tests.pages import feed_ids


def first_page(client) -> list[int]:  # type: ignore[no-untyped-def]
    return [item["id"] for item in client.get("/api/v1/feed").get_json()["items"]]


def test_unpublished_post_leaves_the_other_instance_at_once(make_app, make_employee, make_post, db, clock):
    """A post unpublished through one instance is gone from the next feed served by another one."""
    reader, comms = make_employee(), make_employee(is_comms=True)
    one, two = make_app(), make_app()
    on_one, on_two = SignedInClient(one, reader), SignedInClient(two, reader)
    post = make_post({"all": True})
    kept = make_post({"all": True})
    assert sorted(first_page(on_one)) == sorted(first_page(on_two)) == sorted([post.id, kept.id])
    posts.unpublish(db, db.get(Post, post.id), actor=comms, now=clock.now)
    db.commit()
    assert first_page(on_two) == [kept.id]
    assert first_page(on_one) == [kept.id]


def test_post_published_elsewhere_appears_on_the_next_first_page(make_app, make_employee, make_post):
    """A post published after a feed was served shows on the next first page, on any instance."""
    reader = make_employee()
    on_one, on_two = SignedInClient(make_app(), reader), SignedInClient(make_app(), reader)
    first = make_post({"all": True})
    assert first_page(on_one) == [first.id] == first_page(on_two)
    second = make_post({"all": True})
    assert sorted(first_page(on_two)) == sorted([first.id, second.id])
    assert sorted(first_page(on_one)) == sorted([first.id, second.id])


def test_retargeted_post_leaves_people_outside_its_new_audience(make_employee, make_post, client_for, db):
    """Re-targeting a post from Sales to Finance moves it between the two feeds on the next request."""
    sales, finance = make_employee(department="Sales"), make_employee(department="Finance")
    post = make_post({"segments": [{"departments": ["Sales"]}]})
    sales_client, finance_client = client_for(sales), client_for(finance)
    assert first_page(sales_client) == [post.id] and first_page(finance_client) == []
    stored = db.get(Post, post.id)
    targeting.store_audience(db, stored, targeting.parse_audience({"segments": [{"departments": ["Finance"]}]}))
    db.commit()
    assert first_page(sales_client) == []
    assert first_page(finance_client) == [post.id]


def test_post_expiring_between_requests_is_gone_without_the_expiry_job(make_employee, make_post, client_for, clock):
    """Expiry is checked against the request's time, not against when anything was loaded."""
    me = make_employee()
    brief = make_post({"all": True}, expires_at=clock.now + dt.timedelta(minutes=1))
    lasting = make_post({"all": True})
    client = client_for(me)
    assert sorted(first_page(client)) == sorted([brief.id, lasting.id])
    clock.advance(minutes=2)
    assert first_page(client) == [lasting.id]


@pytest.mark.settings(INTRANET_FEED_PAGE_SIZE=3)
def test_later_pages_drop_a_post_unpublished_after_the_first(make_employee, make_post, client_for, db, clock):
    """Paging on after an unpublish: the post is skipped, the others keep their places, none repeats."""
    me, comms = make_employee(), make_employee(is_comms=True)
    made = [make_post(published_at=clock.now - dt.timedelta(minutes=i)) for i in range(7)]
    client = client_for(me)
    body = client.get("/api/v1/feed").get_json()
    seen = [item["id"] for item in body["items"]]
    later = [p.id for p in made if p.id not in seen]
    gone = later[0]
    posts.unpublish(db, db.get(Post, gone), actor=comms, now=clock.now)
    db.commit()
    cursor = body["next_cursor"]
    while cursor:
        body = client.get("/api/v1/feed", query_string={"cursor": cursor}).get_json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
    assert gone not in seen
    assert len(seen) == len(set(seen)) == 6
    assert sorted(seen) == sorted(p.id for p in made if p.id != gone)


def test_group_post_follows_membership_read_inside_the_candidate_statement(make_employee, make_post, make_group,
                                                                          db, clock):
    """The groups read inside the feed's one targeting statement are the current ones."""
    me = make_employee(department="Sales")
    group = make_group("runners", members=(me,))
    post = make_post({"segments": [{"groups": ["runners"]}]})
    assert feed.ranked_ids(db, me, now=clock.now)[0] == [post.id]
    outsider = make_employee(department="Sales")
    assert feed.ranked_ids(db, outsider, now=clock.now)[0] == []
    assert group.key == "runners"


def test_first_feed_page_reads_in_a_bounded_number_of_statements(make_employee, make_post, make_group, db, clock,
                                                                 database):
    """However many posts are visible, a first page costs the same few statements (no query per post)."""
    me = make_employee(department="Sales", manager_id="T999999")
    make_group("runners", members=(me,))
    for i in range(30):
        make_post({"segments": [{"departments": ["Sales"]}, {"groups": ["runners"]}]} if i % 2 else {"all": True},
                  must_read=i % 7 == 0, published_at=clock.now - dt.timedelta(hours=i + 1))
    ranking.department_prior(db, "Sales", now=clock.now)  # kept by the hourly job in production
    db.commit()
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(database, "before_cursor_execute", count)
    try:
        page = feed.feed_page(db, me, now=clock.now, limit=10)
    finally:
        event.remove(database, "before_cursor_execute", count)
    assert len(page.items) == 10 and page.next_cursor
    # candidates, preferences (2), signals, department prior, snapshot (clear + store), the page's posts
    assert len(statements) <= 8, statements
