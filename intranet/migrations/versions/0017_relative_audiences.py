"""relative audiences: employees' hire dates, "hired in the last N days" segments, manager lookups

Revision ID: 0017_relative_audiences
Revises: 0016_event_partitions
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0017_relative_audiences"
down_revision = "0016_event_partitions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Hire dates stay empty until the next HR import fills them (the sync compares and writes them).
    with op.batch_alter_table("intranet_employee") as batch:
        batch.add_column(sa.Column("hire_date", sa.Date(), nullable=True))
        # "Reports to X" walks the chain downwards: manager_id -> the people it manages.
        batch.create_index("ix_intranet_employee_manager_id", ["manager_id"])
    with op.batch_alter_table("intranet_audience_segment") as batch:
        batch.add_column(sa.Column("hired_within_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("intranet_audience_segment") as batch:
        batch.drop_column("hired_within_days")
    with op.batch_alter_table("intranet_employee") as batch:
        batch.drop_index("ix_intranet_employee_manager_id")
        batch.drop_column("hire_date")
