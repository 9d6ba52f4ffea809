"""JSON API v1 for publishing: write, review, schedule and publish posts; manage attachments.

Mounted at ``/api/v1`` (the blueprint's name ends in ``api``, so errors are JSON). Every route
reads as load, check access, act, commit. The employee routes (``GET /posts/<id>``, the feed)
live in :mod:`intranet.web.api` and apply targeting to everyone, authors included; authors and
comms managers read what they manage through ``/manage/posts``.
"""
from __future__ import annotations

from flask import Blueprint, request, url_for
from pydantic import BaseModel, Field
from sqlmodel import select

from intranet import attachments, languages, post_versions, posts
from intranet.db import MAX_ID
from intranet.errors import Forbidden, InvalidInput, NotFound, validated
from intranet.languages import N_
from intranet.models import Attachment, Employee, Post
from intranet.web.api import json_body
from intranet.web.context import current_employee, now, require_role, session
from intranet.web.openapi import operation
from intranet.web.publish import receive_upload, upload_dir

bp = Blueprint("intranet_posts_api", __name__)

MANAGED = {403: "You manage this post but may not do this"}
#: The API key scope of every route here (a key acts for the employee it names, with their roles).
PUBLISH = "posts:publish"


class ManageQuery(BaseModel):
    """``GET /api/v1/manage/posts``'s query string."""

    status: str | None = Field(default=None, description="Only posts in this status")
    cursor: int | None = Field(default=None, ge=0, le=MAX_ID, description="next_cursor of a page (a post id)")
    limit: int = Field(default=50, ge=1, le=200, description="Posts a page")
    journey_steps: bool | None = Field(default=None, description="true: only journey steps; false: only ordinary "
                                       "posts; left out: both")


def _managed_public(post: Post) -> posts.ManagedPostPublic:
    author = session().get(Employee, post.author_pk) if post.author_pk else None
    return posts.ManagedPostPublic.of(post, now(), author=author,
                                      allowed=posts.allowed(session(), current_employee(), post))


def _managed_detail(post: Post) -> posts.ManagedPostDetail:
    author = session().get(Employee, post.author_pk) if post.author_pk else None
    transitions, revisions = posts.history(session(), post)
    pks = ({t.actor_pk for t in transitions} | {r.edited_by_pk for r in revisions}) - {None}
    people = {e.id: e for e in session().exec(select(Employee).where(Employee.id.in_(pks))).all()}
    return posts.ManagedPostDetail.of_history(
        post, now(), author=author, allowed=posts.allowed(session(), current_employee(), post),
        transitions=transitions, revisions=revisions, people=people,  # type: ignore[arg-type]
        attachments=[_attachment_public(a) for a in attachments.attachments_of(session(), post)])


def _attachment_public(attachment: Attachment) -> posts.AttachmentPublic:
    return posts.AttachmentPublic.of(attachment, url=url_for("intranet_publish.attachment",
                                                             attachment_id=attachment.id))


def _managed(post_id: int) -> Post:
    return posts.managed_post_or_404(session(), current_employee(), post_id)


def _optional_body() -> dict:
    return json_body() if request.content_length else {}


@bp.post("/posts")
@operation("Create a draft, or publish at once when publish_at is given", body=posts.PostCreate,
           response=posts.ManagedPostPublic, status=201, returns="Created", responses=MANAGED, scope=PUBLISH)
@require_role("employee")
def create() -> tuple[posts.ManagedPostPublic, int]:
    data = validated(posts.PostCreate, json_body())
    post = posts.create_post(session(), data, author=current_employee(), now=now())
    session().commit()
    return _managed_public(post), 201


@bp.patch("/posts/<int:post_id>")
@operation("Edit a post you manage", body=posts.PostUpdate, response=posts.ManagedPostPublic, responses=MANAGED,
           scope=PUBLISH)
@require_role("employee")
def update(post_id: int) -> posts.ManagedPostPublic:
    post = _managed(post_id)
    data = validated(posts.PostUpdate, json_body())
    posts.update_post(session(), post, data, actor=current_employee(), now=now())
    session().commit()
    return _managed_public(post)


@require_role("employee")
def act(post_id: int, action: str) -> posts.ManagedPostPublic:
    post = _managed(post_id)
    step = posts.ACTIONS[action]
    data = validated(step.body, json_body() if step.body_required else _optional_body())
    step.move(session(), post, actor=current_employee(), now=now(), **data.model_dump())
    session().commit()
    return _managed_public(post)


# POST /posts/<id>/submit, /approve, /request-changes, /publish, /unpublish: one route a move.
for _name, _step in posts.ACTIONS.items():
    bp.add_url_rule(f"/posts/<int:post_id>/{_name}", _name.replace("-", "_"),
                    operation(_step.summary, body=_step.body, body_required=_step.body_required,
                              response=posts.ManagedPostPublic, responses=MANAGED, scope=PUBLISH)(act),
                    methods=["POST"], defaults={"action": _name})


@bp.delete("/posts/<int:post_id>")
@operation("Remove a draft; unpublish a published post", response=posts.ManagedPostPublic,
           returns="Unpublished (it had gone out)", responses={204: "Removed", **MANAGED}, scope=PUBLISH)
@require_role("employee")
def delete(post_id: int) -> posts.ManagedPostPublic | tuple[str, int]:
    post = _managed(post_id)
    files = attachments.files_of(session(), post, upload_dir())
    kept = posts.delete_post(session(), post, actor=current_employee(), now=now())
    session().commit()
    if kept is None:
        attachments.unlink(files)  # only once the rows are gone for good
        return "", 204
    return _managed_public(kept)


@bp.get("/manage/posts")
@operation("Posts you manage", query=ManageQuery, response=posts.ManagedPostPage, scope=PUBLISH)
@require_role("employee")
def manage_list() -> posts.ManagedPostPage:
    args = validated(ManageQuery, {k: v for k, v in request.args.items() if v}, what="query")
    limit = args.limit
    rows = posts.manageable_posts(session(), current_employee(), status=args.status, before_id=args.cursor,
                                  limit=limit + 1, journey_steps=args.journey_steps)
    return posts.ManagedPostPage(items=[_managed_public(p) for p in rows[:limit]],
                                 next_cursor=str(rows[limit - 1].id) if len(rows) > limit else None)


@bp.get("/manage/posts/<int:post_id>")
@operation("A post you manage, with history", response=posts.ManagedPostDetail, responses=MANAGED,
           scope=PUBLISH)
@require_role("employee")
def manage_detail(post_id: int) -> posts.ManagedPostDetail:
    return _managed_detail(_managed(post_id))


@bp.post("/posts/<int:post_id>/attachments")
@operation("Upload an image or file; its type is read from its content and checked, and its size",
           upload="file", response=posts.AttachmentPublic, status=201, returns="Stored",
           responses={413: "Too large", **MANAGED}, scope=PUBLISH)
@require_role("employee")
def upload(post_id: int) -> tuple[posts.AttachmentPublic, int]:
    missing = InvalidInput('Send the file as multipart/form-data in a field named "file".', details={"field": "file"})
    attachment = receive_upload(_managed(post_id), current_employee(), missing=missing)
    session().commit()
    return _attachment_public(attachment), 201


@bp.delete("/posts/<int:post_id>/attachments/<int:attachment_id>")
@operation("Remove an attachment", status=204, returns="Removed", responses=MANAGED, scope=PUBLISH)
@require_role("employee")
def remove_attachment(post_id: int, attachment_id: int) -> tuple[str, int]:
    post = _managed(post_id)
    attachment = session().get(Attachment, attachment_id)
    if attachment is None or attachment.post_id != post.id:
        raise NotFound(N_("This file does not exist."))
    if not posts.may_edit(session(), current_employee(), post):
        raise Forbidden(N_("You may not remove files from this post."))
    path = attachments.remove(session(), attachment, upload_dir())
    session().commit()
    path.unlink(missing_ok=True)  # only once the row is gone for good
    return "", 204


@bp.put("/posts/<int:post_id>/versions/<language>")
@operation("Add or replace a post's version in another language (en, es or ca; its body sanitized as the "
           "post's own)", body=post_versions.VersionBody, response=post_versions.VersionPublic,
           responses={**MANAGED, 422: "A language Beacon does not speak, the post's own language, or a bad field"},
           scope=PUBLISH)
@require_role("employee")
def save_version(post_id: int, language: str) -> post_versions.VersionPublic:
    post = _managed(post_id)
    data = validated(post_versions.VersionBody, json_body()).in_language(language)
    row = post_versions.save(session(), post, data, actor=current_employee(), now=now())
    session().commit()
    return post_versions.VersionPublic.of(row)


@bp.delete("/posts/<int:post_id>/versions/<language>")
@operation("Remove a post's version in another language", status=204, returns="Removed",
           responses={**MANAGED, 422: "A language Beacon does not speak"}, scope=PUBLISH)
@require_role("employee")
def remove_version(post_id: int, language: str) -> tuple[str, int]:
    post = _managed(post_id)
    if language not in languages.SUPPORTED:
        raise InvalidInput(N_("Beacon has no versions in “%(language)s”: use one of %(languages)s."), language=language,
                           languages=", ".join(languages.SUPPORTED),
                           details={"field": "language"})
    post_versions.remove(session(), post, language, actor=current_employee())
    session().commit()
    return "", 204
