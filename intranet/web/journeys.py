"""Journey desk pages for comms managers: list, create, edit steps, pause and resume, a timeline
preview for a sample person, and per-step measurement.

Handlers read as load, check access, act (through :mod:`intranet.journeys`), commit, redirect.
Employees get the same 403 as for any desk page; the steps' posts stay invisible to them until
released (the targeting rule, not these pages, decides that).
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import func
from sqlmodel import select

from intranet import posts
from intranet.errors import InvalidInput, validated
from intranet.journeys import definitions, reports
from intranet.models import Employee, JourneyEnrolment, JourneyStep, Post
from intranet.web.context import current_employee, now, require_role, session, settings
from intranet.web.i18n import _, error_message

bp = Blueprint("intranet_journeys", __name__)


def _journey_form() -> dict[str, Any]:
    return {"name": request.form.get("name", ""), "description": request.form.get("description", ""),
            "trigger": request.form.get("trigger", "")}


def _step_form() -> dict[str, Any]:
    def number(field: str) -> Any:
        raw = request.form.get(field, "").strip()
        return raw if raw else None

    return {"key": request.form.get("key", "").strip(), "offset_days": number("offset_days") or 0,
            "title": request.form.get("title", ""), "summary": request.form.get("summary", ""),
            "body_html": request.form.get("body_html", ""), "topic": request.form.get("topic", "Onboarding"),
            "must_read": bool(request.form.get("must_read")),
            "skip_unless_read": request.form.get("skip_unless_read") or None,
            "reminder_after_days": number("reminder_after_days")}


@bp.get("/journeys")
@require_role("comms")
def index():  # type: ignore[no-untyped-def]
    journeys = definitions.all_journeys(session())
    steps = dict(session().exec(select(JourneyStep.journey_id, func.count()).group_by(JourneyStep.journey_id)).all())
    enrolled = dict(session().exec(select(JourneyEnrolment.journey_id, func.count())
                                   .group_by(JourneyEnrolment.journey_id)).all())
    return render_template("intranet/journeys/index.html", employee=current_employee(), journeys=journeys,
                           steps=steps, enrolled=enrolled, triggers=definitions.TRIGGER_LABELS)


@bp.get("/journeys/new")
@require_role("comms")
def new():  # type: ignore[no-untyped-def]
    return render_template("intranet/journeys/new.html", employee=current_employee(), form={},
                           triggers=definitions.TRIGGER_LABELS)


@bp.post("/journeys/new")
@require_role("comms")
def create():  # type: ignore[no-untyped-def]
    form = _journey_form()
    try:
        data = validated(definitions.JourneyIn, form, what="journey")
    except InvalidInput as exc:
        flash(error_message(exc), "error")
        return render_template("intranet/journeys/new.html", employee=current_employee(), form=form,
                               triggers=definitions.TRIGGER_LABELS), 422
    journey = definitions.create_journey(session(), data, author=current_employee(), now=now())
    session().commit()
    flash(_("Journey created. Add its steps below."), "ok")
    return redirect(url_for("intranet_journeys.detail", journey_id=journey.id))


def _detail(journey_id: int, *, step_form: dict[str, Any] | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    journey = definitions.journey_or_404(session(), journey_id)
    enrolled, stats = reports.measure(session(), journey, k=settings().analytics.min_group)
    steps = definitions.steps_of(session(), journey.id)
    return render_template("intranet/journeys/detail.html", employee=current_employee(), journey=journey,
                           steps=steps, others=[step for step, _ in steps], stats=stats, enrolled=enrolled,
                           min_group=settings().analytics.min_group, triggers=definitions.TRIGGER_LABELS,
                           step_form=step_form or {}), status


@bp.get("/journeys/<int:journey_id>")
@require_role("comms")
def detail(journey_id: int):  # type: ignore[no-untyped-def]
    return _detail(journey_id)


@bp.post("/journeys/<int:journey_id>")
@require_role("comms")
def update(journey_id: int):  # type: ignore[no-untyped-def]
    journey = definitions.journey_or_404(session(), journey_id)
    data = validated(definitions.JourneyIn, _journey_form(), what="journey")
    definitions.update_journey(session(), journey, data, now=now())
    session().commit()
    flash(_("Journey saved."), "ok")
    return redirect(url_for("intranet_journeys.detail", journey_id=journey.id))


@bp.post("/journeys/<int:journey_id>/status")
@require_role("comms")
def set_status(journey_id: int):  # type: ignore[no-untyped-def]
    journey = definitions.journey_or_404(session(), journey_id)
    paused = request.form.get("status") == "paused"
    definitions.set_paused(session(), journey, paused, now=now())
    session().commit()
    flash(_("Journey paused: nothing is released until you resume it.") if paused else _("Journey resumed."), "ok")
    return redirect(url_for("intranet_journeys.detail", journey_id=journey.id))


@bp.post("/journeys/<int:journey_id>/steps")
@require_role("comms")
def add_step(journey_id: int):  # type: ignore[no-untyped-def]
    journey = definitions.journey_or_404(session(), journey_id)
    form = _step_form()
    try:
        data = validated(definitions.StepIn, form, what="step")
        definitions.add_step(session(), journey, data, author=current_employee(), now=now())
    except InvalidInput as exc:
        session().rollback()
        flash(error_message(exc), "error")
        return _detail(journey_id, step_form=form, status=422)
    session().commit()
    flash(_("Step added."), "ok")
    return redirect(url_for("intranet_journeys.detail", journey_id=journey.id))


def _step_page(journey_id: int, step_id: int, form: dict[str, Any] | None, status: int = 200):  # type: ignore[no-untyped-def]
    journey = definitions.journey_or_404(session(), journey_id)
    step = definitions.step_or_404(session(), journey, step_id)
    post = session().get(Post, step.post_id)
    assert post is not None
    if form is None:
        form = {"key": step.key, "offset_days": step.offset_days, "title": post.title, "summary": post.summary,
                "body_html": post.body_html, "topic": post.topic, "must_read": post.must_read,
                "skip_unless_read": step.skip_unless_read, "reminder_after_days": step.reminder_after_days}
    others = [s for s, _ in definitions.steps_of(session(), journey.id) if s.id != step.id]
    return render_template("intranet/journeys/step.html", employee=current_employee(), journey=journey, step=step,
                           form=form, others=others), status


@bp.get("/journeys/<int:journey_id>/steps/<int:step_id>")
@require_role("comms")
def step_page(journey_id: int, step_id: int):  # type: ignore[no-untyped-def]
    return _step_page(journey_id, step_id, None)


@bp.post("/journeys/<int:journey_id>/steps/<int:step_id>")
@require_role("comms")
def update_step(journey_id: int, step_id: int):  # type: ignore[no-untyped-def]
    journey = definitions.journey_or_404(session(), journey_id)
    step = definitions.step_or_404(session(), journey, step_id)
    form = _step_form()
    try:
        definitions.update_step(session(), journey, step, validated(definitions.StepIn, form, what="step"), now=now())
    except InvalidInput as exc:
        session().rollback()
        flash(error_message(exc), "error")
        return _step_page(journey_id, step_id, form, status=422)
    session().commit()
    flash(_("Step saved."), "ok")
    return redirect(url_for("intranet_journeys.detail", journey_id=journey_id))


@bp.get("/journeys/<int:journey_id>/timeline")
@require_role("comms")
def timeline(journey_id: int):  # type: ignore[no-untyped-def]
    journey = definitions.journey_or_404(session(), journey_id)
    who = request.args.get("employee", "").strip()
    person: Employee | None = None
    status = 200
    if who:
        try:
            person = posts.find_member(session(), who)
        except InvalidInput as exc:
            flash(error_message(exc), "error")
            status = 422
    if person is None:
        # A sample: the most recent hire (for hire journeys the dates then mean something), else the viewer.
        person = session().exec(select(Employee).where(Employee.active.is_(True), Employee.hire_date.is_not(None))
                                .order_by(Employee.hire_date.desc(), Employee.id).limit(1)).first() \
            or current_employee()
    start, rows = reports.timeline(session(), journey, person, now(), org_timezone=settings().site.org_timezone,
                                   rules=settings().journeys)
    return render_template("intranet/journeys/timeline.html", employee=current_employee(), journey=journey,
                           person=person, start=start, rows=rows, who=who,
                           triggers=definitions.TRIGGER_LABELS), status
