"""JSON API v1 for ratings: ``PUT`` and ``DELETE /api/v1/posts/<id>/rating``.

Every write is counted against the person's rate limit first (committed at once, so refused and
invalid attempts count too), then reads as load, check access, act, commit.
"""
from __future__ import annotations

from flask import Blueprint

from intranet import ratings, targeting, throttle
from intranet.errors import TooManyRequests, validated
from intranet.languages import N_
from intranet.models import Employee
from intranet.web import security_events
from intranet.web.api import json_body
from intranet.web.cross_origin import cross_origin
from intranet.web.context import current_employee, now, require_role, session, settings
from intranet.web.openapi import operation

bp = Blueprint("intranet_ratings_api", __name__)


def count_rating_attempt(employee: Employee | None = None) -> None:
    """Count one rating write by *employee* (default: the signed-in person) against their per-minute budget.

    The count is committed here, before the rating is even read: a refused or invalid attempt
    must use up budget as well, and the counter's row lock should not outlive this statement.

    :raise TooManyRequests: when the person is over ``INTRANET_RATINGS_PER_MINUTE``.
    """
    limits = settings().ratings
    if employee is not None:  # a rating link: the person is not signed in, the link names them
        security_events.acting_for(employee)
    employee = employee or current_employee()
    verdict = throttle.hit(session(), f"rating:{employee.id}", limit=limits.per_minute,
                           window=limits.window, now=now())
    session().commit()
    if not verdict.allowed:
        raise TooManyRequests(N_("You have rated too often; try again in %(seconds)s seconds."), seconds=verdict.retry_after,
                              retry_after=verdict.retry_after)


LIMITED = {429: "Over INTRANET_RATINGS_PER_MINUTE; Retry-After says when to try again"}


@bp.put("/posts/<int:post_id>/rating")
@operation("Rate a post you can see (stars or a thumb, as the post's rating_style says); a second rating "
           "replaces the first", body=ratings.RatingIn, response=ratings.RatingPublic, returns="The stored rating",
           responses={422: "Invalid, or not the post's rating style", **LIMITED})
@cross_origin  # the embeddable widget rates through here
@require_role("employee")
def rate(post_id: int) -> ratings.RatingPublic:
    count_rating_attempt()
    employee = current_employee()
    post = targeting.visible_post_or_404(session(), employee, post_id, now())
    data = validated(ratings.RatingIn, json_body())
    rating = ratings.rate(session(), employee=employee, post=post, rating=data, now=now())
    session().commit()
    return ratings.RatingPublic.of(rating)


@bp.delete("/posts/<int:post_id>/rating")
@operation("Withdraw your rating of a post (nothing to withdraw is fine)", status=204, returns="Withdrawn",
           responses=LIMITED)
@cross_origin
@require_role("employee")
def withdraw(post_id: int) -> tuple[str, int]:
    count_rating_attempt()
    employee = current_employee()
    post = targeting.visible_post_or_404(session(), employee, post_id, now())
    ratings.withdraw(session(), employee=employee, post=post)
    session().commit()
    return "", 204
