"""fatigue: each person's latest cadence notice (a suggestion to step down, or an automatic step down)

Revision ID: 0010_fatigue
Revises: 0009_post_search
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0010_fatigue"
down_revision = "0009_post_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intranet_fatigue_notice",
        sa.Column("employee_pk", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("from_cadence", sa.String(length=16), nullable=False),
        sa.Column("to_cadence", sa.String(length=16), nullable=False),
        sa.Column("ignored", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.String(length=16), nullable=True),
        sa.Column("announced_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('suggestion', 'step_down')", name=op.f("ck_intranet_fatigue_notice_kind")),
        sa.CheckConstraint("resolution IS NULL OR resolution IN ('accepted', 'dismissed', 'kept', 'reverted', "
                           "'withdrawn')", name=op.f("ck_intranet_fatigue_notice_resolution")),
        sa.ForeignKeyConstraint(["employee_pk"], ["intranet_employee.id"],
                                name=op.f("fk_intranet_fatigue_notice_employee_pk_intranet_employee"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("employee_pk", name=op.f("pk_intranet_fatigue_notice")),
    )


def downgrade() -> None:
    op.drop_table("intranet_fatigue_notice")
