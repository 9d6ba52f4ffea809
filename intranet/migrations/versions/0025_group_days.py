"""group days: post group rows summed per dimension, group and publishing day, for the read-rate charts

Revision ID: 0025_group_days
Revises: 0024_search_languages
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0025_group_days"
down_revision = "0024_search_languages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intranet_analytics_group_day",
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("reached", sa.Integer(), nullable=False),
        sa.Column("read", sa.Integer(), nullable=False),
        sa.Column("largest", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("dimension", "day", "value", name=op.f("pk_intranet_analytics_group_day")),
    )
    op.create_table(
        "intranet_analytics_post_filed",
        sa.Column("post_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("day", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("post_id", name=op.f("pk_intranet_analytics_post_filed")),
    )
    # The posts counted so far, filed under their publishing day now, and their group rows summed.
    if op.get_bind().dialect.name == "postgresql":
        day = "(p.published_at AT TIME ZONE 'UTC')::date"
    else:
        day = "date(p.published_at)"
    op.execute("INSERT INTO intranet_analytics_post_filed (post_id, day) "
               f"SELECT p.id, {day} FROM intranet_post p "
               "WHERE p.id IN (SELECT post_id FROM intranet_analytics_post_group)")
    op.execute("INSERT INTO intranet_analytics_group_day (dimension, day, value, reached, read, largest) "
               f"SELECT g.dimension, {day}, g.value, SUM(g.reached), SUM(g.read), MAX(g.reached) "
               "FROM intranet_analytics_post_group g JOIN intranet_post p ON p.id = g.post_id "
               f"WHERE p.published_at IS NOT NULL GROUP BY g.dimension, {day}, g.value")


def downgrade() -> None:
    op.drop_table("intranet_analytics_post_filed")
    op.drop_table("intranet_analytics_group_day")
