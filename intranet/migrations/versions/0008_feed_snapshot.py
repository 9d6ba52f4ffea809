"""feed snapshots: a person's ranked feed frozen for paging

Revision ID: 0008_feed_snapshot
Revises: 0007_ratings
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0008_feed_snapshot"
down_revision = "0007_ratings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intranet_feed_snapshot",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("employee_pk", sa.Integer(), nullable=False),
        sa.Column("items", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["employee_pk"], ["intranet_employee.id"],
                                name=op.f("fk_intranet_feed_snapshot_employee_pk_intranet_employee"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intranet_feed_snapshot")),
    )
    op.create_index(op.f("ix_intranet_feed_snapshot_employee_pk"), "intranet_feed_snapshot", ["employee_pk"],
                    unique=False)
    op.create_index(op.f("ix_intranet_feed_snapshot_expires_at"), "intranet_feed_snapshot", ["expires_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_intranet_feed_snapshot_expires_at"), table_name="intranet_feed_snapshot")
    op.drop_index(op.f("ix_intranet_feed_snapshot_employee_pk"), table_name="intranet_feed_snapshot")
    op.drop_table("intranet_feed_snapshot")
