"""JSON API v1 for employees and comms managers. Errors: ``{"error": {"code", "message", "details"}}``.

The API accepts the session cookie; cookie-authenticated writes carry ``X-CSRFToken``.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from intranet import feed, groups, posts, ratings, search, targeting
from intranet.errors import Forbidden, InvalidInput, validated
from intranet.models import PostState
from intranet.web.context import current_employee, now, public, require_role, session, settings
from intranet.web.limits import request_json

bp = Blueprint("intranet_api", __name__)


def json_body() -> dict[str, Any]:
    """The request's JSON object.

    :raise Malformed: (400) when the body is not JSON Beacon can read (see :func:`load_json`).
    :raise InvalidInput: when the body is not a JSON object.
    """
    data = request_json()
    if not isinstance(data, dict):
        raise InvalidInput("Send a JSON object with Content-Type: application/json.")
    return data


@bp.get("/me")
@require_role("employee")
def me():  # type: ignore[no-untyped-def]
    employee = current_employee()
    roles = [r for r in ("contributor", "comms", "admin") if employee.has_role(r)]
    return {"employee_id": employee.employee_id, "display_name": employee.display_name, "email": employee.email,
            "department": employee.department, "region": employee.region, "level": employee.level,
            "timezone": employee.timezone, "language": employee.language, "roles": roles}


@bp.get("/feed")
@require_role("employee")
def feed_list():  # type: ignore[no-untyped-def]
    employee = current_employee()
    page = feed.feed_page(session(), employee, now=now(), cursor=request.args.get("cursor") or None,
                          limit=settings().site.feed_page_size)
    session().commit()  # the first page stores the ranked order the cursor names
    return {"items": [item.to_json() for item in page.items], "next_cursor": page.next_cursor}


@bp.get("/search")
@require_role("employee")
def search_posts():  # type: ignore[no-untyped-def]
    limit = request.args.get("limit", "20")
    if not limit.isdigit() or not 1 <= int(limit) <= 50:
        raise InvalidInput("limit must be a whole number from 1 to 50.")
    query = request.args.get("q", "").strip()
    hits = search.search(session(), current_employee(), query, now=now(), limit=int(limit))
    return {"query": query, "items": [{"id": hit.post.id, "title": hit.post.title, "summary": hit.post.summary,
                                       "topic": hit.post.topic, "must_read": hit.post.must_read,
                                       "published_at": hit.post.published_at.isoformat()
                                       if hit.post.published_at else None,
                                       "snippet": hit.snippet} for hit in hits]}


@bp.get("/posts/<int:post_id>")
@require_role("employee")
def post_detail(post_id: int):  # type: ignore[no-untyped-def]
    employee = current_employee()
    post = targeting.visible_post_or_404(session(), employee, post_id, now())
    data = feed.post_to_json(post, session().get(PostState, (employee.id, post.id)))
    data["my_rating"] = ratings.to_json(ratings.my_rating(session(), employee=employee, post=post))
    return data


@bp.post("/posts/<int:post_id>/read")
@require_role("employee")
def post_read(post_id: int):  # type: ignore[no-untyped-def]
    employee = current_employee()
    post = targeting.visible_post_or_404(session(), employee, post_id, now())
    state = feed.mark_read(session(), employee, post, now=now())
    session().commit()
    return {"read": True, "read_at": state.read_at.isoformat()}


@bp.post("/posts/<int:post_id>/acknowledge")
@require_role("employee")
def post_acknowledge(post_id: int):  # type: ignore[no-untyped-def]
    employee = current_employee()
    post = targeting.visible_post_or_404(session(), employee, post_id, now())
    state = feed.acknowledge(session(), employee, post, now=now())
    session().commit()
    return {"acknowledged": True, "acknowledged_at": state.acknowledged_at.isoformat()}


@bp.post("/audiences/preview")
@require_role("employee")
def audience_preview():  # type: ignore[no-untyped-def]
    # Everyone who may write a post sees the headcount of the audience they choose: the desk
    # shows it for a saved draft anyway, so a comms-only live count would protect nothing.
    if not posts.may_author(session(), current_employee()):
        raise Forbidden("Audience counts are for people who write posts.")
    audience = targeting.parse_audience(json_body().get("audience"))
    targeting.check_known_values(session(), audience)
    return targeting.audience_breakdown(session(), audience)


@bp.get("/groups")
@require_role("employee")
def group_list():  # type: ignore[no-untyped-def]
    employee = current_employee()
    return {"items": [{"key": g.key, "name": g.name, "description": g.description, "kind": g.kind, "member": member}
                      for g, member in groups.groups_for(session(), employee)]}


@bp.post("/groups")
@require_role("admin")
def group_create():  # type: ignore[no-untyped-def]
    group = groups.create_group(session(), validated(groups.GroupIn, json_body()))
    session().commit()
    return {"key": group.key, "name": group.name, "kind": group.kind}, 201


@bp.post("/groups/<key>/join")
@require_role("employee")
def group_join(key: str):  # type: ignore[no-untyped-def]
    groups.join(session(), groups.get_group(session(), key), current_employee(), now=now())
    session().commit()
    return {"member": True}


@bp.post("/groups/<key>/leave")
@require_role("employee")
def group_leave(key: str):  # type: ignore[no-untyped-def]
    groups.leave(session(), groups.get_group(session(), key), current_employee())
    session().commit()
    return {"member": False}


@bp.put("/groups/<key>/members")
@require_role("employee")
def group_members(key: str):  # type: ignore[no-untyped-def]
    ids = json_body().get("employee_ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise InvalidInput('Send {"employee_ids": ["E001", ...]}.')
    count = groups.set_members(session(), groups.get_group(session(), key), current_employee(), ids)
    session().commit()
    return {"members": count}


@bp.get("/openapi.json")
@public
def openapi():  # type: ignore[no-untyped-def]
    from intranet.web.openapi import document

    return jsonify(document())
