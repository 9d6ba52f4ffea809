"""ratings: one rating per (employee, post), and the shared rate-limit windows

Revision ID: 0007_ratings
Revises: 0006_delivery_alerts
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0007_ratings"
down_revision = "0006_delivery_alerts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intranet_rating",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("employee_pk", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("stars", sa.Integer(), nullable=True),
        sa.Column("thumb", sa.String(length=4), nullable=True),
        sa.Column("comment", sa.String(length=2000), nullable=True),
        sa.Column("signed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("(stars IS NOT NULL AND stars BETWEEN 1 AND 5 AND thumb IS NULL) OR "
                           "(stars IS NULL AND thumb IS NOT NULL AND thumb IN ('up', 'down'))",
                           name=op.f("ck_intranet_rating_stars_or_thumb")),
        sa.CheckConstraint("comment IS NULL OR length(comment) <= 2000", name=op.f("ck_intranet_rating_comment_length")),
        sa.ForeignKeyConstraint(["employee_pk"], ["intranet_employee.id"],
                                name=op.f("fk_intranet_rating_employee_pk_intranet_employee"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["post_id"], ["intranet_post.id"],
                                name=op.f("fk_intranet_rating_post_id_intranet_post"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intranet_rating")),
        sa.UniqueConstraint("employee_pk", "post_id", name="uq_intranet_rating_employee_post"),
    )
    op.create_index(op.f("ix_intranet_rating_post_id"), "intranet_rating", ["post_id"], unique=False)
    op.create_table(
        "intranet_rate_window",
        sa.Column("bucket", sa.String(length=96), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", "window_start", name=op.f("pk_intranet_rate_window")),
    )


def downgrade() -> None:
    op.drop_table("intranet_rate_window")
    op.drop_index(op.f("ix_intranet_rating_post_id"), table_name="intranet_rating")
    op.drop_table("intranet_rating")
