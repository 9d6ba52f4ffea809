"""JSON API v1 for feedback: the inbox (authors, comms managers), replies, your own feedback, and a
post's reception (comms managers).

The inbox never names the writer of an unsigned comment: items carry the comment, the rating
and the times, and ``signed_by`` only when the writer signed.
"""
from __future__ import annotations

from flask import Blueprint, request

from intranet import feedback, reception
from intranet.errors import Forbidden, NotFound, validated
from intranet.languages import N_
from intranet.models import Post
from intranet.web.api import json_body
from intranet.web.context import current_employee, now, require_role, session
from intranet.web.feedback import message_domain
from intranet.web.openapi import operation

bp = Blueprint("intranet_feedback_api", __name__)

NOT_AN_AUTHOR = {403: "You neither write posts nor manage communications"}


def _item(feedback_id: int) -> feedback.FeedbackPublic:
    return feedback.item(session(), current_employee(), feedback_id, now=now())


@bp.get("/feedback")
@operation("Your feedback inbox: comments left with ratings on your posts (comms managers: on every post); "
           "waiting ones oldest first, with how long they have waited", query=feedback.InboxQuery,
           response=feedback.InboxPublic, responses=NOT_AN_AUTHOR)
@require_role("employee")
def inbox() -> feedback.InboxPublic:
    viewer = current_employee()
    if not feedback.may_use_inbox(session(), viewer):
        raise Forbidden(N_("The feedback inbox is for people who write posts and for comms managers."))
    args = validated(feedback.InboxQuery, request.args.to_dict(), what="query")
    summary = feedback.waiting_summary(session(), viewer, now=now())
    items = feedback.inbox(session(), viewer, now=now(), status=args.status)
    return feedback.InboxPublic(
        items=items, waiting=summary.count,
        overdue=summary.overdue, oldest_waiting_seconds=int(summary.oldest.total_seconds()) if summary.oldest else None)


@bp.get("/feedback/<int:feedback_id>")
@operation("One piece of feedback with its replies", response=feedback.FeedbackPublic)
@require_role("employee")
def detail(feedback_id: int) -> feedback.FeedbackPublic:
    return _item(feedback_id)


@bp.post("/feedback/<int:feedback_id>/replies")
@operation("Reply privately (only the writer sees it, in Beacon and by email when that is their channel); "
           "marks the feedback answered", body=feedback.ReplyIn, response=feedback.FeedbackPublic, status=201,
           returns="The feedback with your reply")
@require_role("employee")
def reply(feedback_id: int) -> tuple[feedback.FeedbackPublic, int]:
    viewer = current_employee()
    row, _post = feedback.feedback_or_404(session(), viewer, feedback_id)
    data = validated(feedback.ReplyIn, json_body(), what="reply")
    feedback.reply(session(), viewer, row, data, now=now(), message_domain=message_domain())
    session().commit()
    return _item(feedback_id), 201


@bp.post("/feedback/<int:feedback_id>/answered")
@operation("Mark feedback answered without replying", response=feedback.FeedbackPublic)
@require_role("employee")
def answered(feedback_id: int) -> feedback.FeedbackPublic:
    viewer = current_employee()
    row, _post = feedback.feedback_or_404(session(), viewer, feedback_id)
    feedback.mark_answered(session(), viewer, row, now=now())
    session().commit()
    return _item(feedback_id)


@bp.get("/me/feedback")
@operation("The feedback you left, with the replies it got", response=feedback.MyFeedbackListPublic)
@require_role("employee")
def mine() -> feedback.MyFeedbackListPublic:
    employee = current_employee()
    return feedback.MyFeedbackListPublic(
        items=feedback.mine(session(), employee),
        unseen_replies=feedback.unseen_replies(session(), employee))


@bp.post("/me/feedback/seen")
@operation("Mark the replies to your feedback as read", response=feedback.SeenPublic)
@require_role("employee")
def seen() -> feedback.SeenPublic:
    marked = feedback.mark_seen(session(), current_employee(), now=now())
    session().commit()
    return feedback.SeenPublic(marked=marked)


@bp.get("/posts/<int:post_id>/reception")
@operation("How a post was received (comms managers and admins): rating distribution, comments (named only "
           "when signed) and the departments, regions and levels of at least 5 people where it landed notably "
           "worse, judged on exposure with an empirical-Bayes test", response=reception.ReceptionPublic)
@require_role("comms")
def post_reception(post_id: int) -> reception.ReceptionPublic:
    post = session().get(Post, post_id)
    if post is None:
        raise NotFound(N_("This post does not exist."))
    return reception.for_post(session(), current_employee(), post, now=now()).public()
