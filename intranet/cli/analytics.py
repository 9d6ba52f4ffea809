"""``flask intranet analytics fold | rebuild``: keep the engagement rollups current, or recount them."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from intranet.analytics import rollups
from intranet.cli import context

group = AppGroup("analytics", help="Engagement analytics: fold queued events, rebuild the rollups.")


@group.command("fold")
def analytics_fold() -> None:
    """Fold the live events still queued into the rollups now (the analytics-fold job does this every minute)."""
    with context.session() as session:
        folded = rollups.fold_pending(session, org_timezone=context.state().settings.site.org_timezone)
        session.commit()
    click.echo(f"Folded {folded} events.")


@group.command("rebuild")
def analytics_rebuild() -> None:
    """Recount the post and reading-hour rollups from the stored events (run once after upgrading).

    Counts of events already deleted by the retention purge are lost; delivery figures are kept.
    """
    with context.session() as session:
        rollups.rebuild(session, org_timezone=context.state().settings.site.org_timezone)
        session.commit()
    click.echo("Rebuilt the analytics rollups from the stored events.")
