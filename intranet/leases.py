"""Named, expiring leases in the database: how one process among several gets to do a job."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from intranet.models import Lease


def acquire(session: Session, name: str, owner: str, *, ttl: dt.timedelta, now: dt.datetime) -> bool:
    """Take or renew the lease *name* for *owner* until ``now + ttl``; False if someone else holds it.

    The caller commits at once: a lease is only worth something once other processes can see it.
    """
    expires = now + ttl
    renewed = session.exec(
        update(Lease)
        .where(Lease.name == name, (Lease.owner == owner) | (Lease.expires_at < now))
        .values(owner=owner, expires_at=expires)
    )
    if renewed.rowcount == 1:
        return True
    try:
        with session.begin_nested():
            session.add(Lease(name=name, owner=owner, expires_at=expires))
    except IntegrityError:
        return False
    return True


def release(session: Session, name: str, owner: str) -> None:
    """Give the lease back (only if *owner* still holds it)."""
    session.exec(delete(Lease).where(Lease.name == name, Lease.owner == owner))
