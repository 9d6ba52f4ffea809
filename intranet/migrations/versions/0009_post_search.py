"""post search: an FTS5 index on SQLite, a GIN tsvector index on PostgreSQL

Revision ID: 0009_post_search
Revises: 0008_feed_snapshot
"""
from __future__ import annotations

from alembic import op


revision = "0009_post_search"
down_revision = "0008_feed_snapshot"
branch_labels = None
depends_on = None

COLUMNS = "title, summary, body_text"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # The same expression as intranet.search._postgres_document, or the planner ignores the index.
        op.execute("CREATE INDEX ix_intranet_post_search ON intranet_post USING gin "
                   "((setweight(to_tsvector('simple', title), 'A') || setweight(to_tsvector('simple', summary), 'B') "
                   "|| to_tsvector('simple', body_text)))")
        return
    # External content: the text lives once, in intranet_post; triggers keep the index in step.
    op.execute(f"CREATE VIRTUAL TABLE intranet_post_fts USING fts5({COLUMNS}, content='intranet_post', "
               "content_rowid='id', tokenize='unicode61 remove_diacritics 2')")
    op.execute(f"CREATE TRIGGER intranet_post_fts_insert AFTER INSERT ON intranet_post BEGIN "
               f"INSERT INTO intranet_post_fts(rowid, {COLUMNS}) VALUES (new.id, new.title, new.summary, new.body_text); "
               "END")
    op.execute(f"CREATE TRIGGER intranet_post_fts_delete AFTER DELETE ON intranet_post BEGIN "
               f"INSERT INTO intranet_post_fts(intranet_post_fts, rowid, {COLUMNS}) "
               "VALUES ('delete', old.id, old.title, old.summary, old.body_text); END")
    op.execute(f"CREATE TRIGGER intranet_post_fts_update AFTER UPDATE OF {COLUMNS} ON intranet_post BEGIN "
               f"INSERT INTO intranet_post_fts(intranet_post_fts, rowid, {COLUMNS}) "
               "VALUES ('delete', old.id, old.title, old.summary, old.body_text); "
               f"INSERT INTO intranet_post_fts(rowid, {COLUMNS}) VALUES (new.id, new.title, new.summary, new.body_text); "
               "END")
    op.execute("INSERT INTO intranet_post_fts(intranet_post_fts) VALUES ('rebuild')")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_intranet_post_search")
        return
    for trigger in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER intranet_post_fts_{trigger}")
    op.execute("DROP TABLE intranet_post_fts")
