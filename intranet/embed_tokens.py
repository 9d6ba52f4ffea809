"""Short-lived signed tokens that say who is reading an embedded Beacon (the only PyJWT user).

Two issuers sign them, each with its own key:

* a **trusted host backend** (an intranet that is not a Flask app, a SharePoint Framework
  service, ...) mints one for the person signed in to it, with the secret it shares with Beacon
  (``INTRANET_EMBED_TOKEN_SECRET``) and the issuer Beacon expects (``INTRANET_EMBED_TOKEN_ISSUER``);
* **Beacon itself**, for the iframe page's sign-in hand-off (a person signs in to Beacon in a
  window of its own and hands the framed page a token), with a key derived from Beacon's secret
  key, so no setting is needed for it and a host's secret can never mint one.

Every token is a JWT signed with HS256 (no other algorithm is accepted, ``none`` included) that
carries ``iss``, ``aud`` (``INTRANET_EMBED_TOKEN_AUDIENCE``), ``sub`` (the person, by the column
``INTRANET_EMBED_TOKEN_SUBJECT`` names), ``iat``, ``exp`` and ``jti``; a token may live at most
``INTRANET_EMBED_TOKEN_MAX_SECONDS`` and times are judged against the app's clock with
``INTRANET_EMBED_TOKEN_LEEWAY_SECONDS`` of skew. Functions here take plain values and, for the
person, a session; they never commit.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import secrets
from typing import Any

import jwt
from sqlalchemy import func, select
from sqlmodel import Session

from intranet import throttle
from intranet.errors import IntranetError
from intranet.models import Employee
from intranet.settings import EmbedSettings

ALGORITHM = "HS256"
#: The issuer of Beacon's own hand-off tokens (a host's issuer may be anything else).
BEACON_ISSUER = "urn:beacon:sign-in-hand-off"
REQUIRED_CLAIMS = ("iss", "aud", "sub", "iat", "exp", "jti")


class TokenRefused(IntranetError):
    """An embed token Beacon will not accept; the message says why, for the host's developers."""

    code = "invalid_token"
    status = 401


class TokenExpired(TokenRefused):
    """The token was good but its time is up: the widget asks the host for a fresh one."""

    code = "token_expired"


class TokenReplayed(TokenRefused):
    """A one-time token (the iframe page's exchange) was presented a second time."""

    code = "token_replayed"


@dataclasses.dataclass(frozen=True)
class Keys:
    """What checking a token needs: the two issuers' keys and the embed settings."""

    settings: EmbedSettings
    #: Beacon's own hand-off key, derived from its secret key (never the secret key itself).
    beacon_key: str

    @classmethod
    def of(cls, settings: EmbedSettings, secret_key: str) -> Keys:
        derived = hmac.new(secret_key.encode(), b"beacon embed hand-off tokens", hashlib.sha256).hexdigest()
        return cls(settings=settings, beacon_key=derived)

    def key_for(self, issuer: str) -> str | None:
        if issuer == BEACON_ISSUER:
            return self.beacon_key
        if issuer == self.settings.token_issuer and self.settings.token_secret:
            return self.settings.token_secret
        return None


@dataclasses.dataclass(frozen=True)
class Claims:
    """A token Beacon accepted."""

    issuer: str
    subject: str
    jti: str
    issued_at: dt.datetime
    expires_at: dt.datetime

    @property
    def from_beacon(self) -> bool:
        """Whether Beacon minted it (a hand-off after signing in to Beacon) rather than a host."""
        return self.issuer == BEACON_ISSUER


def mint(secret: str, *, issuer: str, audience: str, subject: str, now: dt.datetime,
         lifetime: dt.timedelta = dt.timedelta(minutes=5), jti: str | None = None,
         extra: dict[str, Any] | None = None) -> str:
    """A signed token for *subject* (what a host backend does; Beacon does it for its hand-off).

    A host in another language does the same with its JWT library: HS256 over the claims below.

    :param lifetime: how long it lives; Beacon refuses more than ``INTRANET_EMBED_TOKEN_MAX_SECONDS``.
    """
    claims = {"iss": issuer, "aud": audience, "sub": subject, "iat": int(now.timestamp()),
              "exp": int((now + lifetime).timestamp()), "jti": jti or secrets.token_urlsafe(16), **(extra or {})}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def mint_hand_off(keys: Keys, employee: Employee, *, now: dt.datetime) -> str:
    """Beacon's own token for *employee*, who signed in to Beacon, to hand to a framed Beacon page.

    It names the person by the column ``INTRANET_EMBED_TOKEN_SUBJECT`` chooses and lives one
    minute: it only crosses from one Beacon window to another, once.
    """
    subject = getattr(employee, keys.settings.token_subject)
    return mint(keys.beacon_key, issuer=BEACON_ISSUER, audience=keys.settings.token_audience,
                subject=str(subject), now=now, lifetime=dt.timedelta(minutes=1))


def verify(token: str, keys: Keys, *, now: dt.datetime) -> Claims:
    """The claims of *token*, once its signature, issuer, audience and times check out.

    :raise TokenExpired: past ``exp`` (plus the leeway).
    :raise TokenRefused: anything else: malformed, another algorithm, a bad signature (tampered,
        or the wrong secret), an unknown issuer, the wrong audience, a missing claim, issued in the
        future, or living longer than ``INTRANET_EMBED_TOKEN_MAX_SECONDS``.
    """
    settings = keys.settings
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenRefused("The embed token is not a JWT (header.payload.signature, base64url).") from None
    if header.get("alg") != ALGORITHM:
        raise TokenRefused(f"The embed token must be signed with {ALGORITHM}.")
    issuer = unverified.get("iss")
    key = keys.key_for(issuer) if isinstance(issuer, str) else None
    if key is None:
        raise TokenRefused(f"The embed token's issuer is not trusted: 'iss' must be "
                           f"{settings.token_issuer!r}, and INTRANET_EMBED_TOKEN_SECRET must be set.")
    try:
        # Times are judged below against the app's clock (PyJWT would read the system clock).
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=settings.token_audience, issuer=issuer,
                            options={"require": list(REQUIRED_CLAIMS), "verify_exp": False, "verify_iat": False,
                                     "verify_nbf": False})
    except jwt.MissingRequiredClaimError as exc:
        raise TokenRefused(f"The embed token lacks the {exc.claim!r} claim "
                           f"(required: {', '.join(REQUIRED_CLAIMS)}).") from None
    except jwt.InvalidAudienceError:
        raise TokenRefused(f"The embed token is for another audience: 'aud' must be {settings.token_audience!r}.") from None
    except jwt.InvalidSignatureError:
        raise TokenRefused("The embed token's signature does not match: it was changed, or signed with "
                           "another secret.") from None
    except jwt.PyJWTError as exc:
        raise TokenRefused(f"The embed token cannot be used: {exc}.") from None
    return _timely(claims, settings, now)


def _timely(claims: dict[str, Any], settings: EmbedSettings, now: dt.datetime) -> Claims:
    try:
        issued = dt.datetime.fromtimestamp(int(claims["iat"]), dt.timezone.utc)
        expires = dt.datetime.fromtimestamp(int(claims["exp"]), dt.timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        raise TokenRefused("The embed token's 'iat' and 'exp' must be whole seconds since 1970.") from None
    leeway = dt.timedelta(seconds=settings.token_leeway_seconds)
    if expires - issued > dt.timedelta(seconds=settings.token_max_seconds):
        raise TokenRefused(f"The embed token lives too long: exp - iat may be at most "
                           f"{settings.token_max_seconds} seconds.")
    if issued > now + leeway:
        raise TokenRefused("The embed token was issued in the future: check the host's clock.")
    if now > expires + leeway:
        raise TokenExpired("The embed token has expired; ask the host for a new one.")
    subject, jti = claims["sub"], claims["jti"]
    if not isinstance(subject, str) or not subject or not isinstance(jti, str) or not jti:
        raise TokenRefused("The embed token's 'sub' and 'jti' must be non-empty strings.")
    return Claims(issuer=claims["iss"], subject=subject, jti=jti, issued_at=issued, expires_at=expires)


def employee_for(session: Session, claims: Claims, field: str) -> Employee:
    """The active employee the token names, by *field* (``INTRANET_EMBED_TOKEN_SUBJECT``).

    :raise TokenRefused: nobody, several people (a shared email), or someone who has left.
    """
    if field == "email":
        where = func.lower(Employee.email) == claims.subject.strip().lower()
    else:
        where = getattr(Employee, field) == claims.subject
    matches = session.execute(select(Employee).where(where).limit(2)).scalars().all()
    if len(matches) != 1 or not matches[0].active:
        raise TokenRefused(f"The embed token's subject is not one active person in Beacon's directory "
                           f"(matched by {field}).")
    return matches[0]


def use_once(session: Session, claims: Claims) -> None:
    """Record that *claims*' token was spent (the iframe page's exchange), refusing a second use.

    The mark is a rate-limit row (one hit allowed) whose window is pinned to the token's expiry,
    so every instance sees it and a replay at any time in the token's life lands on the same row.
    Flush only: the caller commits with the session it creates.

    :raise TokenReplayed: the token was used before.
    """
    spent = hashlib.sha256(f"{claims.issuer}\n{claims.jti}".encode()).hexdigest()[:48]
    verdict = throttle.hit(session, f"embed-jti:{spent}", limit=1, window=dt.timedelta(hours=1),
                           now=claims.expires_at)
    if not verdict.allowed:
        raise TokenReplayed("This embed token was already used; ask the host for a new one.")
