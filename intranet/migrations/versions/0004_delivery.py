"""read-time analytics and digests: events, preferences, timing state, digests, outbox

Revision ID: 0004_delivery
Revises: 0003_directory
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_delivery"
down_revision = "0003_directory"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('intranet_digest',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('employee_pk', sa.Integer(), nullable=False),
    sa.Column('local_date', sa.Date(), nullable=False),
    sa.Column('ordinal', sa.Integer(), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('local_hour', sa.Integer(), nullable=False),
    sa.Column('basis', sa.String(length=16), nullable=True),
    sa.Column('explored', sa.Boolean(), nullable=False),
    sa.Column('propensity', sa.Float(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('planned', 'queued', 'skipped', 'expired', 'cancelled')", name=op.f('ck_intranet_digest_status')),
    sa.ForeignKeyConstraint(['employee_pk'], ['intranet_employee.id'], name=op.f('fk_intranet_digest_employee_pk_intranet_employee'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intranet_digest')),
    sa.UniqueConstraint('employee_pk', 'local_date', 'ordinal', name='uq_intranet_digest_slot')
    )
    op.create_index('ix_intranet_digest_status_due', 'intranet_digest', ['status', 'due_at'], unique=False)
    op.create_table('intranet_org_preference',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('values', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by_pk', sa.Integer(), nullable=True),
    sa.CheckConstraint('id = 1', name=op.f('ck_intranet_org_preference_single_row')),
    sa.ForeignKeyConstraint(['updated_by_pk'], ['intranet_employee.id'], name=op.f('fk_intranet_org_preference_updated_by_pk_intranet_employee'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intranet_org_preference'))
    )
    op.create_table('intranet_preference',
    sa.Column('employee_pk', sa.Integer(), nullable=False),
    sa.Column('cadence', sa.String(length=16), nullable=True),
    sa.Column('weekly_day', sa.Integer(), nullable=True),
    sa.Column('channels', sa.JSON(), nullable=True),
    sa.Column('quiet_start', sa.Integer(), nullable=True),
    sa.Column('quiet_end', sa.Integer(), nullable=True),
    sa.Column('working_days', sa.JSON(), nullable=True),
    sa.Column('followed_topics', sa.JSON(), nullable=True),
    sa.Column('muted_topics', sa.JSON(), nullable=True),
    sa.Column('learned_timing', sa.Boolean(), nullable=True),
    sa.Column('device', sa.String(length=16), nullable=True),
    sa.Column('open_tracking', sa.Boolean(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("cadence IS NULL OR cadence IN ('off', 'as_it_happens', 'daily', 'twice_daily', 'weekly')", name=op.f('ck_intranet_preference_cadence')),
    sa.CheckConstraint("device IS NULL OR device IN ('phone', 'computer', 'either')", name=op.f('ck_intranet_preference_device')),
    sa.CheckConstraint('(quiet_start IS NULL OR quiet_start BETWEEN 0 AND 23) AND (quiet_end IS NULL OR quiet_end BETWEEN 0 AND 23)', name=op.f('ck_intranet_preference_quiet_hours')),
    sa.CheckConstraint('weekly_day IS NULL OR weekly_day BETWEEN 0 AND 6', name=op.f('ck_intranet_preference_weekly_day')),
    sa.ForeignKeyConstraint(['employee_pk'], ['intranet_employee.id'], name=op.f('fk_intranet_preference_employee_pk_intranet_employee'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('employee_pk', name=op.f('pk_intranet_preference'))
    )
    op.create_table('intranet_timing_model',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('blob', sa.LargeBinary(), nullable=False),
    sa.Column('groups', sa.JSON(), nullable=False),
    sa.Column('regions', sa.JSON(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_intranet_timing_model_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intranet_timing_model'))
    )
    op.create_table('intranet_timing_state',
    sa.Column('employee_pk', sa.Integer(), nullable=False),
    sa.Column('counts', sa.LargeBinary(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.Column('first_event_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('through_event_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['employee_pk'], ['intranet_employee.id'], name=op.f('fk_intranet_timing_state_employee_pk_intranet_employee'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('employee_pk', name=op.f('pk_intranet_timing_state'))
    )
    op.create_table('intranet_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('employee_pk', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('post_id', sa.Integer(), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('local_hour', sa.Integer(), nullable=False),
    sa.Column('local_weekday', sa.Integer(), nullable=False),
    sa.Column('dwell_ms', sa.Integer(), nullable=True),
    sa.Column('delivery_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=True),
    sa.Column('surface', sa.String(length=16), nullable=True),
    sa.Column('position', sa.Integer(), nullable=True),
    sa.Column('device', sa.String(length=8), nullable=True),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.CheckConstraint("kind IN ('impression', 'open', 'read', 'digest_sent', 'digest_open', 'digest_click', 'session', 'acknowledge')", name=op.f('ck_intranet_event_kind')),
    sa.CheckConstraint('local_hour BETWEEN 0 AND 23 AND local_weekday BETWEEN 0 AND 6', name=op.f('ck_intranet_event_local_time')),
    sa.ForeignKeyConstraint(['employee_pk'], ['intranet_employee.id'], name=op.f('fk_intranet_event_employee_pk_intranet_employee'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['post_id'], ['intranet_post.id'], name=op.f('fk_intranet_event_post_id_intranet_post'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intranet_event')),
    sa.UniqueConstraint('employee_pk', 'client_id', name='uq_intranet_event_client')
    )
    op.create_index('ix_intranet_event_employee_occurred', 'intranet_event', ['employee_pk', 'occurred_at'], unique=False)
    op.create_index(op.f('ix_intranet_event_post_id'), 'intranet_event', ['post_id'], unique=False)
    op.create_table('intranet_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('digest_id', sa.Integer(), nullable=False),
    sa.Column('employee_pk', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('escalation', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sa.String(length=128), nullable=True),
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('post_ids', sa.JSON(), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=1000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("channel IN ('email', 'teams', 'in_app')", name=op.f('ck_intranet_outbox_channel')),
    sa.CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed', 'expired', 'skipped')", name=op.f('ck_intranet_outbox_status')),
    sa.ForeignKeyConstraint(['digest_id'], ['intranet_digest.id'], name=op.f('fk_intranet_outbox_digest_id_intranet_digest'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['employee_pk'], ['intranet_employee.id'], name=op.f('fk_intranet_outbox_employee_pk_intranet_employee'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intranet_outbox')),
    sa.UniqueConstraint('digest_id', 'channel', name='uq_intranet_outbox_digest_channel')
    )
    op.create_index(op.f('ix_intranet_outbox_employee_pk'), 'intranet_outbox', ['employee_pk'], unique=False)
    op.create_index('ix_intranet_outbox_status_next', 'intranet_outbox', ['status', 'next_attempt_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_intranet_outbox_status_next', table_name='intranet_outbox')
    op.drop_index(op.f('ix_intranet_outbox_employee_pk'), table_name='intranet_outbox')
    op.drop_table('intranet_outbox')
    op.drop_index(op.f('ix_intranet_event_post_id'), table_name='intranet_event')
    op.drop_index('ix_intranet_event_employee_occurred', table_name='intranet_event')
    op.drop_table('intranet_event')
    op.drop_table('intranet_timing_state')
    op.drop_table('intranet_timing_model')
    op.drop_table('intranet_preference')
    op.drop_table('intranet_org_preference')
    op.drop_index('ix_intranet_digest_status_due', table_name='intranet_digest')
    op.drop_table('intranet_digest')
