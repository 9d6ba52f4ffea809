"""Employees' pages: the feed and a post. Reading is recorded by the page's POST, never by GET."""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for

from intranet import attachments, feed, feedback, post_versions, ratings, targeting
from intranet.delivery import fatigue
from intranet.models import PostState
from intranet.web import i18n
from intranet.web.context import current_employee, now, require_role, session, settings

bp = Blueprint("intranet_feed", __name__)


@bp.get("/")
@require_role("employee")
def index():  # type: ignore[no-untyped-def]
    employee = current_employee()
    reader = feed.reader(session(), employee)
    page = feed.feed_page(session(), employee, now=now(), cursor=request.args.get("cursor") or None,
                          limit=settings().site.feed_page_size, prefs=reader.prefs)
    session().commit()  # the first page stores the ranked order the cursor names
    cards, my_ratings = feed.rated_cards(session(), [item.post for item in page.items], employee)
    page = post_versions.localize_page(session(), page, i18n.locale())
    return render_template("intranet/feed/index.html", employee=employee, page=page,
                           cards=cards, my_ratings=my_ratings,
                           cadence_notice=fatigue.view_of(reader.notice, i18n.locale()),
                           new_replies=reader.unseen_replies)


@bp.get("/posts/<int:post_id>")
@require_role("employee")
def post(post_id: int):  # type: ignore[no-untyped-def]
    employee = current_employee()
    post = targeting.visible_post_or_404(session(), employee, post_id, now())
    state = session().get(PostState, (employee.id, post.id))
    return render_template("intranet/feed/post.html", employee=employee, state=state,
                           post=post_versions.one(session(), post, i18n.locale()),
                           card=feed.cards(session(), [post])[post.id],
                           files=[f for f in attachments.attachments_of(session(), post) if f.kind != "image"],
                           my_rating=ratings.my_rating(session(), employee=employee, post=post),

                           my_feedback=feedback.mine(session(), employee, post_id=post.id),
                           new_replies=feedback.unseen_replies(session(), employee))


@bp.post("/posts/<int:post_id>/acknowledge")
@require_role("employee")
def acknowledge(post_id: int):  # type: ignore[no-untyped-def]
    employee = current_employee()
    post = targeting.visible_post_or_404(session(), employee, post_id, now())
    feed.acknowledge(session(), employee, post, now=now())
    session().commit()
    return redirect(url_for("intranet_feed.post", post_id=post.id))
