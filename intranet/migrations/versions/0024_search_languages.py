"""search in every language: posts' versions in other languages indexed too, PostgreSQL stemming per language

Revision ID: 0024_search_languages
Revises: 0023_api_keys
"""
from __future__ import annotations

from alembic import op


revision = "0024_search_languages"
down_revision = "0023_api_keys"
branch_labels = None
depends_on = None

COLUMNS = "title, summary, body_text"
#: The configuration each language's text is parsed with: PostgreSQL's stemmers for English and
#: Spanish; anything else (Catalan, whose configuration only PostgreSQL 16 ships) word for word.
CONFIG = ("CASE WHEN language = 'en' THEN 'english'::regconfig WHEN language = 'es' THEN 'spanish'::regconfig "
          "ELSE 'simple'::regconfig END")
#: The same expression as intranet.search._postgres_document, or the planner ignores the index.
DOCUMENT = (f"(setweight(to_tsvector({CONFIG}, title), 'A') || setweight(to_tsvector({CONFIG}, summary), 'B') "
            f"|| to_tsvector({CONFIG}, body_text))")
SIMPLE_DOCUMENT = ("(setweight(to_tsvector('simple', title), 'A') || setweight(to_tsvector('simple', summary), 'B') "
                   "|| to_tsvector('simple', body_text))")


def _fts5(table: str) -> None:
    # As 0009_post_search: external content, the text lives once in the table; triggers keep step.
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
        op.execute("DROP INDEX ix_intranet_post_search")
        op.execute(f"CREATE INDEX ix_intranet_post_search ON intranet_post USING gin ({DOCUMENT})")
        op.execute(f"CREATE INDEX ix_intranet_post_translation_search ON intranet_post_translation "
                   f"USING gin ({DOCUMENT})")
        return
    # FTS5 has no Spanish or Catalan stemmer: every language is matched word for word (and prefix).
    _fts5("intranet_post_translation")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_intranet_post_translation_search")
        op.execute("DROP INDEX ix_intranet_post_search")
        op.execute(f"CREATE INDEX ix_intranet_post_search ON intranet_post USING gin ({SIMPLE_DOCUMENT})")
        return
    for trigger in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER intranet_post_translation_fts_{trigger}")
    op.execute("DROP TABLE intranet_post_translation_fts")
