"""events: on PostgreSQL, partition intranet_event by month of occurred_at (SQLite unchanged)

The table is rebuilt as a range-partitioned table with the same columns, checks, foreign keys
and indexes; a partitioned table's unique constraints must include the partition key, so the
primary key becomes (id, occurred_at) and the event key (employee_pk, client_id, occurred_at)
(see intranet.engagement.partitions). Ids keep their sequence. Partitions are created for every
month holding events (at most ten years back; older ones land in the default partition) through
three months ahead, and the events copied in. On a large table this copies every row once: run
it in a quiet hour.

Revision ID: 0016_event_partitions
Revises: 0015_post_reach
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0016_event_partitions"
down_revision = "0015_post_reach"
branch_labels = None
depends_on = None

COLUMNS = """
    id integer NOT NULL DEFAULT nextval('intranet_event_id_seq'),
    employee_pk integer NOT NULL,
    client_id varchar(64) NOT NULL,
    kind varchar(16) NOT NULL,
    post_id integer,
    occurred_at timestamp with time zone NOT NULL,
    received_at timestamp with time zone NOT NULL,
    local_hour integer NOT NULL,
    local_weekday integer NOT NULL,
    dwell_ms integer,
    delivery_id integer,
    channel varchar(16),
    surface varchar(16),
    position integer,
    device varchar(8),
    source varchar(8) NOT NULL,
    CONSTRAINT ck_intranet_event_kind CHECK (kind IN ('impression', 'open', 'read', 'digest_sent', 'digest_open',
        'digest_click', 'session', 'acknowledge')),
    CONSTRAINT ck_intranet_event_local_time CHECK (local_hour BETWEEN 0 AND 23 AND local_weekday BETWEEN 0 AND 6),
    CONSTRAINT fk_intranet_event_employee_pk_intranet_employee FOREIGN KEY (employee_pk)
        REFERENCES intranet_employee (id) ON DELETE CASCADE,
    CONSTRAINT fk_intranet_event_post_id_intranet_post FOREIGN KEY (post_id)
        REFERENCES intranet_post (id) ON DELETE CASCADE"""
INDEXES = ("CREATE INDEX ix_intranet_event_employee_occurred ON intranet_event (employee_pk, occurred_at)",
           "CREATE INDEX ix_intranet_event_post_id ON intranet_event (post_id)")
OLD_NAMES = ("pk_intranet_event", "uq_intranet_event_client", "ix_intranet_event_employee_occurred",
             "ix_intranet_event_post_id")


def _rebuild(partitioned: bool) -> None:
    # Move the old table aside (its index names are schema-wide, so they move aside too), keeping
    # the id sequence, which would otherwise go with the table.
    op.execute("ALTER SEQUENCE intranet_event_id_seq OWNED BY NONE")
    op.execute("ALTER TABLE intranet_event RENAME TO intranet_event_old")
    for name in OLD_NAMES:
        op.execute(f"ALTER INDEX IF EXISTS {name} RENAME TO {name}_old")
    if partitioned:
        op.execute(f"""CREATE TABLE intranet_event ({COLUMNS},
            CONSTRAINT pk_intranet_event PRIMARY KEY (id, occurred_at),
            CONSTRAINT uq_intranet_event_client UNIQUE (employee_pk, client_id, occurred_at)
        ) PARTITION BY RANGE (occurred_at)""")
        op.execute("CREATE TABLE intranet_event_default PARTITION OF intranet_event DEFAULT")
    else:
        op.execute(f"""CREATE TABLE intranet_event ({COLUMNS},
            CONSTRAINT pk_intranet_event PRIMARY KEY (id),
            CONSTRAINT uq_intranet_event_client UNIQUE (employee_pk, client_id))""")
    for statement in INDEXES:
        op.execute(statement)
    op.execute("ALTER SEQUENCE intranet_event_id_seq OWNED BY intranet_event.id")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    from intranet.engagement import partitions

    _rebuild(partitioned=True)
    now = dt.datetime.now(dt.timezone.utc)
    oldest = bind.execute(sa.text("SELECT min(occurred_at) FROM intranet_event_old")).scalar() or now
    first = max(partitions.month_start(oldest), partitions.add_months(partitions.month_start(now), -121))
    partitions.ensure(bind, first, partitions.add_months(partitions.month_start(now), partitions.AHEAD))
    op.execute("INSERT INTO intranet_event SELECT * FROM intranet_event_old")
    op.execute("DROP TABLE intranet_event_old")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # A duplicate client id at two instants (allowed while partitioned) keeps its first event.
    _rebuild(partitioned=False)
    op.execute("INSERT INTO intranet_event SELECT DISTINCT ON (employee_pk, client_id) * FROM intranet_event_old "
               "ORDER BY employee_pk, client_id, id")
    op.execute("DROP TABLE intranet_event_old")
