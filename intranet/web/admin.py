"""Admin pages: who holds which role, and the organisation's digest defaults.

Both were reachable only from the command line (``flask intranet roles ...``) and the API
(``/api/v1/org/digest-defaults``); these pages apply the same rules: roles are for admins, the
defaults for comms managers (admins hold every role), and every change is a CSRF-checked POST.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlmodel import select

from intranet import people, preferences
from intranet.directory import lifecycle
from intranet.errors import Forbidden, InvalidInput, IntranetError, NotFound
from intranet.models import ROLES, Employee
from intranet.languages import N_, Phrase
from intranet.web.context import current_employee, now, require_role, session, settings
from intranet.web.i18n import _, error_message

logger = logging.getLogger(__name__)

bp = Blueprint("intranet_admin", __name__)

ROLE_LABELS = {"contributor": N_("Contributor"), "comms": N_("Comms manager"), "admin": N_("Admin")}
DAY_NAMES = (N_("Monday"), N_("Tuesday"), N_("Wednesday"), N_("Thursday"), N_("Friday"), N_("Saturday"), N_("Sunday"))
CADENCE_LABELS = (("off", N_("Never (must-reads still reach people)")), ("as_it_happens", N_("As it happens")),
                  ("daily", N_("Once a day")), ("twice_daily", N_("Twice a day")), ("weekly", N_("Once a week")))


@bp.get("/admin/people")
@require_role("admin")
def roles_page():  # type: ignore[no-untyped-def]
    query = request.args.get("q", "").strip()[:100]
    return render_template("intranet/admin/people.html", employee=current_employee(), query=query,
                           holders=people.with_roles(session()), found=people.search(session(), query) if query else [],
                           roles=ROLES, role_labels=ROLE_LABELS)


@bp.post("/admin/people/<employee_id>/roles")
@require_role("admin")
def set_roles(employee_id: str):  # type: ignore[no-untyped-def]
    actor = current_employee()
    person = _person_or_404(employee_id)
    try:
        people.set_roles(session(), person, request.form.getlist("roles"), actor=actor)
    except IntranetError as exc:
        session().rollback()
        flash(error_message(exc), "error")
    else:
        session().commit()
        held = [ROLE_LABELS[r] for r in ROLES if getattr(person, people.ROLE_COLUMNS[r])]
        logger.info("Roles: %s set %s's roles to %s", actor.employee_id, person.employee_id, held or "none")
        flash(_("%(name)s: %(roles)s.", name=person.display_name,
                roles=", ".join(_(r) for r in held) if held else _("no roles")), "ok")
    return redirect(url_for("intranet_admin.roles_page", q=request.form.get("q") or None))


def _person_or_404(employee_id: str) -> Employee:
    person = session().exec(select(Employee).where(Employee.employee_id == employee_id)).first()
    if person is None:
        raise NotFound(_("Nobody has that employee number."))
    return person


@bp.get("/admin/people/<employee_id>/erase")
@require_role("admin")
def erase_page(employee_id: str):  # type: ignore[no-untyped-def]
    return render_template("intranet/admin/erase.html", employee=current_employee(), person=_person_or_404(employee_id),
                           kinds=[_(lifecycle.KIND_WORDS[name]) for name, _table in lifecycle.PERSONAL_ROWS])


@bp.post("/admin/people/<employee_id>/erase")
@require_role("admin")
def erase(employee_id: str):  # type: ignore[no-untyped-def]
    actor, person = current_employee(), _person_or_404(employee_id)
    if person.id == actor.id:
        raise Forbidden(_("You cannot erase yourself; ask another admin."))
    if request.form.get("confirm", "").strip() != person.employee_id:
        flash(_("Type the employee number to confirm the erasure."), "error")
        return redirect(url_for("intranet_admin.erase_page", employee_id=employee_id))
    result = lifecycle.erase(session(), person, now(), org_timezone=settings().site.org_timezone)
    session().commit()
    # The log keeps that an erasure happened and by whom, not who was erased (that is what was asked).
    logger.info("Erasure: %s erased a person (now %s): %s", actor.employee_id, result.employee_id, result.deleted)
    flash(_("The person is erased: their profile is anonymized and their personal data deleted."), "ok")
    return redirect(url_for("intranet_admin.roles_page"))


def _number(raw: str | None, what: str) -> int:
    raw = (raw or "").strip()
    # Only a few ASCII digits: int() reads "²"-like digits and refuses thousands of digits itself.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 2):
        raise InvalidInput(N_("%(field)s must be chosen from the list."), field=Phrase(what))
    return int(raw)


def _defaults_form() -> dict[str, Any]:
    form = request.form
    return {
        "cadence": form.get("cadence"),
        "weekly_day": _number(form.get("weekly_day"), N_("The day of the weekly digest")),
        "channels": form.getlist("channels"),
        "quiet_start": _number(form.get("quiet_start"), N_("The start of quiet hours")),
        "quiet_end": _number(form.get("quiet_end"), N_("The end of quiet hours")),
        "working_days": [_number(d, N_("A working day")) for d in form.getlist("working_days")],
        "learned_timing": form.get("learned_timing") == "on",
        "open_tracking": form.get("open_tracking") == "on",
    }


def _defaults_page(values: dict[str, Any], error: str | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    return render_template("intranet/admin/digest_defaults.html", employee=current_employee(), values=values,
                           builtin=preferences.BUILTIN_DEFAULTS, days=DAY_NAMES, cadences=CADENCE_LABELS,
                           error=error), status


@bp.get("/admin/digest-defaults")
@require_role("comms")
def digest_defaults():  # type: ignore[no-untyped-def]
    return _defaults_page(preferences.org_defaults(session()))


@bp.post("/admin/digest-defaults")
@require_role("comms")
def save_digest_defaults():  # type: ignore[no-untyped-def]
    try:
        if request.form.get("restore"):
            change = preferences.OrgDefaultsIn(**{name: None for name in preferences.ORG_FIELDS})
        else:
            change = preferences.parse(_defaults_form(), preferences.OrgDefaultsIn)
        preferences.set_org_defaults(session(), change, by=current_employee(), now=now())  # type: ignore[arg-type]
    except InvalidInput as exc:
        session().rollback()
        return _defaults_page(preferences.org_defaults(session()), error_message(exc), 422)
    session().commit()
    flash(_("The organisation's digest defaults are saved. They apply to everyone who has not chosen otherwise."), "ok")
    return redirect(url_for("intranet_admin.digest_defaults"))
