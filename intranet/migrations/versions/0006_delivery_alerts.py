"""delivery: alert slots (must-reads and as-it-happens posts outside planned digests) and their items

Revision ID: 0006_delivery_alerts
Revises: 0005_level_index
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_delivery_alerts"
down_revision = "0005_level_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("intranet_digest", sa.Column("kind", sa.String(length=16), nullable=False, server_default="digest"))
    op.create_table(
        "intranet_digest_item",
        sa.Column("employee_pk", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("digest_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["employee_pk"], ["intranet_employee.id"],
                                name=op.f("fk_intranet_digest_item_employee_pk_intranet_employee"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["post_id"], ["intranet_post.id"],
                                name=op.f("fk_intranet_digest_item_post_id_intranet_post"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["digest_id"], ["intranet_digest.id"],
                                name=op.f("fk_intranet_digest_item_digest_id_intranet_digest"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("employee_pk", "post_id", "round", name=op.f("pk_intranet_digest_item")),
    )
    op.create_index(op.f("ix_intranet_digest_item_digest_id"), "intranet_digest_item", ["digest_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_intranet_digest_item_digest_id"), table_name="intranet_digest_item")
    op.drop_table("intranet_digest_item")
    with op.batch_alter_table("intranet_digest") as batch:
        batch.drop_column("kind")
