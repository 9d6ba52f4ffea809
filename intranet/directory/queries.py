"""Read models for the directory admin pages: coverage, recent runs, quarantine, unmapped values."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from intranet.models import Employee, Quarantine, SyncRun, UnmappedValue


def coverage(session: Session) -> dict[str, Any]:
    """Share of active employees with a department, region, level and time zone."""
    total = session.exec(select(func.count()).select_from(Employee).where(Employee.active.is_(True))).one()
    out: dict[str, Any] = {"active": total}
    for name in ("department", "region", "level", "timezone"):
        column = getattr(Employee, name)
        have = session.exec(select(func.count()).select_from(Employee)
                            .where(Employee.active.is_(True), column.is_not(None))).one()
        out[name] = {"count": have, "share": (have / total) if total else 0.0}
    return out


def recent_runs(session: Session, limit: int = 20) -> list[SyncRun]:
    return list(session.exec(select(SyncRun).order_by(SyncRun.id.desc()).limit(limit)))


def open_quarantine(session: Session, limit: int = 200) -> list[Quarantine]:
    return list(session.exec(select(Quarantine).order_by(Quarantine.blocking.desc(), Quarantine.last_seen_at.desc())
                             .limit(limit)))


def unmapped_values(session: Session, limit: int = 200) -> list[UnmappedValue]:
    return list(session.exec(select(UnmappedValue).order_by(UnmappedValue.dimension, UnmappedValue.occurrences.desc())
                             .limit(limit)))
