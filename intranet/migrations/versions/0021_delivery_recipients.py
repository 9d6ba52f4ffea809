"""delivery recipients: each day's distinct recipients per channel and arm, for the minimum-group rule

Revision ID: 0021_delivery_recipients
Revises: 0020_languages
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0021_delivery_recipients"
down_revision = "0020_languages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("intranet_analytics_delivery") as batch:
        batch.add_column(sa.Column("employee_pk", sa.Integer(), nullable=True))
    op.create_index("ix_intranet_analytics_delivery_recipient", "intranet_analytics_delivery", ["employee_pk", "day"])
    with op.batch_alter_table("intranet_analytics_delivery_day") as batch:
        batch.add_column(sa.Column("recipients", sa.Integer(), nullable=False, server_default="0"))
    # The messages folded so far: their recipients from the outbox, then each day's distinct count.
    op.execute("UPDATE intranet_analytics_delivery SET employee_pk = "
               "(SELECT o.employee_pk FROM intranet_outbox o WHERE o.id = intranet_analytics_delivery.outbox_id)")
    op.execute("UPDATE intranet_analytics_delivery_day SET recipients = "
               "(SELECT COUNT(DISTINCT d.employee_pk) FROM intranet_analytics_delivery d"
               " WHERE d.day = intranet_analytics_delivery_day.day AND d.channel = intranet_analytics_delivery_day.channel"
               " AND d.arm = intranet_analytics_delivery_day.arm)")


def downgrade() -> None:
    with op.batch_alter_table("intranet_analytics_delivery_day") as batch:
        batch.drop_column("recipients")
    op.drop_index("ix_intranet_analytics_delivery_recipient", table_name="intranet_analytics_delivery")
    with op.batch_alter_table("intranet_analytics_delivery") as batch:
        batch.drop_column("employee_pk")
