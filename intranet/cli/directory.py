"""``flask intranet directory sync [--full] [--source graph|hr FILE]`` and ``directory import-csv FILE``.

Both run through :class:`~intranet.directory.runs.DirectorySync`: one lease, one run record, the
same planner and guard, whatever the source.
"""
from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click
from flask.cli import AppGroup

from intranet.cli import context

group = AppGroup("directory", help="Employees: import and sync.")


class _Progress:
    """Progress on stderr: a bar when the source knows its length (an HR file), a running count when it
    does not (Graph pages arrive until the deltaLink, with no total announced)."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.done = 0
        self.label: str | None = None  # set while counting without a total
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int | None, label: str) -> None:
        if total is None:
            self.label, self.done = label, done
            if self.tty:  # rewrite one line; logs and pipes get only the final count (close)
                click.echo(f"\r{label}: {done:,} users", nl=False, err=True)
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True)
            self.bar.__enter__()
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.label is not None:
            click.echo(f"{chr(13) if self.tty else ''}{self.label}: {self.done:,} users", err=True)
            self.label = None
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@group.command("sync")
@click.option("--full", is_flag=True, help="Graph: a full resync with mark-and-sweep instead of an incremental round.")
@click.option("--source", type=click.Choice(["graph", "hr"]), default="graph", show_default=True)
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--mapping", help="HR column mapping (a name in config/hr_mappings/ or a path); default from config.")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="HR: the export date (default: the date in the file name).")
def sync(full: bool, source: str, file: Path | None, mapping: str | None, as_of: dt.datetime | None) -> None:
    """Sync employees from Entra ID (Graph) or import an HR export FILE."""
    from intranet.directory.runs import AlreadyRunning, DirectorySync
    from intranet.errors import ConfigurationError

    progress = _Progress()
    sync = DirectorySync(context.state().sessions, context.state().settings, clock=context.state().clock,
                         progress=progress)
    if source == "hr" and file is None:
        raise click.UsageError("--source hr needs the FILE to import.")
    if source == "graph" and file is not None:
        raise click.UsageError("FILE is only for --source hr.")
    try:
        if source == "graph":
            outcome = sync.run_graph(full=full, trigger="cli")
        else:
            assert file is not None
            when = as_of.replace(tzinfo=dt.timezone.utc) if as_of else None
            outcome = sync.run_hr(file.read_bytes(), file_name=file.name, mapping=mapping, as_of=when,
                                  trigger="cli")
    except (AlreadyRunning, ConfigurationError) as exc:
        progress.close()
        context.fail(str(exc), 2)
    progress.close()
    colour = {"succeeded": "green", "held": "yellow"}.get(outcome.status, "red")
    click.secho(f"Run {outcome.run_id} {outcome.status}: {outcome.message}", fg=colour)
    if outcome.status == "held":
        click.echo("An admin must approve or reject it on the directory admin page.")
    if outcome.status == "failed":
        sys.exit(1)


@group.command("import-csv")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_csv(path: Path) -> None:
    """Create or update employees from Beacon's canonical CSV (all rows valid, or nothing changes)."""
    from intranet.directory.runs import AlreadyRunning, DirectorySync

    progress = _Progress()
    sync = DirectorySync(context.state().sessions, context.state().settings, clock=context.state().clock,
                         progress=progress)
    try:
        outcome = sync.run_csv(path.read_bytes(), file_name=path.name, trigger="cli")
    except AlreadyRunning as exc:
        context.fail(str(exc), 2)
    finally:
        progress.close()
    if outcome.status == "failed":
        context.fail(outcome.message)
    if outcome.status == "held":
        click.secho(f"Run {outcome.run_id} held: {outcome.message}", fg="yellow")
        click.echo("Nothing was changed yet: an admin must approve or reject it on the directory admin page.")
        return
    counts = outcome.counts
    click.secho(f"Imported {counts.get('seen', 0)} employees: {counts.get('created', 0)} created, "
                f"{counts.get('changed', 0)} updated, {counts.get('unchanged', 0)} unchanged, "
                f"{counts.get('deactivated', 0)} deactivated (run {outcome.run_id}).", fg="green")
