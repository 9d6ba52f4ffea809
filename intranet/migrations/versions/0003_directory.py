"""directory sync: source records, runs, held changes, quarantine, unmapped values

Revision ID: 0003_directory
Revises: 0002_publishing
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_directory"
down_revision = "0002_publishing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('intranet_sync_state',
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('delta_link', sa.Text(), nullable=True),
    sa.Column('select_hash', sa.String(length=64), nullable=True),
    sa.Column('last_full_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_rows', sa.Integer(), nullable=True),
    sa.Column('last_as_of', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('source', name=op.f('pk_intranet_sync_state'))
    )
    op.create_table('intranet_unmapped_value',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dimension', sa.String(length=32), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('occurrences', sa.Integer(), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intranet_unmapped_value')),
    sa.UniqueConstraint('dimension', 'value', name=op.f('uq_intranet_unmapped_value_dimension_value'))
    )
    op.create_table('intranet_employee_directory',
    sa.Column('employee_pk', sa.Integer(), nullable=False),
    sa.Column('cost_center', sa.String(length=64), nullable=True),
    sa.Column('sources', sa.JSON(), nullable=False),
    sa.Column('erase_after', sa.DateTime(timezone=True), nullable=True),
    sa.Column('pending_termination', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['employee_pk'], ['intranet_employee.id'], name=op.f('fk_intranet_employee_directory_employee_pk_intranet_employee'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('employee_pk', name=op.f('pk_intranet_employee_directory'))
    )
    op.create_table('intranet_entra_user',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('props', sa.JSON(), nullable=False),
    sa.Column('included', sa.Boolean(), nullable=False),
    sa.Column('removed', sa.String(length=16), nullable=True),
    sa.Column('employee_pk', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['employee_pk'], ['intranet_employee.id'], name=op.f('fk_intranet_entra_user_employee_pk_intranet_employee'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intranet_entra_user'))
    )
    with op.batch_alter_table('intranet_entra_user', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_intranet_entra_user_employee_pk'), ['employee_pk'], unique=False)

    op.create_table('intranet_hr_record',
    sa.Column('employee_number', sa.String(length=64), nullable=False),
    sa.Column('props', sa.JSON(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=True),
    sa.Column('employee_pk', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['employee_pk'], ['intranet_employee.id'], name=op.f('fk_intranet_hr_record_employee_pk_intranet_employee'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('employee_number', name=op.f('pk_intranet_hr_record'))
    )
    with op.batch_alter_table('intranet_hr_record', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_intranet_hr_record_employee_pk'), ['employee_pk'], unique=False)

    op.create_table('intranet_sync_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.Column('seen', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('deactivated', sa.Integer(), nullable=False),
    sa.Column('reactivated', sa.Integer(), nullable=False),
    sa.Column('quarantined', sa.Integer(), nullable=False),
    sa.Column('unmapped', sa.Integer(), nullable=False),
    sa.Column('reference_failures', sa.Integer(), nullable=False),
    sa.Column('delta_committed', sa.Boolean(), nullable=False),
    sa.Column('stale_source', sa.Boolean(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('correlation_id', sa.String(length=64), nullable=True),
    sa.Column('file_name', sa.String(length=255), nullable=True),
    sa.Column('file_sha256', sa.String(length=64), nullable=True),
    sa.Column('rows', sa.Integer(), nullable=True),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by_pk', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('running', 'succeeded', 'failed', 'refused', 'held', 'approved', 'rejected', 'superseded')", name=op.f('ck_intranet_sync_run_status')),
    sa.ForeignKeyConstraint(['decided_by_pk'], ['intranet_employee.id'], name=op.f('fk_intranet_sync_run_decided_by_pk_intranet_employee'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intranet_sync_run'))
    )
    with op.batch_alter_table('intranet_sync_run', schema=None) as batch_op:
        batch_op.create_index('ix_intranet_sync_run_source_started', ['source', 'started_at'], unique=False)

    op.create_table('intranet_quarantine',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('source_key', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('blocking', sa.Boolean(), nullable=False),
    sa.Column('detail', sa.String(length=1000), nullable=False),
    sa.Column('record', sa.JSON(), nullable=False),
    sa.Column('employee_pk', sa.Integer(), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['employee_pk'], ['intranet_employee.id'], name=op.f('fk_intranet_quarantine_employee_pk_intranet_employee'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['run_id'], ['intranet_sync_run.id'], name=op.f('fk_intranet_quarantine_run_id_intranet_sync_run'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intranet_quarantine')),
    sa.UniqueConstraint('source', 'source_key', 'reason', name=op.f('uq_intranet_quarantine_source_source_key_reason'))
    )
    op.create_table('intranet_sync_held',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=1000), nullable=False),
    sa.Column('diff', sa.JSON(), nullable=False),
    sa.Column('plan', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['intranet_sync_run.id'], name=op.f('fk_intranet_sync_held_run_id_intranet_sync_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', name=op.f('pk_intranet_sync_held'))
    )


def downgrade() -> None:
    op.drop_table('intranet_sync_held')
    op.drop_table('intranet_quarantine')
    op.drop_table('intranet_sync_run')
    op.drop_table('intranet_hr_record')
    op.drop_table('intranet_entra_user')
    op.drop_table('intranet_employee_directory')
    op.drop_table('intranet_unmapped_value')
    op.drop_table('intranet_sync_state')
