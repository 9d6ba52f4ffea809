"""Full-text search over the posts an employee may see, in every language, ranked by relevance and freshness.

A post is found by any of its versions: its own text (its primary language) or a version in
another language (:class:`~intranet.models.PostTranslation`), so a person searching in Spanish
finds a post through its Spanish version. The hit is then shown in the reader's language (with
the usual note when the post has no version in it), and its snippet comes from the version shown
when the words are there, else from the version that matched.

Each database searches with its own engine, and both stem each version's words with its language's
stemmer, so "publicaciones" finds "publicación" and "meetings" finds "meeting". PostgreSQL through
GIN indexes on each table's ``tsvector``, parsed with the configuration of the row's language
(:data:`PG_CONFIGS`: English, Spanish and, where the server has it, Catalan; any other language
word for word with ``simple``). SQLite through FTS5 indexes that hold each version's text as
stemmed in Python by the same Snowball stemmers (:mod:`intranet.stemming`; migration
``0027_search_stemming``), kept in step by triggers, accent-insensitive, and holding the words as
written beside their stems so a word still being typed is found by its prefix. On both, the query
is stemmed once per configuration and each row is matched with its own language's stems.
The query people type is never handed to either
engine's query syntax: it is cut into words, and each word becomes a quoted prefix term, so ``"``,
``*``, ``:``, ``OR`` or parentheses are just text.

Visibility is the targeting rule's own SQL (:func:`intranet.targeting.visible_posts_filter`) in the
same statement as the match, so a search can never return a post its reader could not open (nor a
journey step not yet released to them), whichever version matched.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
import unicodedata
import weakref
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, and_, case, func, literal_column, or_, text, union_all
from sqlmodel import Session, select

from intranet import post_versions, stemming, targeting
from intranet.db import as_utc
from intranet.errors import InvalidInput
from intranet.models import Employee, Post, PostTranslation
from intranet.post_versions import Localized
from intranet.shapes import Time

MAX_QUERY_LENGTH = 200
MAX_TERMS = 8
#: Matches scored for relevance before freshness re-orders them; more than anyone pages through.
CANDIDATES = 200
#: Days for a post's freshness weight to halve.
HALF_LIFE_DAYS = 30.0
SNIPPET_LENGTH = 180

WORD = re.compile(r"\w+", re.UNICODE)


@dataclasses.dataclass(frozen=True)
class Hit:
    #: The post as its reader gets it (in their language when it has a version in it).
    post: Localized
    #: Relevance times freshness; higher is better.
    score: float
    #: Plain text around the first matching word (escape it when rendering).
    snippet: str
    #: The snippet's language: the post's as shown, unless only another version mentions the words.
    snippet_language: str = ""


class SearchQuery(BaseModel):
    """``GET /api/v1/search``'s query string."""

    q: str = Field(default="", max_length=MAX_QUERY_LENGTH, description="The words to find (each also as a prefix)")
    limit: int = Field(default=20, ge=1, le=50, description="Most matches to answer with")


class SearchHitPublic(BaseModel):
    """A post that matches the search."""

    id: int
    title: str
    summary: str
    topic: str
    must_read: bool
    published_at: Time | None
    snippet: str = Field(description="Plain text around the first match")
    language: str = Field(description="The language of the title and summary served: yours when the post has a "
                          "version in it, else the language it was written in (any version may have matched)")

    @classmethod
    def of(cls, hit: Hit) -> SearchHitPublic:
        post = hit.post
        return cls(id=post.id, title=post.title, summary=post.summary, topic=post.topic,
                   must_read=post.must_read, published_at=post.published_at, snippet=hit.snippet,
                   language=post.language)


class SearchPublic(BaseModel):
    """The live posts targeted at you that match, best first."""

    query: str
    items: list[SearchHitPublic]


def terms_of(query: str) -> list[str]:
    """The words of *query* that are searched for (lower-cased, at most :data:`MAX_TERMS`).

    :raise InvalidInput: when *query* is longer than :data:`MAX_QUERY_LENGTH` characters.
    """
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidInput(f"Search for at most {MAX_QUERY_LENGTH} characters.")
    return [word.lower() for word in WORD.findall(query)][:MAX_TERMS]


def _fts5_string(form: str) -> str:
    # FTS5 strings double their quotes; \w never contains one, nor does a stem of it.
    return '"' + form.replace('"', '""') + '"*'


def _sqlite_expression(config: str, terms: list[str]) -> str:
    """The FTS5 query for versions stemmed with *config*: every term, as its stem or as typed, as a prefix."""
    words = " AND ".join("(" + " OR ".join(_fts5_string(f) for f in stemming.query_forms(config, t)) + ")"
                         for t in terms)
    return f'language : "{config}" AND {{title summary body_text}} : ({words})'


def _sqlite_matches_in(index: str, terms: list[str]) -> Any:
    """The FTS5 index *index*'s matches for *terms*: ``rowid`` and ``rank`` (higher is better).

    One MATCH per stemming configuration, each over the versions indexed with it, so a version is
    matched (and ranked) by its own language's stems of the words only, as PostgreSQL does.
    """
    branches = []
    for n, config in enumerate(stemming.ALL_CONFIGS):
        name = f"{index}_{n}"
        branches.append(f"SELECT rowid, bm25({index}, 4.0, 2.0, 1.0, 0.0) AS rank FROM {index} "
                        f"WHERE {index} MATCH :{name}")
    matching = text(" UNION ALL ".join(branches)).bindparams(
        **{f"{index}_{n}": _sqlite_expression(config, terms) for n, config in enumerate(stemming.ALL_CONFIGS)})
    return matching.columns(literal_column("rowid"), literal_column("rank")).subquery(index)


def _sqlite_matches(terms: list[str]) -> list[Select[Any]]:
    own = _sqlite_matches_in("intranet_post_fts", terms)
    versions = _sqlite_matches_in("intranet_post_translation_fts", terms)
    # bm25() is smaller for better matches; negate it so higher is better on both databases.
    return [select(own.c.rowid.label("post_id"), (-own.c.rank).label("relevance")),
            select(PostTranslation.post_id.label("post_id"), (-versions.c.rank).label("relevance"))
            .join(versions, PostTranslation.id == versions.c.rowid)]


#: PostgreSQL's text search configuration for each language it stems (literals, as in the indexes);
#: Catalan's only where the server has it (see :func:`pg_configs`).
PG_CONFIGS: dict[str, str] = {"en": "english", "es": "spanish", "ca": "catalan"}
#: For every other language: word for word.
PG_FALLBACK = "simple"
#: Configurations that not every PostgreSQL ships (Catalan came with 16): used only where present,
#: as migration 0027_search_stemming indexed them only there.
PG_OPTIONAL = frozenset({"ca"})
_pg_available: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()


def pg_configs(session: Session) -> dict[str, str]:
    """The languages this PostgreSQL server stems, with their configuration (the indexes' own)."""
    engine = session.get_bind()
    engine = getattr(engine, "engine", engine)
    found = _pg_available.get(engine)
    if found is None:
        optional = [config for code, config in PG_CONFIGS.items() if code in PG_OPTIONAL]
        present = set(session.execute(text("SELECT cfgname FROM pg_ts_config WHERE cfgname = ANY(:names)"),
                                      {"names": optional}).scalars())
        found = _pg_available[engine] = {code: config for code, config in PG_CONFIGS.items()
                                         if code not in PG_OPTIONAL or config in present}
    return found


def _literal(value: str) -> ColumnElement[Any]:
    # Literals, not bound parameters: PostgreSQL matches an index on expressions only with constants.
    return literal_column(f"'{value}'")


def _postgres_config(language: Any, configs: dict[str, str]) -> ColumnElement[Any]:
    return case(*((language == _literal(code), literal_column(f"'{config}'::regconfig"))
                  for code, config in configs.items()), else_=literal_column(f"'{PG_FALLBACK}'::regconfig"))


def _postgres_document(table: Any, configs: dict[str, str]) -> ColumnElement[object]:
    # Must be the migration's indexed expression, term for term, or the planner ignores the index.
    config = _postgres_config(table.c.language, configs)

    def weighted(column: Any, weight: str) -> ColumnElement[object]:
        return func.setweight(func.to_tsvector(config, column), _literal(weight))

    return weighted(table.c.title, "A").op("||")(weighted(table.c.summary, "B")).op("||")(
        func.to_tsvector(config, table.c.body_text))


def _postgres_matches_in(table: Any, post_id: Any, terms: list[str], configs: dict[str, str]) -> Select[Any]:
    words = " & ".join(f"{term}:*" for term in terms)
    document = _postgres_document(table, configs)
    language = table.c.language
    queries = {code: func.to_tsquery(_literal(config), words) for code, config in configs.items()}
    fallback = func.to_tsquery(_literal(PG_FALLBACK), words)
    # One branch per configuration, each `document @@ constant query`, so each can use the index.
    matched = or_(*(and_(language == _literal(code), document.op("@@")(query)) for code, query in queries.items()),
                  and_(language.not_in([_literal(code) for code in configs]), document.op("@@")(fallback)))
    own_query = case(*((language == _literal(code), query) for code, query in queries.items()), else_=fallback)
    return select(post_id.label("post_id"), func.ts_rank_cd(document, own_query).label("relevance")).where(matched)


def _postgres_matches(session: Session, terms: list[str]) -> list[Select[Any]]:
    posts, versions = Post.__table__, PostTranslation.__table__  # type: ignore[attr-defined]
    configs = pg_configs(session)
    return [_postgres_matches_in(posts, posts.c.id, terms, configs),
            _postgres_matches_in(versions, versions.c.post_id, terms, configs)]


def matching_posts(session: Session, terms: list[str]) -> Select[Any]:
    """``SELECT post, relevance`` for the posts with a version containing every term (as a prefix).

    A post matched by several versions counts once, with its best version's relevance.
    Visibility is not applied here: :func:`search` adds the targeting rule.
    """
    postgres = session.get_bind().dialect.name == "postgresql"
    found = union_all(*(_postgres_matches(session, terms) if postgres else _sqlite_matches(terms))).subquery("found")
    best = (select(found.c.post_id, func.max(found.c.relevance).label("relevance"))
            .group_by(found.c.post_id).subquery("best"))
    return select(Post, best.c.relevance.label("relevance")).join(best, Post.id == best.c.post_id)


def _folded(source: str) -> str:
    # As the FTS5 tokenizer (remove_diacritics): "información" mentions "informacion".
    return "".join(c for c in unicodedata.normalize("NFKD", source.lower()) if not unicodedata.combining(c))


def _needles(terms: list[str], language: str) -> list[str]:
    """What text in *language* shows when it matched: each term's forms under its stemmer, folded."""
    config = stemming.config_of(language)
    return list(dict.fromkeys(_folded(form) for term in terms for form in stemming.query_forms(config, term)))


def _snippet(source: str, needles: list[str]) -> str:
    folded = _folded(source)
    if len(folded) != len(source):  # a character folded into several: positions would drift
        folded = source.lower()
    positions = [p for p in (folded.find(needle) for needle in needles) if p >= 0]
    start = max(0, min(positions) - SNIPPET_LENGTH // 3) if positions else 0
    piece = source[start:start + SNIPPET_LENGTH].strip()
    return ("…" if start else "") + piece + ("…" if start + SNIPPET_LENGTH < len(source) else "")


def _mentions(version: Any, terms: list[str]) -> bool:
    folded = _folded(f"{version.title} {version.summary} {version.body_text}")
    return any(needle in folded for needle in _needles(terms, version.language))


def _snippets(session: Session, shown: dict[int, Localized], terms: list[str]) -> dict[int, tuple[str, str]]:
    """Each post's snippet and its language: from the version shown when it mentions a word (or its
    stem), else from one that does (some version matched, possibly through a form no text spells)."""
    snippets: dict[int, tuple[str, str]] = {}
    missing = []
    for post_id, post in shown.items():
        if _mentions(post, terms):
            snippets[post_id] = (_snippet(post.body_text or post.summary, _needles(terms, post.language)),
                                 post.language)
        else:
            missing.append(post_id)
    if missing:
        others: dict[int, list[Any]] = {post_id: [shown[post_id]._post] for post_id in missing}
        for version in session.exec(select(PostTranslation).where(PostTranslation.post_id.in_(missing))
                                    .order_by(PostTranslation.language)):
            others[version.post_id].append(version)
        for post_id, candidates in others.items():
            source = next((c for c in candidates if _mentions(c, terms)), shown[post_id])
            snippets[post_id] = (_snippet(source.body_text or source.summary, _needles(terms, source.language)),
                                 source.language)
    return snippets


def search(session: Session, employee: Employee, query: str, *, now: dt.datetime, limit: int = 20,
           language: str | None = None) -> list[Hit]:
    """The live posts targeted at *employee* with a version containing every word of *query*, best first.

    Best means relevance (title over summary over body) weighted by freshness, halving every
    :data:`HALF_LIFE_DAYS`, so last week's match beats last year's slightly better one.

    :param language: the reader's language: each hit's post is as they get it
        (:class:`~intranet.post_versions.Localized`), whichever version matched.
    """
    terms = terms_of(query)
    if not terms:
        return []
    matches = matching_posts(session, terms)
    visible = targeting.visible_posts_filter(employee, targeting.group_keys_of(session, employee.id), now)
    rows = session.exec(
        matches.where(visible).order_by(literal_column("relevance").desc(), Post.id.desc()).limit(CANDIDATES)
    ).all()
    ranked = []
    for post, score in rows:
        age_days = max(0.0, (now - as_utc(post.published_at or now)).total_seconds() / 86400)
        freshness = 0.5 ** (age_days / HALF_LIFE_DAYS)
        # A floor keeps an old exact match above a fresh post that barely mentions the words.
        ranked.append((post, float(score) * (0.25 + 0.75 * freshness)))
    ranked.sort(key=lambda pair: (-pair[1], -(pair[0].id or 0)))
    ranked = ranked[:limit]
    shown = post_versions.localize(session, [post for post, _ in ranked], language)
    snippets = _snippets(session, shown, terms)
    return [Hit(shown[post.id], score, *snippets[post.id]) for post, score in ranked]  # type: ignore[index]
