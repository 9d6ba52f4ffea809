"""Words reduced to their stems, language by language, for SQLite's search (the only snowballstemmer user).

PostgreSQL stems a post's versions with its text search configurations; SQLite's FTS5 has no
Spanish or Catalan stemmer (and only Porter's for English). So Beacon stems in Python with the
Snowball stemmers PostgreSQL's configurations are built from, and FTS5 indexes the stems:
:func:`index_text` is what SQLite's search index holds for a version's text, and
:func:`query_forms` what a searched word is looked up as among a version's stems. Both sides go
through the same function with the same stemmer, so "publicaciones" finds "publicación" and
"meetings" finds "meeting"; FTS5's tokenizer (``remove_diacritics``) then makes the match
accent-insensitive.

SQLite's triggers call :func:`index_text` and :func:`config_of` as the SQL functions
``beacon_search_text(language, text)`` and ``beacon_search_config(language)``, which
:func:`register` adds to each SQLite connection (:func:`intranet.db.make_engine` does it for every
engine it creates).
"""
from __future__ import annotations

import functools
import re
import threading
from typing import Any

import snowballstemmer

#: The Snowball stemmer for each language stemmed (the names PostgreSQL's configurations carry).
CONFIGS: dict[str, str] = {"en": "english", "es": "spanish", "ca": "catalan"}
#: Every other language is matched word for word, as PostgreSQL's ``simple`` configuration does.
SIMPLE = "simple"
#: Every configuration a version's text may be indexed under.
ALL_CONFIGS: tuple[str, ...] = (*CONFIGS.values(), SIMPLE)

WORD = re.compile(r"\w+", re.UNICODE)

# Snowball's stemmer objects keep state while stemming a word: one per thread and language.
_local = threading.local()


def config_of(language: str | None) -> str:
    """The configuration that text in *language* (``es``, ``es-ES``, ``ca_ES``) is stemmed with."""
    primary = re.split(r"[-_]", (language or "").strip().lower(), maxsplit=1)[0]
    return CONFIGS.get(primary, SIMPLE)


@functools.lru_cache(maxsize=65536)
def stem(config: str, word: str) -> str:
    """*word* (lower case) reduced to its stem by *config*'s stemmer; itself for ``simple``."""
    if config == SIMPLE:
        return word
    stemmers = _local.__dict__.setdefault("stemmers", {})
    stemmer = stemmers.get(config)
    if stemmer is None:
        stemmer = stemmers[config] = snowballstemmer.stemmer(config)
    return stemmer.stemWord(word) or word


def index_text(language: str | None, text: str | None) -> str:
    """What the search index holds for *text* written in *language*: each word's stem, and the word
    itself where it differs, so a prefix of the word as typed ("publicacio") is still found."""
    config = config_of(language)
    out: list[str] = []
    for word in WORD.findall((text or "").lower()):
        stemmed = stem(config, word)
        out.append(stemmed)
        if stemmed != word:
            out.append(word)
    return " ".join(out)


def query_forms(config: str, term: str) -> list[str]:
    """The forms a searched *term* (lower case) is looked up as in text indexed under *config*:
    its stem, and the term as typed when that differs (each is then matched as a prefix)."""
    stemmed = stem(config, term)
    return [stemmed] if stemmed == term else [stemmed, term]


def register(dbapi_connection: Any) -> None:
    """Add ``beacon_search_text`` and ``beacon_search_config`` to a :mod:`sqlite3` connection."""
    dbapi_connection.create_function("beacon_search_text", 2, index_text, deterministic=True)
    dbapi_connection.create_function("beacon_search_config", 1, config_of, deterministic=True)
