"""The directory's lifecycle over time: HR terminations that take effect, erasure of a person.

Erasure (an admin's request, or the end of retention for someone deleted in Entra) removes what
Beacon holds about one person: the profile is anonymized, and their preferences, learned send
times, reading events, read and acknowledgement marks, ratings, digests and outbox rows, group
memberships, quarantined directory records and sessions are deleted. Aggregates (the analytics rollups, the fitted peer timing
model) were computed over groups of at least k people and are left as they are: removing one
person from them would reveal that person's contribution by subtraction. Posts the person wrote
stay, credited to "Former employee".
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import secrets

from sqlalchemy import delete, update
from sqlmodel import Session, select

from intranet import people
from intranet.analytics import rollups
from intranet.models import (
    AnalyticsPostPerson, AnalyticsReaderCell, Digest, DigestItem, EmployeeDirectory, Employee, EngagementEvent,
    EntraUser, FatigueNotice, Feedback, FeedSnapshot, GroupMember, GroupOwner, HrRecord, JourneyEnrolment,
    JourneyRelease, JourneyWatch, OutboxMessage, PostPreview, PostState, Preference, Quarantine, Rating, TimingState,
    WebhookEvent,
)
from intranet.languages import N_
from intranet.settings import Settings

ERASED_NAME = "Former employee"
ERASED_FIELDS = {"email": None, "department": None, "division": None, "region": None, "country": None,
                 "office": None, "job_title": None, "level": None, "level_label": None, "manager_id": None,
                 "timezone": None, "language": None}
#: What one person's erasure deletes, table by table (each keyed on the person's row).
PERSONAL_ROWS = (
    ("events", EngagementEvent), ("ratings", Rating), ("post_states", PostState), ("preferences", Preference),
    ("learned_times", TimingState), ("outbox", OutboxMessage), ("digest_items", DigestItem), ("digests", Digest),
    ("feed_snapshots", FeedSnapshot), ("group_memberships", GroupMember), ("group_ownerships", GroupOwner),
    ("quarantined_records", Quarantine), ("cadence_notices", FatigueNotice),
    # Analytics markers say which posts the person read and when; the counts built from them stay.
    ("analytics_post_markers", AnalyticsPostPerson), ("analytics_hour_markers", AnalyticsReaderCell),
    ("feedback", Feedback),  # replies and their emails go with it
    # Webhook events naming the person (acknowledgements, digests sent), delivered or not.
    ("webhook_events", WebhookEvent),
    # Journeys: each step's release to the person, their enrolments (the event keys name their moves),
    # and what journeys last saw of their department, country and level. Releases go before their enrolments.
    ("journey_releases", JourneyRelease), ("journey_enrolments", JourneyEnrolment), ("journey_watch", JourneyWatch),
)

#: Each kind of personal row in words, as the erase page lists them (the English is the name with spaces).
KIND_WORDS: dict[str, str] = {
    "events": N_("events"), "ratings": N_("ratings"), "post_states": N_("post states"),
    "preferences": N_("preferences"), "learned_times": N_("learned times"), "outbox": N_("outbox"),
    "digest_items": N_("digest items"), "digests": N_("digests"), "feed_snapshots": N_("feed snapshots"),
    "group_memberships": N_("group memberships"), "group_ownerships": N_("group ownerships"),
    "quarantined_records": N_("quarantined records"), "cadence_notices": N_("cadence notices"),
    "analytics_post_markers": N_("analytics post markers"), "analytics_hour_markers": N_("analytics hour markers"),
    "feedback": N_("feedback"), "webhook_events": N_("webhook events"), "journey_releases": N_("journey releases"),
    "journey_enrolments": N_("journey enrolments"), "journey_watch": N_("journey watch"),
}
assert set(KIND_WORDS) == {name for name, _table in PERSONAL_ROWS}


@dataclasses.dataclass(frozen=True)
class Erasure:
    """What one erasure removed: rows deleted per kind, and the person's new (anonymous) employee id."""

    employee_id: str
    deleted: dict[str, int]

    def to_json(self) -> dict[str, object]:
        return {"employee_id": self.employee_id, "deleted": self.deleted}


def erase(session: Session, employee: Employee, now: dt.datetime, *, forget_identity: bool = True,
          org_timezone: str = "UTC") -> Erasure:
    """Erase *employee*: deactivate and anonymize the row, delete their personal rows.

    Live events still queued for the rollups are folded first, so the aggregates keep every read
    that happened (deleting the events before their fold would drop them from the counts).

    :param forget_identity: also replace the HR employee number and unlink the Entra ids, so that
        a later re-provision of the same person creates a clean new record (an admin's erasure);
        the retention erasure of someone deleted in Entra keeps the number, as the directory
        sync expects.
    """
    rollups.fold_pending(session, org_timezone=org_timezone)
    people.deactivate(session, employee, now)
    pk = employee.id
    deleted: dict[str, int] = {}
    for name, table in PERSONAL_ROWS:
        deleted[name] = session.exec(delete(table).where(table.employee_pk == pk)).rowcount or 0  # type: ignore[attr-defined]
    # Audit rows of feed previews stay (who previewed a post as whom), without the person.
    session.exec(update(PostPreview).where(PostPreview.subject_pk == pk).values(subject_pk=None))
    session.exec(delete(EntraUser).where(EntraUser.employee_pk == pk))
    session.exec(delete(HrRecord).where(HrRecord.employee_pk == pk))
    for key, value in ERASED_FIELDS.items():
        setattr(employee, key, value)
    employee.display_name = ERASED_NAME
    employee.is_contributor = employee.is_comms = employee.is_admin = False
    if forget_identity:
        employee.employee_id = f"erased-{secrets.token_hex(8)}"
        employee.entra_tenant_id = employee.entra_object_id = None
    employee.updated_at = now
    session.add(employee)
    directory = session.get(EmployeeDirectory, pk)
    if directory is not None:
        directory.erase_after, directory.cost_center, directory.pending_termination = None, None, None
        directory.sources = {"erased": now.isoformat()}
        session.add(directory)
    session.flush()
    return Erasure(employee_id=employee.employee_id, deleted=deleted)


def erase_due(session: Session, now: dt.datetime, *, org_timezone: str = "UTC") -> int:
    """Erase employees deleted for good in Entra whose retention ended (the row stays, inactive)."""
    due = session.exec(select(EmployeeDirectory).where(EmployeeDirectory.erase_after.is_not(None),
                                                       EmployeeDirectory.erase_after <= now)).all()
    for directory in due:
        employee = session.get(Employee, directory.employee_pk)
        if employee is not None:
            erase(session, employee, now, forget_identity=False, org_timezone=org_timezone)
    session.flush()
    return len(due)


def apply_due_terminations(session: Session, now: dt.datetime) -> int:
    """Deactivate employees whose HR termination date (an effective date) has come."""
    due = session.exec(select(Employee).join(EmployeeDirectory, EmployeeDirectory.employee_pk == Employee.id)
                       .where(Employee.active.is_(True), EmployeeDirectory.pending_termination.is_not(None),
                              EmployeeDirectory.pending_termination <= now)).all()
    for employee in due:
        people.deactivate(session, employee, now)
    return len(due)


def lifecycle_job(session: Session, now: dt.datetime, settings: Settings) -> dict[str, int]:
    """Scheduled: HR terminations that took effect, and erasures whose retention ended."""
    return {"terminated": apply_due_terminations(session, now), "erased": erase_due(session, now, org_timezone=settings.site.org_timezone)}

