"""``flask intranet init-db | roles ... | demo seed | scheduler | serve``: setting up and running Beacon."""
from __future__ import annotations

import sys

import click
from flask.cli import AppGroup, with_appcontext

from intranet import demo, migrate, people
from intranet.cli import context
from intranet.errors import IntranetError

roles_group = AppGroup("roles", help="Grant or revoke the comms manager and admin roles.")
demo_group = AppGroup("demo", help="Demo data for newcomers.")


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create Beacon's tables, or upgrade them to the latest schema (nothing is lost)."""
    engine = context.state().engine
    before = migrate.current_revision(engine)
    migrate.upgrade(engine)
    after = migrate.current_revision(engine)
    if before == after:
        click.echo(f"Database is up to date (revision {after}).")
    else:
        click.echo(f"Database {'created' if before is None else 'upgraded'}: {before or 'empty'} -> {after}.")


def _set_role(email: str, role: str, granted: bool) -> None:
    with context.session() as session:
        try:
            employee = people.find_by_email(session, email)
            people.set_role(session, employee, role, granted)
        except IntranetError as exc:
            context.fail(exc.message)
        session.commit()
        verb = "now holds" if granted else "no longer holds"
        click.echo(f"{employee.display_name} ({employee.employee_id}) {verb} the {role} role.")


@roles_group.command("grant")
@click.argument("email")
@click.argument("role", type=click.Choice(["contributor", "comms", "admin"]))
def roles_grant(email: str, role: str) -> None:
    """Give the person with EMAIL the ROLE."""
    _set_role(email, role, True)


@roles_group.command("revoke")
@click.argument("email")
@click.argument("role", type=click.Choice(["contributor", "comms", "admin"]))
def roles_revoke(email: str, role: str) -> None:
    """Take ROLE away from the person with EMAIL."""
    _set_role(email, role, False)


@demo_group.command("seed")
@click.option("--employees", default=300, show_default=True, help="How many people.")
@click.option("--seed", "seed_value", default=7, show_default=True, help="Random seed (same seed, same org).")
@click.option("--if-empty", is_flag=True, help="Do nothing (successfully) when the directory has people.")
def demo_seed(employees: int, seed_value: int, if_empty: bool) -> None:
    """Fill an empty database with a believable demo organisation."""
    with context.session() as session:
        if if_empty and demo.has_people(session):
            click.echo("Demo data already present; nothing to do.")
            _echo_accounts(demo.present_accounts(session))
            return
        try:
            with click.progressbar(length=employees, label="Seeding people", file=sys.stderr) as bar:
                result = demo.seed(session, employees=employees, seed=seed_value, now=context.state().clock(),
                                   progress=bar.update)
        except RuntimeError as exc:
            context.fail(str(exc))
        from intranet.engagement.demo_history import seed_history  # weeks of reading history

        events = seed_history(session, now=context.state().clock(), seed=seed_value,
                              org_timezone=context.state().settings.site.org_timezone)
        session.commit()
    click.echo(f"Seeded {result.employees} employees, {result.groups} groups and {result.posts} posts"
               f" (and {events} reading events).")
    _echo_accounts(result.accounts)


def _echo_accounts(accounts: dict[str, str]) -> None:
    # The one place the demo accounts are printed (`make run` relies on it, and does not repeat them).
    for role, email in accounts.items():
        click.echo(f"  sign in as {role:<8} -> {email}")


@click.command("scheduler")
@with_appcontext
def scheduler() -> None:
    """Run Beacon's periodic jobs in this process (one process holds the lease; others wait)."""
    from intranet.jobs import LeasedScheduler
    from intranet.web import request_log

    context.require_safe()
    request_log.configure(context.state().settings.server.log_format)
    runner = LeasedScheduler(context.app())
    context.freeze_startup_objects()  # the scheduler's flusher thread stores events in bulk for hours
    click.echo(f"Scheduler {runner.owner} starting; Ctrl+C to stop.", err=True)
    try:
        runner.run(on_wait=lambda: click.echo("Another scheduler holds the lease; waiting.", err=True))
    except KeyboardInterrupt:
        runner.stop()


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@with_appcontext
def serve(host: str, port: int) -> None:
    """Serve Beacon on this machine with the scheduler in-process (single-machine default)."""
    from intranet.jobs import serve as serve_app
    from intranet.web import request_log

    context.require_safe()
    request_log.configure(context.state().settings.server.log_format)
    dev = context.state().settings.sessions.dev_login
    click.echo(f"Beacon on http://{host}:{port}/" + ("  (development sign-in enabled)" if dev else ""))
    serve_app(context.app(), host=host, port=port)


#: The commands this module adds to ``flask intranet``.
commands = (init_db, roles_group, demo_group, scheduler, serve)
