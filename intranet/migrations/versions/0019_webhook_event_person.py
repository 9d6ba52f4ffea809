"""webhook events name the person they are about, so erasing that person deletes them

Revision ID: 0019_webhook_event_person
Revises: 0018_webhooks
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0019_webhook_event_person"
down_revision = "0018_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Events recorded before this revision stay unlinked; they are forgotten after 30 days anyway.
    with op.batch_alter_table("intranet_webhook_event") as batch:
        batch.add_column(sa.Column("employee_pk", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_intranet_webhook_event_employee_pk_intranet_employee"), "intranet_employee",
                                 ["employee_pk"], ["id"], ondelete="CASCADE")
        batch.create_index(op.f("ix_intranet_webhook_event_employee_pk"), ["employee_pk"])


def downgrade() -> None:
    with op.batch_alter_table("intranet_webhook_event") as batch:
        batch.drop_index(op.f("ix_intranet_webhook_event_employee_pk"))
        batch.drop_constraint(op.f("fk_intranet_webhook_event_employee_pk_intranet_employee"), type_="foreignkey")
        batch.drop_column("employee_pk")
