"""languages: a post's primary language, its versions in other languages, a person's chosen language

Revision ID: 0020_languages
Revises: 0019_webhook_event_person
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_languages"
down_revision = "0019_webhook_event_person"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Posts written before languages were English (the only language Beacon spoke).
    with op.batch_alter_table("intranet_post") as batch:
        batch.add_column(sa.Column("language", sa.String(length=16), nullable=False, server_default="en"))
    with op.batch_alter_table("intranet_preference") as batch:
        batch.add_column(sa.Column("language", sa.String(length=16), nullable=True))
    op.create_table(
        "intranet_post_translation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("summary", sa.String(length=1000), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("updated_by_pk", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["intranet_post.id"], ondelete="CASCADE",
                                name=op.f("fk_intranet_post_translation_post_id_intranet_post")),
        sa.ForeignKeyConstraint(["updated_by_pk"], ["intranet_employee.id"], ondelete="SET NULL",
                                name=op.f("fk_intranet_post_translation_updated_by_pk_intranet_employee")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intranet_post_translation")),
        sa.UniqueConstraint("post_id", "language", name="uq_intranet_post_translation"),
    )


def downgrade() -> None:
    op.drop_table("intranet_post_translation")
    with op.batch_alter_table("intranet_preference") as batch:
        batch.drop_column("language")
    with op.batch_alter_table("intranet_post") as batch:
        batch.drop_column("language")
