"""journeys: definitions, steps (each a journey-only post), enrolments, releases, watched directory values

Revision ID: 0022_journeys
Revises: 0021_delivery_recipients
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op



revision = "0022_journeys"
down_revision = "0021_delivery_recipients"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN, not a batch: rebuilding intranet_post on SQLite would drop its search triggers.
    op.add_column("intranet_post", sa.Column("journey_only", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "intranet_journey",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by_pk", sa.Integer(), sa.ForeignKey("intranet_employee.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("trigger IN ('hire', 'department_move', 'country_move', 'manager_promotion')",
                           name="trigger"),
        sa.CheckConstraint("status IN ('active', 'paused')", name="status"),
    )
    op.create_table(
        "intranet_journey_step",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("journey_id", sa.Integer(), sa.ForeignKey("intranet_journey.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("offset_days", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), sa.ForeignKey("intranet_post.id", ondelete="CASCADE"), nullable=False,
                  unique=True),
        sa.Column("skip_unless_read", sa.String(length=64), nullable=True),
        sa.Column("reminder_after_days", sa.Integer(), nullable=True),
        sa.UniqueConstraint("journey_id", "key", name="uq_intranet_journey_step_key"),
        sa.CheckConstraint("offset_days BETWEEN 0 AND 365", name="offset_days"),
        sa.CheckConstraint("reminder_after_days IS NULL OR reminder_after_days BETWEEN 1 AND 60",
                           name="reminder_after_days"),
    )
    op.create_index("ix_intranet_journey_step_journey_id", "intranet_journey_step", ["journey_id"])
    op.create_table(
        "intranet_journey_enrolment",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("journey_id", sa.Integer(), sa.ForeignKey("intranet_journey.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("employee_pk", sa.Integer(), sa.ForeignKey("intranet_employee.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("event_key", sa.String(length=255), nullable=False),
        sa.Column("event_date", sa.Date(), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("journey_id", "employee_pk", "event_key", name="uq_intranet_journey_enrolment_event"),
    )
    op.create_index("ix_intranet_journey_enrolment_journey_id", "intranet_journey_enrolment", ["journey_id"])
    op.create_index("ix_intranet_journey_enrolment_employee_pk", "intranet_journey_enrolment", ["employee_pk"])
    op.create_table(
        "intranet_journey_release",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("enrolment_id", sa.Integer(),
                  sa.ForeignKey("intranet_journey_enrolment.id", ondelete="CASCADE"), nullable=False),
        sa.Column("step_id", sa.Integer(), sa.ForeignKey("intranet_journey_step.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("employee_pk", sa.Integer(), sa.ForeignKey("intranet_employee.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("post_id", sa.Integer(), sa.ForeignKey("intranet_post.id", ondelete="CASCADE"), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("enrolment_id", "step_id", name="uq_intranet_journey_release_step"),
        sa.CheckConstraint("status IN ('pending', 'released', 'skipped')", name="status"),
    )
    op.create_index("ix_intranet_journey_release_step_id", "intranet_journey_release", ["step_id"])
    op.create_index("ix_intranet_journey_release_access", "intranet_journey_release",
                    ["employee_pk", "post_id", "status"])
    op.create_index("ix_intranet_journey_release_due", "intranet_journey_release", ["status", "due_at"])
    op.create_table(
        "intranet_journey_watch",
        sa.Column("employee_pk", sa.Integer(), sa.ForeignKey("intranet_employee.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("department", sa.String(length=255), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("intranet_journey_watch", "intranet_journey_release", "intranet_journey_enrolment",
                  "intranet_journey_step", "intranet_journey"):
        op.drop_table(table)
    op.drop_column("intranet_post", "journey_only")
