"""``flask intranet events import FILE | flush | purge``: historical reading events, the event buffer, retention."""
from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click
from flask.cli import AppGroup

from intranet.cli import context
from intranet.engagement import buffer, events, retention
from intranet.errors import IntranetError

group = AppGroup("events", help="Reading events: import history, store buffered ones, purge expired ones.")


@group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def events_import(path: Path) -> None:
    """Import historical engagement from a CSV (employee_id,post_id,kind,occurred_at,dwell_ms).

    Safe to re-run: rows already imported are counted as duplicates. Rows naming unknown
    employees or posts are reported with their line numbers; the valid rows still load.
    """
    with context.session() as session, path.open(encoding="utf-8-sig", newline="") as fh:
        rows = max(sum(1 for _ in fh) - 1, 0)
        fh.seek(0)
        with click.progressbar(length=max(rows, 1), label="Importing events", file=sys.stderr) as bar:
            try:
                result = events.import_csv(session, fh, now=context.state().clock(),
                                           org_timezone=context.state().settings.site.org_timezone,
                                           progress=bar.update)
            except IntranetError as exc:
                session.rollback()
                context.fail(exc.message)
        session.commit()
    for line, message in result.errors[:200]:
        click.echo(f"line {line}: {message}", err=True)
    if len(result.errors) > 200:
        click.echo(f"... and {len(result.errors) - 200} more problems", err=True)
    click.echo(f"Read {result.rows} rows: {result.loaded} loaded, {result.duplicates} already there, "
               f"{len(result.errors)} refused.")


@group.command("flush")
@click.option("--follow", is_flag=True,
              help="Keep storing events as they arrive until stopped (Ctrl+C or SIGTERM), then drain the buffer.")
def events_flush(follow: bool) -> None:
    """Store the events queued in the Redis buffer (INTRANET_EVENTS_BUFFER_URL) now, and fold them into the rollups.

    The scheduler's flusher does this continuously; this command runs a flusher alone (with
    --follow, as a process of its own). Safe beside another flusher: each event is stored once.
    """
    state = context.state()
    if state.event_buffer is None:
        context.fail("No event buffer is configured (INTRANET_EVENTS_BUFFER_URL is empty): each request stores its "
                     "events itself.")
    flusher = buffer.flusher_for(state.event_buffer, state.sessions, org_timezone=state.settings.site.org_timezone)
    try:
        if follow:
            context.freeze_startup_objects()
            result = _follow(flusher)
        else:
            result = flusher.drain()
    except IntranetError as exc:
        context.fail(exc.message)
    click.echo(f"Stored {result.stored} events from {result.batches} queued batches "
               f"({result.events - result.stored - result.dropped} repeats absorbed, {result.dropped} about people or "
               f"posts deleted meanwhile, {result.set_aside} unreadable batches set aside).")


def _follow(flusher: buffer.Flusher) -> buffer.FlushResult:
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    click.echo(f"Flusher {flusher.consumer} storing buffered events; Ctrl+C to stop.", err=True)
    return flusher.run(stopping)


@group.command("purge")
def events_purge() -> None:
    """Delete raw events older than INTRANET_EVENTS_RETENTION_MONTHS now (the daily events-purge job does this too)."""
    state = context.state()
    months = state.settings.events.retention_months
    deleted = retention.purge(state.sessions, state.clock(), months, org_timezone=state.settings.site.org_timezone)
    click.echo(f"Deleted {deleted} events that happened more than {months} months ago.")
