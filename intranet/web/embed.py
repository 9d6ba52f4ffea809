"""Beacon inside any web page: the iframe page, its sign-in, and the script widget's feed.

* ``GET /embed/feed`` is the iframe fallback: the signed-in person's feed, server-rendered, framed
  only by ``INTRANET_EMBED_ORIGINS``. Signed out, it waits for a sign-in: an embed token posted by
  the (allowed) framing page, or a Beacon sign-in in a window of its own (``/embed/hand-off``),
  and exchanges it at ``POST /embed/session`` for a session cookie fit for a third-party frame.
* ``GET /api/v1/embed/feed`` is what the script widget (``static/intranet/js/widget.js``) reads;
  it rates and acknowledges through the ordinary API (``PUT /api/v1/posts/<id>/rating``, ``POST
  /api/v1/posts/<id>/acknowledge``), which allowed origins may call (:mod:`intranet.web.cross_origin`).
"""
from __future__ import annotations

from flask import Blueprint, abort, make_response, redirect, render_template, request, session as flask_session, url_for

from intranet import embed_feed, embed_tokens, feed, languages, ratings, targeting
from intranet.errors import validated
from intranet.web import auth, csrf, i18n
from intranet.web.api import FeedQuery
from intranet.web.context import current_employee, current_employee_or_none, now, public, require_role, session, settings, state
from intranet.web.cross_origin import EMBED_SESSION_KEY, bearer_token, cross_origin, frameable, keys
from intranet.web.openapi import operation

pages = Blueprint("intranet_embed", __name__)
api = Blueprint("intranet_embed_api", __name__)


@pages.get("/embed/feed")
@frameable
@public  # signed out, it shows how to sign in inside the frame
def feed_page():  # type: ignore[no-untyped-def]
    employee = current_employee_or_none()
    if employee is None:
        return render_template("intranet/embed/connect.html", origins=settings().embed.origins)
    page = feed.feed_page(session(), employee, now=now(), limit=settings().site.feed_page_size)
    session().commit()  # the first page stores the ranked order (as the feed page does)
    posts = [item.post for item in page.items]
    return render_template("intranet/embed/feed.html", employee=employee, page=page,
                           my_ratings=ratings.mine_for(session(), employee=employee, post_ids=[p.id for p in posts]))


@pages.post("/embed/posts/<int:post_id>/acknowledge")
@frameable
@require_role("employee")
def acknowledge(post_id: int):  # type: ignore[no-untyped-def]
    employee = current_employee()
    post = targeting.visible_post_or_404(session(), employee, post_id, now())
    feed.acknowledge(session(), employee, post, now=now())
    session().commit()
    return redirect(url_for("intranet_embed.feed_page") + f"#post-{post.id}", code=303)


@pages.get("/embed/hand-off")
@require_role("employee")
def hand_off():  # type: ignore[no-untyped-def]
    # A window of Beacon's own (first-party, signed in the usual way) hands the framed page a
    # one-minute token; the page script posts it to its opener, which must be Beacon's origin.
    token = embed_tokens.mint_hand_off(keys(), current_employee(), now=now())
    response = make_response(render_template("intranet/embed/hand_off.html", token=token))
    response.headers["Cross-Origin-Opener-Policy"] = "unsafe-none"  # keep window.opener for the hand-off
    return response


@api.get("/embed/feed")
@operation("Your feed for the embeddable widget: the feed's posts with each one's rating style, your rating and "
           "its address in Beacon. Allowed embedding origins may call it (CORS) with Beacon's session or an "
           "embed token (Authorization: Bearer)", query=FeedQuery, response=embed_feed.WidgetFeedPublic)
@cross_origin
@require_role("employee")
def widget_feed() -> embed_feed.WidgetFeedPublic:
    employee = current_employee()
    args = validated(FeedQuery, request.args.to_dict(), what="query")
    page = embed_feed.widget_page(
        session(), employee, now=now(), cursor=args.cursor or None, limit=settings().site.feed_page_size,
        post_url=lambda post_id: url_for("intranet_feed.post", post_id=post_id, _external=True),
        csrf_token=None if bearer_token() else csrf.token(), language=i18n.locale())
    session().commit()
    return page


@api.get("/embed/messages")
@operation("The script widget's own words (headings, buttons, states, announcements) in the reader's language: "
           "the signed-in person's (session or embed token), else the browser's Accept-Language. Allowed embedding "
           "origins may call it (CORS); it needs no sign-in", response=embed_feed.WidgetWordsPublic)
@cross_origin
@public  # the words of a signed-out widget ("Sign in to see your news") are needed most
def widget_words() -> embed_feed.WidgetWordsPublic:
    try:
        language = i18n.locale()
    except embed_tokens.TokenRefused:  # an expired token: the widget fetches a fresh one; words need no one
        language = request.accept_languages.best_match(languages.SUPPORTED) or languages.DEFAULT
    return embed_feed.widget_words(language)


@api.post("/embed/session")
@operation("Exchange an embed token (Authorization: Bearer) for a session of the iframe page: a cookie kept in "
           "third-party frames (SameSite=None; Secure; Partitioned) that serves the embed views only. Each token "
           "is exchanged once", status=204, returns="Signed in",
           responses={401: "The token is missing, tampered, expired, for another audience, names nobody, or was "
                           "used before"})
@csrf.exempt  # the proof is the embed token in the Authorization header, which no cross-site form can send
@cross_origin
@public
def start_session() -> tuple[str, int]:
    if state().employee_loader is not None:
        abort(404)  # the host signs people in: Beacon keeps no sessions of its own
    token = bearer_token()
    if token is None:
        raise embed_tokens.TokenRefused("Send the embed token as 'Authorization: Bearer <token>'.")
    claims = embed_tokens.verify(token, keys(), now=now())
    employee = embed_tokens.employee_for(session(), claims, settings().embed.token_subject)
    embed_tokens.use_once(session(), claims)
    session().commit()
    auth.sign_in(employee)
    # Good on the embed views only, in a cookie a third-party frame keeps (see sessions.py).
    flask_session[EMBED_SESSION_KEY] = True
    return "", 204
