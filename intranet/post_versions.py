"""A post in several languages: its versions, and the one each reader gets.

A post is written in one language (``Post.language``, its primary version); a comms manager or
its author may add versions in other languages (:class:`~intranet.models.PostTranslation`: a
title, summary and body, sanitized as the post's own). Each reader gets the version in their
language (:func:`intranet.languages.choose`), else the primary one, and then a note says so: a
:class:`Localized` post carries the language it was served in and the one that was wanted.
"""
from __future__ import annotations

import datetime as dt
import dataclasses
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, select

from intranet import languages, posts
from intranet.errors import Forbidden, InvalidInput, NotFound, validated
from intranet.languages import N_
from intranet.models import Employee, Post, PostTranslation
from intranet.shapes import Time


class TranslationIn(BaseModel):
    """A post's version in one more language."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    language: languages.Language
    title: str = Field(min_length=1, max_length=300)
    summary: str = Field(default="", max_length=1000)
    body_html: str = ""


class VersionBody(BaseModel):
    """``PUT /api/v1/posts/<id>/versions/<language>``'s body: the version's text (the language is in the path)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=300)
    summary: str = Field(default="", max_length=1000)
    body_html: str = Field(default="", description="HTML, sanitized on write as the post's own body")

    def in_language(self, language: str) -> TranslationIn:
        """This text as the version in *language*.

        :raise InvalidInput: when Beacon does not speak *language*.
        """
        return validated(TranslationIn, {"language": language, **self.model_dump()}, what="language")


class VersionPublic(BaseModel):
    """A post's version in a language other than its own."""

    post_id: int
    language: str
    title: str
    summary: str
    body_html: str = Field(description="Sanitized HTML")
    body_text: str
    updated_at: Time

    @classmethod
    def of(cls, row: PostTranslation) -> VersionPublic:
        return cls(post_id=row.post_id, language=row.language, title=row.title, summary=row.summary,
                   body_html=row.body_html, body_text=row.body_text, updated_at=row.updated_at)


class Localized:
    """A post as one reader gets it: the post, with the title, summary and body of the version served.

    Everything else reads through to the post. ``language`` is the language served, ``wanted``
    the reader's; ``fallback`` says the reader's language was not available.
    """

    def __init__(self, post: Post, version: PostTranslation | None, wanted: str | None) -> None:
        self._post = post
        source: Any = version or post
        self.title: str = source.title
        self.summary: str = source.summary
        self.body_html: str = source.body_html
        self.body_text: str = source.body_text
        self.language: str = version.language if version else post.language
        self.wanted = wanted or self.language
        self.fallback = self.wanted != self.language

    def __getattr__(self, name: str) -> Any:
        return getattr(self._post, name)


def versions(session: Session, post_id: int) -> list[PostTranslation]:
    """*post_id*'s versions in other languages, by language."""
    return list(session.exec(select(PostTranslation).where(PostTranslation.post_id == post_id)
                             .order_by(PostTranslation.language)).all())


def versions_in(session: Session, post_ids: Iterable[int], language: str) -> dict[int, PostTranslation]:
    """The versions in *language* of the posts *post_ids* that have one (one query)."""
    ids = list(post_ids)
    if not ids:
        return {}
    rows = session.exec(select(PostTranslation).where(PostTranslation.post_id.in_(ids),
                                                      PostTranslation.language == language))
    return {row.post_id: row for row in rows}


def localize(session: Session, items: list[Post], language: str | None) -> dict[int, Localized]:
    """Each of *items* as a reader of *language* gets it, by post id."""
    wanted = languages.supported(language) or languages.DEFAULT
    others = [p.id for p in items if p.language != wanted]
    found = versions_in(session, others, wanted) if others else {}
    return {p.id: Localized(p, found.get(p.id), wanted) for p in items}  # type: ignore[misc]


def one(session: Session, post: Post, language: str | None) -> Localized:
    """*post* as a reader of *language* gets it."""
    return localize(session, [post], language)[post.id]  # type: ignore[index]


def save(session: Session, post: Post, data: TranslationIn, *, actor: Employee, now: dt.datetime) -> PostTranslation:
    """Add or replace *post*'s version in ``data.language``.

    :raise Forbidden: when *actor* may not edit *post*.
    :raise InvalidInput: for the post's own language (edit the post instead).
    :raise TooLarge: for an oversized body.
    """
    if not posts.may_edit(session, actor, post):
        raise Forbidden(N_("Only the post's author or a comms manager can change its translations."))
    if data.language == post.language:
        raise InvalidInput(N_("This is the post's own language: edit the post itself instead."),
                           details={"field": "language"})
    body_html, body_text = posts.clean_body(data.body_html)
    row = session.exec(select(PostTranslation).where(PostTranslation.post_id == post.id,
                                                     PostTranslation.language == data.language)).first()
    row = row or PostTranslation(post_id=post.id, language=data.language, created_at=now)  # type: ignore[arg-type]
    row.title, row.summary, row.body_html, row.body_text = data.title, data.summary, body_html, body_text
    row.updated_by_pk, row.updated_at = actor.id, now
    session.add(row)
    session.flush()
    return row


def remove(session: Session, post: Post, language: str, *, actor: Employee) -> None:
    """Remove *post*'s version in *language*.

    :raise Forbidden: when *actor* may not edit *post*.
    :raise NotFound: when there is no such version.
    """
    if not posts.may_edit(session, actor, post):
        raise Forbidden(N_("Only the post's author or a comms manager can change its translations."))
    row = session.exec(select(PostTranslation).where(PostTranslation.post_id == post.id,
                                                     PostTranslation.language == language)).first()
    if row is None:
        raise NotFound(N_("This post has no version in that language."))
    session.delete(row)
    session.flush()


def localize_page(session: Session, page: Any, language: str | None) -> Any:
    """A feed page (:class:`intranet.feed.FeedPage`) whose posts are as a reader of *language* gets them."""
    found = localize(session, [item.post for item in page.items], language)
    return dataclasses.replace(page, items=[dataclasses.replace(item, post=found[item.post.id]) for item in page.items])
