"""Email over SMTP (the only module that imports smtplib).

Messages carry HTML and plain text, a ``Message-ID`` that stays the same on every retry of one
digest slot (so a re-send after a crash is recognisable as the same message), and RFC 8058
one-click ``List-Unsubscribe``. Header values are stripped of CR and LF before they are set.
SMTP replies map to the outbox's retry rules: 4xx and dropped connections are temporary, 5xx
are permanent.
"""
from __future__ import annotations

import re
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
import datetime as dt

from intranet.delivery.channels import PermanentFailure, RenderedDigest, TemporaryFailure


def header_safe(value: str) -> str:
    """*value* on one line: CR, LF and other control characters become spaces."""
    return " ".join("".join(" " if ord(c) < 32 or c == "\x7f" else c for c in value).split())


# RFC 5322 "specials" (and the backslash): the characters that make a display name need quoting.
_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')


def display_name(name: str) -> str:
    """*name* as a To header's display name: one line, without RFC 5322 specials.

    Python's email package (3.11) drops the quotes around a display name when it folds a long
    header, so a name like ``Eve <eve@evil.example>, Mallory <m@evil.example>`` (or just a long
    "Doe, Jane" with accents) came out as several addresses, the real one lost. A name without
    specials needs no quotes: "Doe, Jane" is shown as "Doe Jane".
    """
    return " ".join(_SPECIALS.sub(" ", header_safe(name)).split())


def build_message(digest: RenderedDigest, *, sender: str, now: dt.datetime) -> EmailMessage:
    """The MIME message for *digest* (multipart/alternative: plain text, then HTML)."""
    if not digest.recipient_email:
        raise PermanentFailure("the employee has no email address")
    msg = EmailMessage()
    msg["From"] = header_safe(sender)
    msg["To"] = formataddr((display_name(digest.recipient_name), header_safe(digest.recipient_email)))
    msg["Subject"] = header_safe(digest.subject)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = header_safe(digest.message_id)
    if digest.unsubscribe_url:  # a digest; a personal message (a reply to feedback) has no list to leave
        msg["List-Unsubscribe"] = f"<{header_safe(digest.unsubscribe_url)}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    if digest.escalation:
        msg["Importance"] = "high"
    msg.set_content(digest.text)
    msg.add_alternative(digest.html, subtype="html")
    # Python's email package (3.11) loses the space between two encoded words when it folds a long
    # non-ASCII header at 78 characters ("«Canteen changes»" arrived as "«Canteenchanges»" in a
    # Catalan subject). Headers may run to RFC 5322's 998; set after the bodies, whose transfer
    # encoding was chosen at 78, so only header folding changes.
    msg.policy = msg.policy.clone(max_line_length=998)
    return msg


class SmtpMailer:
    """Sends messages over one SMTP connection, reconnecting when the server drops it."""

    def __init__(self, host: str, port: int = 25, *, username: str | None = None, password: str | None = None,
                 starttls: bool = False, timeout: float = 30.0, sender: str = "Beacon <beacon@localhost>") -> None:
        self.host, self.port, self.username, self.password = host, port, username, password
        self.starttls, self.timeout, self.sender = starttls, timeout, sender
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self._smtp is None:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
            self._smtp = smtp
        return self._smtp

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._smtp = None

    def deliver(self, digest: RenderedDigest, now: dt.datetime) -> None:
        """Send *digest*.

        :raise TemporaryFailure: on 4xx replies, refused or dropped connections and timeouts.
        :raise PermanentFailure: on 5xx replies (the reason names the code and the server's text).
        """
        msg = build_message(digest, sender=self.sender, now=now)
        try:
            refused = self._connect().send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            self._reset_after_error()
            code, text = next(iter(exc.recipients.values()))
            raise _classify(code, text) from None
        except smtplib.SMTPResponseException as exc:
            self._reset_after_error()
            raise _classify(exc.smtp_code, exc.smtp_error) from None
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPException, OSError, socket.timeout) as exc:
            self.close()
            self._smtp = None
            raise TemporaryFailure(f"SMTP connection problem: {exc.__class__.__name__}: {exc}",
                                   outage=True) from None
        if refused:
            code, text = next(iter(refused.values()))
            raise _classify(code, text)

    def _reset_after_error(self) -> None:
        try:
            if self._smtp is not None:
                self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._smtp = None


def _classify(code: int, text: bytes | str) -> Exception:
    reason = f"SMTP {code}: {text.decode(errors='replace') if isinstance(text, bytes) else text}"[:500]
    if 400 <= code < 500:
        # 421: the server is shutting the connection (overloaded, going down), for every message.
        return TemporaryFailure(reason, outage=code == 421)
    return PermanentFailure(reason)
