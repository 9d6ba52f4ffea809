"""The directory's lifecycle over time: HR terminations that take effect, erasure after retention."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import delete
from sqlmodel import Session, select

from intranet import people
from intranet.models import EmployeeDirectory, Employee, EntraUser, HrRecord
from intranet.settings import Settings

ERASED_FIELDS = {"email": None, "department": None, "division": None, "region": None, "country": None,
                 "office": None, "job_title": None, "level": None, "level_label": None, "manager_id": None,
                 "timezone": None, "language": None}


def erase_due(session: Session, now: dt.datetime) -> int:
    """Anonymize employees deleted for good in Entra whose retention ended (the row stays, inactive)."""
    due = session.exec(select(EmployeeDirectory).where(EmployeeDirectory.erase_after.is_not(None),
                                                       EmployeeDirectory.erase_after <= now)).all()
    for directory in due:
        employee = session.get(Employee, directory.employee_pk)
        if employee is None:
            continue
        people.deactivate(session, employee, now)
        for key, value in ERASED_FIELDS.items():
            setattr(employee, key, value)
        employee.display_name = "Former employee"
        employee.updated_at = now
        session.add(employee)
        session.exec(delete(EntraUser).where(EntraUser.employee_pk == employee.id))
        session.exec(delete(HrRecord).where(HrRecord.employee_pk == employee.id))
        directory.erase_after, directory.cost_center, directory.sources = None, None, {"erased": now.isoformat()}
        session.add(directory)
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
    return {"terminated": apply_due_terminations(session, now), "erased": erase_due(session, now)}

