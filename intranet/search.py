"""Full-text search over the posts an employee may see, ranked by relevance and freshness.

Each database searches with its own engine: SQLite through an FTS5 index kept in step with
``intranet_post`` by triggers (migration ``0009_post_search``), PostgreSQL through a GIN index on
the posts' ``tsvector`` (``simple`` configuration: posts come in several languages, and stemming
for one would mangle the others). The query people type is never handed to either engine's query
syntax: it is cut into words, and each word becomes a quoted prefix term, so ``"``, ``*``, ``:``,
``OR`` or parentheses are just text.

Visibility is the targeting rule's own SQL (:func:`intranet.targeting.visible_posts_filter`) in the
same statement as the match, so a search can never return a post its reader could not open.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, func, literal_column, text
from sqlmodel import Session, select

from intranet import targeting
from intranet.db import as_utc
from intranet.errors import InvalidInput
from intranet.models import Employee, Post
from intranet.shapes import Time

MAX_QUERY_LENGTH = 200
MAX_TERMS = 8
#: Matches scored for relevance before freshness re-orders them; more than anyone pages through.
CANDIDATES = 200
#: Days for a post's freshness weight to halve.
HALF_LIFE_DAYS = 30.0
SNIPPET_LENGTH = 180

WORD = re.compile(r"\w+", re.UNICODE)
#: Literals, not bound parameters: PostgreSQL matches an index on expressions only with constants.
SIMPLE = literal_column("'simple'")


@dataclasses.dataclass(frozen=True)
class Hit:
    post: Post
    #: Relevance times freshness; higher is better.
    score: float
    #: Plain text around the first matching word (escape it when rendering).
    snippet: str


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

    @classmethod
    def of(cls, hit: Hit) -> SearchHitPublic:
        post = hit.post
        return cls(id=post.id, title=post.title, summary=post.summary, topic=post.topic,  # type: ignore[arg-type]
                   must_read=post.must_read, published_at=post.published_at, snippet=hit.snippet)


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


def _sqlite_matches(terms: list[str]) -> Select[Any]:
    # Each word quoted (FTS5 strings double their quotes; \w never contains one) and prefix-matched.
    expression = " ".join(f'"{term}"*' for term in terms)
    matching = text("SELECT rowid, bm25(intranet_post_fts, 4.0, 2.0, 1.0) AS rank FROM intranet_post_fts "
                    "WHERE intranet_post_fts MATCH :expression").bindparams(expression=expression)
    found = matching.columns(literal_column("rowid"), literal_column("rank")).subquery("fts")
    # bm25() is smaller for better matches; negate it so higher is better on both databases.
    return select(Post, (-found.c.rank).label("relevance")).join(found, Post.id == found.c.rowid)


def _postgres_document() -> ColumnElement[object]:
    # Must be the migration's indexed expression, term for term, or the planner ignores the index.
    def weighted(column: Any, weight: str) -> ColumnElement[object]:
        return func.setweight(func.to_tsvector(SIMPLE, column), literal_column(f"'{weight}'"))

    return weighted(Post.title, "A").op("||")(weighted(Post.summary, "B")).op("||")(
        func.to_tsvector(SIMPLE, Post.body_text))


def _postgres_matches(terms: list[str]) -> Select[Any]:
    query = func.to_tsquery(SIMPLE, " & ".join(f"{term}:*" for term in terms))
    document = _postgres_document()
    return select(Post, func.ts_rank_cd(document, query).label("relevance")).where(document.op("@@")(query))


def matching_posts(session: Session, terms: list[str]) -> Select[Any]:
    """``SELECT post, relevance`` for the posts containing every term (as a prefix), on *session*'s database.

    Visibility is not applied here: :func:`search` adds the targeting rule.
    """
    return _postgres_matches(terms) if session.get_bind().dialect.name == "postgresql" else _sqlite_matches(terms)


def _snippet(post: Post, terms: list[str]) -> str:
    source = post.body_text or post.summary
    lowered = source.lower()
    positions = [p for p in (lowered.find(term) for term in terms) if p >= 0]
    start = max(0, min(positions) - SNIPPET_LENGTH // 3) if positions else 0
    piece = source[start:start + SNIPPET_LENGTH].strip()
    return ("…" if start else "") + piece + ("…" if start + SNIPPET_LENGTH < len(source) else "")


def search(session: Session, employee: Employee, query: str, *, now: dt.datetime, limit: int = 20) -> list[Hit]:
    """The live posts targeted at *employee* that contain every word of *query*, best first.

    Best means relevance (title over summary over body) weighted by freshness, halving every
    :data:`HALF_LIFE_DAYS`, so last week's match beats last year's slightly better one.
    """
    terms = terms_of(query)
    if not terms:
        return []
    matches = matching_posts(session, terms)
    visible = targeting.visible_posts_filter(employee, targeting.group_keys_of(session, employee.id), now)
    rows = session.exec(
        matches.where(visible).order_by(literal_column("relevance").desc(), Post.id.desc()).limit(CANDIDATES)
    ).all()
    hits = []
    for post, score in rows:
        age_days = max(0.0, (now - as_utc(post.published_at or now)).total_seconds() / 86400)
        freshness = 0.5 ** (age_days / HALF_LIFE_DAYS)
        # A floor keeps an old exact match above a fresh post that barely mentions the words.
        hits.append(Hit(post, float(score) * (0.25 + 0.75 * freshness), _snippet(post, terms)))
    hits.sort(key=lambda hit: (-hit.score, -(hit.post.id or 0)))
    return hits[:limit]
