"""Feedback pages: the inbox of comments left with ratings, one comment with its reply form, and
the writer's own "your feedback" list.

Handlers read as load, check access, act, commit, redirect. Authors reach the feedback on their
own posts, comms managers and admins all of it; any other feedback is the same 404 as a missing
one. The reply's email (when the writer chose email) is queued with the reply and sent by the
feedback mail job after this commit.
"""
from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for

from intranet import csv_export, feedback
from intranet.errors import Forbidden, NotFound, validated
from intranet.models import Post
from intranet.web.i18n import _
from intranet.web.context import current_employee, now, require_role, session, settings

bp = Blueprint("intranet_feedback", __name__)


def message_domain() -> str:
    return settings().site.base_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0] or "beacon.local"


@bp.get("/feedback")
@require_role("employee")
def inbox():  # type: ignore[no-untyped-def]
    viewer = current_employee()
    if not feedback.may_use_inbox(session(), viewer):
        raise Forbidden(_("The feedback inbox is for people who write posts and for comms managers."))
    status = request.args.get("status")
    status = status if status in feedback.STATUSES else "waiting"
    return render_template("intranet/feedback/inbox.html", employee=viewer, status=status,
                           statuses=feedback.STATUSES, items=feedback.inbox(session(), viewer, now=now(), status=status),
                           summary=feedback.waiting_summary(session(), viewer, now=now()))


@bp.get("/feedback/<int:feedback_id>")
@require_role("employee")
def thread(feedback_id: int):  # type: ignore[no-untyped-def]
    viewer = current_employee()
    return render_template("intranet/feedback/thread.html", employee=viewer,
                           item=feedback.item(session(), viewer, feedback_id, now=now()))


@bp.post("/feedback/<int:feedback_id>/reply")
@require_role("employee")
def reply(feedback_id: int):  # type: ignore[no-untyped-def]
    viewer = current_employee()
    row, _post = feedback.feedback_or_404(session(), viewer, feedback_id)
    data = validated(feedback.ReplyIn, {"body": request.form.get("body", "")}, what="reply")
    feedback.reply(session(), viewer, row, data, now=now(), message_domain=message_domain())
    session().commit()
    flash(_("Reply sent. Only the person who wrote this feedback sees it."), "ok")
    return redirect(url_for("intranet_feedback.thread", feedback_id=feedback_id))


@bp.post("/feedback/<int:feedback_id>/answered")
@require_role("employee")
def answered(feedback_id: int):  # type: ignore[no-untyped-def]
    viewer = current_employee()
    row, _post = feedback.feedback_or_404(session(), viewer, feedback_id)
    feedback.mark_answered(session(), viewer, row, now=now())
    session().commit()
    flash(_("Marked as answered."), "ok")
    return redirect(url_for("intranet_feedback.inbox"))


@bp.get("/feedback/mine")
@require_role("employee")
def mine():  # type: ignore[no-untyped-def]
    employee = current_employee()
    return render_template("intranet/feedback/mine.html", employee=employee,
                           items=feedback.mine(session(), employee))


@bp.post("/feedback/mine/seen")
@require_role("employee")
def seen():  # type: ignore[no-untyped-def]
    feedback.mark_seen(session(), current_employee(), now=now())
    session().commit()
    return redirect(url_for("intranet_feedback.mine"))


@bp.get("/publish/posts/<int:post_id>/feedback.csv")
@require_role("employee")
def export(post_id: int):  # type: ignore[no-untyped-def]
    viewer = current_employee()
    post = session().get(Post, post_id)
    if post is None or not feedback.may_see(session(), viewer, post):
        raise NotFound(_("This post does not exist."))
    items = feedback.inbox(session(), viewer, now=now(), status="all", post_id=post.id, limit=100_000)
    body = csv_export.to_csv(feedback.CSV_HEADER, feedback.csv_rows(items))
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="post-{post.id}-feedback.csv"'})
