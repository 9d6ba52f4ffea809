"""JSON API v1 for engagement analytics (comms managers and admins): aggregate-only, never a person.

``GET /api/v1/analytics/posts/<id>`` and ``GET /api/v1/analytics/reading-hours``.
"""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, request

from intranet import zones
from intranet.analytics import queries, rollups
from intranet.errors import InvalidInput, NotFound
from intranet.models import Post
from intranet.web import openapi
from intranet.web.context import now, require_role, session, settings

bp = Blueprint("intranet_analytics_api", __name__)
#: Queued live batches folded before an answer (the fold job takes the rest within a minute).
FOLD_BEFORE_ANSWER = 2000


def _fold_recent() -> None:
    # Events ingested in the last moments are still queued: fold them first, so an answer
    # counts every read already acknowledged to its sender. Rollups are derived data, so this
    # write on a GET changes nothing anyone asked to change.
    if rollups.fold_pending(session(), org_timezone=settings().site.org_timezone, limit=FOLD_BEFORE_ANSWER):
        session().commit()


@bp.get("/analytics/posts/<int:post_id>")
@require_role("comms")
def post_analytics(post_id: int):  # type: ignore[no-untyped-def]
    post = session().get(Post, post_id)
    if post is None:
        raise NotFound("No such post.")
    _fold_recent()
    return queries.post_analytics(session(), post, k=settings().analytics.min_group).to_json()


def _day(name: str) -> dt.date | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a date such as 2026-11-24.", details={"field": name}) from None


@bp.get("/analytics/reading-hours")
@require_role("comms")
def reading_hours():  # type: ignore[no-untyped-def]
    raw_zone = request.args.get("zone") or rollups.LOCAL
    zone = raw_zone if raw_zone == rollups.LOCAL else zones.parse_zone(raw_zone, field="zone")
    start, end = queries.default_window(zone, now())
    end = _day("to") or end
    start = _day("from") or (end - dt.timedelta(days=queries.DEFAULT_DAYS - 1))
    if start > end or (end - start).days > 3660:
        raise InvalidInput("from must be on or before to, at most ten years apart.", details={"field": "from"})
    _fold_recent()
    return queries.reading_hours(session(), zone=zone, start=start, end=end, k=settings().analytics.min_group,
                                 org_timezone=settings().site.org_timezone).to_json()


_COUNT = {"type": "integer", "minimum": 0}
GROUP_ROW = {"type": "object", "required": ["value", "audience", "reached", "read"], "properties": {
    "value": {"type": ["string", "integer", "null"], "description": "The group (a level's number; null: not known)"},
    "audience": _COUNT, "reached": _COUNT, "read": _COUNT}}
POST_ANALYTICS = {"type": "object", "required": ["post_id", "audience", "reached", "read", "acknowledged", "by"],
                  "properties": {
                      "post_id": {"type": "integer"},
                      "audience": {**_COUNT, "description": "Active people the post targets now (exact headcount)"},
                      "reached": {**_COUNT, "description": "People who saw it, opened it or were sent it"},
                      "read": {**_COUNT, "description": "People with an open or read event on it"},
                      "acknowledged": _COUNT,
                      "by": {"type": "object", "description": "Groups of fewer than INTRANET_ANALYTICS_MIN_GROUP "
                                                              "people are left out, with more so no subtraction "
                                                              "reveals them",
                             "properties": {d: {"type": "array", "items": {"$ref": "#/components/schemas/AnalyticsGroup"}}
                                            for d in rollups.DIMENSIONS}}}}
READING_HOURS = {"type": "object", "required": ["zone", "from", "to", "cells"], "properties": {
    "zone": {"type": "string"}, "from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date"},
    "cells": {"type": "array", "description": "Cells read by fewer than INTRANET_ANALYTICS_MIN_GROUP people are left out",
              "items": {"type": "object", "required": ["weekday", "hour", "reads", "readers"], "properties": {
                  "weekday": {"type": "integer", "minimum": 0, "maximum": 6, "description": "Monday = 0"},
                  "hour": {"type": "integer", "minimum": 0, "maximum": 23}, "reads": _COUNT, "readers": _COUNT}}}}}

openapi.register({
    "/analytics/posts/{post_id}": {"get": {
        "summary": "Engagement with one post: audience, reached, read, acknowledged, by department, region and "
                   "level (comms managers and admins)",
        "parameters": openapi.POST_ID,
        "responses": {"200": {"description": "Aggregates", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/PostAnalytics"}}}}}}},
    "/analytics/reading-hours": {"get": {
        "summary": "Reads and distinct readers by weekday and hour (comms managers and admins)",
        "parameters": [
            {"name": "zone", "in": "query", "schema": {"type": "string", "default": "local"},
             "description": "'local' (each reader's own time, days in UTC) or an IANA zone"},
            {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"},
             "description": "First day (default: 27 days before 'to')"},
            {"name": "to", "in": "query", "schema": {"type": "string", "format": "date"},
             "description": "Last day (default: today)"}],
        "responses": {"200": {"description": "Cells", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/ReadingHours"}}}}}}},
}, {"AnalyticsGroup": GROUP_ROW, "PostAnalytics": POST_ANALYTICS, "ReadingHours": READING_HOURS})
