"""Helpers shared by the directory tests (imported, not a conftest: the platform owns conftest.py)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from intranet.db import session_factory
from intranet.directory.policy import load as load_policy
from intranet.directory.runs import DirectorySync
from intranet.models import Employee, Quarantine, SyncRun, UnmappedValue
from intranet.settings import Settings

DATA = Path(__file__).parent / "data"
DIRTY = DATA / "hr_dirty_2026-11-23.csv"
HEADER = ("Employee_ID,Work_Email,First_Name,Last_Name,Business_Title,Management_Level,Department,Division,"
          "Cost_Center,Location,Country,Manager_Employee_ID,Worker_Type,Status,Hire_Date,Termination_Date")


def make_sync(engine: Engine, clock: Any, **kwargs: Any) -> DirectorySync:
    settings = Settings.from_config({"INTRANET_ORG_TIMEZONE": "UTC", **kwargs.pop("config", {})})
    return DirectorySync(session_factory(engine), settings, clock=clock, policy=kwargs.pop("policy", load_policy()),
                         **kwargs)


def hr_csv(rows: list[str], *, delimiter: str = ",", bom: bool = False) -> bytes:
    text = "\n".join([HEADER.replace(",", delimiter)] + [r.replace(",", delimiter) for r in rows]) + "\n"
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode()


def person(number: str, email: str | None = None, *, dept: str = "Finance", status: str = "Active",
           manager: str = "", level: str = "L3", country: str = "US", office: str = "HQ", end: str = "",
           hired: str = "2020-01-01") -> str:
    email = f"{number.lower()}@contoso.test" if email is None else email
    return (f"{number},{email},First{number},Last,Analyst,{level},{dept},Corporate,CC-1,{office},{country},"
            f"{manager},Employee,{status},{hired},{end}")


def employees(db: Session) -> dict[str, Employee]:
    db.expire_all()
    return {e.employee_id: e for e in db.exec(select(Employee))}


def quarantine(db: Session) -> set[tuple[str, str]]:
    return {(q.source_key, q.reason) for q in db.exec(select(Quarantine))}


def unmapped(db: Session) -> set[tuple[str, str]]:
    return {(u.dimension, u.value) for u in db.exec(select(UnmappedValue))}


def last_run(db: Session) -> SyncRun:
    db.expire_all()
    return db.exec(select(SyncRun).order_by(SyncRun.id.desc())).first()


def day(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)
