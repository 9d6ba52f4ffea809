"""The interface beyond the feed in Spanish and Catalan: feed reasons, feedback, journeys, the desk,
dashboards, admin pages and the script widget, each rendered in es and ca."""
from __future__ import annotations

import datetime as dt
import html
import json
import re
import zlib

import pytest
from sqlmodel import select

from intranet import feed, languages, reasons


def _text(response) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(response.get_data(as_text=True))


# --- why a post is in the feed ---------------------------------------------------------------------


@pytest.mark.parametrize(("language", "targeted", "must_read"), [
    ("en", "Targeted at Sales", "Must-read from People & Culture"),
    ("es", "Dirigida a Sales", "Lectura obligatoria de People & Culture"),
    ("ca", "Adreçada a Sales", "Lectura obligatòria de People & Culture"),
])
def test_feed_reasons_are_worded_in_the_readers_language(client_for, make_employee, make_post, language, targeted,
                                                         must_read):
    """GET /api/v1/feed's why and the feed cards speak the person's language; department names stay as data."""
    author = make_employee(department="People & Culture")
    me = make_employee(department="Sales", language=language)
    aimed = make_post({"segments": [{"departments": ["Sales"]}]}, topic="Sales news")
    notice = make_post(topic="Policy", must_read=True, author_pk=author.id)
    client = client_for(me)
    items = {item["id"]: item["why"] for item in client.get("/api/v1/feed").get_json()["items"]}
    assert items[aimed.id][0] == targeted and items[notice.id][0] == must_read
    assert all(isinstance(w, str) and w for why in items.values() for w in why)
    page = _text(client.get("/"))
    assert targeted in page and must_read in page


def test_a_paged_feed_is_worded_when_read_not_when_ranked(db, make_employee, make_post, clock):
    """The ranked order is stored as reason codes: a later page can be worded in another language."""
    me = make_employee(department="Sales")
    for _ in range(3):
        make_post({"segments": [{"departments": ["Sales"]}]}, published_at=clock.now - dt.timedelta(days=2))
    first = feed.feed_page(db, me, now=clock.now, limit=1)
    db.commit()
    later = feed.feed_page(db, me, now=clock.now, cursor=first.next_cursor, limit=1)
    assert reasons.words(later.items[0].why, "en") == ["Targeted at Sales"]
    assert reasons.words(later.items[0].why, "ca") == ["Adreçada a Sales"]
    assert feed.FeedItemPublic.of(later.items[0], "es").why == ["Dirigida a Sales"]


def test_a_snapshot_stored_as_words_still_reads(db, make_employee, make_post, clock):
    """An order stored before reasons had codes (worded in English) still pages, as it was worded."""
    from intranet.models import FeedSnapshot

    me = make_employee(department="Sales")
    posts = [make_post({"segments": [{"departments": ["Sales"]}]}, published_at=clock.now - dt.timedelta(days=2))
             for _ in range(2)]
    first = feed.feed_page(db, me, now=clock.now, limit=1)
    db.commit()
    snapshot = db.exec(select(FeedSnapshot)).one()
    older = [p.id for p in posts if p.id != first.items[0].post.id]
    snapshot.items = zlib.compress(json.dumps({"ids": [first.items[0].post.id, *older],
                                               "texts": ["Targeted at Sales"], "why": [[0], [0]]}).encode())
    db.commit()
    later = feed.feed_page(db, me, now=clock.now, cursor=first.next_cursor, limit=1)
    assert [i.post.id for i in later.items] == older
    assert reasons.words(later.items[0].why, "es") == ["Targeted at Sales"]


def test_every_reason_code_has_words_in_each_language():
    """Each reason the ranker can give is translated, and an unknown code is refused where it is made."""
    for code, message in reasons.WORDS.items():
        values = {"department": "Sales", "topic": "IT"}
        for language in ("es", "ca"):
            worded = reasons.word(reasons.Reason.of(code, **{k: v for k, v in values.items()
                                                            if f"%({k})s" in message}), language)
            assert worded and worded != message % values if "%(" in message else worded != message, (code, language)
    with pytest.raises(ValueError, match="WORDS"):
        reasons.Reason.of("no_such_reason")


# --- feedback: the inbox, a thread, and the reply email ---------------------------------------------


@pytest.fixture
def commented(make_employee, make_post, client_for):  # type: ignore[no-untyped-def]
    """A post by a Spanish-speaking author, with a Catalan speaker's unsigned comment on it; the feedback id."""
    def make(author_language: str = "es", writer_language: str = "ca"):  # type: ignore[no-untyped-def]
        author = make_employee(display_name="Ada Author", is_contributor=True, language=author_language)
        writer = make_employee(email="pau@example.test", language=writer_language)
        post = make_post(title="Canteen changes", author_pk=author.id)
        writer_client = client_for(writer)
        assert writer_client.api("PUT", f"/api/v1/posts/{post.id}/rating",
                                 json={"stars": 2, "comment": "Too short"}).status_code == 200
        author_client = client_for(author)
        fid = author_client.get("/api/v1/feedback").get_json()["items"][0]["id"]
        return author_client, writer, fid, post
    return make


@pytest.mark.parametrize(("language", "words"), [
    ("es", ["<h1>Comentarios</h1>", "comentario espera respuesta", "Sin firmar", "Marcar como respondido",
            "Pendientes"]),
    ("ca", ["<h1>Comentaris</h1>", "comentari espera resposta", "Sense signar", "Marca com a respost",
            "Pendents"]),
])
def test_the_feedback_inbox_speaks_the_authors_language(commented, language, words):
    """The inbox's headings, counts, filters and buttons are in the author's language."""
    author, _writer, _fid, _post = commented(author_language=language)
    page = _text(author.get("/feedback"))
    assert all(w in page for w in words), [w for w in words if w not in page]
    assert "waiting for an answer" not in page and "Unsigned" not in page


@pytest.mark.parametrize(("language", "words"), [
    ("es", ["Comentarios sobre «Canteen changes»", "Responder en privado", "Enviar respuesta", "recibido"]),
    ("ca", ["Comentaris sobre «Canteen changes»", "Respon en privat", "Envia la resposta", "rebut"]),
])
def test_a_feedback_thread_speaks_the_authors_language(commented, language, words):
    """One comment's page, with its reply form, in the author's language; a sent reply is confirmed in it too."""
    author, _writer, fid, _post = commented(author_language=language)
    page = _text(author.get(f"/feedback/{fid}"))
    assert all(w in page for w in words), [w for w in words if w not in page]
    sent = _text(author.post(f"/feedback/{fid}/reply", data={"csrf_token": author.csrf, "body": "Two more dishes."},
                             follow_redirects=True))
    assert {"es": "Respuesta enviada.", "ca": "S'ha enviat la resposta."}[language] in sent
    assert {"es": "<h2>Respuestas</h2>", "ca": "<h2>Respostes</h2>"}[language] in sent


def test_the_reply_email_speaks_the_writers_language(app, db, config, smtp, commented, clock):
    """A Catalan writer's reply email (from a Spanish author) is in Catalan, subject included, with <html lang="ca">."""
    from intranet.delivery import feedback_mail
    from intranet.delivery.channels.email import SmtpMailer
    from tests.delivery_support import choose

    author, writer, fid, _post = commented(author_language="es", writer_language="ca")
    choose(db, writer, channels=["email", "in_app"])
    author.post(f"/feedback/{fid}/reply", data={"csrf_token": author.csrf, "body": "Two more dishes."})
    mailer = SmtpMailer(config.mail.smtp_host, config.mail.smtp_port, sender=config.mail.mail_from)
    try:
        with app.app_context():
            assert feedback_mail.send_due(db, clock, config, app.jinja_env, channel=mailer).sent == 1
    finally:
        mailer.close()
    [message] = smtp.parsed()
    assert message["Subject"].endswith("una resposta al teu comentari sobre «Canteen changes»")
    text = message.get_body(preferencelist=("plain",)).get_content()
    body = message.get_body(preferencelist=("html",)).get_content()
    assert "Vas escriure:" in text and "Ada Author ha respost:" in text and "Two more dishes." in text
    assert '<html lang="ca">' in body and "Una resposta al teu comentari" in body and "canvia-ho" in body
    assert "you wrote" not in text.lower() and "replied" not in body


# --- journeys ---------------------------------------------------------------------------------------


@pytest.fixture
def journey(db, make_employee, clock):  # type: ignore[no-untyped-def]
    """A hire journey of two steps, the second skipped unless the first was read, with a reminder."""
    from intranet.journeys import definitions

    author = make_employee(is_comms=True)
    made = definitions.create_journey(db, definitions.JourneyIn(name="New joiners", trigger="hire"),
                                      author=author, now=clock.now)
    definitions.add_step(db, made, definitions.StepIn(key="welcome", offset_days=0, title="Welcome aboard",
                                                      body_html="<p>Hi</p>"), author=author, now=clock.now)
    definitions.add_step(db, made, definitions.StepIn(key="tools", offset_days=3, title="Your tools",
                                                      body_html="<p>Tools</p>", skip_unless_read="welcome",
                                                      must_read=True, reminder_after_days=3),
                         author=author, now=clock.now)
    db.commit()
    return made


@pytest.mark.parametrize(("language", "index", "detail", "timeline"), [
    ("es", ["<h1>Itinerarios</h1>", "Nuevo itinerario", "Se incorpora (desde la fecha de alta)", "Activo"],
     ["Pasos y cómo van", "se omite salvo que se haya leído «welcome»", "recordatorio tras 3 días", "Añadir un paso",
      "Nombre corto", "Guardar itinerario"],
     ["New joiners: cronología", "incorporación el", "01 dic 2026", "mar 1 dic 2026", "día 0", "Se publicaría",
      "recordatorio tras 3 días sin confirmar", "Lectura obligatoria"]),
    ("ca", ["<h1>Itineraris</h1>", "Itinerari nou", "S'incorpora (des de la data d'alta)", "Actiu"],
     ["Passos i com van", "s'omet tret que s'hagi llegit «welcome»", "recordatori després de 3 dies",
      "Afegeix un pas", "Nom curt", "Desa l'itinerari"],
     ["New joiners: cronologia", "incorporació el", "01 de des. 2026", "dt. 1 de des. 2026", "dia 0",
      "Es publicaria", "recordatori després de 3 dies sense confirmar", "Lectura obligatòria"]),
])
def test_journey_desk_pages_speak_the_managers_language(client_for, make_employee, journey, language, index, detail,
                                                        timeline):
    """The journeys list, a journey's page and its timeline (dates in the locale's words) in es and ca."""
    import datetime as dt

    manager = client_for(make_employee(is_comms=True, language=language))
    make_employee(employee_id="JOINER", hire_date=dt.date(2026, 12, 1), timezone="Europe/Madrid")
    for path, words in ((f"/journeys", index), (f"/journeys/{journey.id}", detail),
                        (f"/journeys/{journey.id}/timeline?employee=JOINER", timeline)):
        page = _text(manager.get(path))
        assert all(w in page for w in words), (path, [w for w in words if w not in page])
    step_page = _text(manager.get(f"/journeys/{journey.id}/steps/1"))
    assert {"es": "Paso «welcome»", "ca": "Pas «welcome»"}[language] in step_page
    paused = _text(manager.post(f"/journeys/{journey.id}/status", data={"status": "paused", "csrf_token": manager.csrf},
                                follow_redirects=True))
    assert {"es": "Itinerario en pausa", "ca": "Itinerari en pausa"}[language] in paused


# --- the publishing desk -----------------------------------------------------------------------------


def _draft(client, **fields):  # type: ignore[no-untyped-def]
    data = {"title": "Office move", "summary": "We move", "body_html": "<p>Boxes</p>",
            "audience": {"segments": [{"departments": ["Sales"]}]}, **fields}
    response = client.api("POST", "/api/v1/posts", json=data)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


@pytest.mark.parametrize(("language", "index", "edit", "preview"), [
    ("es", ["<h1>Mesa de publicación</h1>", "Nueva publicación", "Borrador", "En revisión", "Autor"],
     ["Enviar a revisión", "borrador", "Audiencia", "Toda la plantilla", "Personas que cumplan", "Departamentos", "Historial",
      "creada", "Quién la recibirá", "Nivel desde", "Guardar", "Ver las noticias como una persona de la audiencia"],
     ["Vista previa", "así se verá la publicación", "Volver a la edición"]),
    ("ca", ["<h1>Taula de publicació</h1>", "Publicació nova", "Esborrany", "En revisió", "Autor"],
     ["Envia a revisió", "Audiència", "Tota la plantilla", "Persones que compleixin", "Departaments", "Historial",
      "creada", "Qui la rebrà", "Nivell des de", "Desa", "Mostra les notícies com una persona de l'audiència"],
     ["Previsualització", "així es veurà la publicació", "Torna a l'edició"]),
])
def test_the_publishing_desk_speaks_the_writers_language(client_for, make_employee, language, index, edit, preview):
    """The desk's list, a post's editor (history, audience builder, the builder script's words) and its previews."""
    writer = client_for(make_employee(is_contributor=True, department="Sales", language=language))
    reader = make_employee(department="Sales")
    post_id = _draft(writer)
    page = _text(writer.get("/publish"))
    assert all(w in page for w in index), [w for w in index if w not in page]
    page = _text(writer.get(f"/publish/posts/{post_id}"))
    assert all(w in page for w in edit), [w for w in edit if w not in page]
    words = json.loads(re.search(r'<script type="application/json" id="publish-words">(.*?)</script>', page,
                                 re.S).group(1))
    assert words["remove_group"] == {"es": "Quitar grupo", "ca": "Treu el grup"}[language]
    assert words["no_match"] == {"es": "Nada coincide con «%(query)s».", "ca": "Res no coincideix amb «%(query)s»."}[language]
    page = _text(writer.get(f"/publish/posts/{post_id}/preview"))
    assert all(w in page for w in preview), [w for w in preview if w not in page]
    page = _text(writer.get(f"/publish/posts/{post_id}/preview-as?who={reader.employee_id}"))
    assert {"es": "las noticias de", "ca": "les notícies de"}[language] in page
    sent = _text(writer.post(f"/publish/posts/{post_id}/submit", data={"csrf_token": writer.csrf},
                             follow_redirects=True))
    assert {"es": "Enviada a revisión.", "ca": "S'ha enviat a revisió."}[language] in sent
    assert {"es": "enviada a revisión", "ca": "enviada a revisió"}[language] in sent


@pytest.mark.parametrize(("language", "words"), [
    ("es", ["Acogida", "Valoraciones", "Dónde se recibió peor", "Sin firmar", "Descargar los comentarios (CSV)"]),
    ("ca", ["Acollida", "Valoracions", "On s'ha rebut pitjor", "Sense signar", "Baixa els comentaris (CSV)"]),
])
def test_a_posts_reception_speaks_the_managers_language(client_for, make_employee, make_post, language, words):
    """The reception section of a published post (ratings, segments, comments) on the desk, in es and ca."""
    manager = client_for(make_employee(is_comms=True, language=language))
    post = make_post(title="Canteen changes")
    rater = client_for(make_employee())
    assert rater.api("PUT", f"/api/v1/posts/{post.id}/rating",
                     json={"stars": 2, "comment": "Too short"}).status_code == 200
    page = _text(manager.get(f"/publish/posts/{post.id}"))
    assert all(w in page for w in words), [w for w in words if w not in page]


# --- dashboards ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "organisation", "post_page", "roster"), [
    ("es", ["<h1>Participación</h1>", "Solo datos agregados", "Desde", "Cualquiera", "Aplicar",
            "Publicaciones de este periodo"],
     ["← Participación", "No se muestran los grupos de menos de 5 personas.", "Quién la ha confirmado"],
     ["Quién confirmó «Canteen changes»", "0 de 2 han confirmado", "Sin confirmar todavía (2)", "Nadie todavía."]),
    ("ca", ["<h1>Participació</h1>", "Només dades agregades", "Des de", "Qualsevol", "Aplica",
            "Publicacions d'aquest període"],
     ["← Participació", "No es mostren els grups de menys de 5 persones.", "Qui l'ha confirmada"],
     ["Qui ha confirmat «Canteen changes»", "0 de 2 han confirmat", "Encara sense confirmar (2)", "Encara ningú."]),
])
def test_dashboards_speak_the_managers_language(client_for, make_employee, make_post, language, organisation,
                                                post_page, roster):
    """The organisation and post dashboards' own words and the acknowledgement roster in es and ca."""
    manager_row = make_employee(is_comms=True, is_admin=True, language=language)
    manager = client_for(manager_row)
    make_employee()
    post = make_post(title="Canteen changes", must_read=True, author_pk=manager_row.id)
    for path, words in (("/analytics", organisation), (f"/analytics/posts/{post.id}", post_page),
                        (f"/publish/posts/{post.id}/acks", roster)):
        page = _text(manager.get(path))
        assert all(w in page for w in words), (path, [w for w in words if w not in page])


# --- admin and directory pages ------------------------------------------------------------------------


ADMIN_PAGES = {
    "es": {"/admin/people": ["<h1>Personas y roles</h1>", "Dar un rol a alguien", "Administrador",
                             "1 persona tiene un rol"],
           "/admin/people/T000002/erase": ["Borrar a Person 2", "No se puede deshacer.", "Borrar a esta persona"],
           "/admin/digest-defaults": ["Valores predeterminados del resumen de la organización", "Una vez al día",
                                      "Lunes", "Guardar valores predeterminados"],
           "/admin/directory/": ["Estado de la sincronización del directorio", "Cobertura de atributos",
                                 "Todavía no se ha ejecutado ninguna sincronización", "Registros en cuarentena"],
           "/admin/directory/quarantine": ["No hay nada en cuarentena."],
           "/admin/directory/unmapped": ["Todos los valores tienen correspondencia."],
           "/admin/api-keys": ["<h1>Claves de API</h1>", "Crear una clave", "Todavía no hay claves."],
           "/admin/webhooks": ["Destinos", "Todavía no hay destinos.", "Añadir un destino"]},
    "ca": {"/admin/people": ["<h1>Persones i rols</h1>", "Donar un rol a algú", "Administrador",
                             "1 persona té un rol"],
           "/admin/people/T000002/erase": ["Esborrar Person 2", "No es pot desfer.", "Esborra aquesta persona"],
           "/admin/digest-defaults": ["Valors predeterminats del resum de l'organització", "Un cop al dia",
                                      "Dilluns", "Desa els valors predeterminats"],
           "/admin/directory/": ["Estat de la sincronització del directori", "Cobertura d'atributs",
                                 "Encara no s'ha executat cap sincronització", "Registres en quarantena"],
           "/admin/directory/quarantine": ["No hi ha res en quarantena."],
           "/admin/directory/unmapped": ["Tots els valors tenen correspondència."],
           "/admin/api-keys": ["<h1>Claus d'API</h1>", "Crea una clau", "Encara no hi ha claus."],
           "/admin/webhooks": ["Destins", "Encara no hi ha destins.", "Afegeix un destí"]},
}


@pytest.mark.parametrize("language", ["es", "ca"])
def test_admin_and_directory_pages_speak_the_admins_language(client_for, make_employee, language):
    """People and roles, erasure, digest defaults, directory health, API keys and webhooks in es and ca."""
    admin = client_for(make_employee(is_admin=True, language=language))
    make_employee()
    for path, words in ADMIN_PAGES[language].items():
        response = admin.get(path)
        page = _text(response)
        assert response.status_code == 200 and all(w in page for w in words), (
            path, response.status_code, [w for w in words if w not in page])
    saved = _text(admin.post("/admin/people/T000002/roles", data={"csrf_token": admin.csrf, "roles": ["contributor"]},
                             follow_redirects=True))
    assert {"es": "Person 2: Colaborador.", "ca": "Person 2: Col·laborador."}[language] in saved


# --- the script widget's own words --------------------------------------------------------------------


def test_the_widget_words_follow_the_reader_then_the_browser(app, client_for, make_employee):
    """GET /api/v1/embed/messages: the signed-in person's language, else the browser's; placeholders kept for the script."""
    signed_out = app.test_client().get("/api/v1/embed/messages", headers={"Accept-Language": "es-ES,es;q=0.9"})
    assert signed_out.status_code == 200
    answer = signed_out.get_json()
    assert answer["language"] == "es" and answer["words"]["sign_in_prompt"] == "Inicia sesión para ver tus noticias."
    catalan = client_for(make_employee(language="ca")).get("/api/v1/embed/messages",
                                                            headers={"Accept-Language": "es"}).get_json()
    words = catalan["words"]
    assert catalan["language"] == "ca"
    assert words["your_news"] == "Les teves notícies" and words["for_viewer"] == "per a %(name)s"
    assert words["rated_stars"] == "S'ha desat: li has donat %(stars)s de 5."
    assert (words["stars_1"], words["stars_4"]) == ("1 estrella", "4 estrelles")
    english = app.test_client().get("/api/v1/embed/messages").get_json()["words"]
    assert english["you_acknowledged"] == "You acknowledged “%(title)s”." and set(english) == set(words)


def test_the_widget_script_has_no_words_of_its_own_but_a_fallback():
    """Every key widget.js says is one Beacon serves (its English copy is only the fallback)."""
    from pathlib import Path

    from intranet import embed_feed

    script = (Path(__file__).resolve().parent.parent / "static/intranet/js/widget.js").read_text(encoding="utf-8")
    said = (set(re.findall(r'say\("(\w+)"', script)) - {"stars_"}) | {f"stars_{n}" for n in range(1, 6)}
    served = set(embed_feed.widget_words("en").words)
    assert said <= served, said - served


@pytest.mark.parametrize(("language", "post_words", "organisation_words"), [
    ("es", ["A quién llegó", "Tasa de lectura por departamento", "Tasa de lectura desde la publicación",
            "%{y}: %{x} personas", "Alcanzados"],
     ["Cuándo se lee", "Participación por tema", "Resúmenes por canal", "Estado del directorio",
      "Cobertura del directorio (", "%{x}: %{customdata} personas (%{y:.0%})"]),
    ("ca", ["A qui ha arribat", "Taxa de lectura per departament", "Taxa de lectura des de la publicació",
            "%{y}: %{x} persones", "Assolits"],
     ["Quan es llegeix", "Participació per tema", "Resums per canal", "Estat del directori",
      "Cobertura del directori (", "%{x}: %{customdata} persones (%{y:.0%})"]),
])
def test_chart_words_speak_the_managers_language(client_for, make_employee, make_post, language, post_words,
                                                  organisation_words):
    """The charts' titles, axes, hover text, stage and day names are in the viewer's language; data stays data."""
    manager = client_for(make_employee(is_comms=True, language=language))
    readers = [make_employee(department="Sales") for _ in range(6)]
    post = make_post(title="Canteen changes")
    for reader in readers:
        client_for(reader).api("POST", "/api/v1/events", json={"events": [{"type": "read", "post_id": post.id}]})
    page = html.unescape(manager.get(f"/analytics/posts/{post.id}").get_data(as_text=True))
    assert all(w in page for w in post_words), [w for w in post_words if w not in page]
    page = html.unescape(manager.get("/analytics").get_data(as_text=True))
    assert all(w in page for w in organisation_words), [w for w in organisation_words if w not in page]
    english = html.unescape(client_for(make_employee(is_comms=True)).get(f"/analytics/posts/{post.id}")
                            .get_data(as_text=True))
    assert "Who it reached" in english and "A quién llegó" not in english
    assert languages.weekday_names(language)[:2] == {"es": ["lun", "mar"], "ca": ["dl.", "dt."]}[language]


@pytest.mark.parametrize(("language", "words", "added"), [
    ("es", ["Board: miembros", "Un grupo gestionado", "Añadir personas", "1 miembro", "Personas que coinciden con «ada»",
            "Sustituir toda la lista a partir de números de empleado"], "Ada Lovelace se ha añadido a Board."),
    ("ca", ["Board: membres", "Un grup gestionat", "Afegeix persones", "1 membre", "Persones que coincideixen amb «ada»",
            "Substitueix tota la llista a partir de números d'empleat"], "S'ha afegit Ada Lovelace a Board."),
])
def test_a_groups_members_page_speaks_the_owners_language(client_for, make_employee, make_group, db, language, words,
                                                          added):
    """A managed group's members page, its search and its confirmation in es and ca."""
    from intranet.models import GroupOwner

    owner = make_employee(language=language)
    ada = make_employee(display_name="Ada Lovelace")
    group = make_group("board", kind="managed", members=(owner,))
    db.add(GroupOwner(group_id=group.id, employee_pk=owner.id))
    db.commit()
    client = client_for(owner)
    page = _text(client.get("/groups/board/members?q=ada"))
    assert all(w in page for w in words), [w for w in words if w not in page]
    done = _text(client.post("/groups/board/members/add", data={"csrf_token": client.csrf,
                                                                "employee_id": ada.employee_id}, follow_redirects=True))
    assert added in done


@pytest.mark.parametrize(("language", "words"), [
    ("es", ["Tu resumen sale", "De vez en cuando probamos una hora cercana para seguir aprendiendo"]),
    ("ca", ["El teu resum surt", "De tant en tant provem una hora propera per continuar aprenent"]),
])
def test_the_digest_schedule_is_explained_in_the_persons_language(client_for, make_employee, language, words):
    """The preferences page's "why your digest goes out when it does", and the API's, in es and ca."""
    client = client_for(make_employee(language=language))
    page = _text(client.get("/preferences"))
    why = re.search(r'<section class="card schedule">\s*<p>(.*?)</p>', page, re.S).group(1)
    assert all(w in why for w in words) and "goes out" not in why, why
    assert client.get("/api/v1/me/digest-schedule").get_json()["why"] == why


def test_the_schedule_sentence_in_english_is_unchanged():
    """English reads as before; weekly days, lists and pluralised digests are words of each language."""
    import datetime as dt

    from intranet.delivery import timing
    from intranet.delivery.timing import Basis, Cadence

    plan = timing.Plan(Basis.PEERS, [8, 14], [])
    assert timing.explain(plan, Cadence.TWICE_DAILY, learned_timing=False) == (
        "You turned learned timing off, so your digests go out at 08:00 and 14:00, when colleagues in your team and "
        "region usually read. Now and then we try a nearby hour to keep learning.")
    assert timing.explain(plan, Cadence.TWICE_DAILY, learned_timing=False, language="ca").startswith(
        "Has desactivat les hores apreses, així que els teus resums surten a les 08:00 i 14:00")
    assert timing.day_label(dt.date(2026, 11, 25)) == "Wed 25 Nov"
    assert timing.day_label(dt.date(2026, 11, 25), "es") == "mié 25 nov"
