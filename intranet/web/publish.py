"""The publishing desk: write, target, preview, review and publish posts; and the attachment route.

Pages work without JavaScript (plain forms); ``static/intranet/js/publish.js`` adds the live
audience count and ``editor.js`` the rich-text editor. Every handler: load, check access, act
through :mod:`intranet.posts`, commit, redirect.
"""
from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, flash, redirect, render_template, request, send_file, url_for

from intranet import attachments, feed, languages, post_versions, posts, reception, targeting, zones
from intranet.db import storable_utc
from intranet.journeys import definitions
from intranet.errors import Forbidden, IntranetError, InvalidInput, NotFound, validated
from intranet.models import Attachment, Employee, Post
from intranet.web import audience_form
from intranet.languages import N_, Phrase
from intranet.web.i18n import _, error_message, locale
from intranet.web.context import current_employee, now, require_role, session, settings

logger = logging.getLogger(__name__)

bp = Blueprint("intranet_publish", __name__)

#: Audience fields of one segment, in the order the builder shows them.
DIMENSIONS = tuple(targeting.SEGMENT_FIELDS)
STATUS_TABS = ("draft", "in_review", "scheduled", "published", "expired", "unpublished")
#: The desk's tab of journey steps (posts released to one person at a time, see intranet.journeys).
JOURNEY_TAB = "journey_steps"


def upload_dir() -> Path:
    """Where attachments are stored: ``INTRANET_UPLOAD_DIR`` or ``uploads/`` in the instance folder."""
    configured = settings().uploads.upload_dir
    return Path(configured) if configured else Path(current_app.instance_path) / "uploads"


def receive_upload(post: Post, employee: Employee, *, missing: IntranetError,
                   unnamed_is_missing: bool = False) -> Attachment:
    """Check and store the request's ``file`` for *post*: the one upload path of the desk and the API.

    :param missing: what to answer a request that carries no file.
    :param unnamed_is_missing: whether a file sent with no name counts as none.
    :raise Forbidden: when *employee* may not edit *post*.
    :raise posts.TooLarge: when the request or the file is over ``INTRANET_MAX_ATTACHMENT_BYTES``.
    :raise InvalidInput: for *missing*, or a type Beacon does not store.
    """
    if not posts.may_edit(session(), employee, post):
        raise Forbidden(N_("You may not add files to this post."))
    limit = settings().uploads.max_attachment_bytes
    # The multipart envelope around the file may add a little; anything far larger is refused unread.
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise posts.TooLarge(N_("The file is larger than %(size)s MB; upload a smaller one."), size=limit // (1024 * 1024),
                             details={"field": "file", "limit": limit})
    file = request.files.get("file")
    if file is None or (unnamed_is_missing and not file.filename):
        raise missing
    return attachments.store(
        session(), data=attachments.read_upload(file.stream, limit), filename=file.filename or "", post=post,
        uploader=employee, upload_dir=upload_dir(), now=now(),
        max_image_bytes=settings().uploads.max_image_bytes)


# --------------------------------------------------------------------------------------------
# Reading the form
# --------------------------------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(zones.parse_zone(name))


#: The desk's time fields, as its refusals name them.
TIME_FIELDS: dict[str, Phrase] = {"ack_deadline": Phrase(N_("ack deadline")), "publish_at": Phrase(N_("publish at")),
                                  "expires_at": Phrase(N_("expires at"))}


def _local_time(field: str, zone: ZoneInfo) -> dt.datetime | None:
    raw = request.form.get(field, "").strip()
    if not raw:
        return None
    try:
        naive = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(N_("%(field)s: %(value)s is not a date and time."), field=TIME_FIELDS[field], value=repr(raw),
                           details={"field": field}) from None
    try:
        return storable_utc(naive.replace(tzinfo=zone) if naive.tzinfo is None else naive)
    except ValueError as exc:
        raise InvalidInput(N_("%(field)s: %(problem)s."), field=TIME_FIELDS[field], problem=Phrase(str(exc)),
                           details={"field": field}) from None


def _small_number(raw: str) -> bool:
    # ASCII digits only, and few: int() reads "²" and "٣" its own way and refuses 5,000 digits.
    return raw.isascii() and raw.isdigit() and len(raw) <= 3


def _segments(prefix: str) -> list[dict[str, Any]]:
    indexes = sorted({int(k.split("-")[1]) for k in request.form if k.startswith(prefix + "-")
                      and _small_number(k.split("-")[1])})
    segments = []
    for i in indexes:
        segment: dict[str, Any] = {}
        for dimension in DIMENSIONS:
            values = [v.strip() for v in request.form.getlist(f"{prefix}-{i}-{dimension}") if v.strip()]
            if values:
                segment[dimension] = values
        for bound in ("level_min", "level_max"):
            raw = request.form.get(f"{prefix}-{i}-{bound}", "").strip()
            if raw:
                if not _small_number(raw):
                    raise InvalidInput(N_("Levels are whole numbers from 1 to 10, not %(value)s."), value=repr(raw[:20]))
                segment[bound] = int(raw)
        raw = request.form.get(f"{prefix}-{i}-hired_within_days", "").strip()
        if raw:
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 4):
                raise InvalidInput(N_("“Hired in the last … days” is a whole number of days, not %(value)s."), value=repr(raw[:20]))
            segment["hired_within_days"] = int(raw)
        if segment:
            segments.append(segment)
    return segments


def form_audience() -> dict[str, Any] | None:
    """The audience the builder describes, or None when nothing is chosen."""
    audience: dict[str, Any] = {}
    if request.form.get("all_staff"):
        audience["all"] = True
    else:
        include = _segments("inc")
        if include:
            audience["segments"] = include
    exclude = _segments("exc")
    if audience and exclude:
        audience["exclude"] = exclude
    return audience or None


def form_fields(employee: Employee) -> dict[str, Any]:
    """The post fields in the form, with local times read in the chosen time zone."""
    zone = _zone(request.form.get("timezone") or _default_zone(employee))
    return {
        "title": request.form.get("title", ""), "summary": request.form.get("summary", ""),
        "body_html": request.form.get("body_html", ""), "topic": request.form.get("topic", "") or "General",
        "must_read": bool(request.form.get("must_read")), "rating_style": request.form.get("rating_style", "stars"),
        "language": request.form.get("language") or languages.DEFAULT,
        "ack_deadline": _local_time("ack_deadline", zone), "publish_at": _local_time("publish_at", zone),
        "expires_at": _local_time("expires_at", zone), "audience": form_audience(),
    }


# --------------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------------


def _default_zone(employee: Employee) -> str:
    """The zone the editor reads and shows local times in: the author's, else the organisation's (canonical)."""
    return zones.canonical_for(employee.timezone) or zones.canonical_for(settings().site.org_timezone) or "UTC"


def _editor_context(post: Post | None, employee: Employee, form: dict[str, Any] | None = None) -> dict[str, Any]:
    db = session()
    zone_name = _default_zone(employee)
    context: dict[str, Any] = {
        "employee": employee, "post": post, "form": form, "zone_name": zone_name, "zone": ZoneInfo(zone_name),
        "zone_choices": zones.choices(locale()), "choices": audience_form.criteria(db, locale()),
        # Everyone who may write a post sees its exact audience count, live as they choose and on
        # the saved draft alike (the same rule as POST /api/v1/audiences/preview).
        "can_count_live": posts.may_author(db, employee), "now": now(),
        "beacon_languages": [(code, languages.NAMES[code]) for code in languages.SUPPORTED],
    }
    if post is not None:
        # An audience stored before audiences were bounded may be too large to count at all.
        countable = bool(post.audience) and targeting.within_bounds(post.audience)
        transitions, revisions = posts.history(db, post)
        pks = ({t.actor_pk for t in transitions} | {r.edited_by_pk for r in revisions} | {post.author_pk}) - {None}
        context.update(
            allowed=posts.allowed(db, employee, post), status=posts.effective_status(post, now()),
            transitions=transitions, revisions=revisions,
            people={pk: db.get(Employee, pk) for pk in pks},
            files=attachments.attachments_of(db, post), translations=post_versions.versions(db, post.id),
            journey_step=definitions.steps_by_post(db, [post.id]).get(post.id) if post.journey_only else None,
            sample=posts.audience_sample(db, post) if countable else [],
            # Comms managers see how a post that went out was received (ratings, comments, segments).
            reception=(reception.for_post(db, employee, post, now=now())
                       if employee.has_role("comms") and post.published_at is not None else None),
        )
    # The count describes what the builder shows: after a refused save, the choices in the form.
    shown = form_audience_or_none() if form is not None else (post.audience if post is not None else None)
    breakdown = audience_form.breakdown(db, shown)
    context.update(breakdown=breakdown, audience_state=audience_form.state(shown, breakdown))
    return context


_audience_for_template = audience_form.for_template


@bp.app_template_filter("beacon_local")
def _local(value: dt.datetime | None, zone: ZoneInfo) -> str:
    """A stored UTC time as the value of a datetime-local input in *zone*."""
    return value.astimezone(zone).strftime("%Y-%m-%dT%H:%M") if value else ""


@bp.get("/publish")
@require_role("employee")
def index():  # type: ignore[no-untyped-def]
    employee = current_employee()
    if not posts.may_author(session(), employee):
        raise Forbidden(_("The publishing desk is for contributors, comms managers and group owners."))
    status = request.args.get("status") or None
    if status not in (None, *STATUS_TABS, JOURNEY_TAB):
        status = None
    # Journey steps are released person by person, not published to an audience: they have a tab
    # of their own, each under its journey, and stay out of the status tabs.
    if status == JOURNEY_TAB:
        rows = posts.manageable_posts(session(), employee, journey_steps=True, limit=200)
    else:
        rows = posts.manageable_posts(session(), employee, status=status, journey_steps=False, limit=200)
    authors = {pk: session().get(Employee, pk) for pk in {p.author_pk for p in rows} - {None}}
    return render_template("intranet/publish/index.html", employee=employee, rows=rows, authors=authors,
                           status=status, tabs=STATUS_TABS, journey_tab=JOURNEY_TAB,
                           steps=definitions.steps_by_post(session(), [p.id for p in rows if p.journey_only]),
                           may_author=True,  # only authors get here
                           effective=lambda p: posts.effective_status(p, now()))


@bp.get("/publish/new")
@require_role("employee")
def new():  # type: ignore[no-untyped-def]
    employee = current_employee()
    if not posts.may_author(session(), employee):
        raise Forbidden(_("Only contributors, comms managers and group owners write posts."))
    return render_template("intranet/publish/edit.html", audience=_audience_for_template(None),
                           **_editor_context(None, employee))


@bp.post("/publish/new")
@require_role("employee")
def create():  # type: ignore[no-untyped-def]
    employee = current_employee()
    try:
        # The form's time is the draft's planned time; publishing is a separate, reviewed step.
        post = posts.create_post(session(), validated(posts.PostCreate, form_fields(employee), what=None),
                                 author=employee, now=now(), as_draft=True)
    except IntranetError as exc:
        session().rollback()
        return render_template("intranet/publish/edit.html", error=error_message(exc),
                               audience=_audience_for_template(request.form and form_audience_or_none()),
                               **_editor_context(None, employee, form=request.form)), getattr(exc, "status", 422)
    session().commit()
    flash(_("Draft saved."), "ok")
    return redirect(url_for("intranet_publish.edit", post_id=post.id))


def form_audience_or_none() -> dict[str, Any] | None:
    try:
        return form_audience()
    except IntranetError:
        return None


@bp.get("/publish/posts/<int:post_id>")
@require_role("employee")
def edit(post_id: int):  # type: ignore[no-untyped-def]
    employee = current_employee()
    post = posts.managed_post_or_404(session(), employee, post_id)
    return render_template("intranet/publish/edit.html", audience=_audience_for_template(post.audience),
                           **_editor_context(post, employee))


@bp.post("/publish/posts/<int:post_id>")
@require_role("employee")
def save(post_id: int):  # type: ignore[no-untyped-def]
    employee = current_employee()
    post = posts.managed_post_or_404(session(), employee, post_id)
    try:
        fields = form_fields(employee)
        if fields["audience"] is None:
            fields.pop("audience")
        posts.update_post(session(), post, validated(posts.PostUpdate, fields, what=None), actor=employee, now=now())
    except IntranetError as exc:
        session().rollback()
        post = posts.managed_post_or_404(session(), employee, post_id)
        return render_template("intranet/publish/edit.html", error=error_message(exc),
                               audience=_audience_for_template(form_audience_or_none() or post.audience),
                               **_editor_context(post, employee, form=request.form)), getattr(exc, "status", 422)
    session().commit()
    flash(_("Saved."), "ok")
    return redirect(url_for("intranet_publish.edit", post_id=post.id))


@bp.post("/publish/posts/<int:post_id>/translations")
@require_role("employee")
def save_translation(post_id: int):  # type: ignore[no-untyped-def]
    """Add or replace the post's version in one more language."""
    employee = current_employee()
    post = posts.managed_post_or_404(session(), employee, post_id)
    fields = {name: request.form.get(name, "") for name in ("language", "title", "summary", "body_html")}
    try:
        data = validated(post_versions.TranslationIn, fields, what=None)
        post_versions.save(session(), post, data, actor=employee, now=now())  # type: ignore[arg-type]
    except IntranetError as exc:
        return _back_to_editor(post_id, exc)
    session().commit()
    flash(_("Translation saved: %(language)s.", language=languages.name(fields["language"])), "ok")
    return redirect(url_for("intranet_publish.edit", post_id=post.id, _anchor="translations"))


@bp.post("/publish/posts/<int:post_id>/translations/<language>/delete")
@require_role("employee")
def remove_translation(post_id: int, language: str):  # type: ignore[no-untyped-def]
    """Remove the post's version in *language*."""
    employee = current_employee()
    post = posts.managed_post_or_404(session(), employee, post_id)
    try:
        post_versions.remove(session(), post, language, actor=employee)
    except IntranetError as exc:
        return _back_to_editor(post_id, exc)
    session().commit()
    flash(_("Translation removed: %(language)s.", language=languages.name(language)), "ok")
    return redirect(url_for("intranet_publish.edit", post_id=post.id, _anchor="translations"))


def _back_to_editor(post_id: int, exc: IntranetError):  # type: ignore[no-untyped-def]

    """After a refused step: undo what it did, say why, and show the post's editor again."""
    session().rollback()
    flash(error_message(exc), "error")
    return redirect(url_for("intranet_publish.edit", post_id=post_id))


def _delete(db: Any, post: Post, *, actor: Employee, now: dt.datetime, comment: str) -> Post | None:
    return posts.delete_post(db, post, actor=actor, now=now)  # the desk's delete asks for no comment


#: The desk's buttons: the review and publishing moves the API has too, and delete.
MOVES = {**{name: step.move for name, step in posts.ACTIONS.items()}, "delete": _delete}
DONE = {"submit": N_("Submitted for review."), "approve": N_("Approved."), "request-changes": N_("Sent back to the author."),
        "publish": N_("Published."), "unpublish": N_("Unpublished: it is gone from every feed."), "delete": N_("Deleted.")}


@bp.post("/publish/posts/<int:post_id>/<action>")
@require_role("employee")
def act(post_id: int, action: str):  # type: ignore[no-untyped-def]
    employee = current_employee()
    post = posts.managed_post_or_404(session(), employee, post_id)
    if action not in MOVES:
        raise NotFound(N_("No such action."))
    files = attachments.files_of(session(), post, upload_dir()) if action == "delete" else []
    try:
        result = MOVES[action](session(), post, actor=employee, now=now(),
                               comment=request.form.get("comment", "").strip())
    except IntranetError as exc:
        return _back_to_editor(post_id, exc)
    session().commit()
    if action == "delete" and result is None:
        attachments.unlink(files)  # only once the rows are gone for good
    message = _(DONE[action])
    if action == "publish" and post.status == "scheduled":
        message = _("Scheduled.")
    flash(message, "ok")
    if action == "delete" and result is None:
        return redirect(url_for("intranet_publish.index"))
    return redirect(url_for("intranet_publish.edit", post_id=post_id))


@bp.get("/publish/posts/<int:post_id>/preview")
@require_role("employee")
def preview(post_id: int):  # type: ignore[no-untyped-def]
    employee = current_employee()
    post = posts.managed_post_or_404(session(), employee, post_id)
    files = attachments.attachments_of(session(), post)
    return render_template("intranet/publish/preview.html", employee=employee, post=post,
                           files=[f for f in files if f.kind != "image"], card=feed.cards(session(), [post])[post.id])


@bp.get("/publish/posts/<int:post_id>/preview-as")
@require_role("employee")
def preview_as(post_id: int):  # type: ignore[no-untyped-def]
    employee = current_employee()
    post = posts.managed_post_or_404(session(), employee, post_id)
    who = request.args.get("who", "").strip()
    if not who:
        flash(_("Choose a member of the audience to preview as."), "error")
        return redirect(url_for("intranet_publish.edit", post_id=post_id))
    try:
        subject = posts.find_member(session(), who)
        at, items = posts.preview_feed(session(), post, subject=subject, viewer=employee, now=now())
    except IntranetError as exc:
        return _back_to_editor(post_id, exc)
    session().commit()  # the preview log
    return render_template("intranet/publish/preview_feed.html", employee=employee, post=post, subject=subject,
                           at=at, items=items)


@bp.post("/publish/posts/<int:post_id>/attachments")
@require_role("employee")
def upload(post_id: int):  # type: ignore[no-untyped-def]
    employee = current_employee()
    post = posts.managed_post_or_404(session(), employee, post_id)
    try:
        # A file input left empty arrives as a file with no name.
        receive_upload(post, employee, missing=InvalidInput(N_("Choose a file to attach.")), unnamed_is_missing=True)
    except IntranetError as exc:
        return _back_to_editor(post_id, exc)
    session().commit()
    flash(_("File attached."), "ok")
    return redirect(url_for("intranet_publish.edit", post_id=post_id))


@bp.get("/attachments/<int:attachment_id>")
@require_role("employee")
def attachment(attachment_id: int):  # type: ignore[no-untyped-def]
    employee = current_employee()
    found = attachments.downloadable_or_404(session(), employee, attachment_id, now())
    path = attachments.path_for(upload_dir(), found)
    if not path.exists():
        logger.error("Attachment %s has no file at %s", found.id, path)
        raise NotFound(N_("This file does not exist."))
    response = send_file(path, mimetype=found.content_type, as_attachment=found.kind != "image",
                         download_name=found.filename, max_age=0)
    # Even if a browser sniffed a file as HTML, it would run in a sandbox with no script allowed.
    # frame-ancestors and base-uri do not fall back to default-src: say them, as every other answer does.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'; sandbox")
    return response
