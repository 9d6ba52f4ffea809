"""Every Beacon table, in one module (SQLModel relationships across files are fragile).

Tables are prefixed ``intranet_`` and live in Beacon's own metadata. We deliberately avoid ORM
relationships: services query what they need explicitly, which keeps hot paths visible. Each
invariant is backed by a database constraint, so a second writer can never break it.

Sections: directory, sessions and leases, posts and targeting, publishing history. Later
subsystems append their own section at the end (and their own Alembic migration).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Column, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlmodel import Field

from intranet.db import Base, UTCDateTime, utcnow

ROLES = ("contributor", "comms", "admin")
POST_STATUSES = ("draft", "in_review", "scheduled", "published", "expired", "unpublished")
GROUP_KINDS = ("open", "managed")
# Audience dimensions that match an employee column exactly ("group" matches memberships,
# "reports_to" anyone up the reporting chain).
AUDIENCE_DIMENSIONS = ("department", "division", "region", "country", "office", "group", "reports_to")


def _ts(**kwargs: Any) -> Any:
    """A UTC timestamp column."""
    nullable = kwargs.pop("nullable", True)
    return Field(sa_type=UTCDateTime(), nullable=nullable, **kwargs)


# --------------------------------------------------------------------------------------------
# Directory: who works here
# --------------------------------------------------------------------------------------------


class Employee(Base, table=True):
    """One person, keyed by the HR employee number; filled from HR exports and Entra ID."""

    __tablename__ = "intranet_employee"
    __table_args__ = (
        CheckConstraint("level IS NULL OR (level BETWEEN 1 AND 10)", name="level_range"),
        UniqueConstraint("entra_tenant_id", "entra_object_id", name="uq_intranet_employee_entra"),
        Index("ix_intranet_employee_active_department", "active", "department"),
        Index("ix_intranet_employee_active_region", "active", "region"),
        Index("ix_intranet_employee_active_level", "active", "level"),
        Index("ix_intranet_employee_active_language", "active", "language"),
    )

    id: int | None = Field(default=None, primary_key=True)
    employee_id: str = Field(max_length=64, unique=True)
    email: str | None = Field(default=None, max_length=320, index=True)
    display_name: str = Field(default="", max_length=255)
    department: str | None = Field(default=None, max_length=255)
    division: str | None = Field(default=None, max_length=255)
    region: str | None = Field(default=None, max_length=64)
    country: str | None = Field(default=None, max_length=2)
    office: str | None = Field(default=None, max_length=255)
    job_title: str | None = Field(default=None, max_length=255)
    level: int | None = None
    level_label: str | None = Field(default=None, max_length=64)
    manager_id: str | None = Field(default=None, max_length=64, index=True)
    #: The first day of work, from the HR export (relative audiences and journeys count from it).
    hire_date: dt.date | None = None
    timezone: str | None = Field(default=None, max_length=64)
    language: str | None = Field(default=None, max_length=16)
    active: bool = True
    is_contributor: bool = False
    is_comms: bool = False
    is_admin: bool = False
    entra_tenant_id: str | None = Field(default=None, max_length=64)
    entra_object_id: str | None = Field(default=None, max_length=64)
    created_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)
    updated_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)
    deactivated_at: dt.datetime | None = _ts(default=None)

    def has_role(self, role: str) -> bool:
        """Whether this person holds *role* (admins hold every role below them)."""
        if role == "employee":
            return True
        if self.is_admin:
            return True
        if role == "comms":
            return self.is_comms
        if role == "contributor":
            return self.is_contributor or self.is_comms
        return False


class Group(Base, table=True):
    """An audience group: open (people join and leave) or managed (owners set members)."""

    __tablename__ = "intranet_group"
    __table_args__ = (CheckConstraint("kind IN ('open', 'managed')", name="kind"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=255)
    description: str = Field(default="", max_length=1000)
    kind: str = Field(default="open", max_length=16)
    created_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)


class GroupOwner(Base, table=True):
    __tablename__ = "intranet_group_owner"

    group_id: int = Field(sa_column=Column(ForeignKey("intranet_group.id", ondelete="CASCADE"), primary_key=True))
    employee_pk: int = Field(sa_column=Column(ForeignKey("intranet_employee.id", ondelete="CASCADE"), primary_key=True))


class GroupMember(Base, table=True):
    __tablename__ = "intranet_group_member"

    group_id: int = Field(sa_column=Column(ForeignKey("intranet_group.id", ondelete="CASCADE"), primary_key=True))
    employee_pk: int = Field(
        sa_column=Column(ForeignKey("intranet_employee.id", ondelete="CASCADE"), primary_key=True, index=True)
    )
    joined_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)


# --------------------------------------------------------------------------------------------
# Sessions and leases
# --------------------------------------------------------------------------------------------


class AuthSession(Base, table=True):
    """A server-side session; the cookie carries a random token, the table only its SHA-256."""

    __tablename__ = "intranet_session"

    id: str = Field(primary_key=True, max_length=64)
    employee_pk: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_employee.id", ondelete="CASCADE"), index=True)
    )
    data: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)
    last_seen_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)
    authenticated_at: dt.datetime | None = _ts(default=None)


class Lease(Base, table=True):
    """A named, expiring lock held by one process (the scheduler, a directory sync run)."""

    __tablename__ = "intranet_lease"

    name: str = Field(primary_key=True, max_length=64)
    owner: str = Field(max_length=128)
    expires_at: dt.datetime = _ts(nullable=False)


# --------------------------------------------------------------------------------------------
# Posts and targeting
# --------------------------------------------------------------------------------------------


class Post(Base, table=True):
    """A communication. ``audience`` is the rule as written; segments are its compiled form."""

    __tablename__ = "intranet_post"
    __table_args__ = (
        CheckConstraint(
            "status IN ('draft', 'in_review', 'scheduled', 'published', 'expired', 'unpublished')", name="status"
        ),
        CheckConstraint("rating_style IN ('stars', 'thumbs')", name="rating_style"),
        Index("ix_intranet_post_status_published_at", "status", "published_at"),
        # Covers the live-post test, so feeds never read post bodies to filter; on PostgreSQL it also
        # carries the other columns a feed ranks by, so the feed's candidate query reads the index
        # alone (an index-only scan) instead of every post's wide row: 7 of its ~18 PG CPU-ms at 10k posts.
        Index("ix_intranet_post_live", "status", "published_at", "expires_at", "all_staff", "must_read",
              postgresql_include=["id", "topic", "journey_only", "rating_style", "author_pk"]),
    )

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=300)
    summary: str = Field(default="", max_length=1000)
    body_html: str = Field(default="", sa_type=Text)
    body_text: str = Field(default="", sa_type=Text)
    topic: str = Field(default="General", max_length=64, index=True)
    must_read: bool = False
    ack_deadline: dt.datetime | None = _ts(default=None)
    status: str = Field(default="draft", max_length=16)
    audience: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    all_staff: bool = False
    publish_at: dt.datetime | None = _ts(default=None)
    expires_at: dt.datetime | None = _ts(default=None)
    published_at: dt.datetime | None = _ts(default=None)
    rating_style: str = Field(default="stars", max_length=8)
    #: The language the post was written in (its primary version; translations are PostTranslation rows).
    language: str = Field(default="en", max_length=16, sa_column_kwargs={"server_default": "en"})
    #: A journey step's post: seen only by people the step was released to (intranet.journeys).
    journey_only: bool = False
    author_pk: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_employee.id", ondelete="SET NULL"), index=True)
    )
    version: int = 1
    created_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)
    updated_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)


class AudienceSegment(Base, table=True):
    """One compiled segment of a post's audience (an include or an exclusion).

    ``n_dimensions`` counts the distinct dimensions with values, so "every dimension matched"
    is a comparison of counts in SQL rather than one subquery per dimension.
    """

    __tablename__ = "intranet_audience_segment"

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(sa_column=Column(ForeignKey("intranet_post.id", ondelete="CASCADE"), nullable=False, index=True))
    exclude: bool = False
    n_dimensions: int = 0
    level_min: int | None = None
    level_max: int | None = None
    #: "Hired in the last N days" (a relative rule, so its members change daily).
    hired_within_days: int | None = None


class AudienceValue(Base, table=True):
    __tablename__ = "intranet_audience_value"
    # With the segment id in the key, matching a person's (dimension, value) pairs is index-only, and
    # the planner then prefers a few index probes over hashing every stored value.
    __table_args__ = (Index("ix_intranet_audience_value_lookup", "dimension", "value", "segment_id"),)

    segment_id: int = Field(
        sa_column=Column(ForeignKey("intranet_audience_segment.id", ondelete="CASCADE"), primary_key=True)
    )
    dimension: str = Field(sa_column=Column(String(16), primary_key=True))
    value: str = Field(sa_column=Column(String(255), primary_key=True))


class PostState(Base, table=True):
    """What one person has done with one post: read it, acknowledged it."""

    __tablename__ = "intranet_post_state"

    employee_pk: int = Field(sa_column=Column(ForeignKey("intranet_employee.id", ondelete="CASCADE"), primary_key=True))
    post_id: int = Field(
        sa_column=Column(ForeignKey("intranet_post.id", ondelete="CASCADE"), primary_key=True, index=True)
    )
    read_at: dt.datetime | None = _ts(default=None)
    acknowledged_at: dt.datetime | None = _ts(default=None)


# --------------------------------------------------------------------------------------------
# Publishing history and files
# --------------------------------------------------------------------------------------------


class PostRevision(Base, table=True):
    """A snapshot of a post's content, kept on every edit after publishing."""

    __tablename__ = "intranet_post_revision"
    __table_args__ = (UniqueConstraint("post_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(sa_column=Column(ForeignKey("intranet_post.id", ondelete="CASCADE"), nullable=False))
    version: int
    title: str = Field(max_length=300)
    summary: str = Field(default="", max_length=1000)
    body_html: str = Field(default="", sa_type=Text)
    topic: str = Field(default="General", max_length=64)
    edited_by_pk: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_employee.id", ondelete="SET NULL"))
    )
    edited_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)


class PostTransition(Base, table=True):
    """Who moved a post from one state to another, when, and what changed."""

    __tablename__ = "intranet_post_transition"

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(
        sa_column=Column(ForeignKey("intranet_post.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str = Field(max_length=16)
    actor_pk: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_employee.id", ondelete="SET NULL"))
    )
    at: dt.datetime = _ts(default_factory=utcnow, nullable=False)
    comment: str = Field(default="", max_length=2000)
    changes: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Attachment(Base, table=True):
    """An uploaded image or file, stored by Beacon and served only to people who may see its post."""

    __tablename__ = "intranet_attachment"

    id: int | None = Field(default=None, primary_key=True)
    post_id: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_post.id", ondelete="CASCADE"), index=True)
    )
    filename: str = Field(max_length=255)
    content_type: str = Field(max_length=128)
    size_bytes: int
    sha256: str = Field(max_length=64)
    storage_key: str = Field(max_length=255, unique=True)
    kind: str = Field(default="file", max_length=8)
    uploaded_by_pk: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_employee.id", ondelete="SET NULL"))
    )
    created_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)


# --------------------------------------------------------------------------------------------
# --- directory sync ---
# Source records (what Entra ID and the HR file last said), runs, held changes, quarantine and
# unmapped values. Employee itself is untouched: everything sync-specific hangs off it here.
# --------------------------------------------------------------------------------------------

SYNC_SOURCES = ("graph", "hr")
SYNC_RUN_STATUSES = ("running", "succeeded", "failed", "refused", "held", "approved", "rejected", "superseded")


class SyncState(Base, table=True):
    """Per source: the committed deltaLink (with the hash of the ``$select`` it was made with)."""

    __tablename__ = "intranet_sync_state"

    source: str = Field(primary_key=True, max_length=16)
    delta_link: str | None = Field(default=None, sa_type=Text)
    select_hash: str | None = Field(default=None, max_length=64)
    last_full_at: dt.datetime | None = _ts(default=None)
    last_success_at: dt.datetime | None = _ts(default=None)
    last_rows: int | None = None
    last_as_of: dt.datetime | None = _ts(default=None)
    updated_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)


class SyncRun(Base, table=True):
    """One directory sync run, whatever its outcome (the audit trail of the directory)."""

    __tablename__ = "intranet_sync_run"
    __table_args__ = (
        CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'refused', 'held', 'approved', 'rejected', 'superseded')",
            name="status",
        ),
        Index("ix_intranet_sync_run_source_started", "source", "started_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=16)
    mode: str = Field(max_length=16)
    status: str = Field(default="running", max_length=16)
    trigger: str = Field(default="cli", max_length=16)
    started_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)
    finished_at: dt.datetime | None = _ts(default=None)
    duration_ms: int | None = None
    seen: int = 0
    created: int = 0
    updated: int = 0
    deactivated: int = 0
    reactivated: int = 0
    quarantined: int = 0
    unmapped: int = 0
    reference_failures: int = 0
    delta_committed: bool = False
    stale_source: bool = False
    error: str | None = Field(default=None, sa_type=Text)
    request_id: str | None = Field(default=None, max_length=64)
    correlation_id: str | None = Field(default=None, max_length=64)
    file_name: str | None = Field(default=None, max_length=255)
    file_sha256: str | None = Field(default=None, max_length=64)
    rows: int | None = None
    as_of: dt.datetime | None = _ts(default=None)
    decided_by_pk: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_employee.id", ondelete="SET NULL"))
    )
    decided_at: dt.datetime | None = _ts(default=None)


class SyncHeld(Base, table=True):
    """The changes of a held run: applied as they are if an admin approves, dropped if rejected."""

    __tablename__ = "intranet_sync_held"

    run_id: int = Field(sa_column=Column(ForeignKey("intranet_sync_run.id", ondelete="CASCADE"), primary_key=True))
    reason: str = Field(default="", max_length=1000)
    diff: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    plan: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)


class Quarantine(Base, table=True):
    """A source record that was not applied (``blocking``) or applied with a warning; last good values stay."""

    __tablename__ = "intranet_quarantine"
    __table_args__ = (UniqueConstraint("source", "source_key", "reason"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=16)
    source_key: str = Field(max_length=128)
    reason: str = Field(max_length=32)
    blocking: bool = True
    detail: str = Field(default="", max_length=1000)
    record: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    employee_pk: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_employee.id", ondelete="SET NULL"))
    )
    run_id: int | None = Field(default=None, sa_column=Column(ForeignKey("intranet_sync_run.id", ondelete="SET NULL")))
    first_seen_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)
    last_seen_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)


class UnmappedValue(Base, table=True):
    """A value no normalization map mentions: kept as it is, listed so an admin can map it."""

    __tablename__ = "intranet_unmapped_value"
    __table_args__ = (UniqueConstraint("dimension", "value"),)

    id: int | None = Field(default=None, primary_key=True)
    dimension: str = Field(max_length=32)
    value: str = Field(max_length=255)
    source: str = Field(max_length=16)
    occurrences: int = 0
    first_seen_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)
    last_seen_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)


class EntraUser(Base, table=True):
    """What Graph last said about one user (every selected property; guests and rooms included)."""

    __tablename__ = "intranet_entra_user"

    id: str = Field(primary_key=True, max_length=64)
    props: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    included: bool = False
    removed: str | None = Field(default=None, max_length=16)
    employee_pk: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_employee.id", ondelete="SET NULL"), index=True)
    )
    updated_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)


class HrRecord(Base, table=True):
    """What the HR export last said about one employee number (canonical fields, normalized)."""

    __tablename__ = "intranet_hr_record"

    employee_number: str = Field(primary_key=True, max_length=64)
    props: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    as_of: dt.datetime | None = _ts(default=None)
    employee_pk: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_employee.id", ondelete="SET NULL"), index=True)
    )
    updated_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)


class EmployeeDirectory(Base, table=True):
    """Directory facts about an employee that only the sync needs: cost centre, provenance, erasure."""

    __tablename__ = "intranet_employee_directory"

    employee_pk: int = Field(sa_column=Column(ForeignKey("intranet_employee.id", ondelete="CASCADE"), primary_key=True))
    cost_center: str | None = Field(default=None, max_length=64)
    sources: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    erase_after: dt.datetime | None = _ts(default=None)
    pending_termination: dt.datetime | None = _ts(default=None)
    updated_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)


# --------------------------------------------------------------------------------------------
# --- delivery ---
# Read-time analytics and digests: engagement events, preferences, the learned timing
# state, digest slots and the outbox. Exactly-once delivery rests on two unique keys: one digest
# per (employee, local date, ordinal) and one outbox message per (digest, channel).
# --------------------------------------------------------------------------------------------

EVENT_KINDS = ("impression", "open", "read", "digest_sent", "digest_open", "digest_click", "session", "acknowledge")
CADENCES = ("off", "as_it_happens", "daily", "twice_daily", "weekly")
CHANNELS = ("email", "teams", "in_app")
DIGEST_STATUSES = ("planned", "queued", "skipped", "expired", "cancelled")
OUTBOX_STATUSES = ("pending", "sending", "sent", "failed", "expired", "skipped")


class EngagementEvent(Base, table=True):
    """One thing a person did (or was sent): stored in UTC and in the reader's local hour and weekday.

    ``client_id`` is the id the client gave the event (derived from the row for imports), unique
    per employee, so a retried batch or a re-import never counts twice.
    """

    __tablename__ = "intranet_event"
    __table_args__ = (
        UniqueConstraint("employee_pk", "client_id", name="uq_intranet_event_client"),
        CheckConstraint("kind IN ('impression', 'open', 'read', 'digest_sent', 'digest_open', 'digest_click', "
                        "'session', 'acknowledge')", name="kind"),
        CheckConstraint("local_hour BETWEEN 0 AND 23 AND local_weekday BETWEEN 0 AND 6", name="local_time"),
        Index("ix_intranet_event_employee_occurred", "employee_pk", "occurred_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    employee_pk: int = Field(sa_column=Column(ForeignKey("intranet_employee.id", ondelete="CASCADE"), nullable=False))
    client_id: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    post_id: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_post.id", ondelete="CASCADE"), index=True)
    )
    occurred_at: dt.datetime = _ts(nullable=False)
    received_at: dt.datetime = _ts(nullable=False)
    local_hour: int
    local_weekday: int
    dwell_ms: int | None = None
    delivery_id: int | None = None
    channel: str | None = Field(default=None, max_length=16)
    surface: str | None = Field(default=None, max_length=16)
    position: int | None = None
    device: str | None = Field(default=None, max_length=8)
    source: str = Field(default="client", max_length=8)


class Preference(Base, table=True):
    """What one person chose about their digest; NULL means "the organisation's default"."""

    __tablename__ = "intranet_preference"
    __table_args__ = (
        CheckConstraint("cadence IS NULL OR cadence IN ('off', 'as_it_happens', 'daily', 'twice_daily', 'weekly')",
                        name="cadence"),
        CheckConstraint("weekly_day IS NULL OR weekly_day BETWEEN 0 AND 6", name="weekly_day"),
        CheckConstraint("(quiet_start IS NULL OR quiet_start BETWEEN 0 AND 23) AND "
                        "(quiet_end IS NULL OR quiet_end BETWEEN 0 AND 23)", name="quiet_hours"),
        CheckConstraint("device IS NULL OR device IN ('phone', 'computer', 'either')", name="device"),
    )

    employee_pk: int = Field(sa_column=Column(ForeignKey("intranet_employee.id", ondelete="CASCADE"), primary_key=True))
    cadence: str | None = Field(default=None, max_length=16)
    weekly_day: int | None = None
    channels: list | None = Field(default=None, sa_column=Column(JSON))
    quiet_start: int | None = None
    quiet_end: int | None = None
    working_days: list | None = Field(default=None, sa_column=Column(JSON))
    followed_topics: list | None = Field(default=None, sa_column=Column(JSON))
    muted_topics: list | None = Field(default=None, sa_column=Column(JSON))
    learned_timing: bool | None = None
    device: str | None = Field(default=None, max_length=16)
    open_tracking: bool | None = None
    #: The interface and post language the person chose (NULL: the directory's, see intranet.languages).
    language: str | None = Field(default=None, max_length=16)
    updated_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)


class OrgPreference(Base, table=True):
    """The organisation's digest defaults (one row, id 1), changed by comms managers."""

    __tablename__ = "intranet_org_preference"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: int = Field(default=1, primary_key=True)
    values: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)
    updated_by_pk: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_employee.id", ondelete="SET NULL"))
    )


class TimingState(Base, table=True):
    """One person's decayed read-time counts (reads, exposure, activity per hour of week) as of ``as_of``.

    ``counts`` holds three float32 rows of 168 bins, zlib-compressed; ``through_event_id`` is the
    last event folded in, so the refresh job only reads newer events.
    """

    __tablename__ = "intranet_timing_state"

    employee_pk: int = Field(sa_column=Column(ForeignKey("intranet_employee.id", ondelete="CASCADE"), primary_key=True))
    counts: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    as_of: dt.datetime = _ts(nullable=False)
    first_event_at: dt.datetime | None = _ts(default=None)
    through_event_id: int = 0


class Digest(Base, table=True):
    """One planned digest: the slot (employee, local date, ordinal) it fills, when it is due and why."""

    __tablename__ = "intranet_digest"
    __table_args__ = (
        UniqueConstraint("employee_pk", "local_date", "ordinal", name="uq_intranet_digest_slot"),
        CheckConstraint("status IN ('planned', 'queued', 'skipped', 'expired', 'cancelled')", name="status"),
        Index("ix_intranet_digest_status_due", "status", "due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    employee_pk: int = Field(sa_column=Column(ForeignKey("intranet_employee.id", ondelete="CASCADE"), nullable=False))
    local_date: dt.date
    ordinal: int
    due_at: dt.datetime = _ts(nullable=False)
    expires_at: dt.datetime = _ts(nullable=False)
    timezone: str = Field(max_length=64)
    local_hour: int
    basis: str | None = Field(default=None, max_length=16)
    explored: bool = False
    propensity: float = 1.0
    status: str = Field(default="planned", max_length=16)
    reason: str = Field(default="", max_length=255)
    created_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)
    #: ``digest`` (a planned digest, ordinals 0-1) or ``alert`` (must-reads and as-it-happens posts
    #: that cannot wait, ordinal 100 + the local batching window of the day; see delivery.alerts).
    kind: str = Field(default="digest", max_length=16, sa_column_kwargs={"server_default": "digest"})


class DigestItem(Base, table=True):
    """One post in one round carried to one person by a slot: the key makes each (person, post,
    round) go out once. Round 0 is the first delivery, round k the k-th must-read reminder."""

    __tablename__ = "intranet_digest_item"

    employee_pk: int = Field(sa_column=Column(ForeignKey("intranet_employee.id", ondelete="CASCADE"), primary_key=True))
    post_id: int = Field(sa_column=Column(ForeignKey("intranet_post.id", ondelete="CASCADE"), primary_key=True))
    round: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    digest_id: int = Field(
        sa_column=Column(ForeignKey("intranet_digest.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    created_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)


class OutboxMessage(Base, table=True):
    """One digest on one channel: claimed by a sender under a lease, sent once, retried when temporary."""

    __tablename__ = "intranet_outbox"
    __table_args__ = (
        UniqueConstraint("digest_id", "channel", name="uq_intranet_outbox_digest_channel"),
        CheckConstraint("channel IN ('email', 'teams', 'in_app')", name="channel"),
        CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed', 'expired', 'skipped')", name="status"),
        Index("ix_intranet_outbox_status_next", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    digest_id: int = Field(sa_column=Column(ForeignKey("intranet_digest.id", ondelete="CASCADE"), nullable=False))
    employee_pk: int = Field(
        sa_column=Column(ForeignKey("intranet_employee.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    channel: str = Field(max_length=16)
    escalation: bool = False
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: dt.datetime = _ts(nullable=False)
    expires_at: dt.datetime = _ts(nullable=False)
    lease_until: dt.datetime | None = _ts(default=None)
    claimed_by: str | None = Field(default=None, max_length=128)
    message_id: str = Field(max_length=255)
    post_ids: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    sent_at: dt.datetime | None = _ts(default=None)
    last_error: str | None = Field(default=None, max_length=1000)
    created_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)


class TimingModel(Base, table=True):
    """The organisation's fitted peer curves (one row, id 1), so one person can be re-planned alone.

    ``blob`` is the numpy archive of :class:`intranet.delivery.timing.PeerModel`; ``groups`` and
    ``regions`` map "department|region" and region names to the codes it was fitted with.
    """

    __tablename__ = "intranet_timing_model"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: int = Field(default=1, primary_key=True)
    blob: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    groups: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    regions: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    as_of: dt.datetime = _ts(nullable=False)


# --------------------------------------------------------------------------------------------
# --- publishing ---
# Publishing: who previewed the feed as which member of a post's audience. The preview
# shows visibility only (never that person's reading), and every use is kept here for audit.
# --------------------------------------------------------------------------------------------


class PostPreview(Base, table=True):
    """One "see the feed as this person" preview: who looked, as whom, for which post, when."""

    __tablename__ = "intranet_post_preview"

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(
        sa_column=Column(ForeignKey("intranet_post.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    viewer_pk: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_employee.id", ondelete="SET NULL"))
    )
    subject_pk: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_employee.id", ondelete="SET NULL"))
    )
    at: dt.datetime = _ts(default_factory=utcnow, nullable=False)


# --------------------------------------------------------------------------------------------
# --- ratings ---
# One rating per (employee, post), and the shared per-person counters that rate-limit writes
# (kept in the database so every instance and worker counts against the same budget).
# --------------------------------------------------------------------------------------------

RATING_STYLES = ("stars", "thumbs")
THUMBS = ("up", "down")


class Rating(Base, table=True):
    """What one person thought of one post: stars (1-5) or a thumb, whichever the post asks for.

    A second rating replaces the first (the unique key); ``signed`` says whether the author may
    see who wrote ``comment``.
    """

    __tablename__ = "intranet_rating"
    __table_args__ = (
        UniqueConstraint("employee_pk", "post_id", name="uq_intranet_rating_employee_post"),
        # Spelled with IS NOT NULL throughout: a CHECK that evaluates to NULL passes.
        CheckConstraint("(stars IS NOT NULL AND stars BETWEEN 1 AND 5 AND thumb IS NULL) OR "
                        "(stars IS NULL AND thumb IS NOT NULL AND thumb IN ('up', 'down'))", name="stars_or_thumb"),
        CheckConstraint("comment IS NULL OR length(comment) <= 2000", name="comment_length"),
    )

    id: int | None = Field(default=None, primary_key=True)
    employee_pk: int = Field(sa_column=Column(ForeignKey("intranet_employee.id", ondelete="CASCADE"), nullable=False))
    post_id: int = Field(
        sa_column=Column(ForeignKey("intranet_post.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    stars: int | None = None
    thumb: str | None = Field(default=None, max_length=4)
    comment: str | None = Field(default=None, max_length=2000)
    signed: bool = False
    created_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)
    updated_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)


class RateWindow(Base, table=True):
    """How many times one caller hit one limited action in one fixed window (e.g. a minute)."""

    __tablename__ = "intranet_rate_window"

    bucket: str = Field(sa_column=Column(String(96), primary_key=True))
    window_start: dt.datetime = Field(sa_column=Column(UTCDateTime(), primary_key=True))
    hits: int = 0


# --------------------------------------------------------------------------------------------
# --- ranking ---
# A person's ranked feed, frozen when they open its first page, so that paging through it
# never repeats or skips a post while others publish and rate in between.
# --------------------------------------------------------------------------------------------


class FeedSnapshot(Base, table=True):
    """The order (and the reasons) of one person's feed as ranked at ``created_at``.

    ``id`` is random and named by the feed cursor; ``items`` is zlib-compressed JSON
    (post ids in order, the distinct reason texts, each post's reason indices).
    """

    __tablename__ = "intranet_feed_snapshot"

    id: str = Field(primary_key=True, max_length=32)
    employee_pk: int = Field(
        sa_column=Column(ForeignKey("intranet_employee.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    items: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: dt.datetime = _ts(nullable=False)
    expires_at: dt.datetime = _ts(nullable=False, index=True)


# --------------------------------------------------------------------------------------------
# --- fatigue ---
# People who keep ignoring their digests are offered a gentler cadence (or, where the
# organisation allows it, stepped down and told), rather than sent more mail.
# --------------------------------------------------------------------------------------------

FATIGUE_KINDS = ("suggestion", "step_down")
FATIGUE_RESOLUTIONS = ("accepted", "dismissed", "kept", "reverted", "withdrawn")


class FatigueNotice(Base, table=True):
    """The latest cadence notice of one person: a suggestion to step down, or an automatic step down.

    One row per person (the key makes a second scheduler's run harmless): a new notice replaces a
    resolved one. It is open while ``resolved_at`` is NULL; ``announced_at`` is when a digest told
    the person about an automatic step down.
    """

    __tablename__ = "intranet_fatigue_notice"
    __table_args__ = (
        CheckConstraint("kind IN ('suggestion', 'step_down')", name="kind"),
        CheckConstraint("resolution IS NULL OR resolution IN ('accepted', 'dismissed', 'kept', 'reverted', "
                        "'withdrawn')", name="resolution"),
    )

    employee_pk: int = Field(sa_column=Column(ForeignKey("intranet_employee.id", ondelete="CASCADE"), primary_key=True))
    kind: str = Field(max_length=16)
    from_cadence: str = Field(max_length=16)
    to_cadence: str = Field(max_length=16)
    #: Digests in a row sent without an open or a click when the notice was made.
    ignored: int
    created_at: dt.datetime = _ts(nullable=False)
    resolved_at: dt.datetime | None = _ts(default=None)
    resolution: str | None = Field(default=None, max_length=16)
    announced_at: dt.datetime | None = _ts(default=None)


# --------------------------------------------------------------------------------------------
# --- analytics ---
# Rollups kept current as events arrive (intranet.analytics.rollups), so dashboards never group
# raw events. Distinct counts rest on marker tables: a person is counted once per post and
# stage, and once per reading-hour cell and day, by a primary key an insert cannot repeat.
# --------------------------------------------------------------------------------------------

#: Stages of a person's engagement with one post (markers and group counters).
STAGE_REACHED, STAGE_READ, STAGE_ACKNOWLEDGED = 1, 2, 3


class AnalyticsPending(Base, table=True):
    """Events stored by one live ingest batch and not yet folded into the rollups (ids, comma-separated).

    Written in the ingest's own transaction, so the fold job sees exactly the committed batches,
    and claimed by deleting the row, so two folders never count one batch twice.
    """

    __tablename__ = "intranet_analytics_pending"

    id: int | None = Field(default=None, primary_key=True)
    event_ids: str = Field(sa_type=Text)


class AnalyticsPostPerson(Base, table=True):
    """That one person reached, read or acknowledged one post, first at ``first_at`` (counted once)."""

    __tablename__ = "intranet_analytics_post_person"

    # No foreign keys on the two marker tables: they take a row per event folded, and a key
    # check per row doubled a rebuild's time on PostgreSQL. Erasure deletes a person's markers
    # explicitly (directory.lifecycle.PERSONAL_ROWS); posts with markers are never deleted.
    post_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    employee_pk: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False, index=True))
    stage: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    first_at: dt.datetime = _ts(nullable=False)


class AnalyticsPostGroup(Base, table=True):
    """Distinct people per post and group (department, region or level, as they were when first counted).

    ``value`` is ``""`` for people with no value; each dimension's rows partition the post's
    people, so a post's totals are the sum of its department rows.
    """

    __tablename__ = "intranet_analytics_post_group"

    post_id: int = Field(sa_column=Column(ForeignKey("intranet_post.id", ondelete="CASCADE"), primary_key=True))
    dimension: str = Field(sa_column=Column(String(16), primary_key=True))
    value: str = Field(sa_column=Column(String(255), primary_key=True))
    reached: int = 0
    read: int = 0
    acknowledged: int = 0


class AnalyticsGroupDay(Base, table=True):
    """Per dimension, group and UTC day of publishing: the post group rows of the posts published
    that day, summed (people reached and reading) and their largest reach (the minimum-group size).

    What the organisation's read-rate charts read: a month is a few thousand of these rows, where
    the post group rows behind it are a few hundred thousand at 10 million events. A post's rows
    are summed under the day in :class:`AnalyticsPostFiled`; when its publishing day changes
    (unpublished and published again), :func:`intranet.analytics.rollups.refile` recounts both days.
    """

    __tablename__ = "intranet_analytics_group_day"

    dimension: str = Field(sa_column=Column(String(16), primary_key=True))
    day: dt.date = Field(primary_key=True)
    value: str = Field(sa_column=Column(String(255), primary_key=True))
    reached: int = 0
    read: int = 0
    #: The largest ``reached`` of one post's group row among them (reach only grows, so a maximum keeps).
    largest: int = 0


class AnalyticsPostFiled(Base, table=True):
    """The UTC publishing day a post's group rows are summed under in :class:`AnalyticsGroupDay`
    (null: not published when first counted). Every post with group rows has one."""

    __tablename__ = "intranet_analytics_post_filed"

    # No foreign key: a deleted post's row is how refiling finds the day to recount.
    post_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    day: dt.date | None = None


class AnalyticsPostDay(Base, table=True):
    """Per post and UTC day: read events, and the people first reached, reading, acknowledging that day."""

    __tablename__ = "intranet_analytics_post_day"

    post_id: int = Field(sa_column=Column(ForeignKey("intranet_post.id", ondelete="CASCADE"), primary_key=True))
    day: dt.date = Field(primary_key=True)
    reads: int = 0
    readers: int = 0
    reached: int = 0
    acknowledged: int = 0


class AnalyticsHourReads(Base, table=True):
    """Read events per zone, day and (weekday, hour) cell.

    ``zone`` is ``local`` (cells in each reader's own time, days in UTC) or an IANA zone (cells
    and days in that zone).
    """

    __tablename__ = "intranet_analytics_hour_reads"

    zone: str = Field(sa_column=Column(String(64), primary_key=True))
    day: dt.date = Field(primary_key=True)
    weekday: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    hour: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    reads: int = 0


class AnalyticsReaderCell(Base, table=True):
    """That one person read in one (weekday, hour) cell on one day (the marker behind distinct readers)."""

    __tablename__ = "intranet_analytics_reader_cell"

    zone: str = Field(sa_column=Column(String(64), primary_key=True))
    employee_pk: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False, index=True))
    weekday: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    hour: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    day: dt.date = Field(primary_key=True)


class AnalyticsHourReaders(Base, table=True):
    """Distinct readers per cell over any window of days, as counts of (day, previous day) pairs.

    Each marker row counts here under its day and the same person's previous day in that cell
    (``0001-01-01`` for none), so the people reading in a cell between two days are the rows of
    those days whose previous day is before the window: a sum, with no person stored.
    """

    __tablename__ = "intranet_analytics_hour_readers"

    zone: str = Field(sa_column=Column(String(64), primary_key=True))
    day: dt.date = Field(primary_key=True)
    weekday: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    hour: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    prev_day: dt.date = Field(primary_key=True)
    readers: int = 0


class AnalyticsDelivery(Base, table=True):
    """One sent digest or alert message: its arm (the plan's basis), when it was opened and first read."""

    __tablename__ = "intranet_analytics_delivery"

    __table_args__ = (Index("ix_intranet_analytics_delivery_recipient", "employee_pk", "day"),)

    outbox_id: int = Field(sa_column=Column(ForeignKey("intranet_outbox.id", ondelete="CASCADE"), primary_key=True,
                                            autoincrement=False))
    #: The recipient, so that a day's distinct recipients can be counted as messages are folded.
    employee_pk: int | None = None
    day: dt.date
    channel: str = Field(max_length=16)
    arm: str = Field(max_length=16)
    sent_at: dt.datetime = _ts(nullable=False)
    opened_at: dt.datetime | None = _ts(default=None)
    read_at: dt.datetime | None = _ts(default=None)


class AnalyticsDeliveryDay(Base, table=True):
    """Per UTC day of sending, channel and arm: messages sent, opened, and read within 2 and 24 hours,
    and the distinct people they were sent to (what the minimum-group rule counts: one person can
    get several messages a day)."""

    __tablename__ = "intranet_analytics_delivery_day"

    day: dt.date = Field(primary_key=True)
    channel: str = Field(sa_column=Column(String(16), primary_key=True))
    arm: str = Field(sa_column=Column(String(16), primary_key=True))
    recipients: int = 0
    sent: int = 0
    opened: int = 0
    read_2h: int = 0
    read_24h: int = 0


# --------------------------------------------------------------------------------------------
# What the ranker keeps precomputed (rebuildable from ratings and events at any time)
# --------------------------------------------------------------------------------------------


class PostRatingStats(Base, table=True):
    """One post's rating counts, kept with every rating change so ranking reads one row per post.

    :func:`intranet.ratings.rate` and :func:`~intranet.ratings.withdraw` recount the post's
    ratings under a lock on this row; ratings removed by a cascade (an erased person) are
    recounted by the ``ranking-refresh`` job.
    """

    __tablename__ = "intranet_post_rating_stats"

    post_id: int = Field(
        sa_column=Column(ForeignKey("intranet_post.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    )
    n_stars: int = 0
    sum_stars: int = 0
    ups: int = 0
    downs: int = 0
    #: People with any feed signal about the post, and those of them who opened it (must-reads
    #: aside), as of the last ``ranking-refresh`` run: the post's own pull, case for case.
    reached: int = 0
    engaged: int = 0


class DepartmentPrior(Base, table=True):
    """A department's pooled rate per topic (the ranker's cold start), as computed at ``computed_at``.

    ``rates`` maps topic to rate. Computing it reads every member's signals, so the
    ``ranking-refresh`` job recomputes all departments together and a feed recomputes one only
    when its row is older than :data:`intranet.ranking.PRIOR_MAX_AGE`.
    """

    __tablename__ = "intranet_department_prior"

    department: str = Field(primary_key=True, max_length=255)
    rates: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    computed_at: dt.datetime = _ts(nullable=False)


# --------------------------------------------------------------------------------------------
# --- feedback ---
# Comments left with ratings, as the post's author and the comms managers answer them: the
# inbox row (one per person and post, like the rating), the private replies, and each reply's
# email to the person who wrote the comment (an outbox row: claimed, sent once, retried).
# --------------------------------------------------------------------------------------------

FEEDBACK_MAIL_STATUSES = ("pending", "sending", "sent", "failed", "expired", "skipped")


class Feedback(Base, table=True):
    """A comment left with a rating, waiting for (or having had) an answer.

    ``employee_pk`` is who wrote it; it is shown to nobody unless ``signed``. Editing the comment
    puts it back in the inbox (``received_at`` moves, ``answered_at`` clears); withdrawing it
    deletes the row, or only the text once someone has replied (the replies stay the writer's).
    """

    __tablename__ = "intranet_feedback"
    __table_args__ = (
        UniqueConstraint("employee_pk", "post_id", name="uq_intranet_feedback_employee_post"),
        CheckConstraint("comment IS NULL OR length(comment) <= 2000", name="comment_length"),
        Index("ix_intranet_feedback_answered_received", "answered_at", "received_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    employee_pk: int = Field(
        sa_column=Column(ForeignKey("intranet_employee.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    post_id: int = Field(
        sa_column=Column(ForeignKey("intranet_post.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    comment: str | None = Field(default=None, sa_type=Text)
    signed: bool = False
    received_at: dt.datetime = _ts(nullable=False)
    answered_at: dt.datetime | None = _ts(default=None)
    answered_by_pk: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_employee.id", ondelete="SET NULL"))
    )


class FeedbackReply(Base, table=True):
    """A private answer to one piece of feedback, seen only by its writer (and the inbox)."""

    __tablename__ = "intranet_feedback_reply"
    __table_args__ = (CheckConstraint("length(body) BETWEEN 1 AND 2000", name="body_length"),)

    id: int | None = Field(default=None, primary_key=True)
    feedback_id: int = Field(
        sa_column=Column(ForeignKey("intranet_feedback.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    author_pk: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_employee.id", ondelete="SET NULL"))
    )
    body: str = Field(sa_type=Text)
    created_at: dt.datetime = _ts(nullable=False)
    seen_at: dt.datetime | None = _ts(default=None)


class FeedbackMail(Base, table=True):
    """One reply's email to the person who wrote the feedback (when email is one of their channels)."""

    __tablename__ = "intranet_feedback_mail"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed', 'expired', 'skipped')", name="status"),
        Index("ix_intranet_feedback_mail_status_next", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reply_id: int = Field(
        sa_column=Column(ForeignKey("intranet_feedback_reply.id", ondelete="CASCADE"), nullable=False, unique=True)
    )
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: dt.datetime = _ts(nullable=False)
    expires_at: dt.datetime = _ts(nullable=False)
    lease_until: dt.datetime | None = _ts(default=None)
    claimed_by: str | None = Field(default=None, max_length=128)
    message_id: str = Field(max_length=255)
    sent_at: dt.datetime | None = _ts(default=None)
    last_error: str | None = Field(default=None, max_length=1000)


# --------------------------------------------------------------------------------------------
# --- webhooks ---
# Outgoing webhooks for a host to react to: the endpoints admins register, the events recorded
# in the same transaction as the change that causes them (a transactional outbox), and one
# delivery per (event, endpoint), claimed under a lease and retried like the mail outbox.
# --------------------------------------------------------------------------------------------

WEBHOOK_EVENT_TYPES = ("post.published", "post.acknowledged", "digest.sent")
WEBHOOK_DELIVERY_STATUSES = ("pending", "sending", "delivered", "failed", "expired")


class WebhookEndpoint(Base, table=True):
    """Where a host wants to hear about events, and the secret deliveries are signed with.

    ``secret`` is the Standard Webhooks ``whsec_...`` secret as stored: in clear, or encrypted
    (``fernet:...``) when ``INTRANET_WEBHOOKS_ENCRYPTION_KEY`` is set (see
    :mod:`intranet.webhooks.endpoints`). It cannot be hashed: Beacon needs it to sign.
    """

    __tablename__ = "intranet_webhook_endpoint"

    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(max_length=2000)
    description: str = Field(default="", max_length=255)
    event_types: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    secret: str = Field(max_length=512, repr=False)
    active: bool = True
    created_at: dt.datetime = _ts(nullable=False)
    created_by_pk: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_employee.id", ondelete="SET NULL"))
    )


class WebhookEvent(Base, table=True):
    """One event, recorded with the change that caused it; ``payload`` is the exact body sent.

    ``message_id`` is the ``webhook-id`` every attempt to every endpoint carries, so receivers can
    drop duplicates; ``dedupe_key`` names the fact (``post.acknowledged:<post>:<employee>``), so a
    fact recorded twice (two clicks racing) is one event.
    """

    __tablename__ = "intranet_webhook_event"
    __table_args__ = (
        CheckConstraint("type IN ('post.published', 'post.acknowledged', 'digest.sent')", name="type"),
    )

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(max_length=64, unique=True)
    type: str = Field(max_length=32)
    dedupe_key: str = Field(max_length=128, unique=True)
    #: The person the event names (post.acknowledged, digest.sent): erasing them deletes it.
    employee_pk: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_employee.id", ondelete="CASCADE"), index=True)
    )
    payload: str = Field(sa_type=Text)
    occurred_at: dt.datetime = _ts(nullable=False)
    created_at: dt.datetime = _ts(nullable=False, index=True)


class WebhookDelivery(Base, table=True):
    """One event on its way to one endpoint: ``pending -> sending -> delivered`` (or ``failed``,
    ``expired`` once retries ran past ``INTRANET_WEBHOOKS_GIVE_UP_HOURS``)."""

    __tablename__ = "intranet_webhook_delivery"
    __table_args__ = (
        UniqueConstraint("event_pk", "endpoint_pk", name="uq_intranet_webhook_delivery_event_endpoint"),
        CheckConstraint("status IN ('pending', 'sending', 'delivered', 'failed', 'expired')", name="status"),
        Index("ix_intranet_webhook_delivery_status_next", "status", "next_attempt_at"),
        Index("ix_intranet_webhook_delivery_endpoint_id", "endpoint_pk", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    event_pk: int = Field(sa_column=Column(ForeignKey("intranet_webhook_event.id", ondelete="CASCADE"), nullable=False))
    endpoint_pk: int = Field(
        sa_column=Column(ForeignKey("intranet_webhook_endpoint.id", ondelete="CASCADE"), nullable=False)
    )
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: dt.datetime = _ts(nullable=False)
    lease_until: dt.datetime | None = _ts(default=None)
    claimed_by: str | None = Field(default=None, max_length=128)
    delivered_at: dt.datetime | None = _ts(default=None)
    last_attempt_at: dt.datetime | None = _ts(default=None)
    #: The last answer's HTTP status (None: no answer, e.g. a timeout or a refused address).
    last_status: int | None = None
    #: Why the last attempt failed, with at most a short snippet of the answer's body.
    last_error: str | None = Field(default=None, max_length=1000)


# --------------------------------------------------------------------------------------------
# Languages: a post's versions in other languages
# --------------------------------------------------------------------------------------------


class PostTranslation(Base, table=True):
    """A post in one more language (the post row holds its primary language's version).

    The body is sanitized on write, as the post's own (``body_html`` clean HTML, ``body_text``
    its plain text); one version per (post, language).
    """

    __tablename__ = "intranet_post_translation"
    __table_args__ = (UniqueConstraint("post_id", "language", name="uq_intranet_post_translation"),)

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(sa_column=Column(ForeignKey("intranet_post.id", ondelete="CASCADE"), nullable=False))
    language: str = Field(max_length=16)
    title: str = Field(max_length=300)
    summary: str = Field(default="", max_length=1000)
    body_html: str = Field(default="", sa_type=Text)
    body_text: str = Field(default="", sa_type=Text)
    updated_by_pk: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_employee.id", ondelete="SET NULL"))
    )
    created_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)
    updated_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)


# --------------------------------------------------------------------------------------------
# --- journeys ---
# A journey is a sequence of posts released to one person at offsets from an event in their
# directory record (hired, moved department or country, promoted to a people-manager level).
# Exactly-once rests on unique keys: one enrolment per (journey, person, event) and one release
# row per (enrolment, step), moved from pending to released or skipped by compare-and-set.
# --------------------------------------------------------------------------------------------

JOURNEY_TRIGGERS = ("hire", "department_move", "country_move", "manager_promotion")
JOURNEY_STATUSES = ("active", "paused")
RELEASE_STATUSES = ("pending", "released", "skipped")


class Journey(Base, table=True):
    """What starts a journey and whether it is running (its steps are :class:`JourneyStep`)."""

    __tablename__ = "intranet_journey"
    __table_args__ = (
        CheckConstraint("trigger IN ('hire', 'department_move', 'country_move', 'manager_promotion')",
                        name="trigger"),
        CheckConstraint("status IN ('active', 'paused')", name="status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=1000)
    trigger: str = Field(max_length=32)
    status: str = Field(default="active", max_length=16)
    created_by_pk: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_employee.id", ondelete="SET NULL"))
    )
    created_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)
    updated_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)


class JourneyStep(Base, table=True):
    """One post of a journey, released *offset_days* after the event, with its conditions."""

    __tablename__ = "intranet_journey_step"
    __table_args__ = (
        UniqueConstraint("journey_id", "key", name="uq_intranet_journey_step_key"),
        CheckConstraint("offset_days BETWEEN 0 AND 365", name="offset_days"),
        CheckConstraint("reminder_after_days IS NULL OR reminder_after_days BETWEEN 1 AND 60",
                        name="reminder_after_days"),
    )

    id: int | None = Field(default=None, primary_key=True)
    journey_id: int = Field(
        sa_column=Column(ForeignKey("intranet_journey.id", ondelete="CASCADE"), nullable=False, index=True))
    #: A short name other steps' conditions refer to ("welcome", "tools").
    key: str = Field(max_length=64)
    offset_days: int = 0
    post_id: int = Field(sa_column=Column(ForeignKey("intranet_post.id", ondelete="CASCADE"), nullable=False,
                                          unique=True))
    #: Skip this step when the person has not read the named earlier step by the time it is due.
    skip_unless_read: str | None = Field(default=None, max_length=64)
    #: For a must-read: remind the person when it is still unacknowledged this many days after release.
    reminder_after_days: int | None = None


class JourneyEnrolment(Base, table=True):
    """One person on one journey, for one event (a second move is a second enrolment)."""

    __tablename__ = "intranet_journey_enrolment"
    __table_args__ = (UniqueConstraint("journey_id", "employee_pk", "event_key",
                                       name="uq_intranet_journey_enrolment_event"),)

    id: int | None = Field(default=None, primary_key=True)
    journey_id: int = Field(
        sa_column=Column(ForeignKey("intranet_journey.id", ondelete="CASCADE"), nullable=False, index=True))
    employee_pk: int = Field(
        sa_column=Column(ForeignKey("intranet_employee.id", ondelete="CASCADE"), nullable=False, index=True))
    event_key: str = Field(max_length=255)
    event_date: dt.date
    enrolled_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)


class JourneyRelease(Base, table=True):
    """One step for one enrolled person: due, then released (the post becomes theirs) or skipped."""

    __tablename__ = "intranet_journey_release"
    __table_args__ = (
        UniqueConstraint("enrolment_id", "step_id", name="uq_intranet_journey_release_step"),
        CheckConstraint("status IN ('pending', 'released', 'skipped')", name="status"),
        # The targeting rule's lookup: is this post released to this person?
        Index("ix_intranet_journey_release_access", "employee_pk", "post_id", "status"),
        Index("ix_intranet_journey_release_due", "status", "due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    enrolment_id: int = Field(
        sa_column=Column(ForeignKey("intranet_journey_enrolment.id", ondelete="CASCADE"), nullable=False))
    step_id: int = Field(
        sa_column=Column(ForeignKey("intranet_journey_step.id", ondelete="CASCADE"), nullable=False, index=True))
    employee_pk: int = Field(
        sa_column=Column(ForeignKey("intranet_employee.id", ondelete="CASCADE"), nullable=False))
    post_id: int = Field(sa_column=Column(ForeignKey("intranet_post.id", ondelete="CASCADE"), nullable=False))
    due_at: dt.datetime = _ts(nullable=False)
    status: str = Field(default="pending", max_length=16)
    reason: str = Field(default="", max_length=64)
    released_at: dt.datetime | None = _ts(default=None)
    reminded_at: dt.datetime | None = _ts(default=None)


class JourneyWatch(Base, table=True):
    """The directory values journeys last saw for a person: a change against them is a trigger.

    The directory sync overwrites employees in place and keeps no history of moves, so journeys
    keep the little they compare; the first sight of a person records them without a trigger.
    """

    __tablename__ = "intranet_journey_watch"

    employee_pk: int = Field(
        sa_column=Column(ForeignKey("intranet_employee.id", ondelete="CASCADE"), primary_key=True))
    department: str | None = Field(default=None, max_length=255)
    country: str | None = Field(default=None, max_length=2)
    level: int | None = None
    seen_at: dt.datetime = _ts(default_factory=utcnow, nullable=False)


# --------------------------------------------------------------------------------------------
# --- API keys ---
# Server-to-server clients present ``Authorization: Bearer bcn_<prefix>_<secret>``. Only the
# public prefix (to find the row) and the SHA-256 of the secret are stored: the key itself is
# shown once, when it is created, and cannot be read back from the database.
# --------------------------------------------------------------------------------------------

#: What an API key may be allowed to do (see intranet/api_keys.py for what each one covers).
API_KEY_SCOPES = ("feed:read", "posts:publish", "analytics:read")


class ApiKey(Base, table=True):
    """One API key: its public prefix, the hash of its secret, its scopes and its life."""

    __tablename__ = "intranet_api_key"
    __table_args__ = (
        CheckConstraint("length(secret_sha256) = 64", name="secret_sha256_length"),
        CheckConstraint("scopes <> ''", name="scopes_present"),
        CheckConstraint("length(name) BETWEEN 1 AND 100", name="name_length"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=16, unique=True)
    #: Hex SHA-256 of the secret part; compared in constant time.
    secret_sha256: str = Field(max_length=64)
    #: The granted scopes, space-separated in a fixed order (``feed:read analytics:read``).
    scopes: str = Field(max_length=200)
    created_by_pk: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_employee.id", ondelete="SET NULL"))
    )
    created_at: dt.datetime = _ts(nullable=False)
    expires_at: dt.datetime | None = _ts(default=None)
    #: When the key was last accepted, to the minute (written at most once a minute per key).
    last_used_at: dt.datetime | None = _ts(default=None)
    revoked_at: dt.datetime | None = _ts(default=None)
    revoked_by_pk: int | None = Field(
        default=None, sa_column=Column(ForeignKey("intranet_employee.id", ondelete="SET NULL"))
    )
