"""language index: an all-staff post's audience by language (its dashboard and API answer) is counted from
an (active, language) index, like department, region and level, not from a scan of every employee

Revision ID: 0028_language_index
Revises: 0027_search_stemming
"""
from __future__ import annotations

from alembic import op

revision = "0028_language_index"
down_revision = "0027_search_stemming"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_intranet_employee_active_language", "intranet_employee", ["active", "language"])


def downgrade() -> None:
    op.drop_index("ix_intranet_employee_active_language", table_name="intranet_employee")
