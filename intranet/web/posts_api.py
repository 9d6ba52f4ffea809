"""JSON API v1 for publishing: write, review, schedule and publish posts; manage attachments.

Mounted at ``/api/v1`` (the blueprint's name ends in ``api``, so errors are JSON). Every route
reads as load, check access, act, commit. The employee routes (``GET /posts/<id>``, the feed)
live in :mod:`intranet.web.api` and apply targeting to everyone, authors included; authors and
comms managers read what they manage through ``/manage/posts``.
"""
from __future__ import annotations

from flask import Blueprint, request, url_for
from sqlmodel import select

from intranet import attachments, posts
from intranet.db import MAX_ID
from intranet.errors import Forbidden, InvalidInput, NotFound, validated
from intranet.models import Attachment, Employee, Post
from intranet.web.api import json_body
from intranet.web.context import current_employee, now, require_role, session
from intranet.web.publish import receive_upload, upload_dir

bp = Blueprint("intranet_posts_api", __name__)


def _post_json(post: Post, *, detail: bool = False) -> dict:
    employee = current_employee()
    author = session().get(Employee, post.author_pk) if post.author_pk else None
    data = posts.post_to_json(post, now(), author=author)
    data["allowed"] = posts.allowed(session(), employee, post).to_json()
    if detail:
        transitions, revisions = posts.history(session(), post)
        pks = ({t.actor_pk for t in transitions} | {r.edited_by_pk for r in revisions}) - {None}
        people = {e.id: e for e in session().exec(select(Employee).where(Employee.id.in_(pks))).all()}
        name = lambda pk: people[pk].display_name if pk in people else None  # noqa: E731
        data["transitions"] = [{"from": t.from_status, "to": t.to_status, "at": t.at.isoformat(), "by": name(t.actor_pk),
                                "comment": t.comment, "changes": t.changes} for t in transitions]
        data["revisions"] = [{"version": r.version, "title": r.title, "summary": r.summary, "topic": r.topic,
                              "body_html": r.body_html, "edited_at": r.edited_at.isoformat(),
                              "edited_by": name(r.edited_by_pk)} for r in revisions]
        data["attachments"] = [_attachment_json(a) for a in attachments.attachments_of(session(), post)]
    return data


def _attachment_json(attachment: Attachment) -> dict:
    return {"id": attachment.id, "filename": attachment.filename, "content_type": attachment.content_type,
            "size_bytes": attachment.size_bytes, "kind": attachment.kind,
            "url": url_for("intranet_publish.attachment", attachment_id=attachment.id)}


def _managed(post_id: int) -> Post:
    return posts.managed_post_or_404(session(), current_employee(), post_id)


def _optional_body() -> dict:
    return json_body() if request.content_length else {}


@bp.post("/posts")
@require_role("employee")
def create():  # type: ignore[no-untyped-def]
    data = validated(posts.PostCreate, json_body())
    post = posts.create_post(session(), data, author=current_employee(), now=now())
    session().commit()
    return _post_json(post), 201


@bp.patch("/posts/<int:post_id>")
@require_role("employee")
def update(post_id: int):  # type: ignore[no-untyped-def]
    post = _managed(post_id)
    data = validated(posts.PostUpdate, json_body())
    posts.update_post(session(), post, data, actor=current_employee(), now=now())
    session().commit()
    return _post_json(post)


@require_role("employee")
def act(post_id: int, action: str):  # type: ignore[no-untyped-def]
    post = _managed(post_id)
    step = posts.ACTIONS[action]
    data = validated(step.body, json_body() if step.body_required else _optional_body())
    step.move(session(), post, actor=current_employee(), now=now(), **data.model_dump())
    session().commit()
    return _post_json(post)


# POST /posts/<id>/submit, /approve, /request-changes, /publish, /unpublish: one route a move.
for _name in posts.ACTIONS:
    bp.add_url_rule(f"/posts/<int:post_id>/{_name}", _name.replace("-", "_"), act, methods=["POST"],
                    defaults={"action": _name})


@bp.delete("/posts/<int:post_id>")
@require_role("employee")
def delete(post_id: int):  # type: ignore[no-untyped-def]
    post = _managed(post_id)
    files = attachments.files_of(session(), post, upload_dir())
    kept = posts.delete_post(session(), post, actor=current_employee(), now=now())
    session().commit()
    if kept is None:
        attachments.unlink(files)  # only once the rows are gone for good
        return "", 204
    return _post_json(kept)


@bp.get("/manage/posts")
@require_role("employee")
def manage_list():  # type: ignore[no-untyped-def]
    status = request.args.get("status") or None
    try:
        before = int(request.args["cursor"]) if request.args.get("cursor") else None
        limit = min(max(int(request.args.get("limit", 50)), 1), 200)
        if before is not None and not 0 <= before <= MAX_ID:
            raise ValueError
    except ValueError:
        raise InvalidInput("cursor and limit are integers (a cursor is a post id).") from None
    rows = posts.manageable_posts(session(), current_employee(), status=status, before_id=before, limit=limit + 1)
    return {"items": [_post_json(p) for p in rows[:limit]],
            "next_cursor": str(rows[limit - 1].id) if len(rows) > limit else None}


@bp.get("/manage/posts/<int:post_id>")
@require_role("employee")
def manage_detail(post_id: int):  # type: ignore[no-untyped-def]
    return _post_json(_managed(post_id), detail=True)


@bp.post("/posts/<int:post_id>/attachments")
@require_role("employee")
def upload(post_id: int):  # type: ignore[no-untyped-def]
    missing = InvalidInput('Send the file as multipart/form-data in a field named "file".', details={"field": "file"})
    attachment = receive_upload(_managed(post_id), current_employee(), missing=missing)
    session().commit()
    return _attachment_json(attachment), 201


@bp.delete("/posts/<int:post_id>/attachments/<int:attachment_id>")
@require_role("employee")
def remove_attachment(post_id: int, attachment_id: int):  # type: ignore[no-untyped-def]
    post = _managed(post_id)
    attachment = session().get(Attachment, attachment_id)
    if attachment is None or attachment.post_id != post.id:
        raise NotFound("This file does not exist.")
    if not posts.may_edit(session(), current_employee(), post):
        raise Forbidden("You may not remove files from this post.")
    path = attachments.remove(session(), attachment, upload_dir())
    session().commit()
    path.unlink(missing_ok=True)  # only once the row is gone for good
    return "", 204
