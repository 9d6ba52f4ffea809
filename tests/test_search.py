"""Search over the posts a person may see: matching, ranking, syntax-proof input, and no leaks."""
from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from sqlmodel import Session, select

from intranet import post_versions, search, targeting
from intranet.errors import InvalidInput
from intranet.models import Journey, JourneyEnrolment, JourneyRelease, JourneyStep, Post, PostTranslation


def titles(hits: list[search.Hit]) -> list[str]:
    return [hit.post.title for hit in hits]


def test_every_word_must_match_and_words_match_as_prefixes(db: Session, make_employee: Any, make_post: Any,
                                                           clock: Any) -> None:
    reader = make_employee()
    make_post(title="Parking garage closed", body_text="The garage on Main Street closes for repairs.")
    make_post(title="Canteen menu", body_text="New vegetarian dishes in the canteen from Monday.")
    make_post(title="Garage sale for charity", summary="Bring what you no longer need.")

    assert set(titles(search.search(db, reader, "garage", now=clock.now))) == {"Parking garage closed",
                                                                               "Garage sale for charity"}
    assert titles(search.search(db, reader, "garage repairs", now=clock.now)) == ["Parking garage closed"]
    assert titles(search.search(db, reader, "veget", now=clock.now)) == ["Canteen menu"]
    assert titles(search.search(db, reader, "CANTEEN", now=clock.now)) == ["Canteen menu"]
    assert search.search(db, reader, "garage canteen", now=clock.now) == []


def test_a_title_match_outranks_a_body_match_and_freshness_breaks_near_ties(db: Session, make_employee: Any,
                                                                            make_post: Any, clock: Any) -> None:
    reader = make_employee()
    make_post(title="Quarterly results", body_text="Numbers.")
    make_post(title="Town hall notes", body_text="We also covered the quarterly plan and more.")
    assert titles(search.search(db, reader, "quarterly", now=clock.now))[0] == "Quarterly results"

    make_post(title="Security update", body_text="Update your laptop.",
              published_at=clock.now - dt.timedelta(days=200))
    make_post(title="Security update", body_text="Update your laptop.", published_at=clock.now - dt.timedelta(days=2))
    hits = search.search(db, reader, "security laptop", now=clock.now)
    assert [hit.post.published_at for hit in hits] == sorted((hit.post.published_at for hit in hits), reverse=True)


@pytest.mark.parametrize("query", ['"', '" OR 1=1 --', "title:secret", "a* NEAR(b c)", "x & !y | z", "'; DROP",
                                   "(((", "AND OR NOT", "ü:* <-> ö", "\\", "💥 garage"])
def test_query_syntax_is_just_text(db: Session, make_employee: Any, make_post: Any, clock: Any, query: str) -> None:
    reader = make_employee()
    make_post(title="Garage sale", body_text="or and not near title secret")
    search.search(db, reader, query, now=clock.now)  # never a syntax error from FTS5 or to_tsquery


def test_empty_and_overlong_queries(db: Session, make_employee: Any, make_post: Any, clock: Any) -> None:
    reader = make_employee()
    make_post(title="Anything")
    assert search.search(db, reader, "   ", now=clock.now) == []
    assert search.search(db, reader, "!!! ---", now=clock.now) == []
    with pytest.raises(InvalidInput, match="200 characters"):
        search.search(db, reader, "x" * 201, now=clock.now)


def test_the_index_follows_edits_and_deletions(db: Session, make_employee: Any, make_post: Any, clock: Any) -> None:
    reader = make_employee()
    post = make_post(title="Old headline", body_text="Alpha")
    post.title, post.body_text = "New headline", "Bravo"
    db.add(post)
    db.commit()
    assert search.search(db, reader, "old", now=clock.now) == []
    assert search.search(db, reader, "alpha", now=clock.now) == []
    assert titles(search.search(db, reader, "bravo headline", now=clock.now)) == ["New headline"]
    db.delete(db.get(Post, post.id))
    db.commit()
    assert search.search(db, reader, "bravo", now=clock.now) == []


def test_search_returns_exactly_the_visible_matches(db: Session, make_employee: Any, make_group: Any,
                                                     make_post: Any, clock: Any) -> None:
    """Every kind of post a reader must not see, for several readers: search never returns one."""
    people = [make_employee(department="Sales", region="EMEA", level=2),
              make_employee(department="Sales", region="AMER", level=7),
              make_employee(department="Engineering", region="EMEA", level=4),
              make_employee(department="Engineering", region="APAC", level=9, active=False)]
    make_group("runners", members=(people[2],))
    now = clock.now
    audiences = [{"all": True}, {"segments": [{"departments": ["Sales"]}]},
                 {"segments": [{"departments": ["Engineering"], "regions": ["EMEA"]}]},
                 {"segments": [{"level_min": 5}]}, {"segments": [{"groups": ["runners"]}]},
                 {"all": True, "exclude": [{"regions": ["AMER"]}]}]
    states = [{}, {"status": "draft", "published_at": None}, {"status": "scheduled", "published_at": None,
                                                                 "publish_at": now + dt.timedelta(days=1)},
              {"expires_at": now - dt.timedelta(minutes=1)}, {"status": "unpublished"},
              {"published_at": now + dt.timedelta(hours=1)}]
    for n, (audience, state) in enumerate(itertools.product(audiences, states)):
        make_post(audience, title=f"Budget memo {n}", body_text="The budget for next year.", **state)

    for person in people:
        found = {hit.post.id for hit in search.search(db, person, "budget", now=now, limit=100)}
        visible = {post.id for post in db.exec(select(Post)).all() if targeting.may_see(db, person, post, now)}
        assert found == visible
    assert search.search(db, people[3], "budget", now=now) == []  # inactive: nothing at all


def test_search_page_and_api(app: Any, client_for: Any, make_employee: Any, make_post: Any) -> None:
    reader = make_employee(department="Sales")
    other = make_employee(department="Finance")
    make_post({"segments": [{"departments": ["Sales"]}]}, title="Sales kickoff <b>agenda</b>",
              body_text="Kickoff <script>alert(1)</script> in Lisbon.")
    make_post({"segments": [{"departments": ["Finance"]}]}, title="Finance kickoff", body_text="Kickoff in Porto.")

    client = client_for(reader)
    page = client.get("/search?q=kickoff").get_data(as_text=True)
    assert "Sales kickoff &lt;b&gt;agenda&lt;/b&gt;" in page and "&lt;script&gt;" in page
    assert "<script>alert" not in page and "Finance kickoff" not in page and "Porto" not in page
    assert "1 post for" in page

    empty = client.get("/search?q=nothingmatches").get_data(as_text=True)
    assert "No posts found" in empty
    too_long = client.get("/search?q=" + "x" * 300)
    assert too_long.status_code == 200 and "at most 200 characters" in too_long.get_data(as_text=True)
    assert 'role="search"' in client.get("/").get_data(as_text=True)

    answer = client.api("GET", "/api/v1/search?q=kick&limit=5")
    assert answer.status_code == 200
    assert [item["title"] for item in answer.json["items"]] == ["Sales kickoff <b>agenda</b>"]
    assert answer.json["items"][0]["snippet"].startswith("Kickoff")
    assert client.api("GET", "/api/v1/search?q=kick&limit=0").status_code == 422
    assert client.api("GET", "/api/v1/search?q=kick&limit=x").status_code == 422
    assert client.api("GET", "/api/v1/search?q=" + "y" * 201).status_code == 422
    assert [i["title"] for i in client_for(other).api("GET", "/api/v1/search?q=kickoff").json["items"]] == \
        ["Finance kickoff"]
    assert app.test_client().get("/api/v1/search?q=kickoff").status_code == 401


@pytest.mark.postgres_only
def test_postgresql_searches_through_the_gin_index(db: Session, make_employee: Any, make_post: Any,
                                                   clock: Any) -> None:
    """The query's document must be the migration's indexed expression, or every search is a full scan."""
    from sqlalchemy import text
    from sqlalchemy.dialects import postgresql

    sql = str(search.matching_posts(db, ["budget"]).compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    db.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(row[0] for row in db.execute(text("EXPLAIN " + sql)))
    db.rollback()
    assert "ix_intranet_post_search" in plan, plan


# --- every language version is searched -----------------------------------------------------------------

def add_version(db: Session, post: Post, language: str, title: str, body: str, summary: str = "") -> None:
    db.add(PostTranslation(post_id=post.id, language=language, title=title, summary=summary,  # type: ignore[arg-type]
                           body_html=f"<p>{body}</p>", body_text=body))
    db.commit()


def release_step(db: Session, post: Post, person: Any, *, at: dt.datetime, status: str = "released") -> None:
    """Make *post* a journey step released (or still pending) to *person*."""
    journey = Journey(name="Welcome", trigger="hire")
    db.add(journey)
    db.flush()
    step = JourneyStep(journey_id=journey.id, key=f"s{post.id}", post_id=post.id)  # type: ignore[arg-type]
    enrolment = JourneyEnrolment(journey_id=journey.id, employee_pk=person.id, event_key="hire",  # type: ignore[arg-type]
                                 event_date=at.date())
    db.add_all([step, enrolment])
    db.flush()
    db.add(JourneyRelease(enrolment_id=enrolment.id, step_id=step.id, employee_pk=person.id,  # type: ignore[arg-type]
                          post_id=post.id, due_at=at, status=status,  # type: ignore[arg-type]
                          released_at=at if status == "released" else None))
    db.commit()


def test_a_post_is_found_by_its_version_in_another_language_and_shown_in_the_readers(
        db: Session, make_employee: Any, make_post: Any, clock: Any) -> None:
    """Searching in Spanish finds an English post through its Spanish version, shown in the reader's language."""
    reader = make_employee()
    post = make_post(title="Summer holidays", body_text="The office closes in August.")
    add_version(db, post, "es", "Vacaciones de verano", "La oficina cierra en agosto.")

    [hit] = search.search(db, reader, "oficina agosto", now=clock.now, language="es")
    assert (hit.post.id, hit.post.title, hit.post.language, hit.post.fallback) == (
        post.id, "Vacaciones de verano", "es", False)
    assert hit.snippet == "La oficina cierra en agosto." and hit.snippet_language == "es"

    # An English reader typing Spanish words finds it too: in English, the snippet where the words are.
    [hit] = search.search(db, reader, "oficina", now=clock.now, language="en")
    assert (hit.post.title, hit.post.language, hit.snippet_language) == ("Summer holidays", "en", "es")
    # A Catalan reader gets the primary version with the fallback note's facts.
    [hit] = search.search(db, reader, "agosto", now=clock.now, language="ca")
    assert (hit.post.title, hit.post.language, hit.post.wanted, hit.post.fallback) == (
        "Summer holidays", "en", "ca", True)
    # Matched by two versions, the post is still one hit.
    add_version(db, post, "ca", "Vacances d'estiu", "L'oficina tanca a l'agost.")
    assert [h.post.id for h in search.search(db, reader, "oficina", now=clock.now, language="ca")] == [post.id]


def test_the_index_follows_versions_saved_replaced_and_removed(db: Session, make_employee: Any, make_post: Any,
                                                               clock: Any) -> None:
    comms = make_employee(is_comms=True)
    reader = make_employee()
    post = make_post(title="Canteen", body_text="Menu.")
    data = post_versions.TranslationIn(language="es", title="Comedor", body_html="<p>Menú <b>nuevo</b></p>")
    post_versions.save(db, post, data, actor=comms, now=clock.now)
    db.commit()
    assert [h.post.id for h in search.search(db, reader, "menu nuevo", now=clock.now)] == [post.id]
    post_versions.save(db, post, data.model_copy(update={"body_html": "<p>Platos</p>"}), actor=comms, now=clock.now)
    db.commit()
    assert search.search(db, reader, "nuevo", now=clock.now) == []
    assert [h.post.id for h in search.search(db, reader, "platos", now=clock.now)] == [post.id]
    post_versions.remove(db, post, "es", actor=comms)
    db.commit()
    assert search.search(db, reader, "platos", now=clock.now) == []
    post_versions.save(db, post, data, actor=comms, now=clock.now)
    db.commit()
    db.delete(db.get(Post, post.id))
    db.commit()
    assert search.search(db, reader, "comedor", now=clock.now) == []


def test_search_in_another_language_returns_exactly_the_visible_matches(
        db: Session, make_employee: Any, make_post: Any, clock: Any) -> None:
    """Untargeted posts, dead ones and journey steps not released to the reader stay hidden in every language."""
    now = clock.now
    sales = make_employee(department="Sales", language="es")
    finance = make_employee(department="Finance", language="es")
    audiences = [{"all": True}, {"segments": [{"departments": ["Sales"]}]},
                 {"segments": [{"departments": ["Finance"]}]}]
    states = [{}, {"status": "draft", "published_at": None}, {"expires_at": now - dt.timedelta(minutes=1)},
              {"journey_only": True}]
    for n, (audience, state) in enumerate(itertools.product(audiences, states)):
        post = make_post(audience, title=f"Budget memo {n}", body_text="The budget.", **state)
        add_version(db, post, "es", f"Presupuesto {n}", "El presupuesto del año que viene.")
        if state.get("journey_only") and n % 2:
            release_step(db, post, sales, at=now - dt.timedelta(days=1))
        elif state.get("journey_only"):
            release_step(db, post, sales, at=now - dt.timedelta(days=1), status="pending")

    for person in (sales, finance):
        for words, language in (("presupuesto", "es"), ("budget", "es"), ("presupuesto", "en")):
            found = {hit.post.id for hit in search.search(db, person, words, now=now, limit=100, language=language)}
            visible = {p.id for p in db.exec(select(Post)).all() if targeting.may_see(db, person, p, now)}
            assert found == visible, (person.department, words)
    assert any(p.journey_only for p in db.exec(select(Post)).all()
               if targeting.may_see(db, sales, p, now))  # a released step is found, as it may be read


def test_search_page_shows_the_readers_version_and_the_fallback_note(app: Any, client_for: Any, db: Session,
                                                                     make_employee: Any, make_post: Any) -> None:
    reader = make_employee(language="es")
    post = make_post(title="Summer holidays", body_text="The office closes in August.")
    add_version(db, post, "es", "Vacaciones de verano", "La oficina cierra en agosto.")
    other = make_post(title="Parking <i>rules</i>", body_text="Oficina parking.")

    page = client_for(reader).get("/search?q=oficina").get_data(as_text=True)
    assert "Vacaciones de verano" in page and "Summer holidays" not in page
    assert "Parking &lt;i&gt;rules&lt;/i&gt;" in page and 'class="language-note' in page  # only the other's
    assert page.count('class="language-note') == 1 and f'data-post-id="{other.id}"' in page
    items = client_for(reader).api("GET", "/api/v1/search?q=agosto").json["items"]
    assert [(i["title"], i["language"]) for i in items] == [("Vacaciones de verano", "es")]


def found(db: Session, reader: Any, words: str, clock: Any, **kwargs: Any) -> list[int]:
    return [hit.post.id for hit in search.search(db, reader, words, now=clock.now, **kwargs)]


def test_english_and_spanish_versions_are_stemmed_in_their_language(db: Session, make_employee: Any,
                                                                     make_post: Any, clock: Any) -> None:
    """Each version is stemmed with its language's stemmer: "meetings" finds "meeting", "publicaciones" "publicación"."""
    reader = make_employee(language="es")
    post = make_post(title="Travel policy", body_text="Book trains before the team meeting.")
    add_version(db, post, "es", "Política de viajes", "Antes de la reunión, consulte la publicación.")
    make_post(title="Canteen", body_text="Lunch as usual.")

    for words in ("policies", "meetings", "meeting policy", "publicaciones", "reuniones", "políticas viajes"):
        assert found(db, reader, words, clock) == [post.id], words
    assert found(db, reader, "reuniones meetings", clock) == []  # every word, in one version


def test_catalan_versions_are_stemmed_in_catalan(db: Session, make_employee: Any, make_post: Any, clock: Any) -> None:
    """ "publicacions" finds "publicació", "reunió" finds "reunions", as PostgreSQL's catalan configuration does."""
    if db.get_bind().dialect.name == "postgresql" and "ca" not in search.pg_configs(db):
        pytest.skip("this PostgreSQL has no catalan text search configuration (it came with PostgreSQL 16)")
    reader = make_employee(language="ca")
    post = make_post(title="Travel policy", body_text="Book trains.")
    add_version(db, post, "ca", "Política de viatges", "Abans de les reunions, llegiu la publicació.")

    for words in ("publicacions", "reunió", "polítiques viatge"):
        assert found(db, reader, words, clock, language="ca") == [post.id], words
    [hit] = search.search(db, reader, "publicacions", now=clock.now, language="en")
    assert hit.snippet_language == "ca" and "publicació" in hit.snippet  # the version whose stems matched


def test_a_word_is_found_by_its_stem_or_as_typed_without_leaking(db: Session, make_employee: Any, make_group: Any,
                                                                  make_post: Any, clock: Any) -> None:
    """Stemmed matches keep to the reader's targeting: drafts, expired and other departments' posts stay hidden."""
    now = clock.now
    sales = make_employee(department="Sales", language="es")
    for n, (audience, state) in enumerate(itertools.product(
            [{"all": True}, {"segments": [{"departments": ["Finance"]}]}],
            [{}, {"status": "draft", "published_at": None}, {"expires_at": now - dt.timedelta(minutes=1)}])):
        post = make_post(audience, title=f"Quarterly meeting {n}", body_text="Agenda.", **state)
        add_version(db, post, "es", f"Reunión trimestral {n}", "Orden del día de las reuniones.")
    visible = {p.id for p in db.exec(select(Post)).all() if targeting.may_see(db, sales, p, now)}
    assert len(visible) == 1
    for words in ("meetings", "reuniones", "reunion", "trimestrales"):
        assert set(found(db, sales, words, clock, limit=50)) == visible, words


@pytest.mark.sqlite_only
def test_sqlite_matches_without_accents_and_by_the_prefix_of_a_word_being_typed(
        db: Session, make_employee: Any, make_post: Any, clock: Any) -> None:
    """Accents never matter on SQLite (PostgreSQL's stemmers fold only some), and "publicacio" finds "publicación"."""
    reader = make_employee()
    post = make_post(title="Café opening", body_text="New café on floor two.", language="en")
    add_version(db, post, "es", "Nueva cafetería", "Publicación sobre la reunión.")
    for words in ("cafe", "CAFÉ", "publicacion", "publicacio", "reunion", "reunión", "cafeteria"):
        assert found(db, reader, words, clock) == [post.id], words


def test_ranking_by_relevance_and_freshness_stays_sane_with_stems(db: Session, make_employee: Any, make_post: Any,
                                                                  clock: Any) -> None:
    """A stemmed title match beats a body mention; among equal matches, the fresher post comes first."""
    reader = make_employee()
    title = make_post(title="Meetings", body_text="Rooms and times.", published_at=clock.now - dt.timedelta(days=3))
    body = make_post(title="Office news", body_text="Notes from the last meeting of the office committee, "
                     "with plans for the canteen, the car park and the garden.",
                     published_at=clock.now - dt.timedelta(days=3))
    old = make_post(title="Town hall meeting", body_text="Questions.", published_at=clock.now - dt.timedelta(days=300))
    new = make_post(title="Town hall meeting", body_text="Questions.", published_at=clock.now - dt.timedelta(days=1))
    ranked = found(db, reader, "meeting", clock)
    assert set(ranked) == {title.id, body.id, old.id, new.id}
    assert ranked.index(title.id) < ranked.index(body.id)
    assert ranked.index(new.id) < ranked.index(old.id)
    assert [h.score for h in search.search(db, reader, "meetings", now=clock.now)] == sorted(
        (h.score for h in search.search(db, reader, "meetings", now=clock.now)), reverse=True)


@pytest.mark.postgres_only
def test_postgresql_searches_versions_through_their_gin_index(db: Session) -> None:
    from sqlalchemy import text
    from sqlalchemy.dialects import postgresql

    sql = str(search.matching_posts(db, ["budget", "año"]).compile(dialect=postgresql.dialect(),
                                                                    compile_kwargs={"literal_binds": True}))
    db.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(row[0] for row in db.execute(text("EXPLAIN " + sql)))
    db.rollback()
    assert "ix_intranet_post_search" in plan and "ix_intranet_post_translation_search" in plan, plan


@pytest.mark.sqlite_only
def test_the_stemming_migration_indexes_the_posts_already_there(tmp_path: Any) -> None:
    """Upgrading a database with posts makes them findable by stem; downgrading goes back to word for word."""
    from alembic import command
    from sqlalchemy import text

    from intranet import migrate
    from intranet.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate.upgrade(engine, "0026_feed_indexes")
    with Session(engine) as session:
        post = Post(title="Reunión anual", summary="", body_html="", body_text="Las publicaciones del año.",
                    topic="News", status="published", language="es")
        session.add(post)
        session.flush()
        session.add(PostTranslation(post_id=post.id, language="en", title="Yearly meeting",  # type: ignore[arg-type]
                                    summary="", body_html="", body_text="The year's policies."))
        session.commit()
        post_id = post.id

    def matches(words: str) -> list[int]:
        with Session(engine) as session:
            return [row[0].id for row in session.exec(search.matching_posts(session, search.terms_of(words)))]

    migrate.upgrade(engine)
    assert matches("reuniones publicación") == [post_id] and matches("policy meetings") == [post_id]
    config = migrate.alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0026_feed_indexes")
    with engine.connect() as connection:
        def word_for_word(words: str) -> list[int]:
            return list(connection.execute(text("SELECT rowid FROM intranet_post_fts WHERE intranet_post_fts "
                                                "MATCH :words"), {"words": words}).scalars())
        assert word_for_word("reuniones") == [] and word_for_word("reunión anual") == [post_id]
    engine.dispose()
