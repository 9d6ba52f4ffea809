"""publishing (issue 4): owned by the publishing work

Revision ID: 0002_publishing
Revises: 0001_platform
"""
from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0002_publishing"
down_revision = "0001_platform"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
