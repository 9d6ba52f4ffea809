"""``flask intranet digests plan [--at ISO] [--json]`` and ``digests run``."""
from __future__ import annotations

import datetime as dt
import json
import sys

import click
from flask.cli import AppGroup

from intranet import jobs
from intranet.cli import context
from intranet.delivery import planning

group = AppGroup("digests", help="Digests: plan, queue and send.")


def _instant(value: str | None) -> dt.datetime:
    if not value:
        return context.state().clock()
    from intranet.engagement.events import parse_instant

    try:
        return parse_instant(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from None


@group.command("plan")
@click.option("--at", "at", default=None, help="Plan from this ISO 8601 instant (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON on stdout.")
def digests_plan(at: str | None, as_json: bool) -> None:
    """Show every active employee's digest sends over the next 7 days (read-only)."""
    when = _instant(at)
    with context.session() as session:
        with click.progressbar(length=3, label="Planning", file=sys.stderr) as bar:
            result = planning.plan_all(session, when, org_timezone=context.state().settings.site.org_timezone,
                                      progress=lambda n: bar.update(1))
        session.rollback()  # a preview: the stored peer curves are left as they were
    document = result.as_dicts()
    if as_json:
        click.echo(json.dumps(document))
        return
    for row in document:
        hours = ", ".join(f"{h:02d}:00" for h in row["local_hours"]) or "-"
        click.echo(f"{row['employee_id']:<12} {row['timezone']:<22} {row['cadence']:<14} {hours:<16} "
                   f"{row['basis'] or '-':<9} {len(row['next_sends_utc'])} sends")


@group.command("send")
def digests_send() -> None:
    """Send due digest and alert messages now, batch after batch for up to 45 s (what the digests-send
    job does every minute)."""
    job = next(job for job in jobs.periodic_job_definitions() if job.id == "digests-send")
    click.echo(f"send: {jobs.run_once(context.app(), job)}", err=True)


@group.command("run")
def digests_run() -> None:
    """Run one round of the digest jobs now: refresh the model, plan, give alerts their slots, queue due
    digests and alerts, send."""
    table = {job.id: job for job in jobs.periodic_job_definitions()}
    for name, job_id in (("refresh", "digests-refresh-model"), ("plan", "digests-plan"), ("alerts", "alerts-scan"),
                         ("enqueue", "digests-enqueue"), ("send", "digests-send")):
        click.echo(f"{name}: {jobs.run_once(context.app(), table[job_id])}", err=True)
