"""post reach for ranking: people a post reached and engaged, counted by the ranking-refresh job

Revision ID: 0015_post_reach
Revises: 0014_analytics_markers
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0015_post_reach"
down_revision = "0014_analytics_markers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Zero until the job's next run (at most an hour): a post's pull then counts as its topic's.
    with op.batch_alter_table("intranet_post_rating_stats") as batch:
        batch.add_column(sa.Column("reached", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("engaged", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("intranet_post_rating_stats") as batch:
        batch.drop_column("engaged")
        batch.drop_column("reached")
