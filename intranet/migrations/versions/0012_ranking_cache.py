"""ranking caches: each post's rating counts and each department's topic prior

Revision ID: 0012_ranking_cache
Revises: 0011_analytics
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0012_ranking_cache"
down_revision = "0011_analytics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intranet_post_rating_stats",
        sa.Column("post_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("n_stars", sa.Integer(), nullable=False),
        sa.Column("sum_stars", sa.Integer(), nullable=False),
        sa.Column("ups", sa.Integer(), nullable=False),
        sa.Column("downs", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["intranet_post.id"],
                                name=op.f("fk_intranet_post_rating_stats_post_id_intranet_post"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("post_id", name=op.f("pk_intranet_post_rating_stats")),
    )
    # Existing ratings are counted once here; from now on every rating change recounts its post.
    op.execute(
        "INSERT INTO intranet_post_rating_stats (post_id, n_stars, sum_stars, ups, downs) "
        "SELECT post_id, COUNT(stars), COALESCE(SUM(stars), 0), "
        "SUM(CASE WHEN thumb = 'up' THEN 1 ELSE 0 END), SUM(CASE WHEN thumb = 'down' THEN 1 ELSE 0 END) "
        "FROM intranet_rating GROUP BY post_id")
    op.create_table(
        "intranet_department_prior",
        sa.Column("department", sa.String(length=255), nullable=False),
        sa.Column("rates", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("department", name=op.f("pk_intranet_department_prior")),
    )


def downgrade() -> None:
    op.drop_table("intranet_department_prior")
    op.drop_table("intranet_post_rating_stats")
