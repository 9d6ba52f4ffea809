"""analytics rollups: per-post, per-group, per-day, reading-hour and delivery aggregates, and their markers

Revision ID: 0011_analytics
Revises: 0010_fatigue
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0011_analytics"
down_revision = "0010_fatigue"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('intranet_analytics_pending',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_ids', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intranet_analytics_pending'))
    )
    op.create_table('intranet_analytics_delivery_day',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('arm', sa.String(length=16), nullable=False),
    sa.Column('sent', sa.Integer(), nullable=False),
    sa.Column('opened', sa.Integer(), nullable=False),
    sa.Column('read_2h', sa.Integer(), nullable=False),
    sa.Column('read_24h', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'channel', 'arm', name=op.f('pk_intranet_analytics_delivery_day'))
    )
    op.create_table('intranet_analytics_hour_readers',
    sa.Column('zone', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('weekday', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('hour', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('prev_day', sa.Date(), nullable=False),
    sa.Column('readers', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('zone', 'day', 'weekday', 'hour', 'prev_day', name=op.f('pk_intranet_analytics_hour_readers'))
    )
    op.create_table('intranet_analytics_hour_reads',
    sa.Column('zone', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('weekday', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('hour', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('reads', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('zone', 'day', 'weekday', 'hour', name=op.f('pk_intranet_analytics_hour_reads'))
    )
    op.create_table('intranet_analytics_reader_cell',
    sa.Column('zone', sa.String(length=64), nullable=False),
    sa.Column('employee_pk', sa.Integer(), nullable=False),
    sa.Column('weekday', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('hour', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['employee_pk'], ['intranet_employee.id'], name=op.f('fk_intranet_analytics_reader_cell_employee_pk_intranet_employee'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('zone', 'employee_pk', 'weekday', 'hour', 'day', name=op.f('pk_intranet_analytics_reader_cell'))
    )
    with op.batch_alter_table('intranet_analytics_reader_cell', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_intranet_analytics_reader_cell_employee_pk'), ['employee_pk'], unique=False)

    op.create_table('intranet_analytics_post_day',
    sa.Column('post_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('reads', sa.Integer(), nullable=False),
    sa.Column('readers', sa.Integer(), nullable=False),
    sa.Column('reached', sa.Integer(), nullable=False),
    sa.Column('acknowledged', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['post_id'], ['intranet_post.id'], name=op.f('fk_intranet_analytics_post_day_post_id_intranet_post'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('post_id', 'day', name=op.f('pk_intranet_analytics_post_day'))
    )
    op.create_table('intranet_analytics_post_group',
    sa.Column('post_id', sa.Integer(), nullable=False),
    sa.Column('dimension', sa.String(length=16), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.Column('reached', sa.Integer(), nullable=False),
    sa.Column('read', sa.Integer(), nullable=False),
    sa.Column('acknowledged', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['post_id'], ['intranet_post.id'], name=op.f('fk_intranet_analytics_post_group_post_id_intranet_post'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('post_id', 'dimension', 'value', name=op.f('pk_intranet_analytics_post_group'))
    )
    op.create_table('intranet_analytics_post_person',
    sa.Column('post_id', sa.Integer(), nullable=False),
    sa.Column('employee_pk', sa.Integer(), nullable=False),
    sa.Column('stage', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('first_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['employee_pk'], ['intranet_employee.id'], name=op.f('fk_intranet_analytics_post_person_employee_pk_intranet_employee'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['post_id'], ['intranet_post.id'], name=op.f('fk_intranet_analytics_post_person_post_id_intranet_post'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('post_id', 'employee_pk', 'stage', name=op.f('pk_intranet_analytics_post_person'))
    )
    with op.batch_alter_table('intranet_analytics_post_person', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_intranet_analytics_post_person_employee_pk'), ['employee_pk'], unique=False)

    op.create_table('intranet_analytics_delivery',
    sa.Column('outbox_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('arm', sa.String(length=16), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['outbox_id'], ['intranet_outbox.id'], name=op.f('fk_intranet_analytics_delivery_outbox_id_intranet_outbox'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('outbox_id', name=op.f('pk_intranet_analytics_delivery'))
    )


def downgrade() -> None:
    op.drop_table('intranet_analytics_pending')
    op.drop_table('intranet_analytics_delivery')
    with op.batch_alter_table('intranet_analytics_post_person', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_intranet_analytics_post_person_employee_pk'))

    op.drop_table('intranet_analytics_post_person')
    op.drop_table('intranet_analytics_post_group')
    op.drop_table('intranet_analytics_post_day')
    with op.batch_alter_table('intranet_analytics_reader_cell', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_intranet_analytics_reader_cell_employee_pk'))

    op.drop_table('intranet_analytics_reader_cell')
    op.drop_table('intranet_analytics_hour_reads')
    op.drop_table('intranet_analytics_hour_readers')
    op.drop_table('intranet_analytics_delivery_day')
