"""JSON API v1 for employees and comms managers. Errors: ``{"error": {"code", "message", "details"}}``.

The API accepts the session cookie; cookie-authenticated writes carry ``X-CSRFToken``. Server-to-server
clients send an API key instead (``Authorization: Bearer ...``, see :mod:`intranet.web.api_auth`);
each operation says which key scope opens it, if any.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from pydantic import BaseModel, Field

from intranet import feed, groups, people, post_versions, posts, ratings, search, targeting
from intranet.errors import Forbidden, InvalidInput, validated
from intranet.languages import N_
from intranet.models import PostState
from intranet.web import i18n
from intranet.web.cross_origin import cross_origin
from intranet.web.context import current_employee, now, public, require_role, session, settings
from intranet.web.limits import request_json
from intranet.web.openapi import document, operation

bp = Blueprint("intranet_api", __name__)

#: The API key scope of the routes that read what one employee may see (they act for the person named).
FEED = "feed:read"


def json_body() -> dict[str, Any]:
    """The request's JSON object.

    :raise Malformed: (400) when the body is not JSON Beacon can read (see :func:`load_json`).
    :raise InvalidInput: when the body is not a JSON object.
    """
    data = request_json()
    if not isinstance(data, dict):
        raise InvalidInput(N_("Send a JSON object with Content-Type: application/json."))
    return data


class FeedQuery(BaseModel):
    """``GET /api/v1/feed``'s query string."""

    cursor: str | None = Field(default=None, description="next_cursor of the page before")


@bp.get("/me")
@operation("Who you are and your roles", response=people.MePublic, scope=FEED)
@require_role("employee")
def me() -> people.MePublic:
    return people.MePublic.of(current_employee())


@bp.get("/feed")
@operation("Your feed: live posts targeted at you, unacknowledged must-reads first, then the rest in your "
           "ranked order (a cursor pages through the order taken on page one)",
           query=FeedQuery, response=feed.FeedPagePublic, scope=FEED)
@require_role("employee")
def feed_list() -> feed.FeedPagePublic:
    employee = current_employee()
    args = validated(FeedQuery, request.args.to_dict(), what="query")
    page = feed.feed_page(session(), employee, now=now(), cursor=args.cursor or None,
                          limit=settings().site.feed_page_size)
    session().commit()  # the first page stores the ranked order the cursor names
    return feed.FeedPagePublic.of(post_versions.localize_page(session(), page, i18n.locale()), i18n.locale())


@bp.get("/search")
@operation("Search the live posts targeted at you (every word, prefixes too), best match first",
           query=search.SearchQuery, response=search.SearchPublic, scope=FEED)
@require_role("employee")
def search_posts() -> search.SearchPublic:
    args = validated(search.SearchQuery, request.args.to_dict(), what="query")
    query = args.q.strip()
    hits = search.search(session(), current_employee(), query, now=now(), limit=args.limit, language=i18n.locale())
    return search.SearchPublic(query=query, items=[search.SearchHitPublic.of(hit) for hit in hits])


@bp.get("/posts/<int:post_id>")
@operation("A post targeted at you, with its body", response=feed.PostPublic, scope=FEED)
@require_role("employee")
def post_detail(post_id: int) -> feed.PostPublic:
    employee = current_employee()
    post = targeting.visible_post_or_404(session(), employee, post_id, now())
    return feed.PostPublic.of(post_versions.one(session(), post, i18n.locale()),  # type: ignore[arg-type]
                              session().get(PostState, (employee.id, post.id)),
                              ratings.my_rating(session(), employee=employee, post=post))



@bp.post("/posts/<int:post_id>/read")
@operation("Record that you opened the post", response=feed.ReadPublic)
@require_role("employee")
def post_read(post_id: int) -> feed.ReadPublic:
    employee = current_employee()
    post = targeting.visible_post_or_404(session(), employee, post_id, now())
    state = feed.mark_read(session(), employee, post, now=now())
    session().commit()
    return feed.ReadPublic.of(state)


@bp.post("/posts/<int:post_id>/acknowledge")
@operation("Acknowledge a must-read post", response=feed.AcknowledgedPublic)
@cross_origin  # the embeddable widget acknowledges through here
@require_role("employee")
def post_acknowledge(post_id: int) -> feed.AcknowledgedPublic:
    employee = current_employee()
    post = targeting.visible_post_or_404(session(), employee, post_id, now())
    state = feed.acknowledge(session(), employee, post, now=now())
    session().commit()
    return feed.AcknowledgedPublic.of(state)


@bp.post("/audiences/preview")
@operation("Exact audience size and breakdown (people who may write posts)", body=targeting.AudiencePreviewIn,
           response=targeting.PreviewPublic,
           responses={422: "Invalid audience or unknown value (with suggestions)"}, scope="posts:publish")
@require_role("employee")
def audience_preview() -> targeting.PreviewPublic:
    # Everyone who may write a post sees the headcount of the audience they choose: the desk
    # shows it for a saved draft anyway, so a comms-only live count would protect nothing.
    if not posts.may_author(session(), current_employee()):
        raise Forbidden(N_("Audience counts are for people who write posts."))
    audience = targeting.parse_audience(json_body().get("audience"))
    targeting.check_known_values(session(), audience)
    return targeting.PreviewPublic.model_validate(targeting.audience_breakdown(session(), audience))


@bp.get("/groups")
@operation("Groups and whether you belong", response=groups.GroupListPublic)
@require_role("employee")
def group_list() -> groups.GroupListPublic:
    employee = current_employee()
    return groups.GroupListPublic(items=[
        groups.GroupPublic(key=g.key, name=g.name, description=g.description, kind=g.kind, member=member)
        for g, member in groups.groups_for(session(), employee)])


@bp.post("/groups")
@operation("Create a group (admins)", body=groups.GroupIn, response=groups.GroupCreatedPublic, status=201)
@require_role("admin")
def group_create() -> tuple[groups.GroupCreatedPublic, int]:
    group = groups.create_group(session(), validated(groups.GroupIn, json_body()))
    session().commit()
    return groups.GroupCreatedPublic(key=group.key, name=group.name, kind=group.kind), 201


@bp.post("/groups/<key>/join")
@operation("Join an open group", response=groups.MembershipPublic)
@require_role("employee")
def group_join(key: str) -> groups.MembershipPublic:
    groups.join(session(), groups.get_group(session(), key), current_employee(), now=now())
    session().commit()
    return groups.MembershipPublic(member=True)


@bp.post("/groups/<key>/leave")
@operation("Leave an open group", response=groups.MembershipPublic)
@require_role("employee")
def group_leave(key: str) -> groups.MembershipPublic:
    groups.leave(session(), groups.get_group(session(), key), current_employee())
    session().commit()
    return groups.MembershipPublic(member=False)


@bp.put("/groups/<key>/members")
@operation("Set a managed group's members (owners, admins)", body=groups.MembersIn,
           response=groups.MembersSetPublic)
@require_role("employee")
def group_members(key: str) -> groups.MembersSetPublic:
    data = validated(groups.MembersIn, json_body())
    count = groups.set_members(session(), groups.get_group(session(), key), current_employee(), data.employee_ids)
    session().commit()
    return groups.MembersSetPublic(members=count)


@bp.get("/openapi.json")
@operation("This document", returns="OpenAPI 3.1")
@public
def openapi():  # type: ignore[no-untyped-def]
    return jsonify(document())
