"""``flask intranet webhooks add|list|remove|test|rotate-secret|new-key|send``: endpoints for outgoing webhooks."""
from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from intranet import jobs
from intranet.cli import context
from intranet.errors import IntranetError, validated
from intranet.models import WEBHOOK_EVENT_TYPES
from intranet.webhooks import endpoints, network, sealing, sender
from intranet.webhooks.sealing import SecretBox

group = AppGroup("webhooks", help="Outgoing webhooks: register endpoints, list them, test them.")


def _box() -> SecretBox:
    return SecretBox(context.state().settings.webhooks.encryption_key)


@group.command("add")
@click.argument("url")
@click.option("--event", "event_types", multiple=True, required=True,
              type=click.Choice([*WEBHOOK_EVENT_TYPES, "all"]), help="An event to send (repeat for several; 'all').")
@click.option("--description", default="", help="A note for admins: who runs the receiver.")
def webhooks_add(url: str, event_types: tuple[str, ...], description: str) -> None:
    """Register URL for the given events; prints its signing secret, once."""
    state = context.state()
    with context.session() as session:
        try:
            data = validated(endpoints.EndpointIn, {"url": url, "description": description,
                                                    "event_types": endpoints.parse_event_types(list(event_types))})
            created = endpoints.create(session, data, actor=None, now=state.clock(), box=_box(),
                                       allow_private=network.private_allowed(state.settings))
        except IntranetError as exc:
            context.fail(exc.message)
        session.commit()
        click.echo(f"Endpoint {created.endpoint.id}: {created.endpoint.url} ({', '.join(created.endpoint.event_types)})")
    click.echo(f"Signing secret (shown once; give it to the receiver): {created.secret}")


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
def webhooks_list(as_json: bool) -> None:
    """Every endpoint with its events and how its deliveries are doing (never its secret)."""
    with context.session() as session:
        rows = [{"id": h.endpoint.id, "url": h.endpoint.url, "events": h.endpoint.event_types,
                 "active": h.endpoint.active, "description": h.endpoint.description, "delivered": h.delivered,
                 "waiting": h.waiting, "given_up": h.given_up} for h in endpoints.health(session)]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        click.echo(f"{row['id']:>4} {'active' if row['active'] else 'paused':<7} {row['url']}  "
                   f"[{', '.join(row['events'])}] delivered {row['delivered']}, waiting {row['waiting']}, "
                   f"given up {row['given_up']}")
    if not rows:
        click.echo("No webhook endpoints.", err=True)


def _endpoint_or_fail(session, endpoint_id: int):  # type: ignore[no-untyped-def]
    try:
        return endpoints.get_or_404(session, endpoint_id)
    except IntranetError as exc:
        context.fail(exc.message)


@group.command("remove")
@click.argument("endpoint_id", type=int)
def webhooks_remove(endpoint_id: int) -> None:
    """Delete endpoint ENDPOINT_ID and its deliveries."""
    with context.session() as session:
        endpoint = _endpoint_or_fail(session, endpoint_id)
        endpoints.remove(session, endpoint)
        session.commit()
    click.echo(f"Removed endpoint {endpoint_id}.")


@group.command("test")
@click.argument("endpoint_id", type=int)
def webhooks_test(endpoint_id: int) -> None:
    """Send ENDPOINT_ID a signed webhook.test event now and show how it answered (exit 1 unless 2xx)."""
    state = context.state()
    with context.session() as session:
        endpoint = _endpoint_or_fail(session, endpoint_id)
        with network.client(allow_private=network.private_allowed(state.settings)) as http:
            outcome = sender.ping(endpoint, state.settings, http=http, now=state.clock())
    if not outcome.startswith("answered 2"):
        context.fail(f"Endpoint {endpoint_id} {outcome}")
    click.echo(f"Endpoint {endpoint_id} {outcome}")


@group.command("rotate-secret")
@click.argument("endpoint_id", type=int)
def webhooks_rotate_secret(endpoint_id: int) -> None:
    """Give ENDPOINT_ID a new signing secret (printed once); the old one stops working at once."""
    with context.session() as session:
        endpoint = _endpoint_or_fail(session, endpoint_id)
        secret = endpoints.rotate_secret(session, endpoint, box=_box())
        session.commit()
    click.echo(f"New signing secret for endpoint {endpoint_id} (shown once): {secret}")


@group.command("new-key")
def webhooks_new_key() -> None:
    """Print a fresh key for INTRANET_WEBHOOKS_ENCRYPTION_KEY (encrypts signing secrets at rest)."""
    click.echo(sealing.new_key())


@group.command("send")
def webhooks_send() -> None:
    """Deliver one batch of due webhook events now (what the webhooks-send job does every 15 seconds)."""
    job = next(job for job in jobs.periodic_job_definitions() if job.id == "webhooks-send")
    click.echo(f"send: {jobs.run_once(context.app(), job)}", err=True)
