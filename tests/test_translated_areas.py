"""The interface beyond the feed in Spanish and Catalan: feed reasons, feedback, journeys, the desk,
dashboards, admin pages and the script widget, each rendered in es and ca."""
from __future__ import annotations

import datetime as dt
import html
import json
import zlib

import pytest

from intranet import feed, reasons


def _text(response) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(response.get_data(as_text=True))


# --- why a post is in the feed ---------------------------------------------------------------------


@pytest.mark.parametrize(("language", "targeted", "must_read"), [
    ("en", "Targeted at Sales", "Must-read from People & Culture"),
    ("es", "Dirigida a Sales", "Lectura obligatoria de People & Culture"),
    ("ca", "Adreçada a Sales", "Lectura obligatòria de People & Culture"),
])
def test_feed_reasons_are_worded_in_the_readers_language(client_for, make_employee, make_post, language, targeted,
                                                         must_read):
    """GET /api/v1/feed's why and the feed cards speak the person's language; department names stay as data."""
    author = make_employee(department="People & Culture")
    me = make_employee(department="Sales", language=language)
    aimed = make_post({"segments": [{"departments": ["Sales"]}]}, topic="Sales news")
    notice = make_post(topic="Policy", must_read=True, author_pk=author.id)
    client = client_for(me)
    items = {item["id"]: item["why"] for item in client.get("/api/v1/feed").get_json()["items"]}
    assert items[aimed.id][0] == targeted and items[notice.id][0] == must_read
    assert all(isinstance(w, str) and w for why in items.values() for w in why)
    page = _text(client.get("/"))
    assert targeted in page and must_read in page


def test_a_paged_feed_is_worded_when_read_not_when_ranked(db, make_employee, make_post, clock):
    """The ranked order is stored as reason codes: a later page can be worded in another language."""
    me = make_employee(department="Sales")
    for _ in range(3):
        make_post({"segments": [{"departments": ["Sales"]}]}, published_at=clock.now - dt.timedelta(days=2))
    first = feed.feed_page(db, me, now=clock.now, limit=1)
    db.commit()
    later = feed.feed_page(db, me, now=clock.now, cursor=first.next_cursor, limit=1)
    assert reasons.words(later.items[0].why, "en") == ["Targeted at Sales"]
    assert reasons.words(later.items[0].why, "ca") == ["Adreçada a Sales"]
    assert feed.FeedItemPublic.of(later.items[0], "es").why == ["Dirigida a Sales"]


def test_a_snapshot_stored_as_words_still_reads():
    """An order stored before reasons had codes (worded in English) still unpacks, as it was worded."""
    blob = zlib.compress(json.dumps({"ids": [7], "texts": ["Targeted at Sales"], "why": [[0]]}).encode())
    ids, why = feed._unpack(blob)
    assert ids == [7] and reasons.words(why[0], "es") == ["Targeted at Sales"]


def test_every_reason_code_has_words_in_each_language():
    """Each reason the ranker can give is translated, and an unknown code is refused where it is made."""
    for code, message in reasons.WORDS.items():
        values = {"department": "Sales", "topic": "IT"}
        for language in ("es", "ca"):
            worded = reasons.word(reasons.Reason.of(code, **{k: v for k, v in values.items()
                                                            if f"%({k})s" in message}), language)
            assert worded and worded != message % values if "%(" in message else worded != message, (code, language)
    with pytest.raises(ValueError, match="WORDS"):
        reasons.Reason.of("no_such_reason")
