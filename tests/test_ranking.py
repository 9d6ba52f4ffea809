"""Ranking: each person's feed in their order, with reasons, on SQLite and PostgreSQL.

The pure functions are checked on numbers; the rest through :func:`intranet.feed.feed_page` and
``GET /api/v1/feed`` on a small organisation.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import func
from sqlmodel import select

from intranet import feed, jobs, preferences, ranking, ratings, reasons
from intranet.engagement import events
from intranet.errors import InvalidInput
from intranet.delivery.content import compose
from intranet.models import DepartmentPrior, Digest, DigestItem, FeedSnapshot, PostRatingStats
from tests.delivery_support import make_digest, messages, queue_digest, send

HOUR = dt.timedelta(hours=1)


def order(db, person, now, limit=50) -> list[int]:  # type: ignore[no-untyped-def]
    return [item.post.id for item in feed.feed_page(db, person, now=now, limit=limit).items]


def rate(db, person, post, now, **value) -> None:  # type: ignore[no-untyped-def]
    ratings.rate(db, employee=person, post=post, rating=ratings.RatingIn(**value), now=now)
    db.commit()


def snapshots(db) -> int:  # type: ignore[no-untyped-def]
    return db.exec(select(func.count()).select_from(FeedSnapshot)).one()


def walk(client) -> list[int]:  # type: ignore[no-untyped-def]
    ids, cursor = [], None
    while True:
        response = client.get("/api/v1/feed", query_string={"cursor": cursor} if cursor else None)
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        ids += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            return ids


# ------------------------------------------------------------------------------------------------
# The numbers
# ------------------------------------------------------------------------------------------------


def test_signals_halve_every_half_life():
    """A signal a half-life old weighs half as much as one from today."""
    assert ranking.decay(np.array([0.0, ranking.HALF_LIFE_DAYS, 2 * ranking.HALF_LIFE_DAYS])).tolist() == [1, .5, .25]


def test_affinity_never_reaches_zero():
    """However much negative evidence a topic collects, its affinity stays at the floor or above."""
    low = ranking.affinity(np.array([0.0]), np.array([10_000.0]), np.array([0.05]))
    assert low[0] == pytest.approx(ranking.AFFINITY_FLOOR)
    assert ranking.logit(low)[0] > -np.inf


def test_dwell_counts_relative_to_the_posts_length():
    """Forty seconds on a short post is a read; on a long one it is a glance."""
    pos, _ = ranking.signal_masses(engaged=np.array([True, True]), dwell_ms=np.array([40_000.0, 40_000.0]),
                                   chars=np.array([500.0, 50_000.0]), shown=np.array([True, True]),
                                   position=np.array([0.0, 0.0]), stars=np.array([np.nan, np.nan]),
                                   thumb=np.array([0.0, 0.0]))
    assert pos.tolist() == [ranking.ENGAGED, ranking.GLANCED]


def test_skip_weighs_by_how_likely_the_position_was_seen():
    """Scrolling past the top item says more than not opening the twentieth."""
    _, neg = ranking.signal_masses(engaged=np.array([False, False]), dwell_ms=np.array([np.nan, np.nan]),
                                   chars=np.array([500.0, 500.0]), shown=np.array([True, True]),
                                   position=np.array([0.0, 20.0]), stars=np.array([np.nan, np.nan]),
                                   thumb=np.array([0.0, 0.0]))
    assert neg[0] == pytest.approx(ranking.SKIP) and 0 < neg[1] < neg[0] / 5


def test_two_five_star_ratings_do_not_beat_a_well_rated_post():
    """Bayesian average: 2 x 5 stars scores below 40 ratings averaging 4.5."""
    q = ranking.quality(np.array([2.0, 40.0]), np.array([10.0, 180.0]), np.zeros(2), np.zeros(2),
                        np.zeros(2, dtype=bool))
    assert q.value[0] < q.value[1]
    assert q.value[0] < 0.5


def test_thumbs_quality_is_a_beta_posterior():
    """Two thumbs up move a thumbs post less than thirty up out of thirty-five."""
    q = ranking.quality(np.zeros(2), np.zeros(2), np.array([2.0, 30.0]), np.array([0.0, 5.0]),
                        np.ones(2, dtype=bool))
    assert 0 < q.value[0] < q.value[1]


def test_diversify_caps_one_topic_on_page_one():
    """A topic that outscores every other still leaves room on the first page."""
    scores = np.r_[np.full(20, 10.0), np.zeros(5)]
    topics = np.r_[np.zeros(20, dtype=int), np.ones(5, dtype=int)]
    first_page = ranking.diversify(scores, topics, page_size=10)[:10]
    assert (topics[first_page] == 0).sum() <= 5
    assert sorted(ranking.diversify(scores, topics, page_size=10).tolist()) == list(range(25))


# ------------------------------------------------------------------------------------------------
# Learning from people
# ------------------------------------------------------------------------------------------------


def test_ratings_teach_topic_affinity(db, make_employee, make_post, clock):
    """Someone who rates Product posts 5 stars and Events posts 1 star gets new Product posts first."""
    me = make_employee()
    for i in range(3):
        rate(db, me, make_post(topic="Product", published_at=clock.now - dt.timedelta(days=5 + i)), clock.now, stars=5)
        rate(db, me, make_post(topic="Events", published_at=clock.now - dt.timedelta(days=5 + i)), clock.now, stars=1)
    events_post = make_post(topic="Events", published_at=clock.now - HOUR)
    product_post = make_post(topic="Product", published_at=clock.now - 2 * HOUR)
    ranked = order(db, me, clock.now)
    assert ranked.index(product_post.id) < ranked.index(events_post.id)


def test_reads_and_skips_teach_topic_affinity(db, make_employee, make_post, clock):
    """Long reads of Product posts and HR posts scrolled past at the top lift Product over HR."""
    me = make_employee()
    batch = []
    for i in range(4):
        product = make_post(topic="Product", body_text="word " * 300, published_at=clock.now - dt.timedelta(days=2))
        hr = make_post(topic="HR", published_at=clock.now - dt.timedelta(days=2))
        at = (clock.now - dt.timedelta(hours=5 + i)).isoformat()
        batch += [{"id": f"p{i}", "kind": "read", "post_id": product.id, "occurred_at": at, "dwell_ms": 120_000},
                  {"id": f"h{i}", "kind": "impression", "post_id": hr.id, "occurred_at": at, "position": 0}]
    assert events.ingest(db, me, batch, now=clock.now).accepted == len(batch)
    db.commit()
    hr_new = make_post(topic="HR", published_at=clock.now - HOUR)
    product_new = make_post(topic="Product", published_at=clock.now - 3 * HOUR)
    ranked = order(db, me, clock.now)
    assert ranked.index(product_new.id) < ranked.index(hr_new.id)
    profile = ranking.load_profile(db, me, now=clock.now)
    assert profile.pos["Product"] > 3 and profile.neg["HR"] == pytest.approx(4 * ranking.SKIP, rel=0.01)


def test_imported_events_teach_like_live_ones(db, make_employee, make_post, clock):
    """Digest clicks loaded with the CSV import count like those the browser sent."""
    me = make_employee()
    clicked = [make_post(topic="Finance", published_at=clock.now - dt.timedelta(days=20)) for _ in range(3)]
    lines = ["employee_id,post_id,kind,occurred_at,dwell_ms"] + [
        f"{me.employee_id},{p.id},digest_click,{(clock.now - dt.timedelta(days=10)).isoformat()}," for p in clicked]
    assert events.import_csv(db, lines, now=clock.now).loaded == 3
    db.commit()
    profile = ranking.load_profile(db, me, now=clock.now)
    assert profile.pos["Finance"] == pytest.approx(3 * ranking.GLANCED * ranking.decay(np.array([10.0]))[0])


def test_must_reads_teach_nothing(db, make_employee, make_post, clock):
    """A low rating on a must-read is about the notice, not its topic: the topic's affinity is untouched."""
    me = make_employee()
    notice = make_post(topic="Compliance", must_read=True)
    rate(db, me, notice, clock.now, stars=1)
    assert ranking.load_profile(db, me, now=clock.now).own_mass("Compliance") == 0


def test_a_disliked_topic_keeps_appearing(db, make_employee, make_post, clock):
    """Ten 1-star ratings push a topic down but never out of the feed."""
    me = make_employee()
    for i in range(10):
        rate(db, me, make_post(topic="Sports", published_at=clock.now - dt.timedelta(days=3)), clock.now, stars=1)
    fresh = make_post(topic="Sports")
    profile = ranking.load_profile(db, me, now=clock.now)
    assert profile.affinities(["Sports"])[0] >= ranking.AFFINITY_FLOOR
    assert fresh.id in order(db, me, clock.now)


def test_newcomers_start_from_their_departments_taste(db, make_employee, make_post, clock):
    """A new Sales hire with no history gets the topic their Sales colleagues read first."""
    colleagues = [make_employee(department="Sales") for _ in range(4)]
    newcomer = make_employee(department="Sales")
    batch = []
    for i in range(3):
        product = make_post(topic="Product", published_at=clock.now - dt.timedelta(days=3))
        legal = make_post(topic="Legal", published_at=clock.now - dt.timedelta(days=3))
        batch.append((product, legal))
    at = (clock.now - 5 * HOUR).isoformat()
    for n, person in enumerate(colleagues):
        sent = [{"id": f"r{n}{i}", "kind": "open", "post_id": p.id, "occurred_at": at} for i, (p, _) in enumerate(batch)]
        sent += [{"id": f"s{n}{i}", "kind": "impression", "post_id": q.id, "occurred_at": at, "position": 1}
                 for i, (_, q) in enumerate(batch)]
        events.ingest(db, person, sent, now=clock.now)
    db.commit()
    legal_new = make_post(topic="Legal", published_at=clock.now - HOUR)
    product_new = make_post(topic="Product", published_at=clock.now - 3 * HOUR)
    prior = ranking.load_department_prior(db, "Sales", now=clock.now)
    assert prior["Product"] > 0.5 > prior["Legal"]
    ranked = order(db, newcomer, clock.now)
    assert ranked.index(product_new.id) < ranked.index(legal_new.id)


# ------------------------------------------------------------------------------------------------
# Quality, diversity, preferences
# ------------------------------------------------------------------------------------------------


def test_a_new_post_with_two_five_stars_does_not_jump_the_queue(db, make_employee, make_post, clock):
    """Two 5-star ratings on a new post rank it below an equally new post many people rated 4-5."""
    raters = [make_employee(department="Finance") for _ in range(30)]
    me = make_employee()
    gamed = make_post(topic="News", published_at=clock.now - 2 * HOUR)
    loved = make_post(topic="News", published_at=clock.now - 2 * HOUR)
    for person in raters[:2]:
        rate(db, person, gamed, clock.now, stars=5)
    for n, person in enumerate(raters):
        rate(db, person, loved, clock.now, stars=5 if n % 2 else 4)
    ranked = order(db, me, clock.now)
    assert ranked.index(loved.id) < ranked.index(gamed.id)
    why = {item.post.id: reasons.words(item.why, "en") for item in feed.feed_page(db, me, now=clock.now).items}
    assert "Rated highly by your colleagues" in why[loved.id]
    assert "Rated highly by your colleagues" not in why[gamed.id]


def test_one_topic_cannot_take_the_whole_first_page(db, make_employee, make_post, clock):
    """A person who loves Product still sees other topics on page one."""
    me = make_employee()
    for i in range(4):
        rate(db, me, make_post(topic="Product", published_at=clock.now - dt.timedelta(days=9)), clock.now, stars=5)
    for i in range(12):
        make_post(topic="Product", published_at=clock.now - i * HOUR)
    others = {make_post(topic=t, published_at=clock.now - dt.timedelta(days=2)).id for t in ("HR", "IT", "Events")}
    page = feed.feed_page(db, me, now=clock.now, limit=6).items
    topics = [item.post.topic for item in page]
    assert topics.count("Product") <= 3
    assert {item.post.id for item in page} & others


def test_followed_topic_comes_first(db, make_employee, make_post, clock):
    """Following a topic lifts its posts above a slightly newer post of another topic."""
    me = make_employee()
    preferences.update(db, me, preferences.PreferencesIn(followed_topics=["IT"]), now=clock.now)
    db.commit()
    other = make_post(topic="Events", published_at=clock.now - HOUR)
    followed = make_post(topic="IT", published_at=clock.now - 3 * HOUR)
    items = feed.feed_page(db, me, now=clock.now).items
    assert [i.post.id for i in items] == [followed.id, other.id]
    assert "You follow IT" in reasons.words(items[0].why, "en")


def test_mutes_sink_posts_but_never_hide_must_reads(db, make_employee, make_post, clock):
    """A muted topic's posts go last; its must-read stays pinned at the top."""
    me = make_employee()
    preferences.update(db, me, preferences.PreferencesIn(muted_topics=["Facilities"]), now=clock.now)
    db.commit()
    muted = make_post(topic="Facilities", published_at=clock.now - HOUR)
    older = make_post(topic="News", published_at=clock.now - dt.timedelta(days=20))
    notice = make_post(topic="Facilities", must_read=True, published_at=clock.now - dt.timedelta(days=4))
    assert order(db, me, clock.now) == [notice.id, older.id, muted.id]


def test_must_reads_come_first_newest_first(db, make_employee, make_post, clock):
    """Unacknowledged must-reads lead, newest first, whatever the ranker thinks of the rest."""
    me = make_employee()
    for _ in range(3):
        rate(db, me, make_post(topic="Product", published_at=clock.now - dt.timedelta(days=8)), clock.now, stars=5)
    liked = make_post(topic="Product", published_at=clock.now - HOUR)
    old_notice = make_post(topic="Compliance", must_read=True, published_at=clock.now - dt.timedelta(days=6))
    new_notice = make_post(topic="Compliance", must_read=True, published_at=clock.now - dt.timedelta(days=1))
    assert order(db, me, clock.now)[:3] == [new_notice.id, old_notice.id, liked.id]


def test_reasons_name_the_department_and_the_must_read_source(db, make_employee, make_post, clock):
    """Targeted and must-read posts say so, in plain words."""
    author = make_employee(department="People & Culture")
    me = make_employee(department="Sales")
    targeted = make_post({"segments": [{"departments": ["Sales"]}]}, topic="Sales news")
    notice = make_post(topic="Policy", must_read=True, author_pk=author.id)
    why = {item.post.id: reasons.words(item.why, "en") for item in feed.feed_page(db, me, now=clock.now).items}
    assert why[targeted.id][0] == "Targeted at Sales"
    assert why[notice.id][0] == "Must-read from People & Culture"


def test_every_feed_item_has_reasons(make_employee, make_post, client_for):
    """Each item of GET /api/v1/feed carries a non-empty list of reasons."""
    me = make_employee()
    for topic in ("A", "B", "C"):
        make_post(topic=topic)
    items = client_for(me).get("/api/v1/feed").get_json()["items"]
    assert len(items) == 3 and all(item["why"] and all(isinstance(w, str) for w in item["why"]) for item in items)


def test_feed_page_shows_the_reasons(make_employee, make_post, client_for):
    """The HTML feed shows each post's reasons."""
    me = make_employee(department="Sales")
    make_post({"segments": [{"departments": ["Sales"]}]})
    page = client_for(me).get("/").get_data(as_text=True)
    assert 'class="why' in page and "Targeted at Sales" in page


# ------------------------------------------------------------------------------------------------
# Paging a ranked feed
# ------------------------------------------------------------------------------------------------


@pytest.mark.settings(INTRANET_FEED_PAGE_SIZE=3)
def test_paging_survives_publishing_and_rating_in_between(db, make_employee, make_post, client_for, clock):
    """Posts published and rated while someone pages never repeat or drop out of their walk."""
    me, others = make_employee(), [make_employee() for _ in range(5)]
    posts = [make_post(topic=f"T{i % 3}", published_at=clock.now - (i + 1) * HOUR) for i in range(10)]
    client = client_for(me)
    first = client.get("/api/v1/feed").get_json()
    seen = [item["id"] for item in first["items"]]
    cursor = first["next_cursor"]
    # Between pages: new posts appear and the last post of the order gets five 5-star ratings.
    make_post(topic="T0", published_at=clock.now)
    for person in others:
        rate(db, person, posts[-1], clock.now, stars=5)
    clock.advance(minutes=5)
    while cursor:
        body = client.get("/api/v1/feed", query_string={"cursor": cursor}).get_json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
    assert len(seen) == len(set(seen)) == 10
    assert set(seen) == {p.id for p in posts}


@pytest.mark.settings(INTRANET_FEED_PAGE_SIZE=2)
def test_a_cursor_is_its_owners_only(make_employee, make_post, client_for):
    """Someone else's cursor is refused like a malformed one."""
    me, other = make_employee(), make_employee()
    for _ in range(4):
        make_post()
    cursor = client_for(me).get("/api/v1/feed").get_json()["next_cursor"]
    assert cursor
    response = client_for(other).get("/api/v1/feed", query_string={"cursor": cursor})
    assert response.status_code == 422


def test_an_expired_cursor_asks_to_start_again(db, make_employee, make_post, clock):
    """After the snapshot's lifetime the cursor is refused, and the purge job removes the snapshot."""
    me = make_employee()
    for _ in range(4):
        make_post()
    cursor = feed.feed_page(db, me, now=clock.now, limit=2).next_cursor
    db.commit()
    later = clock.now + feed.SNAPSHOT_TTL + dt.timedelta(seconds=1)
    assert feed.feed_page(db, me, now=clock.now + dt.timedelta(hours=1), cursor=cursor, limit=2).items
    with pytest.raises(InvalidInput, match="start again"):
        feed.feed_page(db, me, now=later, cursor=cursor, limit=2)
    assert feed.purge_snapshots(db, later) == 1
    db.commit()
    assert snapshots(db) == 0


def test_a_single_page_stores_no_snapshot(db, make_employee, make_post, clock):
    """A feed that fits on one page has no cursor and writes nothing."""
    me = make_employee()
    make_post()
    page = feed.feed_page(db, me, now=clock.now, limit=5)
    assert page.next_cursor is None and snapshots(db) == 0


@pytest.mark.settings(INTRANET_FEED_PAGE_SIZE=4)
def test_paging_walks_every_post_once(make_employee, make_post, client_for, clock):
    """Walking the cursor over a mixed feed yields every visible post exactly once."""
    me = make_employee()
    posts = [make_post(topic=f"T{i % 4}", must_read=i % 5 == 0, published_at=clock.now - i * HOUR)
             for i in range(17)]
    ids = walk(client_for(me))
    assert sorted(ids) == sorted(p.id for p in posts) and len(ids) == 17


# ------------------------------------------------------------------------------------------------
# Digests and alerts use the same order
# ------------------------------------------------------------------------------------------------


def likes_product(db, me, make_post, clock) -> None:  # type: ignore[no-untyped-def]
    """*me* has rated older Product posts 5 stars and Events posts 1 star (outside any digest's lookback)."""
    for i in range(3):
        old = clock.now - dt.timedelta(days=20 + i)
        rate(db, me, make_post(topic="Product", published_at=old), clock.now, stars=5)
        rate(db, me, make_post(topic="Events", published_at=old), clock.now, stars=1)


def test_digest_lists_must_reads_then_the_ranked_rest(db, make_employee, make_post, clock):
    """A digest leads with the must-read, then the unread post the person is likelier to want."""
    me = make_employee()
    likes_product(db, me, make_post, clock)
    events_post = make_post(topic="Events", published_at=clock.now - HOUR)
    product_post = make_post(topic="Product", published_at=clock.now - 5 * HOUR)
    notice = make_post(topic="Compliance", must_read=True, published_at=clock.now - dt.timedelta(days=2))
    content = compose(db, me, make_digest(db, me, clock.now), clock.now)
    assert content.post_ids == [notice.id, product_post.id, events_post.id]


def test_digest_cap_keeps_the_highest_ranked_and_mixes_topics(db, make_employee, make_post, clock):
    """With a cap of four, the digest keeps Product posts first but not only Product posts."""
    me = make_employee()
    likes_product(db, me, make_post, clock)
    product = [make_post(topic="Product", published_at=clock.now - (i + 1) * HOUR).id for i in range(5)]
    others = [make_post(topic=t, published_at=clock.now - dt.timedelta(days=3)).id for t in ("IT", "HR")]
    content = compose(db, me, make_digest(db, me, clock.now), clock.now, limit=4)
    assert content.post_ids[0] == product[0] and content.more == 3
    assert sum(i in product for i in content.post_ids) == 2 and set(content.post_ids) & set(others)


def test_as_it_happens_batch_uses_the_same_order(db, make_employee, make_post, clock):
    """An as-it-happens alert carrying several posts lists them in the person's ranked order."""
    me = make_employee()
    preferences.update(db, me, preferences.PreferencesIn(cadence="as_it_happens"), now=clock.now)
    db.commit()
    likes_product(db, me, make_post, clock)
    events_post = make_post(topic="Events", published_at=clock.now - HOUR)
    product_post = make_post(topic="Product", published_at=clock.now - 2 * HOUR)
    slot = Digest(employee_pk=me.id, local_date=clock.now.date(), ordinal=100, due_at=clock.now,
                  expires_at=clock.now + 12 * HOUR, timezone="UTC", local_hour=clock.now.hour, kind="alert")
    db.add(slot)
    db.flush()
    db.add_all(DigestItem(employee_pk=me.id, post_id=p.id, round=0, digest_id=slot.id)
               for p in (events_post, product_post))
    db.commit()
    assert compose(db, me, slot, clock.now).post_ids == [product_post.id, events_post.id]


def test_sent_digest_carries_the_ranked_order(app, db, config, make_employee, make_post, clock):
    """The digest that goes out lists posts in the order the ranker gives at send time."""
    me = make_employee()
    likes_product(db, me, make_post, clock)
    events_post = make_post(topic="Events", published_at=clock.now - HOUR)
    product_post = make_post(topic="Product", published_at=clock.now - 5 * HOUR)
    queue_digest(db, me, clock.now)
    send(app, db, config, clock)
    assert messages(db)[0].post_ids == [product_post.id, events_post.id]


# ------------------------------------------------------------------------------------------------
# What the ranker keeps between feeds
# ------------------------------------------------------------------------------------------------


def stats_of(db, post):  # type: ignore[no-untyped-def]
    row = db.get(PostRatingStats, post.id, populate_existing=True)
    return (row.n_stars, row.sum_stars, row.ups, row.downs) if row else None


def test_rating_counts_follow_every_change(db, make_employee, make_post, clock):
    """Rating, rating again and withdrawing each leave the post's kept counts equal to its ratings."""
    first, second = make_employee(), make_employee()
    post = make_post()
    thumbs = make_post(rating_style="thumbs")
    rate(db, first, post, clock.now, stars=4)
    rate(db, second, post, clock.now, stars=2)
    rate(db, first, thumbs, clock.now, thumb="up")
    assert stats_of(db, post) == (2, 6, 0, 0) and stats_of(db, thumbs) == (0, 0, 1, 0)
    rate(db, first, post, clock.now, stars=5)
    assert stats_of(db, post) == (2, 7, 0, 0)
    ratings.withdraw(db, employee=second, post=post)
    db.commit()
    assert stats_of(db, post) == (1, 5, 0, 0)


def test_refresh_recounts_ratings_removed_by_a_cascade(db, make_employee, make_post, clock):
    """Erasing a person deletes their ratings underneath the counts; the refresh job puts the counts right."""
    keeper, leaver = make_employee(), make_employee()
    post = make_post()
    rate(db, keeper, post, clock.now, stars=5)
    rate(db, leaver, post, clock.now, stars=1)
    db.delete(leaver)
    db.commit()
    assert stats_of(db, post) == (2, 6, 0, 0)
    ranking.refresh_job(db, clock.now)
    db.commit()
    assert stats_of(db, post) == (1, 5, 0, 0)


def colleagues_read(db, make_employee, make_post, clock, topic, department="Sales"):  # type: ignore[no-untyped-def]
    """Four people of *department* open three posts of *topic* and scroll past three Legal posts."""
    for n in range(4):
        person = make_employee(department=department)
        at = (clock.now - 5 * HOUR).isoformat()
        sent = []
        for i in range(3):
            liked = make_post(topic=topic, published_at=clock.now - dt.timedelta(days=3))
            passed = make_post(topic="Legal", published_at=clock.now - dt.timedelta(days=3))
            sent += [{"id": f"o{i}", "kind": "open", "post_id": liked.id, "occurred_at": at},
                     {"id": f"s{i}", "kind": "impression", "post_id": passed.id, "occurred_at": at, "position": 1}]
        events.ingest(db, person, sent, now=clock.now)
    db.commit()


def test_a_department_prior_is_kept_and_recomputed_when_old(db, make_employee, make_post, clock):
    """A feed keeps its department's prior; later signals count once it is PRIOR_MAX_AGE old."""
    colleagues_read(db, make_employee, make_post, clock, "Product")
    kept = ranking.department_prior(db, "Sales", now=clock.now)
    db.commit()
    assert kept["Product"] > 0.5 > kept["Legal"]
    colleagues_read(db, make_employee, make_post, clock, "Events")
    assert ranking.department_prior(db, "Sales", now=clock.now + HOUR) == kept
    later = clock.now + ranking.PRIOR_MAX_AGE + HOUR
    assert ranking.department_prior(db, "Sales", now=later)["Events"] > 0.5
    assert db.get(DepartmentPrior, "Sales").computed_at == later


def test_composing_a_digest_keeps_no_prior(db, make_employee, make_post, clock):
    """keep=False (digest composition, previews) computes the prior without writing it."""
    colleagues_read(db, make_employee, make_post, clock, "Product")
    assert ranking.department_prior(db, "Sales", now=clock.now, keep=False)["Product"] > 0.5
    assert db.get(DepartmentPrior, "Sales") is None


def test_the_refresh_job_computes_every_department(db, make_employee, make_post, clock):
    """One run stores a prior for each department, equal to computing each on its own."""
    colleagues_read(db, make_employee, make_post, clock, "Product", department="Sales")
    colleagues_read(db, make_employee, make_post, clock, "Events", department="Finance")
    assert ranking.refresh_job(db, clock.now) == 2
    db.commit()
    for department in ("Sales", "Finance"):
        stored = db.get(DepartmentPrior, department).rates
        assert stored == pytest.approx(ranking.load_department_prior(db, department, now=clock.now))
    assert "ranking-refresh" in {job.id for job in jobs.periodic_job_definitions()}


def test_a_post_opened_more_than_its_topic_gets_a_lift():
    """Opened by 40 of 50 people where its topic's posts are opened by 1 in 5: a clear lift; 1 of 1: a small one."""
    lift = ranking.engagement_lift(np.array([40.0, 10.0, 10.0, 1.0]), np.array([50.0, 50.0, 50.0, 1.0]),
                                   np.array([0, 0, 0, 0]))
    assert lift[0] > 1.0
    assert lift[1] < 0 and lift[2] < 0
    assert 0 < lift[3] < 0.2


def test_the_refresh_job_counts_each_posts_reach_and_the_feed_uses_it(db, make_employee, make_post, clock):
    """Of two equally new News posts, the one most people opened when shown comes first once the job ran."""
    me = make_employee(department="Finance")
    day = dt.timedelta(days=1)
    opened = make_post(topic="News", published_at=clock.now - day)
    skipped = make_post(topic="News", published_at=clock.now - day)
    at = (clock.now - HOUR).isoformat()
    for n in range(10):
        person = make_employee(department="Sales" if n % 2 else "Legal")
        sent = [{"id": "a", "kind": "impression", "post_id": opened.id, "occurred_at": at, "position": 0},
                {"id": "b", "kind": "impression", "post_id": skipped.id, "occurred_at": at, "position": 0}]
        if n < 8:
            sent.append({"id": "c", "kind": "read", "post_id": opened.id, "occurred_at": at})
        if n < 1:
            sent.append({"id": "d", "kind": "read", "post_id": skipped.id, "occurred_at": at})
        events.ingest(db, person, sent, now=clock.now)
    db.commit()
    ranking.refresh_job(db, clock.now)
    db.commit()
    reach = {p.id: (db.get(PostRatingStats, p.id, populate_existing=True).reached,
                    db.get(PostRatingStats, p.id).engaged) for p in (opened, skipped)}
    assert reach == {opened.id: (10, 8), skipped.id: (10, 1)}
    ranked = order(db, me, clock.now)
    assert ranked.index(opened.id) < ranked.index(skipped.id)
