"""search stems by language on SQLite too; PostgreSQL stems Catalan where its configuration exists

Revision ID: 0027_search_stemming
Revises: 0026_feed_indexes

SQLite: the FTS5 indexes of posts and of their versions hold each version's stemmed text
(:func:`intranet.stemming.index_text`) and the configuration it was stemmed with
(:func:`intranet.stemming.config_of`), written by triggers through the SQL functions
:func:`intranet.stemming.register` adds to every connection. They keep their own copy of the text
(no external content: the stems are not a column of the table), rebuilt here for existing posts.

PostgreSQL: the GIN indexes parse Catalan versions with ``catalan`` when the server has that
configuration (PostgreSQL 16, and some distributions' 15), as :func:`intranet.search.pg_configs`
then does; without it they are left as they were (Catalan word for word, ``simple``).
"""
from __future__ import annotations

from alembic import op
from sqlalchemy import text

from intranet import stemming


revision = "0027_search_stemming"
down_revision = "0026_feed_indexes"
branch_labels = None
depends_on = None

TABLES = ("intranet_post", "intranet_post_translation")
COLUMNS = "title, summary, body_text"


def _config(catalan: bool) -> str:
    # The same expression as intranet.search._postgres_config, or the planner ignores the index.
    return ("CASE WHEN language = 'en' THEN 'english'::regconfig WHEN language = 'es' THEN 'spanish'::regconfig "
            + ("WHEN language = 'ca' THEN 'catalan'::regconfig " if catalan else "")
            + "ELSE 'simple'::regconfig END")


def _document(catalan: bool) -> str:
    config = _config(catalan)
    return (f"(setweight(to_tsvector({config}, title), 'A') || setweight(to_tsvector({config}, summary), 'B') "
            f"|| to_tsvector({config}, body_text))")


def _postgres_indexes(catalan: bool) -> None:
    for table in TABLES:
        op.execute(f"DROP INDEX ix_{table}_search")
        op.execute(f"CREATE INDEX ix_{table}_search ON {table} USING gin ({_document(catalan)})")


def _has_catalan() -> bool:
    return op.get_bind().execute(text("SELECT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = 'catalan')")).scalar_one()


def _drop_sqlite_index(table: str) -> None:
    for trigger in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_fts_{trigger}")
    op.execute(f"DROP TABLE IF EXISTS {table}_fts")


def _stemmed_index(table: str) -> None:
    index = f"{table}_fts"
    values = ("beacon_search_text(new.language, new.title), beacon_search_text(new.language, new.summary), "
              "beacon_search_text(new.language, new.body_text), beacon_search_config(new.language)")
    op.execute(f"CREATE VIRTUAL TABLE {index} USING fts5({COLUMNS}, language, "
               "tokenize='unicode61 remove_diacritics 2')")
    op.execute(f"CREATE TRIGGER {index}_insert AFTER INSERT ON {table} BEGIN "
               f"INSERT INTO {index}(rowid, {COLUMNS}, language) VALUES (new.id, {values}); END")
    op.execute(f"CREATE TRIGGER {index}_delete AFTER DELETE ON {table} BEGIN "
               f"DELETE FROM {index} WHERE rowid = old.id; END")
    op.execute(f"CREATE TRIGGER {index}_update AFTER UPDATE OF {COLUMNS}, language ON {table} BEGIN "
               f"DELETE FROM {index} WHERE rowid = old.id; "
               f"INSERT INTO {index}(rowid, {COLUMNS}, language) VALUES (new.id, {values}); END")
    op.execute(f"INSERT INTO {index}(rowid, {COLUMNS}, language) SELECT id, "
               + values.replace("new.", "") + f" FROM {table}")


def _word_for_word_index(table: str) -> None:
    # As 0009_post_search and 0024_search_languages: external content, kept in step by triggers.
    index = f"{table}_fts"
    op.execute(f"CREATE VIRTUAL TABLE {index} USING fts5({COLUMNS}, content='{table}', "
               "content_rowid='id', tokenize='unicode61 remove_diacritics 2')")
    op.execute(f"CREATE TRIGGER {index}_insert AFTER INSERT ON {table} BEGIN "
               f"INSERT INTO {index}(rowid, {COLUMNS}) VALUES (new.id, new.title, new.summary, new.body_text); END")
    op.execute(f"CREATE TRIGGER {index}_delete AFTER DELETE ON {table} BEGIN "
               f"INSERT INTO {index}({index}, rowid, {COLUMNS}) "
               "VALUES ('delete', old.id, old.title, old.summary, old.body_text); END")
    op.execute(f"CREATE TRIGGER {index}_update AFTER UPDATE OF {COLUMNS} ON {table} BEGIN "
               f"INSERT INTO {index}({index}, rowid, {COLUMNS}) "
               "VALUES ('delete', old.id, old.title, old.summary, old.body_text); "
               f"INSERT INTO {index}(rowid, {COLUMNS}) VALUES (new.id, new.title, new.summary, new.body_text); END")
    op.execute(f"INSERT INTO {index}({index}) VALUES ('rebuild')")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        if _has_catalan():
            _postgres_indexes(catalan=True)
        return
    # Whoever runs the migration may hold a connection Beacon's engine did not open.
    stemming.register(op.get_bind().connection.driver_connection)
    for table in TABLES:
        _drop_sqlite_index(table)
        _stemmed_index(table)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        if _has_catalan():
            _postgres_indexes(catalan=False)
        return
    for table in TABLES:
        _drop_sqlite_index(table)
        _word_for_word_index(table)
