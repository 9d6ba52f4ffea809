"""Rating from pages: the feed's and the post page's forms, and the confirmation page of the
rating links in digests and Teams cards.

The forms work without JavaScript (a POST with the CSRF token, then back to the page);
``static/intranet/js/ratings.js`` sends the same choice to the JSON API instead. A rating link
only ever shows the confirmation page: the rating is saved by that page's POST, never by the
GET, so mail scanners that open every link rate nothing.
"""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from sqlmodel import select

from intranet import ratings, targeting
from intranet.errors import NotFound
from intranet.models import Employee, Post
from intranet.web.cross_origin import frameable
from intranet.web.i18n import _
from intranet.web.context import current_employee, now, public, require_role, session, settings, state
from intranet.web.ratings_api import count_rating_attempt

bp = Blueprint("intranet_ratings", __name__)


def _back(post: Post) -> str:
    # A fixed choice of destinations, not a URL from the form: nothing to redirect elsewhere.
    if request.form.get("return_to") == "feed":
        return url_for("intranet_feed.index") + f"#post-{post.id}"
    if request.form.get("return_to") == "embed":
        return url_for("intranet_embed.feed_page") + f"#post-{post.id}"
    return url_for("intranet_feed.post", post_id=post.id) + "#rating"


@bp.post("/posts/<int:post_id>/rating")
@frameable  # the iframe page's rating forms post here too
@require_role("employee")
def rate(post_id: int):  # type: ignore[no-untyped-def]
    count_rating_attempt()
    employee = current_employee()
    post = targeting.visible_post_or_404(session(), employee, post_id, now())
    if request.form.get("withdraw"):
        ratings.withdraw(session(), employee=employee, post=post)
    else:
        data = ratings.from_form(request.form, with_comment="comment" in request.form)
        ratings.rate(session(), employee=employee, post=post, rating=data, now=now())
    session().commit()
    return redirect(_back(post), code=303)


# --------------------------------------------------------------------------------------------
# Rating links (digest emails, Teams cards)
# --------------------------------------------------------------------------------------------


def _link_target(token: str) -> tuple[ratings.RatingLink, Employee, Post]:
    """The link's person and post, while the person is active and may still see the post.

    :raise NotFound: for a bad or expired token, a departed person, or a post they cannot see.
    """
    link = ratings.read_link_token(state().secret_key, token,
                                   max_age=settings().ratings.link_max_age)
    employee = session().exec(select(Employee).where(Employee.employee_id == link.employee_id)).first()
    if employee is None or not employee.active:
        raise NotFound(_("This rating link is not valid any more; rate the post from your feed."))

    return link, employee, targeting.visible_post_or_404(session(), employee, link.post_id, now())


@bp.get("/rate/<token>")
@public
def confirm_page(token: str):  # type: ignore[no-untyped-def]
    link, employee, post = _link_target(token)
    mine = ratings.my_rating(session(), employee=employee, post=post)
    choice = ratings.link_choice(link, request.args)
    return render_template("intranet/rate_confirm.html", token=token, post=post, mine=mine, choice=choice,
                           name=employee.display_name, done=False, csrf_form=True)


@bp.post("/rate/<token>")
@public
def confirm(token: str):  # type: ignore[no-untyped-def]
    link, employee, post = _link_target(token)
    count_rating_attempt(employee)
    data = ratings.from_form(request.form, with_comment=True)
    rating = ratings.rate(session(), employee=employee, post=post, rating=data, now=now())
    session().commit()
    return render_template("intranet/rate_confirm.html", token=token, post=post, mine=rating, choice=None,
                           name=employee.display_name, done=True, csrf_form=True)
