"""JSON API v1 for engagement analytics (comms managers and admins): aggregate-only, never a person.

``GET /api/v1/analytics/posts/<id>`` and ``GET /api/v1/analytics/reading-hours``.
"""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, request
from pydantic import BaseModel, Field, field_validator

from intranet import zones
from intranet.analytics import queries, rollups
from intranet.errors import InvalidInput, NotFound, validated
from intranet.languages import N_
from intranet.models import Post
from intranet.web.context import now, require_role, session, settings
from intranet.web.openapi import operation

bp = Blueprint("intranet_analytics_api", __name__)

#: Queued live batches folded before an answer (the fold job takes the rest within a minute).
FOLD_BEFORE_ANSWER = 2000
#: The days a reading-hours window may name (far enough from the calendar's ends to step past them).
EARLIEST, LATEST = dt.date(1970, 1, 1), dt.date(9000, 12, 31)


class ReadingHoursQuery(BaseModel):
    """``GET /api/v1/analytics/reading-hours``'s query string."""

    zone: str = Field(default=rollups.LOCAL, description="'local' (each reader's own time, days in UTC) or an IANA zone")
    start: dt.date | None = Field(default=None, alias="from", ge=EARLIEST, le=LATEST,
                                  description="First day (default: 27 days before 'to')")
    end: dt.date | None = Field(default=None, alias="to", ge=EARLIEST, le=LATEST, description="Last day (default: today)")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _blank_is_default(cls, value: object) -> object:
        return value or None


def _fold_recent() -> None:
    # Events ingested in the last moments are still queued: fold them first, so an answer
    # counts every read already acknowledged to its sender. Rollups are derived data, so this
    # write on a GET changes nothing anyone asked to change.
    rollups.fold_pending(session(), org_timezone=settings().site.org_timezone, limit=FOLD_BEFORE_ANSWER)
    session().commit()  # always: a fold's turn (an advisory lock on PostgreSQL) lasts until commit


@bp.get("/analytics/posts/<int:post_id>")
@operation("Engagement with one post: audience, reached, read, acknowledged, by department, region and level "
           "(comms managers and admins)", response=queries.PostAnalytics, scope="analytics:read")
@require_role("comms")
def post_analytics(post_id: int) -> queries.PostAnalytics:
    post = session().get(Post, post_id)
    if post is None:
        raise NotFound(N_("No such post."))
    _fold_recent()
    return queries.post_analytics(session(), post, k=settings().analytics.min_group)


@bp.get("/analytics/reading-hours")
@operation("Reads and distinct readers by weekday and hour (comms managers and admins)", query=ReadingHoursQuery,
           response=queries.ReadingHours, scope="analytics:read")
@require_role("comms")
def reading_hours() -> queries.ReadingHours:
    args = validated(ReadingHoursQuery, request.args.to_dict(), what="query")
    zone = args.zone if args.zone == rollups.LOCAL else zones.parse_zone(args.zone, field="zone")
    start, end = queries.default_window(zone, now())
    end = args.end or end
    start = args.start or (end - dt.timedelta(days=queries.DEFAULT_DAYS - 1))
    if start > end or (end - start).days > 3660:
        raise InvalidInput(N_("from must be on or before to, at most ten years apart."), details={"field": "from"})
    _fold_recent()
    return queries.reading_hours(session(), zone=zone, start=start, end=end, k=settings().analytics.min_group,
                                 org_timezone=settings().site.org_timezone)
