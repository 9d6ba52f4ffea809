"""Email over SMTP (the only module that imports smtplib).

Messages carry HTML and plain text, a ``Message-ID`` that stays the same on every retry of one
digest slot (so a re-send after a crash is recognisable as the same message), and RFC 8058
one-click ``List-Unsubscribe``. Header values are stripped of CR and LF before they are set.
SMTP replies map to the outbox's retry rules: 4xx and dropped connections are temporary, 5xx
are permanent.
"""
from __future__ import annotations

import base64
import email
import email.policy
import functools
import re
import smtplib
import socket
import ssl
import uuid
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import format_datetime, parseaddr
import datetime as dt

from intranet.delivery.channels import PermanentFailure, RenderedDigest, TemporaryFailure


_CONTROLS_TO_SPACES = {c: " " for c in (*range(32), 0x7F)}


def header_safe(value: str) -> str:
    """*value* on one line: CR, LF and other control characters become spaces."""
    return " ".join(value.translate(_CONTROLS_TO_SPACES).split())


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


class _Wire(email.policy.Compat32):
    """compat32 that writes a one-line ASCII header as it is, without passing it through
    :class:`email.header.Header` (which gives the same bytes at that length limit, at two thirds of
    a message's MIME cost); anything else (the pre-folded encoded words of a non-ASCII name) is
    written by compat32 itself."""

    def fold_binary(self, name: str, value: object) -> bytes:
        if isinstance(value, str) and value.isascii() and "\n" not in value and "\r" not in value:
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)  # type: ignore[arg-type]


#: Lines end in CRLF on the wire (smtplib's sendmail sends bytes as they are); headers are written
#: as built (never folded again: compat32 would fold a long URL onto a line of its own, which a
#: reader then sees with a leading space). Every header here is ASCII and far below 998 characters.
_WIRE = _Wire(linesep="\r\n", max_line_length=0)


@functools.lru_cache(maxsize=16)
def _sender(sender: str) -> tuple[str, str]:
    """The From header and the envelope address for *sender* (one per mailer: parsed once)."""
    from_name, from_address = parseaddr(header_safe(sender))
    return (_address(display_name(from_name), from_address) if from_address else header_safe(sender)), from_address


def _text_part(body: str, subtype: str) -> MIMENonMultipart:
    """A UTF-8 text part in base64, encoded by the C codec in one call (the email package's own
    base64 and quoted-printable encoders work line by line in Python: most of a message's cost)."""
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part["Content-Transfer-Encoding"] = "base64"
    part.set_payload(base64.encodebytes(body.encode("utf-8")).decode("ascii"))
    return part


def _encoded(value: str) -> str:
    """*value* as it goes in a header: as is when ASCII, else RFC 2047 encoded words of at most
    76 characters each, folded between them (as the default policy would write them)."""
    return value if value.isascii() else Header(value, "utf-8").encode()


def _address(name: str, address: str) -> str:
    """``Name <address>`` (the name needs no quotes: :func:`display_name` has no specials); a
    non-ASCII name is encoded and folded by the default policy, as an address header must be (a
    phrase split mid-word into encoded words would be read back with spaces inside it)."""
    address = header_safe(address)
    if not name:
        return address
    if name.isascii():
        return f"{name} <{address}>"
    modern = email.policy.default
    return modern.header_factory("To", f"{name} <{address}>").fold(policy=modern)[len("To: "):].rstrip("\n")


def build_message(digest: RenderedDigest, *, sender: str, now: dt.datetime) -> Message:
    """The MIME message for *digest* (multipart/alternative: plain text, then HTML).

    Built with the email package's ``compat32`` classes, whose headers are plain strings: the
    default policy parses every header into objects on assignment and folds them again on output,
    which cost several times the whole SMTP exchange of a digest. What the recipient sees is the
    same: the same headers (non-ASCII ones as encoded words) and the same text and HTML.
    """
    if not digest.recipient_email:
        raise PermanentFailure("the employee has no email address")
    # Base64 text never holds "=_", so this boundary cannot clash with a part, and the generator
    # skips compiling a regular expression per message to search the parts for its own.
    msg = MIMEMultipart("alternative", boundary=f"=_beacon_{uuid.uuid4().hex}")
    msg["From"] = _sender(sender)[0]
    msg["To"] = _address(display_name(digest.recipient_name), digest.recipient_email)
    msg["Subject"] = _encoded(header_safe(digest.subject))
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = header_safe(digest.message_id)
    if digest.unsubscribe_url:  # a digest; a personal message (a reply to feedback) has no list to leave
        msg["List-Unsubscribe"] = f"<{header_safe(digest.unsubscribe_url)}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    if digest.escalation:
        msg["Importance"] = "high"
    msg.attach(_text_part(digest.text, "plain"))
    msg.attach(_text_part(digest.html, "html"))
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
        envelope_from = _sender(self.sender)[1]
        recipient = header_safe(digest.recipient_email or "")
        try:
            if envelope_from.isascii() and recipient.isascii():
                refused = self._connect().sendmail(envelope_from, [recipient], msg.as_bytes(policy=_WIRE))
            else:  # an internationalised address: smtplib's SMTPUTF8 path needs a modern-policy message
                modern = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
                refused = self._connect().send_message(modern, envelope_from, [recipient])
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
