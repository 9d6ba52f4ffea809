"""API keys for server-to-server clients: created and revoked by admins, scoped, stored hashed.

A key reads ``bcn_<prefix>_<secret>``: ``prefix`` (12 hex characters) is public and finds the
row; ``secret`` (256 random bits) is never stored, only its SHA-256, compared in constant time.
A plain hash is enough (no slow KDF): the secret is random, not a password a person chose, so
there is nothing to guess from the hash. The whole key is returned once, by :func:`create`.

Scopes say what a key may do, and for whom:

* ``feed:read`` reads the feed, posts and search **on behalf of one employee**, named by the
  request (see :data:`ON_BEHALF_HEADER`): exactly what is targeted at that person, nothing more.
* ``posts:publish`` writes, reviews, publishes and manages posts through the publishing rules,
  on behalf of the named employee and with that person's roles (a comms manager publishes, a
  contributor drafts and submits): a key never lends anyone a power they do not hold.
* ``analytics:read`` reads the aggregate-only analytics (no person is involved, none is named).

Every function takes the session and never commits (the edge does).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import re
import secrets
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import or_, update
from sqlmodel import Session, func, select

from intranet.db import Instant, as_utc
from intranet.errors import IntranetError, InvalidInput, NotFound
from intranet.languages import N_, Phrase
from intranet.models import API_KEY_SCOPES, ApiKey, Employee
from intranet.shapes import Time

Scope = Literal["feed:read", "posts:publish", "analytics:read"]


@dataclasses.dataclass(frozen=True)
class ScopeInfo:
    """What a scope covers, for people (the admin page, the CLI, the OpenAPI document)."""

    label: str
    description: str
    #: Whether requests with this scope act for an employee named in :data:`ON_BEHALF_HEADER`.
    on_behalf: bool


SCOPES: dict[str, ScopeInfo] = {
    # Marked for the catalogs: the admin page words them in the admin's language (the OpenAPI
    # document and the CLI keep the English).
    "feed:read": ScopeInfo(N_("Read feeds"), N_("Read the feed, posts and search of the employee each request names "
                                                "(only what is targeted at them)."), on_behalf=True),
    "posts:publish": ScopeInfo(N_("Publish posts"), N_("Write, review, publish and manage posts as the employee each "
                                                       "request names, with that person's roles."), on_behalf=True),
    "analytics:read": ScopeInfo(N_("Read analytics"), N_("Read the aggregate engagement analytics (never a person)."),
                                on_behalf=False),
}
assert tuple(SCOPES) == API_KEY_SCOPES

#: The request header that names the employee a ``feed:read`` or ``posts:publish`` request acts for.
ON_BEHALF_HEADER = "X-Beacon-On-Behalf-Of"
#: How often the last-used time is written at most (it is shown to the minute).
LAST_USED_PRECISION = dt.timedelta(minutes=1)
KEY_PREFIX = "bcn_"
_KEY = re.compile(r"^bcn_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_PREFIX = re.compile(r"^bcn_([0-9a-f]{12})_")


class ApiKeyRejected(IntranetError):
    """(401) The presented key is not one Beacon accepts: malformed, unknown, revoked or expired."""

    code = "invalid_api_key"
    status = 401

    def __init__(self, message: str, *, reason: str, prefix: str | None = None, **values: Any) -> None:
        super().__init__(message, details={"reason": reason}, **values)
        self.reason = reason
        #: The public part of the key (safe to log), when the key had Beacon's shape.
        self.prefix = prefix
        self.headers = {"WWW-Authenticate": 'Bearer realm="Beacon", error="invalid_token"'}


class ScopeMissing(IntranetError):
    """(403) The key is valid but lacks the scope this operation needs (or no scope opens it to keys)."""

    code = "insufficient_scope"
    status = 403

    def __init__(self, message: str, *, needed: str | None, **values: Any) -> None:
        super().__init__(message, details={"needed_scope": needed}, **values)
        scope = f', scope="{needed}"' if needed else ""
        self.headers = {"WWW-Authenticate": f'Bearer realm="Beacon", error="insufficient_scope"{scope}'}


class ApiKeyCreate(BaseModel):
    """What an admin gives a new key: a name to recognise it by, its scopes, and optionally an end."""

    name: str = Field(min_length=1, max_length=100, description="What the key is for, e.g. 'CMS sync'")
    scopes: list[Scope] = Field(min_length=1, description="What the key may do")
    expires_at: Instant | None = Field(default=None, description="When the key stops working (none: never)")

    @field_validator("name")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError(N_("give the key a name"))
        return value


class ApiKeyPublic(BaseModel):
    """An API key as admins see it: never its secret."""

    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_by: str | None
    created_at: Time
    expires_at: Time | None
    last_used_at: Time | None
    revoked_at: Time | None
    status: str

    @classmethod
    def of(cls, key: ApiKey, *, now: dt.datetime, created_by: str | None = None) -> ApiKeyPublic:
        return cls(id=key.id, name=key.name, prefix=key.prefix, scopes=scopes_of(key), created_by=created_by,
                   created_at=as_utc(key.created_at), expires_at=as_utc(key.expires_at),
                   last_used_at=as_utc(key.last_used_at), revoked_at=as_utc(key.revoked_at),
                   status=status(key, now))


def digest(secret: str) -> str:
    """The stored form of a key's secret part: hex SHA-256."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def scopes_of(key: ApiKey) -> list[str]:
    return key.scopes.split()


def status(key: ApiKey, now: dt.datetime) -> str:
    """``active``, ``revoked`` or ``expired``."""
    if key.revoked_at is not None:
        return "revoked"
    expires = as_utc(key.expires_at)
    if expires is not None and expires <= now:
        return "expired"
    return "active"


def public_prefix(presented: str) -> str | None:
    """The public prefix of a presented key, when it has Beacon's shape (safe to log; never the secret)."""
    match = _PREFIX.match(presented)
    return match.group(1) if match else None


def create(session: Session, data: ApiKeyCreate, *, by: Employee | None, now: dt.datetime) -> tuple[ApiKey, str]:
    """Store a new key and return it with its full text, which nobody can read back afterwards.

    :param by: the admin creating it (``None`` from the command line without ``--by``).
    :raise InvalidInput: when the expiry is not in the future.
    """
    if data.expires_at is not None and data.expires_at <= now:
        raise InvalidInput(N_("The expiry must be in the future."), details={"field": "expires_at"})
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    key = ApiKey(name=data.name, prefix=prefix, secret_sha256=digest(secret),
                 scopes=" ".join(s for s in API_KEY_SCOPES if s in data.scopes),
                 created_by_pk=by.id if by is not None else None, created_at=now, expires_at=data.expires_at)
    session.add(key)
    session.flush()
    return key, f"{KEY_PREFIX}{prefix}_{secret}"


def authenticate(session: Session, presented: str, *, now: dt.datetime) -> ApiKey:
    """The active key *presented* is, with its last-used time brought up to date (at most once a minute).

    Read from the database on every call, so a revocation holds on every instance at once.

    :raise ApiKeyRejected: when *presented* is malformed, unknown, revoked or expired. Only a
        caller holding the right secret learns which of the last two it is.
    """
    match = _KEY.match(presented)
    if match is None:
        raise ApiKeyRejected(N_("This is not a Beacon API key (they read bcn_<prefix>_<secret>)."), reason="malformed",
                             prefix=public_prefix(presented))
    prefix, secret = match.groups()
    key = session.exec(select(ApiKey).where(ApiKey.prefix == prefix)).first()
    # Hash and compare even when the prefix is unknown, so both failures take the same path.
    matches = hmac.compare_digest(digest(secret), key.secret_sha256 if key is not None else "0" * 64)
    if key is None or not matches:
        raise ApiKeyRejected(N_("This API key is not known."), reason="unknown", prefix=prefix)
    state = status(key, now)
    if state == "revoked":
        raise ApiKeyRejected(N_("This API key was revoked; ask an admin for a new one."), reason="revoked", prefix=prefix)
    if state == "expired":
        raise ApiKeyRejected(N_("This API key expired at %(at)s; ask an admin for a new one."), reason="expired",
                             prefix=prefix, at=as_utc(key.expires_at).isoformat())  # type: ignore[union-attr]
    touch(session, key, now=now)
    return key


def touch(session: Session, key: ApiKey, *, now: dt.datetime) -> bool:
    """Record that *key* was used at *now*, unless that was already recorded within the last minute.

    One conditional UPDATE: concurrent requests on several instances write it once between them.
    Returns whether this call wrote it.
    """
    last = as_utc(key.last_used_at)
    if last is not None and now - last < LAST_USED_PRECISION:
        return False
    threshold = now - LAST_USED_PRECISION
    written = session.execute(
        update(ApiKey).where(ApiKey.id == key.id,
                             or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= threshold))  # type: ignore[union-attr]
        .values(last_used_at=now).execution_options(synchronize_session=False)).rowcount
    if written:
        key.last_used_at = now  # what the row now holds (the UPDATE bypassed the identity map)
    return bool(written)


def allows(key: ApiKey, scope: str | None) -> bool:
    """Whether *key* holds *scope* (``None``: the operation is not open to API keys at all)."""
    return scope is not None and scope in scopes_of(key)


def on_behalf_of(session: Session, named: str) -> Employee:
    """The active employee a request names: an email address (case-insensitive) or an employee number.

    :raise InvalidInput: (422) when nobody active matches, or an email belongs to several people.
    """
    named = named.strip()
    if not named:
        raise InvalidInput(N_("Name the employee this request is for in the %(header)s header "
                              "(an email address or an employee number)."), header=ON_BEHALF_HEADER,
                           details={"header": ON_BEHALF_HEADER})
    if "@" in named:
        where = func.lower(Employee.email) == named.lower()
    else:
        where = Employee.employee_id == named
    matches = session.exec(select(Employee).where(where, Employee.active.is_(True)).limit(2)).all()  # type: ignore[attr-defined]
    if len(matches) != 1:
        why = Phrase(N_("several active employees share it") if matches else N_("no active employee has it"))
        raise InvalidInput(N_("%(header)s names nobody Beacon can act for: %(why)s."), header=ON_BEHALF_HEADER, why=why,
                           details={"header": ON_BEHALF_HEADER})
    return matches[0]


def listing(session: Session, *, now: dt.datetime) -> list[ApiKeyPublic]:
    """Every key, newest first, with who created it."""
    keys = session.exec(select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id.desc())).all()  # type: ignore[attr-defined]
    pks = {k.created_by_pk for k in keys} - {None}
    names = {e.id: e.display_name for e in session.exec(select(Employee).where(Employee.id.in_(pks))).all()} \
        if pks else {}  # type: ignore[union-attr]
    return [ApiKeyPublic.of(k, now=now, created_by=names.get(k.created_by_pk)) for k in keys]


def get(session: Session, key_id_or_prefix: str | int) -> ApiKey:
    """A key by its id or its public prefix.

    :raise NotFound: when there is no such key.
    """
    text = str(key_id_or_prefix).strip()
    if text.isascii() and text.isdigit() and len(text) <= 9:
        key = session.get(ApiKey, int(text))
    else:
        key = session.exec(select(ApiKey).where(ApiKey.prefix == text.removeprefix(KEY_PREFIX)[:12])).first()
    if key is None:
        raise NotFound(N_("There is no such API key."))
    return key


def revoke(session: Session, key: ApiKey, *, by: Employee | None, now: dt.datetime) -> bool:
    """Revoke *key* from now on (every instance refuses it at its next request). Returns False if it already was."""
    if key.revoked_at is not None:
        return False
    key.revoked_at = now
    key.revoked_by_pk = by.id if by is not None else None
    session.add(key)
    session.flush()
    return True
