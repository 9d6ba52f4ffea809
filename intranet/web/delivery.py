"""Reading events, preferences and digests on the web: the API and the preferences page.

``POST /api/v1/events`` is exempt from Beacon's CSRF check because ``navigator.sendBeacon``
cannot set headers; it checks the same token itself, taken from ``X-CSRFToken`` or from the
body's ``csrf_token``, and refuses cross-origin requests.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from sqlalchemy import select

from intranet import languages, people, preferences, zones
from intranet.languages import N_
from intranet.delivery import content, fatigue, planning, rendering
from intranet.engagement import events
from intranet.errors import InvalidInput, NotFound
from intranet.models import Employee
from intranet.web import csrf, i18n
from intranet.web.i18n import _, error_message
from intranet.web.context import current_employee, now, public, require_role, session, settings, state
from intranet.web.limits import request_json, request_json_as
from intranet.web.openapi import operation

api = Blueprint("intranet_delivery_api", __name__)
pages = Blueprint("intranet_delivery", __name__)


def _check_csrf(body: dict) -> None:
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        raise CSRFError("The request came from another site.")
    csrf.validate(request.headers.get("X-CSRFToken") or body.get("csrf_token"))


@api.post("/events")
@csrf.exempt  # checks the same token itself (sendBeacon cannot set headers): see _check_csrf
@operation("Record a batch of reading events (the CSRF token may be in the body)", body=events.EventBatchIn,
           response=events.IngestResult, returns="Per-event outcome: the accepted events are stored",
           responses={202: ("Per-event outcome: the accepted events are queued and stored within seconds "
                            "(INTRANET_EVENTS_BUFFER_URL)", events.IngestResult)})
@require_role("employee")
def post_events() -> tuple[events.IngestResult, int]:
    # A batch whose events are all well formed is validated in one pass over the raw bytes; any
    # other body is read as JSON and its events one by one, to say which were malformed.
    batch = request_json_as(events.BATCH, any_content_type=True)
    body: dict = batch if batch is not None else request_json(any_content_type=True)  # type: ignore[assignment]
    if not isinstance(body, dict):
        raise InvalidInput(N_('Send {"events": [...]} as JSON.'))
    _check_csrf(body)
    site, limits, buffer, recent = settings().site, settings().events, state().event_buffer, state().recently_visible
    result = events.ingest(session(), current_employee(), body.get("events"), now=now(),
                           user_agent=request.headers.get("User-Agent"), org_timezone=site.org_timezone,
                           max_batch=limits.max_batch, max_age=limits.max_age, max_skew=limits.max_skew,
                           buffer=buffer.append if buffer is not None else None, recent=recent,
                           checked=batch is not None)
    session().commit()
    return result, 202 if result.queued else 200


@api.get("/me/preferences")
@operation("Your delivery preferences", response=preferences.PreferencesPublic)
@require_role("employee")
def get_preferences() -> preferences.PreferencesPublic:
    return preferences.PreferencesPublic.of(preferences.for_employee(session(), current_employee()))


@api.put("/me/preferences")
@operation("Change your delivery preferences", body=preferences.PreferencesIn,
           response=preferences.PreferencesPublic, returns="Saved")
@require_role("employee")
def put_preferences() -> preferences.PreferencesPublic:
    change = preferences.parse(request_json())
    prefs = preferences.update(session(), current_employee(), change, now=now())  # type: ignore[arg-type]
    _replan(current_employee())
    session().commit()
    return preferences.PreferencesPublic.of(prefs)


def _replan(employee: Employee) -> None:
    # The person's planned slots follow their new preferences at once, so what goes out is what
    # the preferences page lists (the hourly planning run would otherwise catch up later).
    planning.replan_employee(session(), employee, now(), settings().digests.plan_horizon,
                             org_timezone=settings().site.org_timezone)


@api.get("/me/digest-schedule")
@operation("When your next digests go out, and why", response=planning.SchedulePublic)
@require_role("employee")
def digest_schedule() -> planning.SchedulePublic:
    return planning.SchedulePublic.model_validate(
        planning.schedule_for(session(), current_employee(), now(), org_timezone=settings().site.org_timezone,
                              language=i18n.locale()))


@api.get("/me/digests/latest")
@operation("Your latest digest, as sent", response=content.LatestDigestPublic)
@require_role("employee")
def latest_in_app_digest() -> content.LatestDigestPublic:
    return content.latest_in_app(session(), current_employee(), now())


@api.get("/org/digest-defaults")
@operation("Organisation digest defaults (comms managers)", response=preferences.DefaultsPublic)
@require_role("comms")
def get_org_defaults() -> preferences.DefaultsPublic:
    return preferences.DefaultsPublic.model_validate(preferences.org_defaults(session()))


@api.put("/org/digest-defaults")
@operation("Change organisation digest defaults (comms managers)", body=preferences.OrgDefaultsIn,
           response=preferences.DefaultsPublic, returns="Saved")
@require_role("comms")
def put_org_defaults() -> preferences.DefaultsPublic:
    change = preferences.parse(request_json(), preferences.OrgDefaultsIn)
    values = preferences.set_org_defaults(session(), change, by=current_employee(), now=now())  # type: ignore[arg-type]
    session().commit()
    return preferences.DefaultsPublic.model_validate(values)


# --------------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------------

DAY_NAMES = (N_("Monday"), N_("Tuesday"), N_("Wednesday"), N_("Thursday"), N_("Friday"), N_("Saturday"), N_("Sunday"))
#: The preferences form's numeric fields, as people know them.
FORM_NUMBERS = {"weekly_day": N_("The day of the weekly digest"), "quiet_start": N_("The start of quiet hours"),
                "quiet_end": N_("The end of quiet hours"), "working_days": N_("A working day")}


def _zone_context(employee: Employee) -> dict[str, object]:
    """The time-zone field: the choices, the person's zone, and whether they chose it themselves."""
    return {"zone_choices": zones.choices(i18n.locale()), "own_zone": people.chose_own_zone(session(), employee),
            "current_zone": zones.canonical_for(employee.timezone)
            or zones.canonical_for(settings().site.org_timezone) or "UTC"}


def _language_context(employee: Employee) -> dict[str, object]:
    """The language field: the languages Beacon speaks (each in its own words), the person's choice, the directory's."""
    directory = languages.supported(employee.language)
    directory_name = languages.name(directory) if directory else i18n.gettext("not set, so your browser's")
    return {"language_choices": [(code, languages.NAMES[code]) for code in languages.SUPPORTED],
            "own_language": languages.supported(i18n.chosen_language(employee.id)),
            "directory_language_name": directory_name}


def _page_context(employee: Employee) -> dict[str, object]:
    """What the preferences page shows besides the form: the schedule, the weekly budget, the time zone, the language."""
    return {"schedule": planning.schedule_for(session(), employee, now(), org_timezone=settings().site.org_timezone,
                                                   language=i18n.locale()),
            "budget": fatigue.budget_for(session(), employee, now(), settings().fatigue.weekly_budget),
            "cadence_notice": fatigue.shown(session(), employee, i18n.locale()), "fatigue_policy": settings().fatigue,
            "days": DAY_NAMES, **_zone_context(employee), **_language_context(employee)}


@pages.get("/preferences")
@require_role("employee")
def preferences_page():  # type: ignore[no-untyped-def]
    employee = current_employee()
    prefs = preferences.for_employee(session(), employee)
    return render_template("intranet/preferences.html", employee=employee, prefs=prefs, **_page_context(employee))


#: The answers to a cadence notice (:mod:`intranet.delivery.fatigue`), and what each one says back.
CADENCE_CHOICES = {
    "accept": (fatigue.accept, N_("Done: your digest now comes %(to)s.")),
    "dismiss": (fatigue.dismiss, N_("Fine: your digest keeps coming %(from_)s.")),
    "keep": (fatigue.keep, N_("Your digest keeps coming %(to)s.")),
    "undo": (fatigue.undo, N_("Done: your digest comes %(from_)s again.")),
}


@pages.post("/preferences/cadence-notice")
@require_role("employee")
def answer_cadence_notice():  # type: ignore[no-untyped-def]
    """Accept or dismiss a suggested gentler cadence; keep or undo an automatic step down."""
    employee = current_employee()
    choice = CADENCE_CHOICES.get(request.form.get("choice", ""))
    if choice is None:
        raise InvalidInput(_("Choose accept, dismiss, keep or undo."), details={"field": "choice"})
    action, said = choice
    notice = action(session(), employee, now())
    _replan(employee)
    session().commit()
    flash(_(said, to=_(fatigue.CADENCE_NAMES[notice.to_cadence]), from_=_(fatigue.CADENCE_NAMES[notice.from_cadence])))
    back = "intranet_feed.index" if request.form.get("back") == "feed" else "intranet_delivery.preferences_page"
    return redirect(url_for(back))


@pages.post("/preferences")
@require_role("employee")
def preferences_save():  # type: ignore[no-untyped-def]
    employee = current_employee()
    form = request.form

    def topics(name: str) -> list[str]:
        return [t.strip() for t in form.get(name, "").split(",") if t.strip()]

    def number(name: str, raw: str | None, default: int) -> int:
        raw = (raw or "").strip()
        if not raw:
            return default
        # Only ASCII digits, and few of them: int() also reads "²"-like digits wrongly and
        # refuses thousands of digits with a ValueError of its own.
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 2):
            raise InvalidInput(_("%(field)s must be chosen from the list, not %(value)s.", field=_(FORM_NUMBERS[name]),
                                 value=repr(raw[:20])), details={"field": name})
        return int(raw)

    try:
        data = {
            "cadence": form.get("cadence"),
            "weekly_day": number("weekly_day", form.get("weekly_day"), 0),
            "channels": form.getlist("channels"),
            "quiet_start": number("quiet_start", form.get("quiet_start"), 20),
            "quiet_end": number("quiet_end", form.get("quiet_end"), 7),
            "working_days": [number("working_days", d, 0) for d in form.getlist("working_days")],
            "followed_topics": topics("followed_topics"),
            "muted_topics": topics("muted_topics"),
            "learned_timing": form.get("learned_timing") == "on",
            "device": form.get("device") or "either",
            "open_tracking": form.get("open_tracking") == "on",
        }
        # Only what differs from the organisation's defaults becomes the person's own choice, so a
        # later change of a default still reaches them.
        chosen = preferences.for_employee(session(), employee).chosen
        defaults = preferences.org_defaults(session())
        data = {k: v for k, v in data.items() if k in chosen or v != defaults.get(k)}
        if "language" in form:
            data["language"] = form.get("language") or None
        change = preferences.parse(data)
        if "timezone" in form:  # first, so the re-planned digest uses the new zone
            people.set_own_zone(session(), employee, form.get("timezone") or None, now=now())
        preferences.update(session(), employee, change, now=now())  # type: ignore[arg-type]
    except InvalidInput as exc:
        prefs = preferences.for_employee(session(), employee)
        return render_template("intranet/preferences.html", employee=employee, prefs=prefs, error=error_message(exc),
                               **_page_context(employee)), 422
    _replan(employee)
    session().commit()
    i18n.refresh()  # the confirmation, and the page after it, in the language just chosen
    flash(_("Your preferences are saved."))
    return redirect(url_for("intranet_delivery.preferences_page"))


def _employee_from_token(token: str) -> Employee:
    employee_id = rendering.unsubscribed_employee_id(state().secret_key, token)
    employee = None if employee_id is None else session().execute(
        select(Employee).where(Employee.employee_id == employee_id)).scalar()
    if employee is None:
        raise NotFound(_("This unsubscribe link is not valid."))

    return employee


@pages.get("/digest/unsubscribe/<token>")
@public  # the signed token in the URL is the credential
def unsubscribe_page(token: str):  # type: ignore[no-untyped-def]
    employee = _employee_from_token(token)
    return render_template("intranet/unsubscribe.html", token=token, name=employee.display_name, done=False)


@pages.post("/digest/unsubscribe/<token>")
@csrf.exempt  # RFC 8058: mail clients POST without a session; the signed token is the credential
@public  # the signed token in the URL is the credential
def unsubscribe(token: str):  # type: ignore[no-untyped-def]
    """RFC 8058 one-click unsubscribe (mail clients POST ``List-Unsubscribe=One-Click``) and the page's button."""
    employee = _employee_from_token(token)
    preferences.update(session(), employee, preferences.PreferencesIn(cadence="off"), now=now())
    session().commit()
    return render_template("intranet/unsubscribe.html", token=token, name=employee.display_name, done=True)

