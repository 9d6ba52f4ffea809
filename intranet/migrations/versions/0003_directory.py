"""directory sync (issue 5): owned by the directory work

Revision ID: 0003_directory
Revises: 0002_publishing
"""
from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0003_directory"
down_revision = "0002_publishing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
