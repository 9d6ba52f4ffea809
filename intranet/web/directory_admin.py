"""Admin pages for the directory: sync health, held runs (approve/reject), quarantine, unmapped values."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for

from intranet import languages
from intranet.directory import guard, queries, runs, words
from intranet.errors import NotFound
from intranet.models import SyncHeld, SyncRun
from intranet.web.context import current_employee, now, require_role, session, settings, state
from intranet.web import i18n
from intranet.web.i18n import _

# Full paths (not a blueprint url_prefix): Beacon registers blueprints under INTRANET_URL_PREFIX.
bp = Blueprint("intranet_directory_admin", __name__)
BASE = "/admin/directory"


def say(value: object) -> object:
    """A phrase (or a tuple of them) the directory stored, in the admin's language; anything else as it is."""
    return languages.worded(value, i18n.locale())


@bp.context_processor
def _directory_words() -> dict[str, object]:
    # The directory stores its reasons in English; its pages word them (intranet.directory.words).
    return {"say": say, "directory_words": words}


@bp.get(f"{BASE}/")
@require_role("admin")
def index():  # type: ignore[no-untyped-def]
    db = session()
    return render_template("intranet/admin/directory.html", employee=current_employee(),
                           runs=queries.recent_runs(db), held=guard.held_runs(db), coverage=queries.coverage(db),
                           quarantine=queries.open_quarantine(db, limit=20),
                           unmapped=queries.unmapped_values(db, limit=20))


@bp.get(f"{BASE}/runs/<int:run_id>")
@require_role("admin")
def run(run_id: int):  # type: ignore[no-untyped-def]
    row = session().get(SyncRun, run_id)
    if row is None:
        raise NotFound(_("No such sync run."))
    held = session().get(SyncHeld, run_id)
    return render_template("intranet/admin/directory_run.html", employee=current_employee(), run=row,
                           held=held, diff=held.diff if held else None)


@bp.post(f"{BASE}/runs/<int:run_id>/approve")
@require_role("admin")
def approve(run_id: int):  # type: ignore[no-untyped-def]
    runner = runs.DirectorySync(state().sessions, settings(), clock=state().clock)
    try:
        outcome = runner.approve(run_id, admin=current_employee())
    except runs.AlreadyRunning as exc:
        flash(_("A directory sync is already running; try again when it has finished."), "error")
        return redirect(url_for(".run", run_id=run_id))
    flash(_("Run %(id)s approved and applied (%(outcome)s).", id=run_id, outcome=say(outcome.phrase or outcome.message)), "success")
    return redirect(url_for(".run", run_id=run_id))


@bp.post(f"{BASE}/runs/<int:run_id>/reject")
@require_role("admin")
def reject(run_id: int):  # type: ignore[no-untyped-def]
    guard.reject(session(), run_id, admin=current_employee(), now=now())
    session().commit()
    flash(_("Run %(id)s rejected; nothing was applied.", id=run_id), "success")
    return redirect(url_for(".run", run_id=run_id))


@bp.get(f"{BASE}/quarantine")
@require_role("admin")
def quarantine():  # type: ignore[no-untyped-def]
    return render_template("intranet/admin/directory_quarantine.html", employee=current_employee(),
                           rows=queries.open_quarantine(session(), limit=1000))


@bp.get(f"{BASE}/unmapped")
@require_role("admin")
def unmapped():  # type: ignore[no-untyped-def]
    return render_template("intranet/admin/directory_unmapped.html", employee=current_employee(),
                           rows=queries.unmapped_values(session(), limit=1000))
