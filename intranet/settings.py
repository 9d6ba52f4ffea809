"""Every ``INTRANET_*`` configuration key: its type, its default and what it means.

This is the one place settings are declared. A host application sets any of these in its Flask
config before calling :meth:`intranet.Intranet.init_app`; the standalone app (``create_app``) also
reads them from ``INTRANET_*`` environment variables. Either way they are parsed and validated
once, at ``init_app``, into a :class:`Settings` object (one typed group per subsystem) kept on the
per-app state; a value that cannot be used stops the start with a message naming its key.

Nothing registers settings at import time: a key used anywhere is declared here.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

from intranet.errors import ConfigurationError

logger = logging.getLogger(__name__)

#: ``INTRANET_*`` environment variables that are not settings (read by the factory or the tests).
NOT_SETTINGS = frozenset({"INTRANET_CONFIG_FILE", "INTRANET_TEST_DATABASE_URL"})


def _accepts_text(annotation: Any) -> bool:
    if annotation is str:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_accepts_text(arg) for arg in typing.get_args(annotation))
    return False


class _Group(BaseModel):
    """One subsystem's settings. Fields are read by their ``INTRANET_*`` key (the alias)."""

    model_config = ConfigDict(frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        # ``INTRANET_SMTP_PORT=`` in an env file means "not set": the default applies. Text
        # settings keep the empty string (an empty SMTP host means "do not send email").
        if not isinstance(data, Mapping):
            return data
        fields = {f.alias or name: f for name, f in cls.model_fields.items()}
        return {key: value for key, value in data.items()
                if not (value == "" and key in fields and not _accepts_text(fields[key].annotation))}


def _key(default: Any, key: str, meaning: str, **constraints: Any) -> Any:
    return Field(default, alias=key, description=meaning, **constraints)


class SiteSettings(_Group):
    """The installation: where it runs, its database, its name and its zone."""

    env: Literal["production", "development"] = _key(
        "production", "INTRANET_ENV", "'production' or 'development'; development relaxes cookie Secure and the secret key check.")
    database_url: str | None = _key(
        None, "INTRANET_DATABASE_URL", "SQLAlchemy URL; default is SQLite in the Flask instance folder (beacon.db).")
    secret_key: str | None = Field(None, alias="INTRANET_SECRET_KEY", repr=False,
                                   description="Signs CSRF tokens; required (32+ random bytes) in production.")
    url_prefix: str = _key("", "INTRANET_URL_PREFIX", "Where Beacon's pages and API are mounted inside a host app, e.g. '/news'.")
    org_timezone: str = _key("UTC", "INTRANET_ORG_TIMEZONE", "The organisation's default IANA time zone.")
    org_name: str = _key("Beacon", "INTRANET_ORG_NAME", "Shown in page titles and emails.")
    base_url: str = _key("http://localhost:5000", "INTRANET_BASE_URL", "Beacon's public address, for links in emails and cards.")
    feed_page_size: int = _key(20, "INTRANET_FEED_PAGE_SIZE", "Posts per feed page.", ge=1)
    max_request_bytes: int = _key(16 * 1024 * 1024, "INTRANET_MAX_REQUEST_BYTES",
                                  "Largest request body Beacon's routes accept (uploads included); a host's "
                                  "smaller MAX_CONTENT_LENGTH wins.", ge=1)
    trusted_proxies: int = _key(0, "INTRANET_TRUSTED_PROXIES",
                                "Standalone app: how many reverse-proxy hops' X-Forwarded-* headers to trust.", ge=0)

    @field_validator("org_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. 'Europe/Berlin')") from None
        return value


class DatabaseSettings(_Group):
    """The connection pool each process keeps (PostgreSQL; SQLite ignores the pool settings).

    Every web worker and the scheduler keep their own pool, so the most connections a deployment
    opens is ``instances x workers x (pool size + max overflow) + the scheduler's pool``; keep it
    below PostgreSQL's ``max_connections`` (minus its reserved slots). The gunicorn start-up warns
    when it would not be (see the README, "Deploying").
    """

    pool_size: int = _key(4, "INTRANET_DB_POOL_SIZE",
                          "Connections each process keeps open (at least the web server's threads per worker).", ge=1)
    max_overflow: int = _key(2, "INTRANET_DB_MAX_OVERFLOW",
                             "Extra connections a process may open for a burst, closed again when returned.", ge=0)
    pool_timeout_s: float = _key(10, "INTRANET_DB_POOL_TIMEOUT",
                                 "Seconds a request waits for a free pooled connection before it fails.", gt=0)
    pool_pre_ping: bool = _key(True, "INTRANET_DB_POOL_PRE_PING",
                               "Test a pooled connection before use, so a database restart costs no failed request.")
    connect_timeout_s: int = _key(5, "INTRANET_DB_CONNECT_TIMEOUT",
                                  "Seconds to wait for a new PostgreSQL connection (libpq's connect_timeout).", ge=1)
    ready_timeout_s: float = _key(2, "INTRANET_READY_TIMEOUT",
                                  "Longest database check /readyz makes before answering 503 (PostgreSQL statement "
                                  "timeout).", gt=0)

    @property
    def per_process(self) -> int:
        """The most connections one process opens: its pool and its overflow."""
        return self.pool_size + self.max_overflow


class ServerSettings(_Group):
    """The production web server (``make serve-prod``: gunicorn with ``config/gunicorn.conf.py``)."""

    bind: str = _key("127.0.0.1:8000", "INTRANET_WEB_BIND", "Address gunicorn listens on (host:port), behind the proxy.")
    workers: int = _key(3, "INTRANET_WEB_WORKERS", "gunicorn worker processes per instance (about 2 x cores + 1).", ge=1)
    threads: int = _key(4, "INTRANET_WEB_THREADS",
                        "Threads per worker (requests wait on the database; INTRANET_DB_POOL_SIZE should be at least "
                        "this).", ge=1)
    timeout_s: int = _key(30, "INTRANET_WEB_TIMEOUT",
                          "A worker silent this long is killed and replaced (gunicorn's timeout).", ge=1)
    instances: int = _key(1, "INTRANET_INSTANCES",
                          "How many instances share the database, for the start-up check of the connection budget.",
                          ge=1)
    log_format: Literal["text", "json"] = _key(
        "text", "INTRANET_LOG_FORMAT",
        "'json': one JSON object per log line with the request id (production); 'text' for people.")


class RateLimitSettings(_Group):
    """Request rate limits shared by every instance (Flask-Limiter; see intranet/web/rate_limits.py)."""

    storage_uri: str = Field("memory://", alias="INTRANET_RATELIMIT_STORAGE_URI", repr=False,
                             description="Where counts are kept: redis://host:6379/0 so every instance shares them "
                                         "(production); memory:// counts per process (one process only).")
    key_prefix: str = _key("beacon", "INTRANET_RATELIMIT_KEY_PREFIX",
                           "Prefix of Beacon's keys in that storage (several installations may share one Redis).")
    sign_in: str = _key("20/minute", "INTRANET_RATELIMIT_SIGN_IN",
                        "Sign-in attempts (start, callback, development sign-in) per client address.")
    events: str = _key("120/minute", "INTRANET_RATELIMIT_EVENTS",
                       "Reading-event batches (POST /api/v1/events) per person, or per address when signed out.")
    audience_preview: str = _key("60/minute", "INTRANET_RATELIMIT_AUDIENCE_PREVIEW",
                                 "Audience previews (who a draft would reach) per person.")

    @field_validator("sign_in", "events", "audience_preview")
    @classmethod
    def _a_rate(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate such as '30/minute' or '10/second;100/hour'") from None
        return value


class SessionSettings(_Group):
    """Signing in and staying signed in."""

    dev_login: bool = _key(False, "INTRANET_DEV_LOGIN", "Enable the development sign-in (pick any person). Never in production.")
    idle_minutes: float = _key(30, "INTRANET_SESSION_IDLE_MINUTES", "A session unused this long is ended.", gt=0)
    absolute_hours: float = _key(10, "INTRANET_SESSION_ABSOLUTE_HOURS",
                                 "A session older than this is ended, however active.", gt=0)
    cookie_secure: bool | None = _key(None, "INTRANET_SESSION_COOKIE_SECURE",
                                      "Force the Secure cookie flag; default: on unless INTRANET_ENV=development.")
    employee_loader_field: Literal["email", "employee_id", "entra_object_id"] = _key(
        "email", "INTRANET_EMPLOYEE_LOADER_FIELD",
        "Embedded with an employee_loader: which employee column the loader's value is matched against "
        "('email', 'employee_id' or 'entra_object_id').")
    sign_in_url: str = _key("", "INTRANET_SIGN_IN_URL",
                            "Embedded with an employee_loader: where Beacon's pages send people who are not signed in "
                            "(the host's sign-in page; ?next= is added). Empty: a 401 page.")

    @property
    def idle(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.idle_minutes)

    @property
    def absolute(self) -> dt.timedelta:
        return dt.timedelta(hours=self.absolute_hours)


class SchedulerSettings(_Group):
    """The process that runs the periodic jobs (:mod:`intranet.jobs`)."""

    run_in_server: bool | None = _key(
        None, "INTRANET_RUN_SCHEDULER",
        "Whether 'flask intranet serve' also runs the scheduler in-process; default: on for the standalone app, "
        "off when embedded in a host (run 'flask intranet scheduler' as its own process).")
    lease_seconds: float = _key(60, "INTRANET_SCHEDULER_LEASE_SECONDS",
                                "How long the scheduler's database lease lasts without renewal.", gt=0)

    @property
    def lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.lease_seconds)


class MailSettings(_Group):
    """The sender: email over SMTP, cards to Teams, pacing and retries of the outbox."""

    smtp_host: str = _key("localhost", "INTRANET_SMTP_HOST", "SMTP server for digests (empty: email is not sent).")
    smtp_port: int = _key(25, "INTRANET_SMTP_PORT", "SMTP port.", ge=1, le=65535)
    smtp_username: str = _key("", "INTRANET_SMTP_USERNAME", "SMTP AUTH user (empty: no authentication).")
    smtp_password: str = Field("", alias="INTRANET_SMTP_PASSWORD", repr=False,
                               description="SMTP AUTH password (a secret: never logged).")
    smtp_starttls: bool = _key(False, "INTRANET_SMTP_STARTTLS", "Upgrade the SMTP connection with STARTTLS.")
    mail_from: str = _key("Beacon <beacon@localhost>", "INTRANET_MAIL_FROM", "From: address of digests.")
    rate_per_minute: float = _key(30, "INTRANET_MAIL_RATE_PER_MINUTE",
                                  "Most messages sent per minute per sender (provider limit; 0: unpaced).", ge=0)
    lease_seconds: float = _key(300, "INTRANET_OUTBOX_LEASE_SECONDS",
                                "How long a sender owns a claimed message before others may take it.", gt=0)
    batch: int = _key(30, "INTRANET_OUTBOX_BATCH", "Messages claimed per sender round.", ge=1)
    retry_seconds: float = _key(60, "INTRANET_OUTBOX_RETRY_SECONDS",
                                "First retry delay after a temporary failure (doubles each time).", ge=0)
    teams_workflow_url: str = Field("", alias="INTRANET_TEAMS_WORKFLOW_URL", repr=False,
                                    description="Workflows HTTP trigger posting cards to a person's chat (a secret).")

    @property
    def lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.lease_seconds)

    @property
    def teams_enabled(self) -> bool:
        return bool(self.teams_workflow_url)


class DigestSettings(_Group):
    """Planned digests: what goes in one and how far ahead they are planned."""

    max_items: int = _key(10, "INTRANET_DIGEST_MAX_ITEMS", "Most posts in one digest (a link leads to the rest).", ge=1)
    lookback_days: int = _key(7, "INTRANET_DIGEST_LOOKBACK_DAYS", "A first digest covers posts from this many days back.", ge=1)
    plan_horizon_hours: float = _key(36, "INTRANET_DIGEST_PLAN_HORIZON_HOURS",
                                     "How far ahead the planning job writes digest slots.", gt=0)

    @property
    def plan_horizon(self) -> dt.timedelta:
        return dt.timedelta(hours=self.plan_horizon_hours)


class AlertSettings(_Group):
    """Must-reads and their reminders, and posts sent as they happen."""

    batch_minutes: int = _key(15, "INTRANET_ALERT_BATCH_MINUTES",
                              "As-it-happens posts and must-reads for one person are batched into windows this long.",
                              ge=1, le=24 * 60)
    lookback_hours: float = _key(24, "INTRANET_ALERT_LOOKBACK_HOURS",
                                 "Posts published this long ago are still sent as they happen (covers scheduler downtime).",
                                 gt=0)
    reminder_hours: float = _key(48, "INTRANET_MUST_READ_REMINDER_HOURS",
                                 "A must-read still unacknowledged this long after publishing is escalated to a second "
                                 "channel.", gt=0)
    max_reminders: int = _key(3, "INTRANET_MUST_READ_MAX_REMINDERS",
                              "Most reminders of one unacknowledged must-read outside planned digests.", ge=0)

    @property
    def batch(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.batch_minutes)

    @property
    def lookback(self) -> dt.timedelta:
        return dt.timedelta(hours=self.lookback_hours)

    @property
    def reminder_after(self) -> dt.timedelta:
        return dt.timedelta(hours=self.reminder_hours)


class FatigueSettings(_Group):
    """Fewer, wanted messages: a gentler cadence for people who ignore their digests, and a weekly budget."""

    ignored_digests: int = _key(5, "INTRANET_FATIGUE_IGNORED_DIGESTS",
                                "Digests in a row sent without an open or a click before Beacon suggests a gentler "
                                "cadence (daily to weekly, twice a day or as it happens to daily).", ge=2)
    auto_step_down: bool = _key(False, "INTRANET_FATIGUE_AUTO_STEP_DOWN",
                                "Step the cadence down automatically, and tell the person, when a suggestion stays "
                                "unanswered for as many more ignored digests. Must-reads are never affected.")
    weekly_budget: int = _key(30, "INTRANET_WEEKLY_ITEM_BUDGET",
                              "Most posts that are not must-reads one person is sent in any 7 days, digests and "
                              "alerts together (0: no budget). Must-reads never count and are never held back.", ge=0)


class EventSettings(_Group):
    """Reading events sent by browsers (``POST /api/v1/events``)."""

    max_batch: int = _key(500, "INTRANET_EVENTS_MAX_BATCH", "Most events accepted in one POST /api/v1/events batch.", ge=1)
    max_age_hours: float = _key(72, "INTRANET_EVENTS_MAX_AGE_HOURS",
                                "Client events older than this are refused (offline queues flush sooner).", gt=0)
    max_skew_seconds: float = _key(300, "INTRANET_EVENTS_MAX_SKEW_SECONDS",
                                   "Client events further than this in the future are refused.", ge=0)
    retention_months: int = _key(13, "INTRANET_EVENTS_RETENTION_MONTHS",
                                 "Raw reading events older than this many months are deleted by the daily "
                                 "events-purge job (the dashboards' rollups keep their aggregates); on PostgreSQL "
                                 "whole monthly partitions are dropped once all of a month is past it.", ge=1, le=120)
    visibility_cache_seconds: float = _key(
        5, "INTRANET_EVENTS_VISIBILITY_CACHE_SECONDS",
        "How long a web worker remembers that a person may see a post, for their next event batches (0: check "
        "every batch); a post unpublished or retargeted away from them is refused at most this much later.", ge=0)
    buffer_url: str = Field("", alias="INTRANET_EVENTS_BUFFER_URL", repr=False,
                            description="redis://host:6379/0: web workers queue accepted events in a Redis stream "
                                        "(answering 202) and the scheduler's flusher stores them in bulk (several "
                                        "instances on PostgreSQL). Empty: each request stores its events itself.")
    buffer_stream: str = _key("beacon:events", "INTRANET_EVENTS_BUFFER_STREAM",
                              "The Redis stream key of that buffer (several installations may share one Redis).")
    buffer_flush_seconds: float = _key(1.0, "INTRANET_EVENTS_BUFFER_FLUSH_SECONDS",
                                       "Longest the flusher waits for more events before storing what it has.", gt=0)
    buffer_flush_events: int = _key(5000, "INTRANET_EVENTS_BUFFER_FLUSH_EVENTS",
                                    "Events the flusher stores per transaction (one COPY on PostgreSQL).", ge=1)
    buffer_max_entries: int = _key(100_000, "INTRANET_EVENTS_BUFFER_MAX_ENTRIES",
                                   "Queued batches beyond which web workers store events directly again (the "
                                   "flusher is down or behind: Redis memory stays bounded).", ge=1)
    buffer_claim_idle_seconds: float = _key(30, "INTRANET_EVENTS_BUFFER_CLAIM_IDLE_SECONDS",
                                            "A batch a flusher read but did not acknowledge for this long (it "
                                            "crashed) is taken over by the next flusher.", ge=0)

    @property
    def max_age(self) -> dt.timedelta:
        return dt.timedelta(hours=self.max_age_hours)

    @property
    def max_skew(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.max_skew_seconds)

    @field_validator("buffer_url")
    @classmethod
    def _a_redis_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"{value!r} is not a Redis URL such as 'redis://127.0.0.1:6379/0' (or leave it empty)")
        return value


class RatingSettings(_Group):
    """Ratings of posts, from the feed, the post page, digest emails and Teams cards."""

    per_minute: int = _key(30, "INTRANET_RATINGS_PER_MINUTE",
                           "Rating changes one person may make per minute, counted across every instance.", ge=1)
    link_days: int = _key(30, "INTRANET_RATING_LINK_DAYS", "How long the rating links of a digest stay valid.", ge=1)

    @property
    def window(self) -> dt.timedelta:
        return dt.timedelta(minutes=1)

    @property
    def link_max_age(self) -> dt.timedelta:
        return dt.timedelta(days=self.link_days)


class ApiKeySettings(_Group):
    """API keys of server-to-server clients (created by admins: /admin/api-keys, ``flask intranet api-keys``)."""

    per_minute: int = _key(600, "INTRANET_API_KEY_REQUESTS_PER_MINUTE",
                           "Requests one API key may make per minute, counted across every instance; "
                           "beyond it a 429 with Retry-After.", ge=1)

    @property
    def window(self) -> dt.timedelta:
        return dt.timedelta(minutes=1)


class UploadSettings(_Group):
    """Images and files attached to posts."""

    upload_dir: str | None = _key(None, "INTRANET_UPLOAD_DIR",
                                  "Where uploaded attachments are stored; default: uploads/ in the instance folder.")
    max_image_bytes: int = _key(5 * 1024 * 1024, "INTRANET_MAX_IMAGE_BYTES", "Largest image a post may embed.", ge=1)
    max_attachment_bytes: int = _key(10 * 1024 * 1024, "INTRANET_MAX_ATTACHMENT_BYTES",
                                     "Largest file a post may attach.", ge=1)


class DirectorySettings(_Group):
    """Where the directory policy and the HR column mappings are read from."""

    config_path: str | None = _key(None, "INTRANET_DIRECTORY_CONFIG",
                                   "Path of the directory policy (TOML); default config/directory.toml.")
    hr_mappings_dir: str | None = _key(None, "INTRANET_HR_MAPPINGS_DIR",
                                       "Folder of HR column mapping files (TOML); default config/hr_mappings.")
    lease_seconds: float = _key(120, "INTRANET_DIRECTORY_LEASE_SECONDS",
                                "How long a directory sync's lease lasts without renewal (a running sync renews "
                                "it as it goes; after a crash the next sync may start this long later).", gt=0)

    @property
    def lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.lease_seconds)


class EntraSettings(_Group):
    """Entra ID sign-in and the Graph directory sync (``None``: the Graph client's default)."""

    tenant_id: str | None = _key(None, "INTRANET_ENTRA_TENANT_ID",
                                 "Entra ID directory (tenant) GUID: enables Entra sign-in and Graph sync.")
    client_id: str | None = _key(None, "INTRANET_ENTRA_CLIENT_ID", "The app registration's application (client) id.")
    client_secret: str | None = Field(None, alias="INTRANET_ENTRA_CLIENT_SECRET", repr=False,
                                      description="The app registration's client secret (or use a certificate).")
    client_certificate: str | dict[str, Any] | None = Field(
        None, alias="INTRANET_ENTRA_CLIENT_CERTIFICATE", repr=False,
        description="Instead of a secret: the certificate credential msal accepts.")
    authority: str | None = _key(None, "INTRANET_ENTRA_AUTHORITY", "Default https://login.microsoftonline.com/<tenant id>.")
    instance_discovery: bool | None = _key(
        None, "INTRANET_ENTRA_INSTANCE_DISCOVERY",
        "Set false when INTRANET_ENTRA_AUTHORITY is not a Microsoft host (a local fake, a proxy).")
    graph_base_url: str | None = _key(None, "INTRANET_GRAPH_BASE_URL", "Default https://graph.microsoft.com/v1.0.")
    graph_select: str | list[str] | None = _key(None, "INTRANET_GRAPH_SELECT",
                                                "User properties read from Graph (list or comma-separated).")
    graph_page_size: int | None = _key(None, "INTRANET_GRAPH_PAGE_SIZE", "Users per Graph page (1..999).", ge=1, le=999)
    graph_return_minimal: bool | None = _key(None, "INTRANET_GRAPH_RETURN_MINIMAL",
                                             "Ask Graph for minimal delta responses.")
    graph_max_attempts: int | None = _key(None, "INTRANET_GRAPH_MAX_ATTEMPTS", "Tries per Graph request.", ge=1)
    graph_max_total_wait_s: float | None = _key(None, "INTRANET_GRAPH_MAX_TOTAL_WAIT_S",
                                                "Longest total wait for throttled Graph requests in one round.", ge=0)
    graph_base_backoff_s: float | None = _key(None, "INTRANET_GRAPH_BASE_BACKOFF_S", "First Graph retry delay.", ge=0)
    graph_max_backoff_s: float | None = _key(None, "INTRANET_GRAPH_MAX_BACKOFF_S", "Longest Graph retry delay.", ge=0)
    graph_timeout_s: float | None = _key(None, "INTRANET_GRAPH_TIMEOUT_S", "Timeout of one Graph request.", gt=0)

    @property
    def configured(self) -> bool:
        """Whether a tenant and an application are set (the Graph sync runs)."""
        return bool(self.tenant_id and self.client_id)


class AnalyticsSettings(_Group):
    """Engagement dashboards and their API (aggregate-only)."""

    min_group: int = _key(5, "INTRANET_ANALYTICS_MIN_GROUP",
                          "Smallest group of people an analytics answer describes: smaller groups, cells and "
                          "narrowed filters are hidden (see intranet/analytics/privacy.py).", ge=2)


class JourneySettings(_Group):
    """Journeys for new joiners and movers (:mod:`intranet.journeys`): what starts them and when steps go out."""

    manager_level: int = _key(6, "INTRANET_JOURNEY_MANAGER_LEVEL",
                              "Directory levels (1-10) from this one up are people-manager levels: a person "
                              "reaching one from below starts the 'promotion to manager' journeys.", ge=1, le=10)
    release_hour: int = _key(9, "INTRANET_JOURNEY_RELEASE_HOUR",
                             "Local hour (0-23) of the person's day, in their time zone (else the organisation's), "
                             "at which journey steps are released.", ge=0, le=23)
    catch_up_days: int = _key(2, "INTRANET_JOURNEY_CATCH_UP_DAYS",
                              "A journey step due at most this many days before it could be released still goes "
                              "out; older ones are skipped (reason 'late'), never sent as a backlog.", ge=0, le=30)


class WebhookSettings(_Group):
    """Outgoing webhooks (:mod:`intranet.webhooks`): delivery, retries, and where they may go."""

    timeout_seconds: float = _key(5, "INTRANET_WEBHOOKS_TIMEOUT_SECONDS",
                                  "How long one delivery waits to connect and for each read of the answer.", gt=0, le=60)
    retry_seconds: float = _key(30, "INTRANET_WEBHOOKS_RETRY_SECONDS",
                                "First retry delay after a failed delivery (doubles each time, +-20 % jitter, at most "
                                "an hour; a longer Retry-After on 429/503 wins).", ge=0)
    give_up_hours: float = _key(24, "INTRANET_WEBHOOKS_GIVE_UP_HOURS",
                                "A delivery still failing this long after its event is given up (shown on the admin "
                                "page).", gt=0)
    batch: int = _key(50, "INTRANET_WEBHOOKS_BATCH", "Deliveries claimed per sender round.", ge=1)
    lease_seconds: float = _key(120, "INTRANET_WEBHOOKS_LEASE_SECONDS",
                                "How long a sender owns a claimed delivery before another may take it over.", gt=0)
    allow_private: bool = _key(False, "INTRANET_WEBHOOKS_ALLOW_PRIVATE",
                               "Deliver to loopback, private and link-local addresses; with INTRANET_ENV=production "
                               "they are refused unless this is set (webhook URLs must not reach internal services).")
    encryption_key: str = Field("", alias="INTRANET_WEBHOOKS_ENCRYPTION_KEY", repr=False,
                                description="A Fernet key (a secret) that encrypts endpoints' signing secrets in the "
                                            "database; empty: they are stored in clear.")

    @field_validator("encryption_key")
    @classmethod
    def _fernet_key(cls, value: str) -> str:
        # Checked here without importing the cipher: a Fernet key is 32 bytes in URL-safe base64.
        import base64
        import binascii

        if value:
            try:
                if len(base64.urlsafe_b64decode(value.encode("ascii"))) != 32:
                    raise ValueError
            except (ValueError, binascii.Error, UnicodeEncodeError):
                raise ValueError("not a Fernet key (32 bytes in URL-safe base64; make one with "
                                 "`flask intranet webhooks new-key`)") from None
        return value

    @property
    def timeout(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.timeout_seconds)

    @property
    def give_up_after(self) -> dt.timedelta:
        return dt.timedelta(hours=self.give_up_hours)

    @property
    def lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.lease_seconds)


class EmbedSettings(_Group):
    """Beacon inside other web pages: the script widget, the iframe page and the tokens hosts mint."""

    origins: tuple[str, ...] = _key(
        (), "INTRANET_EMBED_ORIGINS",
        "Web origins (scheme://host[:port], comma-separated) that may frame Beacon's embed page and call its "
        "API from the script widget (CORS); e.g. https://contoso.sharepoint.com. Empty: no embedding.")
    token_secret: str = Field("", alias="INTRANET_EMBED_TOKEN_SECRET", repr=False,
                              description="Shared secret (32+ characters) with which a trusted host backend signs "
                                          "embed tokens (JWT, HS256). Empty: hosts cannot mint tokens.")
    token_issuer: str = _key("intranet", "INTRANET_EMBED_TOKEN_ISSUER", "The 'iss' a host's embed tokens must carry.")
    token_audience: str = _key("beacon", "INTRANET_EMBED_TOKEN_AUDIENCE", "The 'aud' every embed token must carry.")
    token_subject: Literal["email", "employee_id", "entra_object_id"] = _key(
        "email", "INTRANET_EMBED_TOKEN_SUBJECT",
        "Which employee column an embed token's 'sub' names ('email', 'employee_id' or 'entra_object_id').")
    token_max_seconds: int = _key(300, "INTRANET_EMBED_TOKEN_MAX_SECONDS",
                                  "Longest lifetime (exp - iat) of an embed token that Beacon accepts.", ge=30, le=600)
    token_leeway_seconds: int = _key(30, "INTRANET_EMBED_TOKEN_LEEWAY_SECONDS",
                                     "Clock skew tolerated between the host and Beacon when checking exp and iat.",
                                     ge=0, le=120)

    @field_validator("origins", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part for part in re.split(r"[\s,]+", value) if part)
        return value

    @field_validator("origins")
    @classmethod
    def _are_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            match = _ORIGIN.fullmatch(origin)
            if match is None:
                raise ValueError(f"{origin!r} is not an origin: write scheme://host[:port], without a path")
            if match["scheme"] == "http" and match["host"] not in _LOOPBACK:
                raise ValueError(f"{origin!r} is not HTTPS: embedding pages must be served over HTTPS")
        return tuple(dict.fromkeys(origin.lower() for origin in value))

    @field_validator("token_secret")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if value and len(value) < 32:
            raise ValueError("an embed token secret needs 32+ random characters")
        return value


_ORIGIN = re.compile(r"(?P<scheme>https?)://(?P<host>\[[0-9A-Fa-f:]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?")
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "[::1]"})


class Settings(BaseModel):
    """All of Beacon's settings, one typed group per subsystem (``app.extensions["intranet"].settings``)."""

    model_config = ConfigDict(frozen=True)

    site: SiteSettings = SiteSettings()
    database: DatabaseSettings = DatabaseSettings()
    server: ServerSettings = ServerSettings()
    rate_limits: RateLimitSettings = RateLimitSettings()
    sessions: SessionSettings = SessionSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    mail: MailSettings = MailSettings()
    digests: DigestSettings = DigestSettings()
    alerts: AlertSettings = AlertSettings()
    fatigue: FatigueSettings = FatigueSettings()
    events: EventSettings = EventSettings()
    ratings: RatingSettings = RatingSettings()
    api_keys: ApiKeySettings = ApiKeySettings()
    uploads: UploadSettings = UploadSettings()
    directory: DirectorySettings = DirectorySettings()
    entra: EntraSettings = EntraSettings()
    analytics: AnalyticsSettings = AnalyticsSettings()
    journeys: JourneySettings = JourneySettings()
    webhooks: WebhookSettings = WebhookSettings()
    embed: EmbedSettings = EmbedSettings()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """Parse every ``INTRANET_*`` key of *config* (a Flask config, or strings from the environment).

        Strings are read as their setting's type: ``"false"``/``"0"``/``"no"``/``"off"`` are false,
        ``"30"`` is 30; an empty string leaves a non-text setting at its default.

        :raise ConfigurationError: naming each key whose value cannot be used, and why.
        """
        groups: dict[str, _Group] = {}
        problems: list[str] = []
        for name, field in cls.model_fields.items():
            group_type: type[_Group] = field.annotation  # type: ignore[assignment]
            try:
                groups[name] = group_type.model_validate(config)
            except ValidationError as exc:
                for error in exc.errors():
                    key = str(error["loc"][0]) if error["loc"] else group_type.__name__
                    why = error["msg"].removeprefix("Value error, ")
                    problems.append(f"{key}={config.get(key)!r}: {why}")
        if problems:
            raise ConfigurationError("Beacon cannot start with these settings: " + "; ".join(problems) + ".")
        return cls(**groups)

    def as_config(self) -> dict[str, Any]:
        """Every ``INTRANET_*`` key with its parsed value (written back into ``app.config``)."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            out.update(getattr(self, name).model_dump(by_alias=True))
        return out


def _declared() -> Iterator[tuple[str, FieldInfo]]:
    for group in Settings.model_fields.values():
        for field in group.annotation.model_fields.values():  # type: ignore[union-attr]
            assert field.alias is not None
            yield field.alias, field


#: key -> default, for every declared setting.
DEFAULTS: dict[str, Any] = {key: field.default for key, field in _declared()}
#: key -> one-line meaning, for every declared setting (the documentation).
MEANINGS: dict[str, str] = {key: field.description or "" for key, field in _declared()}


def from_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The declared ``INTRANET_*`` settings found in *environ*, as strings (parsed by :class:`Settings`).

    Other ``INTRANET_*`` variables are logged, since a misspelt name would otherwise do nothing.
    """
    unknown = sorted(key for key in environ
                     if key.startswith("INTRANET_") and key not in DEFAULTS and key not in NOT_SETTINGS)
    if unknown:
        logger.warning("Ignoring %s: not Beacon settings (every setting is listed in intranet/settings.py)",
                       ", ".join(unknown))
    return {key: value for key, value in environ.items() if key in DEFAULTS}
