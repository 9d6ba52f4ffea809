"""Languages: the interface in English, Spanish and Catalan, chosen per person, with complete catalogs."""
from __future__ import annotations

import datetime as dt
import html
import json
import re

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po
from flask import Flask, render_template_string
from flask_babel import Babel
from sqlalchemy import select

from intranet import Intranet, languages
from intranet.analytics import queries, rollups
from intranet.delivery import enqueue
from intranet.models import PostTranslation, Preference
from tests.dashboard_support import read_by
from tests.delivery_support import choose, make_digest, send

ROOT = Path(__file__).resolve().parent.parent
CATALOGS = ROOT / "intranet" / "translations"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
HTML_LANG = re.compile(r'<html lang="([^"]+)">')


def _catalog(language: str) -> Any:
    with (CATALOGS / language / "LC_MESSAGES" / "beacon.po").open("rb") as fp:
        return read_po(fp, locale=language)


def _extracted(tmp_path: Path) -> set[Any]:
    """The messages the code and templates mark today (what `make catalogs` extracts)."""
    out = tmp_path / "now.pot"
    subprocess.run([str(Path(sys.executable).parent / "pybabel"), "extract", "-F", "babel.cfg", "-k", "N_",
                    "-k", "lazy_gettext", "-k", "translate:2", "-k", "ntranslate:2,3", "--no-location",
                    "-o", str(out), "."], cwd=ROOT, check=True, capture_output=True)
    with out.open("rb") as fp:
        return {m.id for m in read_po(fp) if m.id}


# --- the catalogs ----------------------------------------------------------------------------------


def test_the_catalogs_hold_every_marked_string(tmp_path):
    """Each string marked in the code and templates is in the template and in the es and ca catalogs, and no stale ones."""
    marked = _extracted(tmp_path)
    assert len(marked) > 150
    with (CATALOGS / "beacon.pot").open("rb") as fp:
        assert {m.id for m in read_po(fp) if m.id} == marked, "run `make catalogs` and translate the new strings"
    for language in ("es", "ca"):
        assert {m.id for m in _catalog(language) if m.id} == marked, language


@pytest.mark.parametrize("language", ["es", "ca"])
def test_every_message_is_translated_with_the_same_placeholders(language):
    """No empty or fuzzy translation, and each one fills exactly the placeholders of its English."""
    for message in _catalog(language):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings) and not message.fuzzy, (language, message.id)
        wanted = set(PLACEHOLDER.findall(ids[-1])) - {"num"}
        for text in strings:
            assert set(PLACEHOLDER.findall(text)) - {"num"} == wanted, (language, message.id, text)


def test_a_missing_translation_is_caught(tmp_path):
    """The completeness check can fail: a catalog with an untranslated entry is reported."""
    po = tmp_path / "beacon.po"
    po.write_text('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\nmsgid "Sign out"\nmsgstr ""\n',
                  encoding="utf-8")
    with po.open("rb") as fp:
        assert [m.id for m in read_po(fp) if m.id and not m.string] == ["Sign out"]


def test_languages_are_chosen_from_preferences_then_the_directory():
    """A chosen language wins; a directory tag is reduced to a language Beacon speaks, else unknown."""
    assert languages.choose("ca", "es-ES") == "ca"
    assert languages.choose(None, "es-ES") == "es"
    assert languages.choose(None, "ca_ES") == "ca"
    assert languages.choose(None, "de-DE") is None and languages.choose(None, None) is None
    assert languages.translate("es", "Sign out") == "Cerrar sesión"
    assert languages.translate("de", "Sign out") == "Sign out"


# --- pages -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "feed", "sign_out"), [
    ("en", "Your feed", "Sign out"),
    ("es-ES", "Tus noticias", "Cerrar sesión"),
    ("ca", "Les teves notícies", "Tanca la sessió"),
])
def test_the_feed_speaks_the_directory_language(client_for, make_employee, make_post, language, feed, sign_out):
    """Someone whose directory language is Spanish or Catalan reads the feed in it, <html lang> included."""
    make_post(title="Canteen reopens")
    client = client_for(make_employee(language=language))
    page = client.get("/").get_data(as_text=True)
    assert HTML_LANG.search(page).group(1) == languages.supported(language)
    assert f"<h1>{feed}</h1>" in page and sign_out in page and "Canteen reopens" in page


@pytest.mark.parametrize(("language", "heading", "legend"), [
    ("en", "Your digest", "How often"), ("es", "Tu resumen", "Con qué frecuencia"),
    ("ca", "El teu resum", "Amb quina freqüència"),
])
def test_preferences_speak_the_persons_language(client_for, make_employee, language, heading, legend):
    """The preferences page in each language."""
    page = client_for(make_employee(language=language)).get("/preferences").get_data(as_text=True)
    assert HTML_LANG.search(page).group(1) == language
    assert f"<h1>{heading}</h1>" in page and f"<legend>{legend}</legend>" in page


def _save_language(client: Any, language: str) -> Any:
    page = client.get("/preferences").get_data(as_text=True)
    assert 'name="language"' in page
    return client.post("/preferences", data={"csrf_token": client.csrf, "cadence": "daily", "channels": ["email"],
                                             "weekly_day": "0", "quiet_start": "20", "quiet_end": "7",
                                             "working_days": ["0", "1", "2", "3", "4"], "device": "either",
                                             "learned_timing": "on", "open_tracking": "on", "language": language},
                       follow_redirects=True)


def test_a_chosen_language_overrides_the_directory(client_for, make_employee):
    """Choosing Catalan in preferences turns a Spanish-speaking person's Beacon Catalan; choosing nothing turns it back."""
    client = client_for(make_employee(language="es"))
    saved = html.unescape(_save_language(client, "ca").get_data(as_text=True))
    assert "S'han desat les teves preferències." in saved  # the confirmation is already in the new language
    page = client.get("/").get_data(as_text=True)
    assert HTML_LANG.search(page).group(1) == "ca" and "Les teves notícies" in page
    assert client.api("GET", "/api/v1/me/preferences").get_json()["language"] == "ca"
    _save_language(client, "")
    assert "Tus noticias" in client.get("/").get_data(as_text=True)


def test_a_language_chosen_elsewhere_shows_on_the_next_page(client_for, make_employee, db):
    """The chosen language is read with the session on every request (not kept by an instance):
    a change stored by another instance, or in another tab, shows on the very next page."""
    person = make_employee(language="es")
    client = client_for(person)
    assert "Tus noticias" in client.get("/").get_data(as_text=True)
    db.add(Preference(employee_pk=person.id, language="ca"))
    db.commit()
    assert "Les teves notícies" in client.get("/").get_data(as_text=True)
    db.get(Preference, person.id).language = None
    db.commit()
    assert "Tus noticias" in client.get("/").get_data(as_text=True)


def test_an_unknown_language_is_refused(client_for, make_employee):
    """A language Beacon does not speak is a 422 naming the field, and nothing changes."""
    client = client_for(make_employee(language="es"))
    assert _save_language(client, "de").status_code == 422
    assert "Tus noticias" in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize(("accept", "expected", "text"), [
    ("ca,es;q=0.8", "ca", "Inicia la sessió"), ("es-MX,es;q=0.9", "es", "Iniciar sesión"),
    ("de-DE,de;q=0.9", "en", "Sign in"), (None, "en", "Sign in"),
])
def test_signed_out_pages_follow_the_browser(app, accept, expected, text):
    """Signed out, the browser's Accept-Language decides among the languages Beacon speaks, else English."""
    headers = {"Accept-Language": accept} if accept else {}
    page = app.test_client().get("/auth/dev-login", headers=headers).get_data(as_text=True)
    assert HTML_LANG.search(page).group(1) == expected and text in page


def test_an_unsupported_directory_language_falls_back_to_the_browser(client_for, make_employee):
    """A German speaker (Beacon has no German) gets the browser's language when Beacon speaks it, else English."""
    client = client_for(make_employee(language="de"))
    assert HTML_LANG.search(client.get("/").get_data(as_text=True)).group(1) == "en"
    page = client.get("/", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert HTML_LANG.search(page).group(1) == "es"


def test_error_pages_speak_the_viewers_language(client_for, make_employee):
    """A 404 in Beacon is in the viewer's language too."""
    page = client_for(make_employee(language="es")).get("/posts/999999").get_data(as_text=True)
    assert "No encontrado" in page and HTML_LANG.search(page).group(1) == "es"


def test_relative_times_and_dates_are_in_the_viewers_words(client_for, make_employee, make_post, clock):
    """"1 hour ago" reads "hace 1 hora" in Spanish and "fa 1 hora" in Catalan."""
    make_post(title="Canteen reopens")
    assert "hace 1 hora" in client_for(make_employee(language="es")).get("/").get_data(as_text=True)
    assert "fa 1 hora" in client_for(make_employee(language="ca")).get("/").get_data(as_text=True)


# --- inside a host app -----------------------------------------------------------------------------


def test_a_hosts_own_babel_is_left_alone(database, clock, make_employee, tmp_path):
    """A host that set up Flask-Babel (German, its own selector) keeps it; Beacon's pages still speak the person's language."""
    make_employee(email="ada@example.test", language="ca")
    host = Flask("host", instance_path=str(tmp_path / "instance"))
    host.config.update(SECRET_KEY="h" * 32, INTRANET_SECRET_KEY="b" * 32, INTRANET_URL_PREFIX="/news",
                       PREFERRED_URL_SCHEME="https")
    babel = Babel(host, locale_selector=lambda: "de")
    extension = Intranet()
    extension.employee_loader(lambda: "ada@example.test")
    extension.init_app(host, engine=database, clock=clock)
    assert host.extensions["babel"].instance is babel
    assert host.extensions["babel"].locale_selector() == "de"

    @host.get("/")
    def home() -> str:
        return render_template_string("{{ _('Sign out') }}")

    client = host.test_client()
    assert client.get("/").get_data(as_text=True) == "Sign out"  # the host's own (empty) German catalog
    page = client.get("/news/").get_data(as_text=True)
    assert HTML_LANG.search(page).group(1) == "ca" and "Les teves notícies" in page


def test_beacon_sets_up_babel_on_a_host_without_it(make_app):
    """Standalone (and on hosts without Flask-Babel) Beacon sets Flask-Babel up itself, with its own catalog."""
    app = make_app()
    assert app.extensions["babel"].default_domain == languages.DOMAIN


# --- posts in several languages ----------------------------------------------------------------------


def _translate(db: Any, post: Any, language: str, title: str, body: str = "<p>Texto</p>", summary: str = "") -> None:
    db.add(PostTranslation(post_id=post.id, language=language, title=title, summary=summary, body_html=body,
                           body_text=body))
    db.commit()


def test_a_reader_gets_the_version_in_their_language(client_for, make_employee, make_post, db):
    """A Spanish reader gets the Spanish version (no note); the API says it served Spanish."""
    post = make_post(title="Canteen reopens", summary="Monday")
    _translate(db, post, "es", "Reabre el comedor", summary="El lunes")
    client = client_for(make_employee(language="es"))
    page = client.get("/").get_data(as_text=True)
    assert "Reabre el comedor" in page and "El lunes" in page and "Canteen reopens" not in page
    assert "No disponible" not in page
    assert "Reabre el comedor" in client.get(f"/posts/{post.id}").get_data(as_text=True)
    item = client.get("/api/v1/feed").get_json()["items"][0]
    assert (item["title"], item["language"]) == ("Reabre el comedor", "es")
    detail = client.get(f"/api/v1/posts/{post.id}").get_json()
    assert (detail["title"], detail["language"], detail["body_html"]) == ("Reabre el comedor", "es", "<p>Texto</p>")


def test_without_a_version_the_primary_language_comes_with_a_note(client_for, make_employee, make_post, db):
    """A Catalan reader of an English post with only a Spanish version gets English, a note, and lang="en" on it."""
    post = make_post(title="Canteen reopens")
    _translate(db, post, "es", "Reabre el comedor")
    client = client_for(make_employee(language="ca"))
    page = html.unescape(client.get(f"/posts/{post.id}").get_data(as_text=True))
    assert "No disponible en Català; es mostra en English." in page
    assert '<h1 lang="en">Canteen reopens</h1>' in page
    assert "No disponible en Català" in html.unescape(client.get("/").get_data(as_text=True))
    assert client.get("/api/v1/feed").get_json()["items"][0]["language"] == "en"
    english = client_for(make_employee(language="en")).get(f"/posts/{post.id}").get_data(as_text=True)
    assert "Not available" not in english and "<h1>Canteen reopens</h1>" in english


def test_the_desk_adds_a_sanitized_translation(client_for, make_employee, make_post, db):
    """A comms manager adds a Spanish version on the desk; its body is sanitized like the post's own."""
    post = make_post(title="Canteen reopens")
    desk = client_for(make_employee(is_comms=True, language="en"))
    assert 'id="translations"' in desk.get(f"/publish/posts/{post.id}").get_data(as_text=True)
    response = desk.post(f"/publish/posts/{post.id}/translations", data={
        "csrf_token": desk.csrf, "language": "es", "title": "Reabre el comedor", "summary": "",
        "body_html": '<p onclick="x()">Hola<script>alert(1)</script></p>'})
    assert response.status_code == 302
    row = db.exec(select(PostTranslation).where(PostTranslation.post_id == post.id)).scalars().one()
    assert row.title == "Reabre el comedor" and "script" not in row.body_html and "onclick" not in row.body_html
    assert "Hola" in row.body_text
    reader = client_for(make_employee(language="es-ES"))
    assert "Reabre el comedor" in reader.get(f"/posts/{post.id}").get_data(as_text=True)
    refused = desk.post(f"/publish/posts/{post.id}/translations", data={
        "csrf_token": desk.csrf, "language": "en", "title": "Same language", "body_html": ""})
    assert refused.status_code == 302 and db.exec(select(PostTranslation)).scalars().all() == [row]
    removed = desk.post(f"/publish/posts/{post.id}/translations/es/delete", data={"csrf_token": desk.csrf})
    db.expire_all()
    assert removed.status_code == 302 and db.exec(select(PostTranslation)).scalars().all() == []


def test_an_employee_cannot_translate_a_post(client_for, make_employee, make_post, db):
    """Someone who may not edit the post cannot add a version of it."""
    post = make_post(title="Canteen reopens")
    reader = client_for(make_employee())
    response = reader.post(f"/publish/posts/{post.id}/translations", data={
        "csrf_token": reader.csrf, "language": "es", "title": "Hack", "body_html": ""})
    assert response.status_code in (403, 404)
    assert db.exec(select(PostTranslation)).scalars().all() == []


def test_the_api_writes_and_removes_a_sanitized_version(client_for, make_employee, make_post, db):
    """PUT /api/v1/posts/<id>/versions/<lang> adds, then replaces, a version sanitized like the desk's; DELETE removes it."""
    post = make_post(title="Canteen reopens")
    comms = client_for(make_employee(is_comms=True))
    url = f"/api/v1/posts/{post.id}/versions/es"
    hostile = ('<p onclick="x()">Hola<script>alert(1)</script> <a href="javascript:alert(2)">aquí</a>'
               '<img src=x onerror="alert(3)"></p>')
    answer = comms.api("PUT", url, {"title": "  Reabre el comedor ", "body_html": hostile})
    assert answer.status_code == 200, answer.json
    assert (answer.json["language"], answer.json["title"], answer.json["post_id"]) == ("es", "Reabre el comedor", post.id)
    row = db.exec(select(PostTranslation).where(PostTranslation.post_id == post.id)).scalars().one()
    for bad in ("script", "onclick", "onerror", "javascript:"):
        assert bad not in row.body_html and bad not in answer.json["body_html"]
    assert "Hola" in row.body_text and answer.json["body_text"] == row.body_text
    assert comms.api("PUT", url, {"title": "Comedor abierto", "summary": "Lunes"}).status_code == 200
    db.expire_all()
    assert [(r.title, r.summary) for r in db.exec(select(PostTranslation)).scalars()] == [("Comedor abierto", "Lunes")]
    reader = client_for(make_employee(language="es"))
    assert reader.get(f"/api/v1/posts/{post.id}").get_json()["title"] == "Comedor abierto"

    assert comms.api("DELETE", url).status_code == 204
    db.expire_all()
    assert db.exec(select(PostTranslation)).scalars().all() == []
    assert comms.api("DELETE", url).status_code == 404  # nothing left to remove


@pytest.mark.parametrize("language, body, why", [
    ("de", {"title": "Hallo"}, "language"),          # a language Beacon does not speak
    ("es-ES", {"title": "Hola"}, "language"),        # a tag, not one of Beacon's languages
    ("en", {"title": "Same"}, "own language"),       # the post's own language: edit the post
    ("es", {"title": ""}, "title"),
    ("es", {"title": "Hola", "language": "ca"}, "language"),  # no second language in the body
    ("es", {"title": "x" * 301}, "title"),
])
def test_the_api_refuses_a_bad_version(client_for, make_employee, make_post, db, language, body, why):
    post = make_post(title="Canteen reopens")
    comms = client_for(make_employee(is_comms=True))
    answer = comms.api("PUT", f"/api/v1/posts/{post.id}/versions/{language}", body)
    assert answer.status_code == 422 and why in json.dumps(answer.json), answer.json
    assert db.exec(select(PostTranslation)).scalars().all() == []


def test_only_the_people_who_manage_a_post_write_its_versions(client_for, make_employee, make_post, db):
    """A reader gets the missing post's 404; its author, once it went out, a 403; nothing is written."""
    writer = make_employee(is_contributor=True)
    post = make_post(title="Canteen reopens", author_pk=writer.id)
    for client, status in ((client_for(make_employee()), 404), (client_for(writer), 403)):
        assert client.api("PUT", f"/api/v1/posts/{post.id}/versions/es", {"title": "Hack"}).status_code == status
        assert client.api("DELETE", f"/api/v1/posts/{post.id}/versions/es").status_code == status
    assert db.exec(select(PostTranslation)).scalars().all() == []
    comms = client_for(make_employee(is_comms=True))
    assert comms.api("DELETE", f"/api/v1/posts/{post.id}/versions/xx").status_code == 422
    draft = make_post(title="Draft", author_pk=writer.id, status="draft", published_at=None)
    assert client_for(writer).api("PUT", f"/api/v1/posts/{draft.id}/versions/ca", {"title": "Esborrany"}).status_code == 200


def test_the_digest_email_speaks_the_recipients_language(app, db, config, smtp, make_employee, make_post, clock):
    """A Spanish speaker's digest, through real SMTP: Spanish subject and words, the Spanish version of a post,
    and the English one of a post without a version."""
    person = make_employee(email="ana@example.com", language="es")
    translated = make_post(title="Canteen reopens", must_read=True, published_at=clock.now - dt.timedelta(hours=2))
    _translate(db, translated, "es", "Reabre el comedor", summary="El lunes")
    make_post(title="Only in English", published_at=clock.now - dt.timedelta(hours=1))
    make_digest(db, person, clock.now)
    assert enqueue.enqueue_due(db, clock.now, domain="news.example.com") == 1
    db.commit()
    assert send(app, db, config, clock).sent == 1
    msg = smtp.parsed()[0]
    text = msg.get_body(preferencelist=("plain",)).get_content()
    body = msg.get_body(preferencelist=("html",)).get_content()
    assert msg["Subject"] == "Beacon: 1 lectura obligatoria y 1 más"
    assert "Reabre el comedor" in text and "Only in English" in text and "Canteen reopens" not in text
    assert "LECTURA OBLIGATORIA" in text and "Darse de baja:" in text and "Valóralo:" in text
    assert '<html lang="es">' in body and 'lang="en"><a' in body


def test_a_chosen_language_decides_the_digest(app, db, config, smtp, make_employee, make_post, clock):
    """The language chosen in preferences (Catalan) wins over the directory's (English) for digests too."""
    person = make_employee(email="pau@example.com", language="en")
    choose(db, person, language="ca")
    make_post(title="Canteen reopens", published_at=clock.now - dt.timedelta(hours=1))
    make_digest(db, person, clock.now)
    enqueue.enqueue_due(db, clock.now)
    db.commit()
    assert send(app, db, config, clock).sent == 1
    assert smtp.parsed()[0]["Subject"] == "Beacon: 1 publicació nova per a tu"


def test_teams_cards_speak_the_recipients_language(renderer, make_employee, db, clock):
    """The Teams card's own words are in the recipient's language."""
    from intranet.delivery.channels.teams import adaptive_card
    card = adaptive_card("Tu resumen", [{"must_read": True, "title": "Reabre", "summary": "", "url": "https://x/1",
                                         "rate_url": "https://x/r"}], "https://x/", 2,
                         labels={"must_read": languages.translate("es", "Must read:"),
                                 "rate": languages.translate("es", "Rate this post"),
                                 "more": languages.translate("es", "%(more)s more in Beacon", more=2)})
    texts = json.dumps(card, ensure_ascii=False)
    assert "Lectura obligatoria: Reabre" in texts and "Valora esta publicación" in texts and "2 más en Beacon" in texts


# --- analytics by language ---------------------------------------------------------------------------


def test_analytics_split_by_language_respects_the_minimum_group(db, make_employee, make_post, clock):
    """Read rate by language: six Spanish and six Catalan readers appear; three German and three Portuguese
    readers (groups under 5) stay hidden, together."""
    spanish = [make_employee(language="es-ES") for _ in range(6)]
    catalan = [make_employee(language="ca") for _ in range(6)]
    few = [make_employee(language="de") for _ in range(3)] + [make_employee(language="pt") for _ in range(3)]
    post = make_post(title="Canteen reopens")
    read_by(db, spanish[:4] + catalan + few, post)
    read_by(db, spanish[4:], post, kind="impression")
    answer = queries.post_analytics(db, post, k=5).model_dump(mode="json")
    rows = {row["value"]: row for row in answer["by"]["language"]}
    assert set(rows) == {"es-ES", "ca"}
    assert (rows["es-ES"]["audience"], rows["es-ES"]["reached"], rows["es-ES"]["read"]) == (6, 6, 4)
    window = queries.Filters(start=clock.now.date() - dt.timedelta(days=7), end=clock.now.date())
    series = queries.read_rate_by_group(db, dimension="language", filters=window, k=5).to_json()
    assert sorted((r["value"], r["reached"], r["read"]) for r in series["rows"]) == [("ca", 6, 6), ("es-ES", 6, 4)]

    rollups.rebuild(db)  # recounted from stored events: the same groups
    db.commit()
    again = queries.post_analytics(db, post, k=5).model_dump(mode="json")["by"]["language"]
    assert again == answer["by"]["language"]


def test_the_dashboard_shows_read_rate_by_language(client_for, make_employee, make_post, db):
    """The post dashboard has a by-language chart next to department, region and level."""
    readers = [make_employee(language="es") for _ in range(5)]
    post = make_post(title="Canteen reopens")
    read_by(db, readers, post)
    page = client_for(make_employee(is_comms=True)).get(f"/analytics/posts/{post.id}").get_data(as_text=True)
    assert 'id="card-by-language"' in page and "Read rate by language" in page


def test_groups_and_feedback_pages_speak_the_persons_language(client_for, make_employee):
    """The groups page and one's own feedback in Catalan; a refused page's message in Spanish."""
    catalan = client_for(make_employee(language="ca"))
    assert "<h1>Grups</h1>" in catalan.get("/groups").get_data(as_text=True)
    assert "<h1>Els teus comentaris</h1>" in catalan.get("/feedback/mine").get_data(as_text=True)
    refused = client_for(make_employee(language="es")).get("/analytics").get_data(as_text=True)
    assert "No tienes permiso para hacer esto." in refused
