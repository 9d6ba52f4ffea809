"""What a digest or an alert says: the items, capped, and how many more are waiting.

Planned digests (:func:`intranet.delivery.digests.compose`) and alerts
(:func:`intranet.delivery.alerts.compose`) both produce a :class:`DigestContent`, which the
outbox renders for every channel.
"""
from __future__ import annotations

import dataclasses
import datetime as dt


@dataclasses.dataclass(frozen=True)
class ContentItem:
    """One post as a digest lists it (the table :class:`intranet.models.DigestItem` records which
    posts an alert slot carries)."""

    post_id: int
    title: str
    summary: str
    topic: str
    must_read: bool
    published_at: dt.datetime
    ack_deadline: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class DigestContent:
    """What one digest holds: at most ``limit`` items and how many more are waiting."""

    items: list[ContentItem]
    more: int
    overdue_must_reads: int

    @property
    def empty(self) -> bool:
        return not self.items

    @property
    def post_ids(self) -> list[int]:
        return [i.post_id for i in self.items]
