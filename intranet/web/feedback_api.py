"""JSON API v1 for feedback: the inbox (authors, comms managers), replies, and your own feedback.

The inbox never names the writer of an unsigned comment: items carry the comment, the rating
and the times, and ``signed_by`` only when the writer signed.
"""
from __future__ import annotations

from flask import Blueprint, request

from intranet import feedback
from intranet.errors import Forbidden, InvalidInput, validated
from intranet.web import openapi
from intranet.web.api import json_body
from intranet.web.context import current_employee, now, require_role, session
from intranet.web.feedback import message_domain

bp = Blueprint("intranet_feedback_api", __name__)


@bp.get("/feedback")
@require_role("employee")
def inbox():  # type: ignore[no-untyped-def]
    viewer = current_employee()
    if not feedback.may_use_inbox(session(), viewer):
        raise Forbidden("The feedback inbox is for people who write posts and for comms managers.")
    status = request.args.get("status", "waiting")
    if status not in feedback.STATUSES:
        raise InvalidInput('status must be "waiting", "answered" or "all".',
                           details=[{"loc": "status", "message": "unknown value"}])
    summary = feedback.waiting_summary(session(), viewer, now=now())
    return {"items": [i.to_json() for i in feedback.inbox(session(), viewer, now=now(), status=status)],
            "waiting": summary.count, "overdue": summary.overdue,
            "oldest_waiting_seconds": int(summary.oldest.total_seconds()) if summary.oldest else None}


@bp.get("/feedback/<int:feedback_id>")
@require_role("employee")
def detail(feedback_id: int):  # type: ignore[no-untyped-def]
    return feedback.item(session(), current_employee(), feedback_id, now=now()).to_json()


@bp.post("/feedback/<int:feedback_id>/replies")
@require_role("employee")
def reply(feedback_id: int):  # type: ignore[no-untyped-def]
    viewer = current_employee()
    row, _post = feedback.feedback_or_404(session(), viewer, feedback_id)
    data = validated(feedback.ReplyIn, json_body(), what="reply")
    feedback.reply(session(), viewer, row, data, now=now(), message_domain=message_domain())
    session().commit()
    return feedback.item(session(), viewer, feedback_id, now=now()).to_json(), 201


@bp.post("/feedback/<int:feedback_id>/answered")
@require_role("employee")
def answered(feedback_id: int):  # type: ignore[no-untyped-def]
    viewer = current_employee()
    row, _post = feedback.feedback_or_404(session(), viewer, feedback_id)
    feedback.mark_answered(session(), viewer, row, now=now())
    session().commit()
    return feedback.item(session(), viewer, feedback_id, now=now()).to_json()


@bp.get("/me/feedback")
@require_role("employee")
def mine():  # type: ignore[no-untyped-def]
    employee = current_employee()
    return {"items": [i.to_json() for i in feedback.mine(session(), employee)],
            "unseen_replies": feedback.unseen_replies(session(), employee)}


@bp.post("/me/feedback/seen")
@require_role("employee")
def seen():  # type: ignore[no-untyped-def]
    marked = feedback.mark_seen(session(), current_employee(), now=now())
    session().commit()
    return {"marked": marked}


def _documented() -> None:
    ref = {"$ref": "#/components/schemas/Error"}
    reply_view = {"type": "object", "required": ["body", "created_at", "by", "seen"], "properties": {
        "body": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"},
        "by": {"type": "string", "description": "Who answered"}, "seen": {"type": "boolean"}}}
    item = {"type": "object", "required": ["id", "post_id", "comment", "signed", "received_at", "replies"],
            "description": "Feedback as the inbox shows it: the writer is named only when they signed",
            "properties": {
                "id": {"type": "integer"}, "post_id": {"type": "integer"}, "post_title": {"type": "string"},
                "comment": {"type": ["string", "null"], "description": "null once the writer withdrew it"},
                "signed": {"type": "boolean"}, "signed_by": {"type": ["string", "null"]},
                "stars": {"type": ["integer", "null"]}, "thumb": {"enum": ["up", "down", None]},
                "received_at": {"type": "string", "format": "date-time"},
                "waiting_seconds": {"type": ["integer", "null"], "description": "How long it has waited (null: answered)"},
                "overdue": {"type": "boolean", "description": "Waiting more than a day"},
                "answered_at": {"type": ["string", "null"], "format": "date-time"},
                "replies": {"type": "array", "items": {"$ref": "#/components/schemas/FeedbackReply"}}}}
    mine = {"type": "object", "properties": {
        "id": {"type": "integer"}, "post_id": {"type": "integer"}, "post_title": {"type": "string"},
        "comment": {"type": ["string", "null"]}, "signed": {"type": "boolean"},
        "received_at": {"type": "string", "format": "date-time"}, "answered": {"type": "boolean"},
        "replies": {"type": "array", "items": {"$ref": "#/components/schemas/FeedbackReply"}}}}
    reply_in = feedback.ReplyIn.model_json_schema(ref_template="#/components/schemas/{model}")
    fid = [{"name": "feedback_id", "in": "path", "required": True, "schema": openapi.ID}]
    one = {"description": "The feedback", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/FeedbackItem"}}}}
    openapi.register({
        "/feedback": {"get": {
            "summary": "Your feedback inbox: comments on your posts (comms managers: on every post); waiting "
                       "ones oldest first, with how long they have waited",
            "parameters": [{"name": "status", "in": "query",
                            "schema": {"enum": list(feedback.STATUSES), "default": "waiting"}}],
            "responses": {"200": {"description": "The inbox", "content": {"application/json": {"schema": {
                "type": "object", "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/FeedbackItem"}},
                    "waiting": {"type": "integer"}, "overdue": {"type": "integer"},
                    "oldest_waiting_seconds": {"type": ["integer", "null"]}}}}}},
                "403": {"description": "You neither write posts nor manage communications",
                        "content": {"application/json": {"schema": ref}}}}}},
        "/feedback/{feedback_id}": {"get": {"summary": "One piece of feedback with its replies",
                                            "parameters": fid, "responses": {"200": one}}},
        "/feedback/{feedback_id}/replies": {"post": {
            "summary": "Reply privately (only the writer sees it; by email too when that is their channel); "
                       "marks the feedback answered",
            "parameters": fid,
            "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReplyIn"}}}},
            "responses": {"201": one}}},
        "/feedback/{feedback_id}/answered": {"post": {"summary": "Mark feedback answered without replying",
                                                      "parameters": fid, "responses": {"200": one}}},
        "/me/feedback": {"get": {"summary": "The feedback you left, with the replies it got",
                                 "responses": {"200": {"description": "Yours", "content": {"application/json": {
                                     "schema": {"type": "object", "properties": {
                                         "items": {"type": "array", "items": {"$ref": "#/components/schemas/MyFeedback"}},
                                         "unseen_replies": {"type": "integer"}}}}}}}}},
        "/me/feedback/seen": {"post": {"summary": "Mark the replies to your feedback as read",
                                       "responses": {"200": {"description": "How many were new"}}}},
    }, {"FeedbackItem": item, "FeedbackReply": reply_view, "MyFeedback": mine, "ReplyIn": reply_in})


_documented()
