"""feedback: comments left with ratings in the authors' inbox, private replies and their emails

Revision ID: 0013_feedback
Revises: 0012_ranking_cache
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0013_feedback"
down_revision = "0012_ranking_cache"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"),
                                   ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "intranet_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("employee_pk", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("signed", sa.Boolean(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_by_pk", sa.Integer(), nullable=True),
        sa.CheckConstraint("comment IS NULL OR length(comment) <= 2000",
                           name=op.f("ck_intranet_feedback_comment_length")),
        _fk("intranet_feedback", "employee_pk", "intranet_employee", "CASCADE"),
        _fk("intranet_feedback", "post_id", "intranet_post", "CASCADE"),
        _fk("intranet_feedback", "answered_by_pk", "intranet_employee", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intranet_feedback")),
        sa.UniqueConstraint("employee_pk", "post_id", name="uq_intranet_feedback_employee_post"),
    )
    op.create_index(op.f("ix_intranet_feedback_employee_pk"), "intranet_feedback", ["employee_pk"])
    op.create_index(op.f("ix_intranet_feedback_post_id"), "intranet_feedback", ["post_id"])
    op.create_index("ix_intranet_feedback_answered_received", "intranet_feedback", ["answered_at", "received_at"])
    op.create_table(
        "intranet_feedback_reply",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feedback_id", sa.Integer(), nullable=False),
        sa.Column("author_pk", sa.Integer(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("length(body) BETWEEN 1 AND 2000", name=op.f("ck_intranet_feedback_reply_body_length")),
        _fk("intranet_feedback_reply", "feedback_id", "intranet_feedback", "CASCADE"),
        _fk("intranet_feedback_reply", "author_pk", "intranet_employee", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intranet_feedback_reply")),
    )
    op.create_index(op.f("ix_intranet_feedback_reply_feedback_id"), "intranet_feedback_reply", ["feedback_id"])
    op.create_table(
        "intranet_feedback_mail",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reply_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed', 'expired', 'skipped')",
                           name=op.f("ck_intranet_feedback_mail_status")),
        _fk("intranet_feedback_mail", "reply_id", "intranet_feedback_reply", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intranet_feedback_mail")),
        sa.UniqueConstraint("reply_id", name=op.f("uq_intranet_feedback_mail_reply_id")),
    )
    op.create_index("ix_intranet_feedback_mail_status_next", "intranet_feedback_mail", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_intranet_feedback_mail_status_next", table_name="intranet_feedback_mail")
    op.drop_table("intranet_feedback_mail")
    op.drop_index(op.f("ix_intranet_feedback_reply_feedback_id"), table_name="intranet_feedback_reply")
    op.drop_table("intranet_feedback_reply")
    op.drop_index("ix_intranet_feedback_answered_received", table_name="intranet_feedback")
    op.drop_index(op.f("ix_intranet_feedback_post_id"), table_name="intranet_feedback")
    op.drop_index(op.f("ix_intranet_feedback_employee_pk"), table_name="intranet_feedback")
    op.drop_table("intranet_feedback")
