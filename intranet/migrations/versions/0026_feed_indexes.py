"""feed indexes: the live-post index carries the feed's ranking columns (PostgreSQL INCLUDE), and the
audience value lookup carries the segment id, so a feed's candidate query reads indexes, not post rows

Revision ID: 0026_feed_indexes
Revises: 0025_group_days
"""
from __future__ import annotations

from alembic import op

revision = "0026_feed_indexes"
down_revision = "0025_group_days"
branch_labels = None
depends_on = None

LIVE = ["status", "published_at", "expires_at", "all_staff", "must_read"]


def upgrade() -> None:
    op.drop_index("ix_intranet_post_live", table_name="intranet_post")
    op.create_index("ix_intranet_post_live", "intranet_post", LIVE,
                    postgresql_include=["id", "topic", "journey_only", "rating_style", "author_pk"])
    op.drop_index("ix_intranet_audience_value_lookup", table_name="intranet_audience_value")
    op.create_index("ix_intranet_audience_value_lookup", "intranet_audience_value", ["dimension", "value", "segment_id"])


def downgrade() -> None:
    op.drop_index("ix_intranet_audience_value_lookup", table_name="intranet_audience_value")
    op.create_index("ix_intranet_audience_value_lookup", "intranet_audience_value", ["dimension", "value"])
    op.drop_index("ix_intranet_post_live", table_name="intranet_post")
    op.create_index("ix_intranet_post_live", "intranet_post", LIVE)
