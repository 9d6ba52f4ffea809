"""Every ``INTRANET_*`` configuration key, with its default and what it means.

This is the one place settings are documented. A host application sets any of these in its Flask
config before calling :meth:`intranet.Intranet.init_app`; the standalone app (``create_app``) also
reads them from ``INTRANET_*`` environment variables.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Setting:
    key: str
    default: Any
    meaning: str


SETTINGS: tuple[Setting, ...] = (
    Setting("INTRANET_ENV", "production", "'production' or 'development'; development relaxes cookie Secure and the secret key check."),
    Setting("INTRANET_DATABASE_URL", None, "SQLAlchemy URL; default is SQLite in the Flask instance folder (beacon.db)."),
    Setting("INTRANET_SECRET_KEY", None, "Signs CSRF tokens; required (32+ random bytes) in production."),
    Setting("INTRANET_URL_PREFIX", "", "Where Beacon's pages and API are mounted inside a host app, e.g. '/news'."),
    Setting("INTRANET_DEV_LOGIN", False, "Enable the development sign-in (pick any person). Never in production."),
    Setting("INTRANET_SESSION_IDLE_MINUTES", 30, "A session unused this long is ended."),
    Setting("INTRANET_SESSION_ABSOLUTE_HOURS", 10, "A session older than this is ended, however active."),
    Setting("INTRANET_SESSION_COOKIE_SECURE", None, "Force the Secure cookie flag; default: on unless INTRANET_ENV=development."),
    Setting("INTRANET_ORG_TIMEZONE", "UTC", "The organisation's default IANA time zone."),
    Setting("INTRANET_ORG_NAME", "Beacon", "Shown in page titles and emails."),
    Setting("INTRANET_FEED_PAGE_SIZE", 20, "Posts per feed page."),
    Setting("INTRANET_MAX_REQUEST_BYTES", 16 * 1024 * 1024, "Largest request body accepted (uploads included)."),
    Setting("INTRANET_RUN_SCHEDULER", True, "Whether 'flask intranet serve' also runs the scheduler in-process."),
    Setting("INTRANET_TRUSTED_PROXIES", 0, "Standalone app: how many reverse-proxy hops' X-Forwarded-* headers to trust."),
    Setting("INTRANET_SCHEDULER_LEASE_SECONDS", 60, "How long the scheduler's database lease lasts without renewal."),
)

DEFAULTS: dict[str, Any] = {s.key: s.default for s in SETTINGS}


def coerce(key: str, raw: str) -> Any:
    """Parse an environment string into the type of the setting's default.

    :param key: the setting's name.
    :param raw: the value as found in the environment.
    :raise ValueError: when the value cannot be read as the expected type.
    """
    default = DEFAULTS.get(key)
    if isinstance(default, bool) or key.endswith(("_LOGIN", "_SECURE")):
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off", ""}:
            return False
        raise ValueError(f"{key} must be true or false, not {raw!r}")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


def from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """Return every ``INTRANET_*`` variable in *environ*, typed like its default."""
    return {key: coerce(key, value) for key, value in environ.items() if key.startswith("INTRANET_")}


def register(*settings: Setting) -> None:
    """Let a subsystem declare its own settings next to its code (kept in this one registry)."""
    global SETTINGS
    known = {s.key for s in SETTINGS}
    SETTINGS = SETTINGS + tuple(s for s in settings if s.key not in known)
    for s in settings:
        DEFAULTS.setdefault(s.key, s.default)
