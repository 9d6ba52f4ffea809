"""Alembic environment for Beacon's own tables (version table ``intranet_alembic_version``)."""
from __future__ import annotations

from alembic import context

from intranet import models  # noqa: F401  (registers every table on the metadata)
from intranet.db import metadata

from intranet.migrate import VERSION_TABLE, include_object


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
