"""The directory's stored English, worded for the admin who reads it.

A sync run stores what it found in English (why a run is held, why a record is quarantined and
the detail, why someone would be deactivated) before anyone knows who will read it; the CLI and
the logs show it as it is. The admin pages word it in the reader's language: codes through a
table, sentences by recognising the template that wrote them
(:func:`intranet.languages.recognised`), so rows stored before this module existed read too.
Text no template wrote (an error from Graph, an exception) is shown as it is.
"""
from __future__ import annotations

from intranet.directory import guard
from intranet.languages import N_, Phrase, recognised

#: Each quarantine reason code in words (the code itself stays on the page, for searching the docs).
QUARANTINE_REASONS: dict[str, str] = {
    "no_join_key": N_("no employee number"),
    "duplicate_key": N_("employee number used twice"),
    "ambiguous_match": N_("matches several employees"),
    "manager_cycle": N_("manager loop"),
    "manager_not_found": N_("manager not found"),
    "invalid_email": N_("email address not valid"),
    "invalid_date": N_("date not valid"),
}
#: A row of an HR file (:func:`intranet.directory.hr.read_export`), and what was wrong with it.
HR_LINE = N_("line %(line)s: %(detail)s")
HR_PROBLEMS = (
    N_("the row has no employee number"),
    N_("%(value)s is not an email address"),
    N_("the employee is their own manager"),
    N_("%(field)s %(value)s is not a date"),
    N_("employee number %(number)s appears on lines %(lines)s"),
)
#: What the planner says of a record it quarantined (:mod:`intranet.directory.planning`).
DETAILS = (
    N_("the user has no employeeId"),
    N_("employee %(number)s is already linked to Entra user %(user)s"),
    N_("%(count)s employees have the email %(email)s"),
    N_("several Entra users have employeeId %(number)s"),
    N_("manager not found (%(failed)s); kept without a manager"),
    N_("manager chain loops: %(chain)s; the previous manager was kept"),
)
#: Why a held run would deactivate someone (Graph's removal reasons, or the HR file's).
DEACTIVATION_REASONS = (
    N_("missing from HR file"),
    N_("%(source)s status"),
    N_("deleted"),
    N_("changed"),
    N_("excluded"),
)
#: A held run's error column (:class:`intranet.directory.runs.DirectorySync`).
HELD_ERROR = N_("Held for an admin: %(reason)s.")
#: The error column of a run refused because another was running.
REFUSED_ERROR = N_("A directory sync is already running; this run was refused.")


def quarantine_reason(code: str) -> Phrase | str:
    """A quarantine reason *code* in words (the code itself when Beacon has none for it)."""
    words = QUARANTINE_REASONS.get(code)
    return Phrase(words) if words else code


def quarantine_detail(detail: str) -> Phrase | str:
    """A quarantined record's stored *detail*, as the phrase that wrote it."""
    found = recognised(detail, (HR_LINE,))
    if isinstance(found, Phrase):
        return Phrase(HR_LINE, line=found.values["line"], detail=recognised(found.values["detail"], HR_PROBLEMS))
    return recognised(detail, DETAILS)


def deactivation_reason(reason: str) -> Phrase | str:
    """Why a held run would deactivate someone, as the phrase that wrote it."""
    return recognised(reason, DEACTIVATION_REASONS)


def held_reason(reason: str) -> tuple[Phrase | str, ...]:
    """Why a run is held, each of its sentences as the phrase that wrote it."""
    return guard.reason_phrases(reason)


def run_error(error: str) -> Phrase | str:
    """A run's error column: a held run's reasons worded; any other error (Graph's, an exception's) as it is."""
    found = recognised(error, (HELD_ERROR,))
    if isinstance(found, Phrase):
        return Phrase(HELD_ERROR, reason=held_reason(found.values["reason"]))
    return recognised(error, (REFUSED_ERROR,))
