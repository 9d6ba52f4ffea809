"""webhooks: endpoints admins register, events recorded with their change (an outbox), deliveries

Revision ID: 0018_webhooks
Revises: 0017_relative_audiences
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0018_webhooks"
down_revision = "0017_relative_audiences"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intranet_webhook_endpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(length=512), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_pk", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["created_by_pk"], ["intranet_employee.id"],
                                name=op.f("fk_intranet_webhook_endpoint_created_by_pk_intranet_employee"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intranet_webhook_endpoint")),
    )
    op.create_table(
        "intranet_webhook_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("dedupe_key", sa.String(length=128), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("type IN ('post.published', 'post.acknowledged', 'digest.sent')",
                           name=op.f("ck_intranet_webhook_event_type")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intranet_webhook_event")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_intranet_webhook_event_dedupe_key")),
        sa.UniqueConstraint("message_id", name=op.f("uq_intranet_webhook_event_message_id")),
    )
    op.create_index(op.f("ix_intranet_webhook_event_created_at"), "intranet_webhook_event", ["created_at"])
    op.create_table(
        "intranet_webhook_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_pk", sa.Integer(), nullable=False),
        sa.Column("endpoint_pk", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'sending', 'delivered', 'failed', 'expired')",
                           name=op.f("ck_intranet_webhook_delivery_status")),
        sa.ForeignKeyConstraint(["endpoint_pk"], ["intranet_webhook_endpoint.id"],
                                name=op.f("fk_intranet_webhook_delivery_endpoint_pk_intranet_webhook_endpoint"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["event_pk"], ["intranet_webhook_event.id"],
                                name=op.f("fk_intranet_webhook_delivery_event_pk_intranet_webhook_event"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intranet_webhook_delivery")),
        sa.UniqueConstraint("event_pk", "endpoint_pk", name="uq_intranet_webhook_delivery_event_endpoint"),
    )
    op.create_index("ix_intranet_webhook_delivery_endpoint_id", "intranet_webhook_delivery", ["endpoint_pk", "id"])
    op.create_index("ix_intranet_webhook_delivery_status_next", "intranet_webhook_delivery",
                    ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_intranet_webhook_delivery_status_next", table_name="intranet_webhook_delivery")
    op.drop_index("ix_intranet_webhook_delivery_endpoint_id", table_name="intranet_webhook_delivery")
    op.drop_table("intranet_webhook_delivery")
    op.drop_index(op.f("ix_intranet_webhook_event_created_at"), table_name="intranet_webhook_event")
    op.drop_table("intranet_webhook_event")
    op.drop_table("intranet_webhook_endpoint")
