"""Schema management through Alembic: create or upgrade Beacon's tables, losing nothing."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "intranet_alembic_version"
#: What the search engines own rather than the models: SQLite's FTS5 index and its shadow tables,
#: PostgreSQL's full-text expression indexes, of posts and of their versions in other languages
#: (see migrations 0009_post_search and 0024_search_languages, and intranet.search).
SEARCH_OBJECTS = re.compile(r"intranet_post(_translation)?_fts(_\w+)?$|ix_intranet_post(_translation)?_search$")
#: PostgreSQL's monthly partitions of the event table (the models describe the parent table;
#: see migration 0016_event_partitions and intranet.engagement.partitions).
EVENT_PARTITIONS = re.compile(r"intranet_event_(y\d{4}m\d{2}|default)$")
#: Unique constraints that PostgreSQL's partitioned tables widen with their partition key.
PARTITION_KEYS = {"uq_intranet_event_client": "occurred_at"}


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Which schema objects Alembic compares with the models: Beacon's own tables (a host
    application's share the database), without the search indexes and the event table's monthly
    partitions, which the models do not describe, and without the event key's difference on a
    partitioned table (the partition key added to it, as PostgreSQL requires)."""
    if name and (SEARCH_OBJECTS.match(name) or EVENT_PARTITIONS.match(name)):
        return False
    if type_ == "unique_constraint" and name in PARTITION_KEYS and compare_to is not None and not reflected:
        stored, declared = [c.name for c in compare_to.columns], [c.name for c in obj.columns]
        if stored == [*declared, PARTITION_KEYS[name]]:
            return False
    if type_ == "table":
        return bool(name and name.startswith("intranet_"))
    return True


def alembic_config() -> Config:
    """An Alembic configuration pointing at Beacon's migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema on *engine* up to *revision* (create it on an empty database)."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def heads() -> list[str]:
    """The head revisions of Beacon's migration history (exactly one is healthy)."""
    return list(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revision(engine: Engine) -> str | None:
    """The revision the database on *engine* is at, or None if Beacon was never installed."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def revision(engine: Engine, message: str, autogenerate: bool = True) -> None:
    """Write a new migration comparing the models to the database on *engine* (for developers)."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=autogenerate)
