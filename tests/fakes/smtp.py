"""A real SMTP server on loopback (aiosmtpd) that records messages and can refuse recipients."""
from __future__ import annotations

import email
import email.policy
import threading


class Recorder:
    """An SMTP handler that keeps every message and can refuse chosen recipients with a code."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.refuse: dict[str, str] = {}
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def parsed(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(raw, policy=email.policy.default) for _, raw in self.messages]

    def recipients(self) -> list[str]:
        return [r for rcpts, _ in self.messages for r in rcpts]
