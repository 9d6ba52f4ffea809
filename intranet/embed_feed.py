"""The feed as the embeddable widget shows it: a page of the feed service, plus what the widget's
controls need (each post's rating style, your rating, where the post opens in Beacon).

There is no second access rule here: the posts are exactly :func:`intranet.feed.feed_page`'s.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field
from sqlmodel import Session

from intranet import feed, languages, ratings
from intranet.languages import N_
from intranet.models import Employee


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


class WidgetItemPublic(feed.FeedItemPublic):
    """A post in the widget: the feed's fields and what its controls need."""

    rating_style: Literal["stars", "thumbs"] = Field(description="Rate it with 1-5 stars or a thumb")
    my_rating: ratings.RatingPublic | None = Field(description="Your rating of this post, or null")
    url: str = Field(description="The post's page in Beacon (opens outside the widget)")


#: The script widget's own words (static/intranet/js/widget.js asks for them: GET /api/v1/embed/messages), by key,
#: with ``%(name)s`` placeholders the script fills. Served in the reader's language, never written into the script.
WIDGET_WORDS: dict[str, str] = {
    "your_news": N_("Your news"),
    "for_viewer": N_("for %(name)s"),
    "loading": N_("Loading your news…"),
    "caught_up": N_("You're all caught up: nothing for you right now."),
    "more_posts": N_("More posts"),
    "must_read": N_("Must read"),
    "acknowledged": N_("Acknowledged"),
    "new_tab": N_("(opens in a new tab)"),
    "sign_in_prompt": N_("Sign in to see your news."),
    "sign_in": N_("Sign in"),
    "no_identity": N_("This page could not say who you are (%(status)s)."),
    "went_wrong": N_("Something went wrong (%(status)s)."),
    "saving": N_("Saving…"),
    "not_saved": N_("Not saved; check your connection and try again."),
    "rating_removed": N_("Rating removed."),
    "rated_stars": N_("Saved: you rated it %(stars)s of 5."),
    "found_helpful": N_("Saved: you found it helpful."),
    "found_not_helpful": N_("Saved: you found it not helpful."),
    "rate_post": N_("Rate this post"),
    "rate_post_titled": N_("Rate this post: %(title)s"),
    "remove_rating": N_("Remove my rating"),
    "helpful": N_("Helpful"),
    "not_helpful": N_("Not helpful"),
    "n_of_5": N_("%(n)s of 5"),
    "read_this": N_("I have read this"),
    "ack_done": N_("Acknowledged. The author and admins can see that you did."),
    "you_acknowledged": N_("You acknowledged “%(title)s”."),
}


class WidgetWordsPublic(BaseModel):
    """The script widget's own words in your language (or, signed out, your browser's)."""

    language: str = Field(description="The language of the words (en, es or ca), for dates too")
    words: dict[str, str] = Field(description="Each of the widget's texts by key; %(name)s placeholders are the "
                                              "widget's to fill")


def widget_words(language: str | None) -> WidgetWordsPublic:
    """The widget's words in *language* (English when Beacon does not speak it), star counts included."""
    lang = languages.supported(language) or languages.DEFAULT
    # Placeholders pass through as themselves: the script fills them.
    words = {key: languages.translate(lang, message, **{name: f"%({name})s" for name in _PLACEHOLDER.findall(message)})
             for key, message in WIDGET_WORDS.items()}
    for n in range(1, 6):  # "1 star", "2 stars": each count in the language's own plural form
        words[f"stars_{n}"] = languages.ntranslate(lang, "%(num)d star", "%(num)d stars", n)
    return WidgetWordsPublic(language=lang, words=words)


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
