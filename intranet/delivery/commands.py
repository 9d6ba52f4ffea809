"""``flask intranet events ...`` and ``flask intranet digests ...``: thin commands over the services.

Machine-readable output (``--json``) goes to stdout and nothing else does; progress bars and
reports go to stderr, so ``... --json | jq`` always works.
"""
from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from sqlmodel import Session

from intranet import jobs
from intranet.delivery import digests
from intranet.engagement import events
from intranet.errors import IntranetError

events_group = AppGroup("events", help="Reading events: import history.")
digests_group = AppGroup("digests", help="Digests: plan, queue and send.")


def _state():  # type: ignore[no-untyped-def]
    return current_app.extensions["intranet"]


def _session() -> Session:
    return _state().sessions()


@events_group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def events_import(path: Path) -> None:
    """Import historical engagement from a CSV (employee_id,post_id,kind,occurred_at,dwell_ms).

    Safe to re-run: rows already imported are counted as duplicates. Rows naming unknown
    employees or posts are reported with their line numbers; the valid rows still load.
    """
    with _session() as session, path.open(encoding="utf-8-sig", newline="") as fh:
        rows = max(sum(1 for _ in fh) - 1, 0)
        fh.seek(0)
        with click.progressbar(length=max(rows, 1), label="Importing events", file=sys.stderr) as bar:
            try:
                result = events.import_csv(session, fh, now=_state().clock(),
                                           org_timezone=_state().settings.site.org_timezone,
                                           progress=bar.update)
            except IntranetError as exc:
                session.rollback()
                click.secho(exc.message, fg="red", err=True)
                sys.exit(1)
        session.commit()
    for line, message in result.errors[:200]:
        click.echo(f"line {line}: {message}", err=True)
    if len(result.errors) > 200:
        click.echo(f"... and {len(result.errors) - 200} more problems", err=True)
    click.echo(f"Read {result.rows} rows: {result.loaded} loaded, {result.duplicates} already there, "
               f"{len(result.errors)} refused.")


def _instant(value: str | None) -> dt.datetime:
    if not value:
        return _state().clock()
    from intranet.engagement.events import parse_instant

    try:
        return parse_instant(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from None


@digests_group.command("plan")
@click.option("--at", "at", default=None, help="Plan from this ISO 8601 instant (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON on stdout.")
def digests_plan(at: str | None, as_json: bool) -> None:
    """Show every active employee's digest sends over the next 7 days (read-only)."""
    when = _instant(at)
    with _session() as session:
        with click.progressbar(length=3, label="Planning", file=sys.stderr) as bar:
            result = digests.plan_all(session, when, org_timezone=_state().settings.site.org_timezone,
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


@digests_group.command("run")
def digests_run() -> None:
    """Run one round of the digest jobs now: refresh the model, plan, give alerts their slots, queue due
    digests and alerts, send."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    table = {job.id: job for job in jobs.periodic_job_definitions()}
    for name, job_id in (("refresh", "digests-refresh-model"), ("plan", "digests-plan"), ("alerts", "alerts-scan"),
                         ("enqueue", "digests-enqueue"), ("send", "digests-send")):
        click.echo(f"{name}: {jobs.run_once(app, table[job_id])}", err=True)
