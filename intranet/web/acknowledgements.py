"""Who acknowledged a must-read: the list and its CSV, for the post's author and admins."""
from __future__ import annotations

import logging

from flask import Blueprint, Response, render_template

from intranet import acknowledgements, csv_export
from intranet.models import Employee, Post
from intranet.web.context import current_employee, require_role, session

logger = logging.getLogger(__name__)

bp = Blueprint("intranet_acknowledgements", __name__)


@bp.app_template_global("beacon_may_list_acknowledgements")
def may_list(employee: Employee | None, post: Post | None) -> bool:
    """Whether to offer *employee* the acknowledgement list of *post* (templates ask this)."""
    return bool(employee and post and post.must_read and acknowledgements.may_list(session(), employee, post))


@bp.get("/publish/posts/<int:post_id>/acks")
@require_role("employee")  # the post's author or an admin: checked on the post
def page(post_id: int):  # type: ignore[no-untyped-def]
    employee = current_employee()
    post = acknowledgements.must_read_or_404(session(), employee, post_id)
    roster = acknowledgements.roster(session(), post)
    # A named list is personal data: each look is logged, like the directory's audit trail.
    logger.info("Acknowledgements: %s listed who acknowledged post %s", employee.employee_id, post.id)
    return render_template("intranet/analytics/acknowledgements.html", employee=employee, post=post, roster=roster)


@bp.get("/publish/posts/<int:post_id>/acks.csv")
@require_role("employee")
def export(post_id: int):  # type: ignore[no-untyped-def]
    employee = current_employee()
    post = acknowledgements.must_read_or_404(session(), employee, post_id)
    roster = acknowledgements.roster(session(), post)
    logger.info("Acknowledgements: %s exported who acknowledged post %s", employee.employee_id, post.id)
    body = csv_export.to_csv(acknowledgements.CSV_HEADER, acknowledgements.csv_rows(roster))
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="post-{post.id}-acknowledgements.csv"'})
