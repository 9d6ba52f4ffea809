"""platform: covering indexes for audience breakdowns by level and for live-post filtering

Revision ID: 0005_level_index
Revises: 0004_delivery
"""
from __future__ import annotations

from alembic import op

revision = "0005_level_index"
down_revision = "0004_delivery"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_intranet_employee_active_level", "intranet_employee", ["active", "level"])
    op.create_index("ix_intranet_post_live", "intranet_post",
                    ["status", "published_at", "expires_at", "all_staff", "must_read"])


def downgrade() -> None:
    op.drop_index("ix_intranet_post_live", table_name="intranet_post")
    op.drop_index("ix_intranet_employee_active_level", table_name="intranet_employee")
