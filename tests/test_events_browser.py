"""The page script sends reading events with sendBeacon (CSRF token in the body) from a real browser."""
from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import select

from intranet.models import EngagementEvent

pytestmark = pytest.mark.browser


def test_opening_a_post_from_a_digest_link_records_open_and_click(page, live_server, sign_in_browser, make_employee,
                                                                 make_post, db, clock):
    """Open, digest click (from ?d=&c=) and a session arrive within a few seconds."""
    clock.now = dt.datetime.now(dt.timezone.utc)  # the browser stamps events with the real time
    person = make_employee()
    post = make_post(title="Beacon test post")
    sign_in_browser(person)
    page.goto(f"{live_server}/posts/{post.id}?d=7&c=email")
    page.wait_for_selector("article")
    kinds: set[str] = set()
    for _ in range(50):
        db.expire_all()
        kinds = set(db.exec(select(EngagementEvent.kind)).scalars())
        if {"open", "digest_click", "session"} <= kinds:
            break
        time.sleep(0.2)
    assert {"open", "digest_click", "session"} <= kinds
    click = db.exec(select(EngagementEvent).where(EngagementEvent.kind == "digest_click")).scalars().one()
    assert (click.delivery_id, click.channel, click.post_id, click.device) == (7, "email", post.id, "desktop")
