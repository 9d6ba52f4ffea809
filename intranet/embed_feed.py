"""The feed as the embeddable widget shows it: a page of the feed service, plus what the widget's
controls need (each post's rating style, your rating, where the post opens in Beacon).

There is no second access rule here: the posts are exactly :func:`intranet.feed.feed_page`'s.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field
from sqlmodel import Session

from intranet import feed, ratings
from intranet.models import Employee


class WidgetItemPublic(feed.FeedItemPublic):
    """A post in the widget: the feed's fields and what its controls need."""

    rating_style: Literal["stars", "thumbs"] = Field(description="Rate it with 1-5 stars or a thumb")
    my_rating: ratings.RatingPublic | None = Field(description="Your rating of this post, or null")
    url: str = Field(description="The post's page in Beacon (opens outside the widget)")


class WidgetFeedPublic(BaseModel):
    """A page of your feed for the embeddable widget."""

    viewer: str = Field(description="Your name, as the directory has it")
    items: list[WidgetItemPublic]
    next_cursor: str | None = Field(description="Send as ?cursor= for the next page; null on the last")
    csrf_token: str | None = Field(
        description="Send as X-CSRFToken with writes authenticated by Beacon's session cookie; "
                    "null when the request carried an embed token (no CSRF token is needed then)")


def widget_page(session: Session, employee: Employee, *, now: dt.datetime, cursor: str | None, limit: int,
                post_url: Callable[[int], str], csrf_token: str | None, language: str | None = None) -> WidgetFeedPublic:
    """*employee*'s feed page for the widget (the caller commits: the first page stores its order).

    :param post_url: the absolute address of a post's page, by id.
    :param csrf_token: the session's CSRF token when the request was cookie-authenticated.
    :param language: the reader's, for the reasons' words.
    :raise InvalidInput: the cursor is malformed, someone else's, or expired.
    """
    page = feed.feed_page(session, employee, now=now, cursor=cursor, limit=limit)
    mine = ratings.mine_for(session, employee=employee, post_ids=[item.post.id for item in page.items])
    items = [WidgetItemPublic(**feed.FeedItemPublic.of(item, language).model_dump(),
                              rating_style=item.post.rating_style,  # type: ignore[arg-type]
                              my_rating=ratings.RatingPublic.of(mine[item.post.id]) if item.post.id in mine else None,
                              url=post_url(item.post.id))
             for item in page.items]
    return WidgetFeedPublic(viewer=employee.display_name, items=items, next_cursor=page.next_cursor,
                            csrf_token=csrf_token)
