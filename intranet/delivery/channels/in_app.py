"""In-app: the digest is kept as its outbox row (posts and time); the app shows the latest one."""
from __future__ import annotations

import datetime as dt

from intranet.delivery.channels import RenderedDigest


class InApp:
    def deliver(self, digest: RenderedDigest, now: dt.datetime) -> None:
        """Nothing leaves the building: marking the row sent is the delivery."""
