"""``flask --app app intranet ...``: Beacon's command line. Commands are thin; services do the work.

One module per area (:mod:`.platform`, :mod:`.directory`, :mod:`.engagement`, :mod:`.digests`, :mod:`.people`,
:mod:`.analytics`, :mod:`.webhooks`, :mod:`.api_keys`), sharing :mod:`.context`. Machine-readable output (``--json``) goes to stdout and nothing else
does; progress bars and reports go to stderr, so ``... --json | jq`` always works.
"""
from __future__ import annotations

from flask.cli import AppGroup

from intranet.cli import analytics, api_keys, digests, directory, engagement, people, platform, webhooks

intranet_group = AppGroup("intranet", help="Beacon: set up, import, seed and run.")
for command in (*platform.commands, directory.group, engagement.group, digests.group, people.group,
                analytics.group, webhooks.group, api_keys.group):
    intranet_group.add_command(command)

__all__ = ["intranet_group"]
