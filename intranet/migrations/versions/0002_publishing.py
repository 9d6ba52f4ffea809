"""publishing: the audit log of "feed as a member of the audience" previews

Revision ID: 0002_publishing
Revises: 0001_platform
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_publishing"
down_revision = "0001_platform"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intranet_post_preview",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("viewer_pk", sa.Integer(), nullable=True),
        sa.Column("subject_pk", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["intranet_post.id"],
                                name=op.f("fk_intranet_post_preview_post_id_intranet_post"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["viewer_pk"], ["intranet_employee.id"],
                                name=op.f("fk_intranet_post_preview_viewer_pk_intranet_employee"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["subject_pk"], ["intranet_employee.id"],
                                name=op.f("fk_intranet_post_preview_subject_pk_intranet_employee"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intranet_post_preview")),
    )
    with op.batch_alter_table("intranet_post_preview", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_intranet_post_preview_post_id"), ["post_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("intranet_post_preview", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intranet_post_preview_post_id"))
    op.drop_table("intranet_post_preview")
