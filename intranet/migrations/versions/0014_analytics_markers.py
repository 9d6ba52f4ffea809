"""analytics markers without foreign keys: one row per event folded, a key check per row doubled rebuilds

Revision ID: 0014_analytics_markers
Revises: 0013_feedback
"""
from __future__ import annotations

from alembic import op


revision = "0014_analytics_markers"
down_revision = "0013_feedback"
branch_labels = None
depends_on = None

FOREIGN_KEYS = (
    ("intranet_analytics_post_person", "fk_intranet_analytics_post_person_post_id_intranet_post",
     "intranet_post", "post_id"),
    ("intranet_analytics_post_person", "fk_intranet_analytics_post_person_employee_pk_intranet_employee",
     "intranet_employee", "employee_pk"),
    ("intranet_analytics_reader_cell", "fk_intranet_analytics_reader_cell_employee_pk_intranet_employee",
     "intranet_employee", "employee_pk"),
)


def upgrade() -> None:
    for table, name, _referred, _column in FOREIGN_KEYS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    for table, name, referred, column in FOREIGN_KEYS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(name, referred, [column], ["id"], ondelete="CASCADE")
