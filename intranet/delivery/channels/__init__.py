"""Delivery channels: email (SMTP), Microsoft Teams (Workflows HTTP trigger) and in-app.

Each channel's ``deliver(message)`` either returns, or raises :class:`TemporaryFailure` (try
again later, optionally not before ``retry_after`` seconds) or :class:`PermanentFailure` (never
retry). A channel failing never blocks the others: each has its own outbox row.
"""
from __future__ import annotations

import dataclasses
from typing import Any


class TemporaryFailure(Exception):
    """The channel may accept this message later (SMTP 4xx, connection refused, HTTP 429/5xx)."""

    def __init__(self, reason: str, retry_after: float | None = None, *, outage: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        #: The channel itself is unavailable (server down or unreachable, throttled, 5xx), not just
        #: this message: the sender leaves the channel's other messages for later too.
        self.outage = outage


class PermanentFailure(Exception):
    """The channel will never accept this message (SMTP 5xx, HTTP 400/404/410)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class RenderedDigest:
    """One digest ready for a channel: addresses, ids and the composed content."""

    message_id: str
    recipient_email: str | None
    recipient_name: str
    subject: str
    html: str
    text: str
    card: dict[str, Any]
    unsubscribe_url: str
    escalation: bool = False
