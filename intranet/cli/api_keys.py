"""``flask intranet api-keys create|list|revoke``: API keys for server-to-server clients.

The same service as the admin page (/admin/api-keys). ``create`` prints the key once, on stdout
(alone, so ``... create ... > key.txt`` keeps nothing else); what it is and how to use it go to stderr.
"""
from __future__ import annotations

import datetime as dt
import json

import click
from flask.cli import AppGroup
from sqlmodel import Session

from intranet import api_keys, people
from intranet.errors import IntranetError
from intranet.cli import context
from intranet.models import API_KEY_SCOPES, Employee

group = AppGroup("api-keys", help="API keys for server-to-server clients: create, list, revoke.")


def _admin(session: Session, email: str | None) -> Employee | None:
    """The admin an action is recorded against (``--by``), who must hold the admin role."""
    if email is None:
        return None
    try:
        person = people.find_by_email(session, email)
    except IntranetError as exc:
        context.fail(exc.message)
    if not person.active or not person.has_role("admin"):
        context.fail(f"{email} is not an active admin; API keys are recorded against an admin.")
    return person


@group.command("create")
@click.option("--name", required=True, help="What the key is for, e.g. 'CMS sync'.")
@click.option("--scope", "scopes", multiple=True, required=True, type=click.Choice(API_KEY_SCOPES),
              help="A scope the key holds (repeat for several).")
@click.option("--expires-in-days", type=click.IntRange(1, 3650), default=None,
              help="The key stops working after this many days (default: never).")
@click.option("--by", "by_email", default=None, help="Email of the admin the key is recorded as created by.")
def create(name: str, scopes: tuple[str, ...], expires_in_days: int | None, by_email: str | None) -> None:
    """Create an API key and print it, once: it cannot be shown again."""
    now = context.state().clock()
    expires = now + dt.timedelta(days=expires_in_days) if expires_in_days else None
    with context.session() as session:
        try:
            data = api_keys.ApiKeyCreate.model_validate({"name": name, "scopes": list(scopes), "expires_at": expires})
            key, text = api_keys.create(session, data, by=_admin(session, by_email), now=now)
        except (IntranetError, ValueError) as exc:
            context.fail(getattr(exc, "message", str(exc)))
        session.commit()
        click.echo(f"Created API key {key.id} '{key.name}' (prefix {key.prefix}) with {key.scopes.replace(' ', ', ')}"
                   + (f", until {expires.isoformat()}" if expires else "") + ".", err=True)
    click.echo("Store it now: it is shown this once. Send it as 'Authorization: Bearer <key>'.", err=True)
    click.echo(text)


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array on stdout.")
def list_keys(as_json: bool) -> None:
    """List every API key (never its secret): scopes, creator, last use, expiry and status."""
    with context.session() as session:
        keys = api_keys.listing(session, now=context.state().clock())
    if as_json:
        click.echo(json.dumps([k.model_dump(mode="json") for k in keys], indent=1))
        return
    if not keys:
        click.echo("No API keys.", err=True)
        return
    for k in keys:
        used = k.last_used_at.isoformat(timespec="minutes") if k.last_used_at else "never used"
        until = f", expires {k.expires_at.isoformat(timespec='minutes')}" if k.expires_at else ""
        click.echo(f"{k.id}\t{k.prefix}\t{k.status}\t{k.name}\t{','.join(k.scopes)}\t"
                   f"created {k.created_at.isoformat(timespec='minutes')} by {k.created_by or 'the command line'}"
                   f"{until}, {used}")


@group.command("revoke")
@click.argument("key")
@click.option("--by", "by_email", default=None, help="Email of the admin the revocation is recorded against.")
def revoke(key: str, by_email: str | None) -> None:
    """Revoke KEY (its id or prefix): every instance refuses it from its next request."""
    now = context.state().clock()
    with context.session() as session:
        try:
            found = api_keys.get(session, key)
        except IntranetError as exc:
            context.fail(exc.message)
        changed = api_keys.revoke(session, found, by=_admin(session, by_email), now=now)
        session.commit()
        click.echo(f"Revoked API key {found.id} '{found.name}' ({found.prefix})." if changed
                   else f"API key {found.id} '{found.name}' was already revoked.")
