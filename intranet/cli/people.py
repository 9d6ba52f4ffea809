"""``flask intranet people export|erase EMPLOYEE_ID``: a person's data, downloaded or erased."""
from __future__ import annotations

import json

import click
from flask.cli import AppGroup
from sqlmodel import Session, select

from intranet import personal_data
from intranet.cli import context
from intranet.directory import lifecycle
from intranet.models import Employee

group = AppGroup("people", help="One person's data: export it (JSON) or erase it.")


def _person(session: Session, employee_id: str) -> Employee:
    person = session.exec(select(Employee).where(Employee.employee_id == employee_id)).first()
    if person is None:
        context.fail(f"Nobody has the employee number {employee_id!r}.")
    return person


@group.command("export")
@click.argument("employee_id")
def people_export(employee_id: str) -> None:
    """Print everything Beacon holds about EMPLOYEE_ID as JSON (what they download from their preferences page)."""
    state = context.state()
    with context.session() as session:
        document = personal_data.export(session, _person(session, employee_id), now=state.clock(),
                                        org_timezone=state.settings.site.org_timezone)
    click.echo(json.dumps(document, ensure_ascii=False, indent=1))


@group.command("erase")
@click.argument("employee_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def people_erase(employee_id: str, yes: bool) -> None:
    """Erase EMPLOYEE_ID: anonymize the profile, delete their personal rows (aggregates stay)."""
    with context.session() as session:
        person = _person(session, employee_id)
        if not yes:
            click.confirm(f"Erase {person.display_name} ({employee_id})? This cannot be undone", abort=True, err=True)
        result = lifecycle.erase(session, person, context.state().clock(),
                                 org_timezone=context.state().settings.site.org_timezone)
        session.commit()
    counts = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in result.deleted.items() if n)
    click.echo(f"Erased {employee_id} (now {result.employee_id}); deleted {counts or 'no personal rows'}.")
