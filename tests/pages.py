"""Reading Beacon's pages in tests."""
from __future__ import annotations

import re

_CSRF_TOKEN = re.compile(rb'(name="csrf[-_]token" (?:content|value)=")[^"]+"')


def without_csrf_token(page: bytes) -> bytes:
    """*page* with its CSRF tokens blanked, to compare two pages byte for byte.

    A token is signed with the current second, so two requests a second apart differ there
    whatever they show; it says nothing about what the page reveals.
    """
    return _CSRF_TOKEN.sub(rb'\1"', page)


def feed_ids(client) -> list[int]:  # type: ignore[no-untyped-def]
    """Every post id of the signed-in person's feed, in order, following ``/api/v1/feed``'s cursors to the end."""
    ids, cursor = [], None
    while True:
        body = client.get("/api/v1/feed", query_string={"cursor": cursor} if cursor else None).get_json()
        ids += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            return ids
