"""Standard Webhooks signatures (https://www.standardwebhooks.com/): what a receiver verifies.

Each delivery carries three headers: ``webhook-id`` (the event's id, the same on every retry, so
receivers can drop duplicates), ``webhook-timestamp`` (seconds since the epoch, when this attempt
was signed) and ``webhook-signature``: ``v1,`` and the base64 HMAC-SHA256 of
``"{webhook-id}.{webhook-timestamp}.{body}"``, keyed with the secret's bytes (the base64 after
``whsec_``). Libraries such as ``standardwebhooks`` (Python, JavaScript, Go, ...) and ``svix``
verify exactly this; :func:`verify` is the same check, for tests and for hosts without one.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
#: How far a receiver should accept a timestamp from its own clock (the libraries' default).
TOLERANCE_SECONDS = 300


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` value (one ``v1`` signature) for *body* sent as *message_id* at *timestamp*."""
    mac = hmac.new(_key(secret), f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def headers(secret: str, message_id: str, timestamp: int, body: str) -> dict[str, str]:
    """Every header of one signed delivery."""
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(secret, message_id, timestamp, body),
            "content-type": "application/json"}


def verify(secret: str, received: dict[str, str], body: str, *, now: float,
           tolerance: int = TOLERANCE_SECONDS) -> bool:
    """Whether *received* headers sign *body* with *secret*, at a time within *tolerance* of *now*.

    Header names are matched case-insensitively; any one of several space-separated ``v1``
    signatures may match (senders list two while a secret is being rotated).
    """
    lowered = {k.lower(): v for k, v in received.items()}
    message_id, stamp, signatures = (lowered.get(name) for name in ("webhook-id", "webhook-timestamp",
                                                                   "webhook-signature"))
    if not (message_id and stamp and signatures):
        return False
    try:
        timestamp = int(stamp)
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, message_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures.split(" "))
