"""Delivery steps for tests: digest slots, one round of the sender, the outbox, a person's preferences.

Shared by the digest, alert and input-edge tests (tests never import each other).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlmodel import Session

from intranet import jobs, preferences
from intranet.delivery import enqueue, sending
from intranet.delivery.channels.email import SmtpMailer
from intranet.models import Digest, Employee, OutboxMessage
from tests.conftest import NOW


def mailer(config) -> SmtpMailer:  # type: ignore[no-untyped-def]
    return SmtpMailer(config.mail.smtp_host, config.mail.smtp_port, sender=config.mail.mail_from)


def make_digest(db: Session, employee, due: dt.datetime, *, ordinal: int = 0, hours_valid: float = 12) -> Digest:  # type: ignore[no-untyped-def]
    digest = Digest(employee_pk=employee.id, local_date=due.date(), ordinal=ordinal, due_at=due,
                    expires_at=due + dt.timedelta(hours=hours_valid), timezone=employee.timezone or "UTC",
                    local_hour=due.hour, basis="peers")
    db.add(digest)
    db.commit()
    return digest


def queue_digest(db: Session, employee, now: dt.datetime, **slot) -> None:  # type: ignore[no-untyped-def]
    """A digest slot for *employee* due at *now*, queued for sending and committed."""
    make_digest(db, employee, now, **slot)
    enqueue.enqueue_due(db, now)
    db.commit()


def send(app, db, config, clock, **kwargs):  # type: ignore[no-untyped-def]
    channels = kwargs.pop("channels", None) or {"email": mailer(config)}
    try:
        with app.app_context():
            return sending.send_due(db, clock, config, jobs.renderer_for(app), channels=channels, **kwargs)
    finally:
        for channel in channels.values():
            getattr(getattr(channel, "inner", channel), "close", lambda: None)()


def messages(db) -> list[OutboxMessage]:  # type: ignore[no-untyped-def]
    db.expire_all()
    return list(db.exec(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())


def choose(db: Session, person: Employee, **prefs: object) -> None:
    """Save *person*'s preferences (as of the test clock's start) and commit."""
    preferences.update(db, person, preferences.PreferencesIn(**prefs), now=NOW)
    db.commit()
