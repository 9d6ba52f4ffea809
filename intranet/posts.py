"""Publishing: write, target, review, schedule and publish posts.

Lifecycle (every move is a :class:`~intranet.models.PostTransition`: who, when, what changed)::

    draft ──submit──▶ in_review ──approve──▶ scheduled ──(due)──▶ published ──(expiry)──▶ expired
      ▲                  │                                            │
      └─request changes──┘        publish (from draft, in_review, unpublished, expired)
                                  unpublish (from scheduled, published, expired) ─▶ unpublished

A post is *live* (the single targeting rule shows it) when its status is ``scheduled`` or
``published`` and ``published_at`` has passed, so scheduling needs no job to become visible:
:func:`publish_due` and :func:`expire_due` only bring the stored status in line for the history.

Permissions, decided here and nowhere else:

* contributors (and comms managers, and owners of a group) write drafts and submit them; they
  manage their own posts while those are drafts or in review, and only as long as they may still
  write posts (revoking the role takes their drafts out of reach);
* comms managers approve, request changes, publish, unpublish and edit any post;
* owners of a group may do the same for a post whose audience lies entirely inside groups they own.

A post a person may not manage is :class:`~intranet.errors.NotFound`, exactly like a missing one;
a post they manage but may not act on in that way is :class:`~intranet.errors.Forbidden`.

Bodies are sanitized once, here, on save (:mod:`intranet.sanitize`); a body over
:data:`~intranet.sanitize.MAX_BODY_BYTES` is refused with :class:`TooLarge` before any slow work.
Services take ``session`` and plain values and never commit.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import ColumnElement, delete, false, func, or_, true, update
from sqlmodel import Session, select

from intranet import groups, languages, sanitize, targeting
from intranet.db import Instant, as_utc
from intranet.errors import Conflict, Forbidden, IntranetError, InvalidInput, NotFound
from intranet.languages import N_, Phrase
from intranet.models import (
    POST_STATUSES, Attachment, AudienceSegment, AudienceValue, Employee, Post, PostPreview, PostRevision,
    PostTransition,
)
from intranet.shapes import Time
from intranet.webhooks.events import post_published_event

logger = logging.getLogger(__name__)

#: Statuses in which a post has not gone out yet (authors may still edit; DELETE removes it).
UNPUBLISHED_DRAFTS = ("draft", "in_review")
#: Statuses that were live at some point (edits keep a revision; DELETE unpublishes).
WENT_OUT = ("scheduled", "published", "expired", "unpublished")
#: Fields whose old and new values are written into a transition's ``changes``.
TRACKED_FIELDS = ("title", "summary", "topic", "must_read", "ack_deadline", "rating_style", "language", "publish_at",
                  "expires_at", "audience")
#: Fields whose content becomes a new revision when edited after publishing.
REVISED_FIELDS = ("title", "summary", "body_html", "topic")


class TooLarge(IntranetError):
    """A body or an upload is over its limit; answered before any slow work."""

    code = "too_large"
    status = 413


# --------------------------------------------------------------------------------------------
# Input: what clients may send
# --------------------------------------------------------------------------------------------


class _PostFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("title", "topic", check_fields=False)
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value:
            raise ValueError(N_("must not be empty"))
        return value


class PostCreate(_PostFields):
    """``POST /api/v1/posts``: a draft, or (with ``publish_at``) a post published at that time."""

    title: str = Field(min_length=1, max_length=300)
    summary: str = Field(default="", max_length=1000)
    body_html: str = ""
    topic: str = Field(default="General", max_length=64)
    must_read: bool = False
    ack_deadline: Instant | None = None
    rating_style: Literal["stars", "thumbs"] = "stars"
    language: languages.Language = Field(default="en", description="The language the post is written in")
    publish_at: Instant | None = None
    expires_at: Instant | None = None
    audience: dict[str, Any] | None = None


class PostUpdate(_PostFields):
    """``PATCH /api/v1/posts/<id>``: only the fields sent change (``null`` clears an optional time)."""

    title: str | None = Field(default=None, min_length=1, max_length=300)
    summary: str | None = Field(default=None, max_length=1000)
    body_html: str | None = None
    topic: str | None = Field(default=None, max_length=64)
    must_read: bool | None = None
    ack_deadline: Instant | None = None
    rating_style: Literal["stars", "thumbs"] | None = None
    language: languages.Language | None = None
    publish_at: Instant | None = None
    expires_at: Instant | None = None
    audience: dict[str, Any] | None = None

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, with their values."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class PublishIn(BaseModel):
    """The optional body of publish and approve: when to publish (default: the planned time, or now)."""

    model_config = ConfigDict(extra="forbid")

    publish_at: Instant | None = None
    comment: str = Field(default="", max_length=2000)


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    comment: str = Field(default="", max_length=2000)


# --------------------------------------------------------------------------------------------
# Permissions
# --------------------------------------------------------------------------------------------


def within_groups(audience: dict[str, Any], keys: set[str]) -> bool:
    """Whether *audience* reaches only members of the groups *keys*.

    True when it is not all-staff and every included segment names groups, all of them in
    *keys* (other criteria and exclusions can only narrow it further).
    """
    if not keys or not audience or audience.get("all"):
        return False
    segments = audience.get("segments") or []
    return bool(segments) and all(set(s.get("groups") or ()) and set(s["groups"]) <= keys for s in segments)


def may_author(session: Session, employee: Employee) -> bool:
    """Whether *employee* may write posts at all (contributors, comms managers, group owners)."""
    return employee.has_role("contributor") or bool(groups.owned_group_keys(session, employee))


def _is_author(session: Session, employee: Employee, post: Post) -> bool:
    # Writing a post gives no lasting right to it: once the contributor role (or the last owned
    # group) is gone, the author's drafts are out of reach like anyone else's.
    return post.author_pk == employee.id and may_author(session, employee)


def may_publish(session: Session, employee: Employee, audience: dict[str, Any]) -> bool:
    """Whether *employee* may approve or publish a post aimed at *audience*."""
    return employee.has_role("comms") or within_groups(audience, groups.owned_group_keys(session, employee))


def may_manage(session: Session, employee: Employee, post: Post) -> bool:
    """Whether *employee* may open *post* on the publishing desk (and the manage API).

    The SQL form of this rule is :func:`managed_posts_filter`.
    """
    return may_publish(session, employee, post.audience) or _is_author(session, employee, post)


def may_edit(session: Session, employee: Employee, post: Post) -> bool:
    """Authors (while they hold author rights) edit until the post goes out; publishers edit at any time."""
    if may_publish(session, employee, post.audience):
        return True
    return post.status in UNPUBLISHED_DRAFTS and _is_author(session, employee, post)


def managed_post_or_404(session: Session, employee: Employee, post_id: int) -> Post:
    """Load a post *employee* manages.

    :raise NotFound: when it does not exist or *employee* does not manage it (the same answer).
    """
    post = session.get(Post, post_id)
    if post is None or not may_manage(session, employee, post):
        raise NotFound(N_("This post does not exist."))
    return post


class Allowed(BaseModel):
    """What you may do with the post right now (drives the desk's buttons)."""

    model_config = ConfigDict(frozen=True)

    edit: bool
    submit: bool
    approve: bool
    request_changes: bool
    publish: bool
    unpublish: bool
    delete: bool


def allowed(session: Session, employee: Employee, post: Post) -> Allowed:
    """The actions *employee* may take on *post* in its current state."""
    publisher = may_publish(session, employee, post.audience)
    editor = may_edit(session, employee, post)
    return Allowed(
        edit=editor,
        submit=editor and post.status == "draft",
        approve=publisher and post.status == "in_review",
        request_changes=publisher and post.status == "in_review",
        publish=publisher and post.status in ("draft", "in_review", "scheduled", "unpublished", "expired"),
        unpublish=publisher and post.status in ("scheduled", "published", "expired"),
        delete=(editor and post.status in UNPUBLISHED_DRAFTS) or (publisher and post.status in ("scheduled", "published")),
    )


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def effective_status(post: Post, now: dt.datetime) -> str:
    """The status as people experience it at *now* (before the periodic job stores it)."""
    if post.status in targeting.LIVE_STATUSES and post.expires_at is not None and post.expires_at <= now:
        return "expired"
    if post.status == "scheduled" and post.published_at is not None and post.published_at <= now:
        return "published"
    return post.status


def managed_posts_filter(session: Session, employee: Employee) -> ColumnElement[bool]:
    """A WHERE clause over :class:`Post` selecting the posts *employee* manages (:func:`may_manage` as SQL)."""
    if employee.has_role("comms"):
        return true()
    keys = groups.owned_group_keys(session, employee)
    if not keys and not employee.has_role("contributor"):
        return false()  # no author rights (any more): not even their own posts
    in_scope: set[int] = set()
    if keys:
        candidates = (select(AudienceSegment.post_id)
                      .join(AudienceValue, AudienceValue.segment_id == AudienceSegment.id)
                      .where(AudienceValue.dimension == "group", AudienceValue.value.in_(sorted(keys))))
        for post in session.exec(select(Post).where(Post.id.in_(candidates))).all():
            if within_groups(post.audience, keys):
                in_scope.add(post.id)
    return or_(Post.author_pk == employee.id, Post.id.in_(sorted(in_scope)))


def manageable_posts(session: Session, employee: Employee, *, status: str | None = None,
                     before_id: int | None = None, limit: int = 50, journey_steps: bool | None = None) -> list[Post]:
    """The posts *employee* manages, newest first (keyset on id).

    :param journey_steps: only journey steps (True), only ordinary posts (False), or both (None).
    """
    query = select(Post).where(managed_posts_filter(session, employee))
    if status:
        query = query.where(Post.status == status)
    if journey_steps is not None:
        query = query.where(Post.journey_only.is_(journey_steps))
    if before_id is not None:
        query = query.where(Post.id < before_id)
    return list(session.exec(query.order_by(Post.id.desc()).limit(limit)).all())


def history(session: Session, post: Post) -> tuple[list[PostTransition], list[PostRevision]]:
    """The post's transitions (oldest first) and its published revisions (newest first)."""
    transitions = session.exec(select(PostTransition).where(PostTransition.post_id == post.id)
                               .order_by(PostTransition.at, PostTransition.id)).all()
    revisions = session.exec(select(PostRevision).where(PostRevision.post_id == post.id)
                             .order_by(PostRevision.version.desc())).all()
    return list(transitions), list(revisions)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --------------------------------------------------------------------------------------------
# Output: what the publishing API answers
# --------------------------------------------------------------------------------------------


class AuthorPublic(BaseModel):
    employee_id: str
    display_name: str


class ManagedPostPublic(BaseModel):
    """A post as its authors and comms managers see it."""

    id: int
    status: Literal[POST_STATUSES] = Field(description="As people experience it now (a due post is published)")  # type: ignore[valid-type]
    stored_status: Literal[POST_STATUSES]  # type: ignore[valid-type]
    title: str
    summary: str
    body_html: str = Field(description="Sanitized HTML")
    body_text: str
    topic: str
    must_read: bool
    ack_deadline: Time | None
    rating_style: Literal["stars", "thumbs"]
    audience: dict[str, Any] | None = Field(description="The audience as stored (see Audience)")
    publish_at: Time | None
    published_at: Time | None
    expires_at: Time | None
    version: int
    journey_only: bool = Field(description="A journey step: released to one person at a time, days after their "
                               "hire, move or promotion, and seen by nobody else (manage it on its journey)")
    author: AuthorPublic | None
    created_at: Time | None
    updated_at: Time | None
    allowed: Allowed

    @classmethod
    def of(cls, post: Post, now: dt.datetime, *, author: Employee | None, allowed: Allowed) -> ManagedPostPublic:
        return cls(**cls._fields_of(post, now, author=author, allowed=allowed))

    @staticmethod
    def _fields_of(post: Post, now: dt.datetime, *, author: Employee | None, allowed: Allowed) -> dict[str, Any]:
        return {
            "id": post.id, "status": effective_status(post, now), "stored_status": post.status,
            "title": post.title, "summary": post.summary, "body_html": post.body_html, "body_text": post.body_text,
            "topic": post.topic, "must_read": post.must_read, "ack_deadline": post.ack_deadline,
            "rating_style": post.rating_style, "audience": post.audience, "publish_at": post.publish_at,
            "published_at": post.published_at, "expires_at": post.expires_at, "version": post.version,
            "journey_only": post.journey_only,
            "author": AuthorPublic(employee_id=author.employee_id, display_name=author.display_name) if author else None,
            "created_at": post.created_at, "updated_at": post.updated_at, "allowed": allowed,
        }


class ManagedPostPage(BaseModel):
    """A page of the posts you manage, newest first."""

    items: list[ManagedPostPublic]
    next_cursor: str | None = Field(description="Send as ?cursor= for the next page; null on the last")


class TransitionPublic(BaseModel):
    """One move in a post's history."""

    model_config = ConfigDict(populate_by_name=True)

    from_status: str | None = Field(alias="from")
    to: str
    at: Time
    by: str | None = Field(description="Who made the move (null: Beacon itself, or someone since removed)")
    comment: str
    changes: dict[str, Any] = Field(description='{"action": ..., "fields": {field: {"from", "to"}}}')


class RevisionPublic(BaseModel):
    """The content of a post as it went out in one version."""

    version: int
    title: str
    summary: str
    topic: str
    body_html: str
    edited_at: Time
    edited_by: str | None


class AttachmentPublic(BaseModel):
    """A file or image attached to a post."""

    id: int
    filename: str
    content_type: str
    size_bytes: int
    kind: str = Field(description='"image" or "file"')
    url: str = Field(description="Where people who may see the post download it")

    @classmethod
    def of(cls, attachment: Attachment, *, url: str) -> AttachmentPublic:
        return cls(id=attachment.id, filename=attachment.filename, content_type=attachment.content_type,  # type: ignore[arg-type]
                   size_bytes=attachment.size_bytes, kind=attachment.kind, url=url)


class ManagedPostDetail(ManagedPostPublic):
    """A post you manage, with its history (newest revision first) and its files."""

    transitions: list[TransitionPublic]
    revisions: list[RevisionPublic]
    attachments: list[AttachmentPublic]

    @classmethod
    def of_history(cls, post: Post, now: dt.datetime, *, author: Employee | None, allowed: Allowed,
                   transitions: list[PostTransition], revisions: list[PostRevision],
                   people: dict[int, Employee], attachments: list[AttachmentPublic]) -> ManagedPostDetail:
        """*post* with its history; *people* names the actors (by primary key)."""
        def name(pk: int | None) -> str | None:
            return people[pk].display_name if pk in people else None

        return cls(**cls._fields_of(post, now, author=author, allowed=allowed), attachments=attachments,
                   transitions=[TransitionPublic(from_status=t.from_status, to=t.to_status, at=t.at, by=name(t.actor_pk),
                                                 comment=t.comment, changes=t.changes) for t in transitions],
                   revisions=[RevisionPublic(version=r.version, title=r.title, summary=r.summary, topic=r.topic,
                                             body_html=r.body_html, edited_at=r.edited_at,
                                             edited_by=name(r.edited_by_pk)) for r in revisions])


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def check_body_size(body_html: str) -> None:
    """Refuse a body over the limit before anything slow happens.

    :raise TooLarge: with the limit in the message.
    """
    size = len(body_html) if len(body_html) > sanitize.MAX_BODY_BYTES else len(body_html.encode("utf-8", "replace"))
    if size > sanitize.MAX_BODY_BYTES:
        raise TooLarge(N_("The post body is %(size)s bytes; the limit is %(limit)s. Shorten it, or move "
                          "large content into an attachment."), size=size, limit=sanitize.MAX_BODY_BYTES,
                       details={"field": "body_html", "limit": sanitize.MAX_BODY_BYTES})


def clean_body(body_html: str) -> tuple[str, str]:
    """*body_html* sanitized, and its plain text (for a post and for its versions in other languages).

    :raise TooLarge: for an oversized body (checked before sanitizing).
    """
    return _clean(body_html)


def _clean(body_html: str) -> tuple[str, str]:
    check_body_size(body_html)
    try:
        clean = sanitize.clean_html(body_html)
    except sanitize.BodyTooLarge as exc:
        raise TooLarge(N_("The post body has %(amount)s %(what)s; the limit is %(limit)s. Shorten or simplify the post, "
                          "or move large content into an attachment."), amount=exc.amount,
                       what=BODY_LIMITS.get(exc.what, exc.what), limit=exc.limit,
                       details={"field": "body_html", "limit": exc.limit}) from None
    return clean, sanitize.html_to_text(clean)


#: What a body has too many of (:class:`intranet.sanitize.BodyTooLarge`), in words.
BODY_LIMITS: dict[str, Phrase] = {
    "bytes": Phrase(N_("bytes")),
    "tags": Phrase(N_("tags")),
    "levels of nesting": Phrase(N_("levels of nesting")),
    "attributes on one element": Phrase(N_("attributes on one element")),
}


def _audience(session: Session, raw: dict[str, Any]) -> targeting.Audience:
    audience = targeting.parse_audience(raw)
    targeting.check_known_values(session, audience)
    return audience


def _record(session: Session, post: Post, actor: Employee | None, from_status: str | None, action: str, *,
            now: dt.datetime, comment: str = "", fields: dict[str, Any] | None = None) -> PostTransition:
    changes: dict[str, Any] = {"action": action}
    if fields:
        changes["fields"] = fields
    row = PostTransition(post_id=post.id, from_status=from_status, to_status=post.status,
                         actor_pk=actor.id if actor else None, at=now, comment=comment, changes=changes)
    session.add(row)
    return row


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def _revise(session: Session, post: Post, actor: Employee | None, now: dt.datetime) -> None:
    session.add(PostRevision(post_id=post.id, version=post.version, title=post.title, summary=post.summary,
                             body_html=post.body_html, topic=post.topic, edited_by_pk=actor.id if actor else None,
                             edited_at=now))


def check_times(post: Post) -> None:
    start = post.published_at or post.publish_at
    if post.expires_at is not None and start is not None and post.expires_at <= start:
        raise InvalidInput(N_("The expiry must be after the publication time."), details={"field": "expires_at"})
    if post.ack_deadline is not None and not post.must_read:
        raise InvalidInput(N_("Only a must-read post can have an acknowledgement deadline."),
                           details={"field": "ack_deadline"})
    if post.ack_deadline is not None and start is not None and post.ack_deadline <= start:
        raise InvalidInput(N_("The acknowledgement deadline must be after the publication time."),
                           details={"field": "ack_deadline"})


def create_post(session: Session, data: PostCreate, *, author: Employee, now: dt.datetime,
                as_draft: bool = False) -> Post:
    """Create a draft, or (when ``data.publish_at`` is given) publish it at that time.

    :param as_draft: keep the post a draft even with ``data.publish_at``, which is then only its
        planned time (the desk's compose form: publishing is a separate, reviewed step).
    :raise Forbidden: when *author* may not write posts, or may not publish to that audience.
    :raise InvalidInput: for an empty or unknown audience, or inconsistent times.
    :raise TooLarge: for an oversized body (before sanitizing).
    """
    if not may_author(session, author):
        raise Forbidden(N_("Only contributors, comms managers and group owners write posts."))
    check_body_size(data.body_html)
    audience = _audience(session, data.audience) if data.audience is not None else None
    publishing = data.publish_at is not None and not as_draft
    if publishing:
        if audience is None:
            raise InvalidInput(N_('A post needs an audience to be published: {"all": true} or {"segments": [...]}.'),
                               details={"field": "audience"})
        if not may_publish(session, author, audience.to_json()):
            raise Forbidden(N_("You may write drafts and submit them for review, but not publish to this audience: "
                               "leave out publish_at, then submit the draft."))
    body_html, body_text = _clean(data.body_html)
    post = Post(title=data.title, summary=data.summary, body_html=body_html, body_text=body_text, topic=data.topic,
                must_read=data.must_read, ack_deadline=data.ack_deadline, rating_style=data.rating_style,
                language=data.language, publish_at=data.publish_at, expires_at=data.expires_at, status="draft", author_pk=author.id,
                created_at=now, updated_at=now)
    check_times(post)
    session.add(post)
    session.flush()
    if audience is not None:
        targeting.store_audience(session, post, audience)
    planned = None
    if as_draft and post.publish_at is not None:
        planned = {"publish_at": {"from": None, "to": _iso(as_utc(post.publish_at))}}
    _record(session, post, author, None, "create", now=now, fields=planned)
    if publishing:
        _go_live(session, post, author, now=now, publish_at=data.publish_at, action="publish")
    session.flush()
    return post


def update_post(session: Session, post: Post, data: PostUpdate, *, actor: Employee, now: dt.datetime) -> Post:
    """Apply the fields in *data*; after publishing, a content change becomes a new revision.

    Changing the planned time of a scheduled post reschedules it (a past time publishes it now).

    :raise Forbidden: when *actor* may not edit *post*, or may not publish to the new audience.
    """
    if not may_edit(session, actor, post):
        raise Forbidden(N_("Only a comms manager can change a post once it has gone out."))
    changes = data.changes()
    if changes.get("body_html") is not None:
        check_body_size(changes["body_html"])
    for required in ("title", "topic", "must_read", "rating_style", "language"):
        if required in changes and changes[required] is None:
            raise InvalidInput(N_("%(field)s cannot be empty."), field=required, details={"field": required})
    before = {name: _jsonable(getattr(post, name)) for name in TRACKED_FIELDS}
    old_content = {name: getattr(post, name) for name in REVISED_FIELDS}
    if "audience" in changes:
        if changes["audience"] is None:
            raise InvalidInput(N_("A post's audience cannot be removed; change it instead."), details={"field": "audience"})
        audience = _audience(session, changes["audience"])
        if post.status in WENT_OUT and not may_publish(session, actor, audience.to_json()):
            raise Forbidden(N_("You may not publish to this audience."))
        targeting.store_audience(session, post, audience)
    if changes.get("body_html") is not None:
        post.body_html, post.body_text = _clean(changes["body_html"])
    for name in ("title", "topic", "must_read", "rating_style", "language", "ack_deadline", "expires_at"):
        if name in changes:
            setattr(post, name, changes[name])  # the required ones were checked for None above
    if "summary" in changes:
        post.summary = changes["summary"] or ""
    published_now = False
    if "publish_at" in changes:
        post.publish_at = changes["publish_at"]
        if post.status == "scheduled":
            if post.publish_at is None or post.publish_at <= now:
                post.status, post.published_at = "published", now
                published_now = True
            else:
                post.published_at = post.publish_at
        elif post.status == "published" and post.publish_at is not None and post.publish_at > now:
            raise Conflict(N_("This post is already published; unpublish it first to schedule it again."))
    check_times(post)
    after = {name: _jsonable(getattr(post, name)) for name in TRACKED_FIELDS}
    fields = {name: {"from": before[name], "to": after[name]} for name in TRACKED_FIELDS if before[name] != after[name]}
    content_changed = any(getattr(post, name) != old_content[name] for name in REVISED_FIELDS)
    if content_changed:
        fields["body_html" if post.body_html != old_content["body_html"] else "content"] = "changed"
    if not fields:
        return post
    if published_now:
        post_published_event(session, post, now=now)
    post.updated_at = now
    if content_changed and post.status in WENT_OUT:
        post.version += 1
        _revise(session, post, actor, now)
    session.add(post)
    session.flush()
    _record(session, post, actor, post.status, "edit", now=now, fields=fields)
    session.flush()
    return post


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise Forbidden(message)


#: Each state of a post, as the refusal of a move from it says it.
STATUS_WORDS: dict[str, Phrase] = {
    "draft": Phrase(N_("draft")), "in_review": Phrase(N_("in review")), "scheduled": Phrase(N_("scheduled")),
    "published": Phrase(N_("published")), "expired": Phrase(N_("expired")), "unpublished": Phrase(N_("unpublished")),
}
#: The refusal of each move, by the word the move passes (a whole sentence each: languages differ in where the verb goes).
REFUSED_MOVES: dict[str, str] = {
    "submitted": N_("A post that is %(status)s cannot be submitted."),
    "sent back": N_("A post that is %(status)s cannot be sent back."),
    "approved": N_("A post that is %(status)s cannot be approved."),
    "published": N_("A post that is %(status)s cannot be published."),
    "unpublished": N_("A post that is %(status)s cannot be unpublished."),
}


def _check_status(post: Post, allowed_from: tuple[str, ...], action: str) -> None:
    if post.status not in allowed_from:
        raise Conflict(REFUSED_MOVES[action], status=STATUS_WORDS.get(post.status, post.status.replace("_", " ")),
                       details={"status": post.status, "allowed_from": list(allowed_from)})


def _ready(post: Post) -> None:
    if not post.audience:
        raise InvalidInput(N_('Choose who should get this post first: tick "All staff" or pick departments, countries, '
                              'groups or other criteria under Audience.'), details={"field": "audience"})
    if not post.body_text.strip() and not post.summary.strip():
        raise InvalidInput(N_("Write a summary or a body first."), details={"field": "body_html"})


def _go_live(session: Session, post: Post, actor: Employee | None, *, now: dt.datetime,
             publish_at: dt.datetime | None, action: str, comment: str = "") -> None:
    _ready(post)
    when = as_utc(publish_at) or post.publish_at or now
    before, was_live_from = post.status, _iso(post.published_at)
    post.publish_at = when
    if when <= now:
        post.status, post.published_at = "published", now
    else:
        post.status, post.published_at = "scheduled", when
    if post.expires_at is not None and post.expires_at <= now:
        raise InvalidInput(N_("The expiry has already passed; change or remove it first."), details={"field": "expires_at"})
    check_times(post)
    post.updated_at = now
    first_time = session.exec(select(PostRevision.id).where(PostRevision.post_id == post.id)).first() is None
    if first_time:
        _revise(session, post, actor, now)
    session.add(post)
    session.flush()
    _record(session, post, actor, before, action, now=now, comment=comment,
            fields={"published_at": {"from": was_live_from, "to": post.published_at.isoformat()}})
    if post.status == "published":
        post_published_event(session, post, now=now)
    logger.info("Post %s %s by %s, live from %s", post.id, post.status, actor.id if actor else None,
                post.published_at.isoformat())


def submit(session: Session, post: Post, *, actor: Employee, now: dt.datetime, comment: str = "") -> Post:
    """Send a draft for review.

    :raise Conflict: when the post is not a draft.
    """
    _require(may_edit(session, actor, post), N_("You may not submit this post."))
    _check_status(post, ("draft",), "submitted")
    _ready(post)
    post.status, post.updated_at = "in_review", now
    session.add(post)
    _record(session, post, actor, "draft", "submit", now=now, comment=comment)
    session.flush()
    return post


def request_changes(session: Session, post: Post, *, actor: Employee, now: dt.datetime, comment: str) -> Post:
    """Send a post in review back to its author, saying what to change (a comment is required)."""
    _require(may_publish(session, actor, post.audience), N_("Only a comms manager (or the group's owner) reviews posts."))
    _check_status(post, ("in_review",), "sent back")
    if not comment.strip():
        raise InvalidInput(N_("Say what should change: a comment is required."), details={"field": "comment"})
    post.status, post.updated_at = "draft", now
    session.add(post)
    _record(session, post, actor, "in_review", "request_changes", now=now, comment=comment.strip())
    session.flush()
    return post


def approve(session: Session, post: Post, *, actor: Employee, now: dt.datetime,
            publish_at: dt.datetime | None = None, comment: str = "") -> Post:
    """Approve a post in review: it is published at its planned time (or *publish_at*, or now)."""
    _require(may_publish(session, actor, post.audience), N_("Only a comms manager (or the group's owner) approves posts."))
    _check_status(post, ("in_review",), "approved")
    _go_live(session, post, actor, now=now, publish_at=publish_at, action="approve", comment=comment)
    session.flush()
    return post


def publish(session: Session, post: Post, *, actor: Employee, now: dt.datetime,
            publish_at: dt.datetime | None = None, comment: str = "") -> Post:
    """Publish now or at *publish_at* (also: reschedule a scheduled post, bring back an unpublished one)."""
    _require(may_publish(session, actor, post.audience),
             N_("Only a comms manager (or the group's owner) publishes posts; submit it for review instead."))
    _check_status(post, ("draft", "in_review", "scheduled", "unpublished", "expired"), "published")
    if post.status in ("unpublished", "expired") and publish_at is None:
        post.publish_at = None  # bringing it back means now, not its old time
    _go_live(session, post, actor, now=now, publish_at=publish_at, action="publish", comment=comment)
    session.flush()
    return post


def unpublish(session: Session, post: Post, *, actor: Employee, now: dt.datetime, comment: str = "") -> Post:
    """Take a post out of every feed (and future digests): the targeting rule stops showing it at once."""
    _require(may_publish(session, actor, post.audience), N_("Only a comms manager (or the group's owner) unpublishes posts."))
    _check_status(post, ("scheduled", "published", "expired"), "unpublished")
    before = post.status
    post.status, post.updated_at = "unpublished", now
    session.add(post)
    _record(session, post, actor, before, "unpublish", now=now, comment=comment)
    session.flush()
    logger.info("Post %s unpublished by %s", post.id, actor.id)
    return post


def delete_post(session: Session, post: Post, *, actor: Employee, now: dt.datetime) -> Post | None:
    """Remove a post that never went out; unpublish one that did (its history stays).

    :return: None when the post was removed, else the unpublished post.
    """
    if post.status in UNPUBLISHED_DRAFTS:
        _require(may_edit(session, actor, post), N_("You may not delete this post."))
        logger.info("Post %s (%s) deleted by %s", post.id, post.status, actor.id)
        session.exec(delete(Attachment).where(Attachment.post_id == post.id))
        session.delete(post)
        session.flush()
        return None
    if post.status == "unpublished":
        _require(may_publish(session, actor, post.audience), N_("You may not delete this post."))
        return post
    return unpublish(session, post, actor=actor, now=now, comment="deleted")


@dataclasses.dataclass(frozen=True)
class Action:
    """A review or publishing move, as the desk's buttons and the API's routes name it."""

    #: The move itself: ``move(session, post, actor=, now=, comment=, [publish_at=])``.
    move: Callable[..., Post]
    #: What the API reads from the body: a comment; approve and publish also take a time.
    body: type[BaseModel] = CommentIn
    #: Whether the API insists on a body (sending a post back must say why).
    body_required: bool = False
    #: What the move does, for the API's documentation.
    summary: str = ""


#: Every move but delete (the desk's delete button and ``DELETE /posts/<id>`` call :func:`delete_post`).
ACTIONS: dict[str, Action] = {
    "submit": Action(submit, summary="Submit a draft for review"),
    "approve": Action(approve, PublishIn, summary="Approve and publish or schedule"),
    "request-changes": Action(request_changes, body_required=True, summary="Send back to the author with a comment"),
    "publish": Action(publish, PublishIn, summary="Publish now or at publish_at"),
    "unpublish": Action(unpublish, summary="Remove from feeds and future digests"),
}


# --------------------------------------------------------------------------------------------
# Periodic work (declared in intranet.jobs): safe to run twice
# --------------------------------------------------------------------------------------------


def publish_due(session: Session, now: dt.datetime) -> int:
    """Store ``published`` for scheduled posts whose time has come; returns how many."""
    due = session.exec(select(Post).where(Post.status == "scheduled", Post.published_at <= now)).all()
    for post in due:
        claimed = session.exec(update(Post).where(Post.id == post.id, Post.status == "scheduled")
                               .values(status="published").execution_options(synchronize_session=False))
        if claimed.rowcount:
            session.refresh(post)
            _record(session, post, None, "scheduled", "scheduled_publish", now=now)
            post_published_event(session, post, now=now)
    session.flush()
    return len(due)


def expire_due(session: Session, now: dt.datetime) -> int:
    """Store ``expired`` for live posts past their expiry; returns how many."""
    due = session.exec(select(Post).where(Post.status.in_(targeting.LIVE_STATUSES), Post.expires_at.is_not(None),
                                          Post.expires_at <= now)).all()
    for post in due:
        before = post.status
        claimed = session.exec(update(Post).where(Post.id == post.id, Post.status == before)
                               .values(status="expired").execution_options(synchronize_session=False))
        if claimed.rowcount:
            session.refresh(post)
            _record(session, post, None, before, "expire", now=now)
    session.flush()
    return len(due)


# --------------------------------------------------------------------------------------------
# Preview: the feed as one member of the audience would see it (visibility only)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PreviewItem:
    post: Post
    this_post: bool


def preview_feed(session: Session, post: Post, *, subject: Employee, viewer: Employee, now: dt.datetime,
                 limit: int = 20) -> tuple[dt.datetime, list[PreviewItem]]:
    """The feed *subject* would see once *post* is live, with *post* in its place; logged.

    Around *post* it shows only what *viewer* may read anyway: posts in the viewer's own feed
    and posts they manage. Anything else *subject* receives is left out without a trace (no
    placeholder, no count, no gap), so no preview tells its viewer what is sent to someone else;
    the cost is that the preview may place *post* higher than it will really land.

    Only visibility is used: the subject's reads and acknowledgements are never looked at, so
    every must-read is shown pinned. The preview is taken at the post's publication time (or now).

    :return: the moment previewed and the items.
    :raise InvalidInput: when *subject* is not in the post's audience (or the post has none).
    """
    if not post.audience:
        raise InvalidInput(N_("Choose an audience first."), details={"field": "audience"})
    audience = targeting.Audience.model_validate(post.audience)
    keys = targeting.group_keys_of(session, subject.id)
    if not targeting.employee_matches(audience, subject, keys, managers=targeting.managers_of(session, subject), now=now):
        raise InvalidInput(N_("%(name)s is not in this post's audience."), name=subject.display_name,
                           details={"field": "employee"})
    at = max(now, post.published_at or post.publish_at or now)
    # The viewer's own feed *now*, not at `at`: a post scheduled to go live before `at` stays
    # hidden from a viewer who cannot read it yet.
    readable = or_(targeting.visible_posts_filter(viewer, targeting.group_keys_of(session, viewer.id), now,
                                                  name="viewer_segments"),
                   managed_posts_filter(session, viewer))
    others = session.exec(select(Post).where(targeting.visible_posts_filter(subject, keys, at), readable,
                                             Post.id != post.id)
                          .order_by(Post.published_at.desc(), Post.id.desc()).limit(limit)).all()
    items = [PreviewItem(post, True)] + [PreviewItem(p, False) for p in others]
    items.sort(key=lambda i: (not i.post.must_read, -((i.post.published_at or at).timestamp())))
    session.add(PostPreview(post_id=post.id, viewer_pk=viewer.id, subject_pk=subject.id, at=now))
    session.flush()
    logger.info("Feed preview: %s viewed post %s's audience as %s", viewer.employee_id, post.id, subject.employee_id)
    return at, items[:limit]


def audience_sample(session: Session, post: Post, limit: int = 10) -> list[Employee]:
    """A few members of *post*'s audience to preview as (directory facts, by name)."""
    if not post.audience:
        return []
    audience = targeting.Audience.model_validate(post.audience)
    return list(session.exec(select(Employee).where(targeting.employee_filter(audience))
                             .order_by(Employee.display_name, Employee.id).limit(limit)).all())


def find_member(session: Session, who: str) -> Employee:
    """Look a person up by employee number or email.

    :raise InvalidInput: when nobody (active) matches.
    """
    who = who.strip()
    employee = session.exec(select(Employee).where(or_(Employee.employee_id == who,
                                                       func.lower(Employee.email) == who.lower()),
                                                   Employee.active.is_(True))).first()
    if employee is None:
        raise InvalidInput(N_("No active employee has the number or email %(who)s."), who=repr(who),
                           details={"field": "employee"})
    return employee
