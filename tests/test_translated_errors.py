"""Error messages in the reader's language: services raise English words with their values, and the
page or the API's ``{"error": {...}}`` body words them for whoever reads them (the person's language,
or ``Accept-Language`` for an API key). Codes, details and English stay as they were."""
from __future__ import annotations

import html

import pytest

from intranet import api_keys
from intranet.errors import InvalidInput
from intranet.languages import N_, Phrase
from tests.directory_support import DIRTY, hr_csv, make_sync, person


def _text(response) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(response.get_data(as_text=True))


def _error(response) -> dict:  # type: ignore[no-untyped-def, type-arg]
    return response.get_json()["error"]


def test_an_error_keeps_its_english_and_words_itself_in_each_language():
    """The message stays English (logs, the CLI); the same error reads in Spanish and Catalan, values untouched."""
    error = InvalidInput(N_("%(name)s is not in this post's audience."), name="Ana Ruiz")
    assert error.message == str(error) == "Ana Ruiz is not in this post's audience."
    assert error.message_in("es") == "Ana Ruiz no está en la audiencia de esta publicación."
    assert error.message_in("ca") == "Ana Ruiz no és a l'audiència d'aquesta publicació."
    nested = Phrase(N_("Check the audience. %(problems)s."),
                    problems=(Phrase(N_("levels are whole numbers from 1 to 10"), capitalised=True), "Data"))
    assert nested.in_language("en") == "Check the audience. Levels are whole numbers from 1 to 10; Data."
    assert nested.in_language("es") == "Revisa la audiencia. Los niveles son números enteros del 1 al 10; Data."


# --- the publishing desk -----------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "words"), [
    ("en", "Only a must-read post can have an acknowledgement deadline."),
    ("es", "Solo una publicación de lectura obligatoria puede tener un plazo de confirmación."),
    ("ca", "Només una publicació de lectura obligatòria pot tenir un termini de confirmació."),
])
def test_a_desk_save_error_speaks_the_writers_language(client_for, make_employee, language, words):
    """The compose form's refusal (a deadline on a post that is not a must-read) is worded for the writer."""
    writer = client_for(make_employee(is_comms=True, language=language))
    response = writer.post("/publish/new", data={
        "csrf_token": writer.csrf, "title": "Fire drill", "summary": "At ten", "body_html": "<p>Stairs</p>",
        "topic": "News", "rating_style": "stars", "timezone": "UTC", "ack_deadline": "2026-12-20T10:00",
        "all_staff": "1"})
    assert response.status_code == 422
    assert words in _text(response)


@pytest.mark.parametrize(("language", "unknown", "levels"), [
    ("es", "Valor de audiencia desconocido: ningún empleado tiene el departamento 'Salse' (¿querías decir 'Sales'?).",
     "Revisa la audiencia. Personas que cumplan (grupo 1): el nivel más bajo está por encima del más alto."),
    ("ca", "Valor d'audiència desconegut: cap empleat no té el departament 'Salse' (volies dir 'Sales'?).",
     "Revisa l'audiència. Persones que compleixin (grup 1): el nivell més baix és per sobre del més alt."),
])
def test_audience_problems_speak_the_writers_language(client_for, make_employee, language, unknown, levels):
    """An unknown department and a level range upside down, refused by the builder in the writer's words."""
    make_employee(department="Sales")
    writer = client_for(make_employee(is_comms=True, language=language))
    form = {"csrf_token": writer.csrf, "title": "Oops", "body_html": "<p>x</p>", "timezone": "UTC"}
    response = writer.post("/publish/new", data={**form, "inc-0-departments": "Salse"})
    assert response.status_code == 422 and unknown in _text(response)
    response = writer.post("/publish/new", data={**form, "inc-0-level_min": "7", "inc-0-level_max": "2"})
    assert response.status_code == 422 and levels in _text(response)


def test_the_audience_problem_in_english_is_unchanged(client_for, make_employee):
    """English readers get the same sentence as before the messages were translated."""
    writer = client_for(make_employee(is_comms=True, language="en"))
    response = writer.post("/publish/new", data={"csrf_token": writer.csrf, "title": "Oops", "body_html": "<p>x</p>",
                                                 "timezone": "UTC", "inc-0-level_min": "7", "inc-0-level_max": "2"})
    assert ("Check the audience. People who match (group 1): the lowest level is above the highest level."
            in _text(response))


@pytest.mark.parametrize(("language", "words"), [
    ("es", "Una publicación en estado «borrador» no se puede aprobar."),
    ("ca", "Una publicació en estat «esborrany» no es pot aprovar."),
])
def test_a_refused_move_in_the_api_speaks_the_managers_language(client_for, make_employee, language, words):
    """Approving a draft through the JSON API: a 409 with the same code and details, the message translated."""
    manager = client_for(make_employee(is_comms=True, language=language))
    created = manager.api("POST", "/api/v1/posts", json={"title": "Menu", "body_html": "<p>Soup</p>",
                                                         "audience": {"all": True}})
    assert created.status_code == 201, created.get_json()
    answer = manager.api("POST", f"/api/v1/posts/{created.get_json()['id']}/approve", json={})
    assert answer.status_code == 409
    error = _error(answer)
    assert error["code"] == "conflict" and error["details"] == {"status": "draft", "allowed_from": ["in_review"]}
    assert error["message"] == words


# --- journeys, preferences, groups, feedback ---------------------------------------------------------


@pytest.mark.parametrize(("language", "words"), [
    ("es", "«Omitir si no se ha leído» debe nombrar un paso anterior de este itinerario."),
    ("ca", "«Omet si no s'ha llegit» ha d'anomenar un pas anterior d'aquest itinerari."),
])
def test_a_journey_steps_validation_speaks_the_managers_language(client_for, make_employee, language, words):
    """A step whose condition names no earlier step is refused in the manager's words."""
    client = client_for(make_employee(is_comms=True, language=language))
    detail = client.post("/journeys/new", data={"name": "Movers", "trigger": "department_move",
                                                "csrf_token": client.csrf}).headers["Location"]
    refused = client.post(f"{detail}/steps", data={"key": "team", "offset_days": 1, "title": "t",
                                                   "skip_unless_read": "nothing", "csrf_token": client.csrf})
    assert refused.status_code == 422 and words in _text(refused)


@pytest.mark.parametrize(("language", "words"), [
    ("es", "Elige al menos un lugar para tu resumen (correo, Microsoft Teams o Beacon)"),
    ("ca", "Tria almenys un lloc per al teu resum (correu, Microsoft Teams o Beacon)"),
])
def test_a_refused_preference_speaks_the_persons_language(client_for, make_employee, language, words):
    """A digest with nowhere to go, refused by the preferences API in the person's language."""
    client = client_for(make_employee(language=language))
    answer = client.api("PUT", "/api/v1/me/preferences", json={"cadence": "daily", "channels": []})
    assert answer.status_code == 422 and _error(answer)["code"] == "invalid"
    assert _error(answer)["message"].startswith(words)


@pytest.mark.parametrize(("language", "words"), [
    ("es", "Este grupo lo gestionan sus propietarios; pídeles que te añadan."),
    ("ca", "Aquest grup el gestionen els seus propietaris; demana'ls que t'hi afegeixin."),
])
def test_joining_a_managed_group_is_refused_in_the_persons_language(client_for, make_employee, make_group, language,
                                                                    words):
    """The groups page and the API both word the refusal for the person."""
    make_group("board", kind="managed")
    client = client_for(make_employee(language=language))
    page = client.post("/groups/board/join", data={"csrf_token": client.csrf})
    assert page.status_code == 403 and words in _text(page)
    answer = client.api("POST", "/api/v1/groups/board/join")
    assert answer.status_code == 403 and _error(answer)["message"] == words


@pytest.mark.parametrize(("language", "words"), [
    ("es", ["Este comentario no existe.", "Esta publicación no existe."]),
    ("ca", ["Aquest comentari no existeix.", "Aquesta publicació no existeix."]),
])
def test_unknown_feedback_is_refused_in_the_managers_language(client_for, make_employee, language, words):
    """The feedback and reception APIs answer a 404 in the manager's words, with the same code."""
    client = client_for(make_employee(is_comms=True, language=language))
    for url, message in zip(("/api/v1/feedback/999999", "/api/v1/posts/999999/reception"), words):
        answer = client.api("GET", url)
        assert answer.status_code == 404 and _error(answer) == {"code": "not_found", "message": message, "details": None}


# --- the API's own refusals -------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "words"), [
    ("es", "Esta clave de API no tiene el permiso analytics:read que necesita este punto de acceso."),
    ("ca", "Aquesta clau d'API no té el permís analytics:read que necessita aquest punt d'accés."),
])
def test_an_api_key_is_answered_in_the_callers_accept_language(app, db, make_employee, clock, language, words):
    """A key has no person: Accept-Language decides; the code, details and WWW-Authenticate are unchanged."""
    data = api_keys.ApiKeyCreate(name="CMS", scopes=["feed:read"])
    _, secret = api_keys.create(db, data, by=make_employee(is_admin=True), now=clock())
    db.commit()
    answer = app.test_client().get("/api/v1/analytics/reading-hours",
                                   headers={"Authorization": f"Bearer {secret}", "Accept-Language": language})
    assert answer.status_code == 403 and 'scope="analytics:read"' in answer.headers["WWW-Authenticate"]
    assert _error(answer) == {"code": "insufficient_scope", "message": words,
                              "details": {"needed_scope": "analytics:read"}}
    refused = app.test_client().get("/api/v1/feed", headers={"Authorization": "Bearer nonsense",
                                                             "Accept-Language": language})
    assert refused.status_code == 401 and _error(refused)["code"] == "invalid_api_key"
    assert _error(refused)["message"] == {
        "es": "Esta no es una clave de API de Beacon (tienen la forma bcn_<prefijo>_<secreto>).",
        "ca": "Aquesta no és una clau d'API de Beacon (tenen la forma bcn_<prefix>_<secret>)."}[language]


@pytest.mark.parametrize(("language", "words"), [("es", "No hay nada en esta dirección."),
                                                 ("ca", "No hi ha res en aquesta adreça.")])
def test_an_unknown_api_address_speaks_the_persons_language(client_for, make_employee, language, words):
    """A 404 from no route at all is worded for the signed-in person too."""
    answer = client_for(make_employee(language=language)).api("GET", "/api/v1/no-such-thing")
    assert answer.status_code == 404 and _error(answer)["message"] == words


# --- admin pages: API-key scopes, webhook events, erasure, the directory's stored reasons ------------


@pytest.mark.parametrize(("language", "scopes", "events"), [
    ("es", ["Leer las noticias", "Leer las analíticas agregadas de participación (nunca las de una persona)."],
     ["Se publicó una publicación (en el momento o al llegar su hora programada)."]),
    ("ca", ["Llegir les notícies", "Llegir les analítiques agregades de participació (mai les d'una persona)."],
     ["S'ha publicat una publicació (en el moment o quan ha arribat l'hora programada)."]),
])
def test_scopes_and_webhook_events_are_described_in_the_admins_language(client_for, make_employee, language, scopes,
                                                                       events):
    """The API-key page's scope labels and descriptions, the webhook page's event descriptions; codes unchanged."""
    admin = client_for(make_employee(is_admin=True, language=language))
    page = _text(admin.get("/admin/api-keys"))
    assert all(w in page for w in scopes) and "<code>analytics:read</code>" in page
    page = _text(admin.get("/admin/webhooks"))
    assert all(w in page for w in events) and "<code>post.published</code>" in page


@pytest.mark.parametrize(("language", "words"), [
    ("en", "It deletes their events, ratings, post states, preferences, learned times"),
    ("es", "Elimina sus eventos de uso, valoraciones, estados de lectura de publicaciones, preferencias"),
    ("ca", "N'elimina aquestes dades: esdeveniments d'ús, valoracions, estats de lectura de publicacions"),
])
def test_the_erase_sentence_names_the_data_in_the_admins_language(client_for, make_employee, language, words):
    """What erasing deletes is listed in the admin's words (in English, as before)."""
    admin = client_for(make_employee(is_admin=True, language=language))
    person = make_employee(display_name="Leaver")
    assert words in _text(admin.get(f"/admin/people/{person.employee_id}/erase"))


@pytest.mark.parametrize(("language", "quarantined", "held", "deactivated"), [
    ("es", ["número de empleado repetido", "<code>duplicate_key</code>", "el número de empleado",
            "bucle de responsables", "la cadena de responsables forma un bucle: E0006 -> E0007 -> E0006"],
     ["Retenida para un administrador: desactivaría a 30 de", "Retenida: desactivaría a 30 de"],
     "estado en HR"),
    ("ca", ["número d'empleat repetit", "<code>duplicate_key</code>", "el número d'empleat",
            "bucle de responsables", "s'ha mantingut el responsable anterior", "línia 8: la fila no té número d'empleat"],
     ["Retinguda per a un administrador: desactivaria 30 de", "Retinguda: desactivaria 30 de"],
     "estat a HR"),
])
def test_the_directorys_stored_reasons_read_in_the_admins_language(client_for, make_employee, database, clock, language,
                                                                   quarantined, held, deactivated):
    """Quarantine reasons and details, a held run's reasons and its deactivations: stored in English, shown translated."""
    sync = make_sync(database, clock)
    sync.run_hr(DIRTY.read_bytes(), file_name=DIRTY.name)
    admin = client_for(make_employee(is_admin=True, language=language))
    page = _text(admin.get("/admin/directory/quarantine"))
    assert all(w in page for w in quarantined), [w for w in quarantined if w not in page]
    sync.run_hr(hr_csv([person(f"E{i:03d}") for i in range(40)]), file_name="a_2026-11-24.csv")
    run = sync.run_hr(hr_csv([person(f"E{i:03d}", status="Terminated" if i < 30 else "Active") for i in range(40)]),
                      file_name="b_2026-11-24.csv")
    assert run.status == "held" and run.message.startswith("held: it would deactivate 30 of")  # the CLI's English
    page = _text(admin.get(f"/admin/directory/runs/{run.run_id}"))
    assert all(w in page for w in held), [w for w in held if w not in page]
    assert f"<td>{deactivated}</td>" in page
    assert held[0].split(":")[0] in _text(admin.get("/admin/directory/"))


@pytest.mark.parametrize(("language", "words"), [("es", "El cuerpo de la solicitud no es un JSON válido ("),
                                                 ("ca", "El cos de la sol·licitud no és un JSON vàlid (")])
def test_an_unreadable_json_body_is_refused_in_the_persons_language(client_for, make_employee, language, words):
    """Broken JSON: a 400 with the code ``malformed``, the sentence in the person's words (the parser's detail as data)."""
    client = client_for(make_employee(is_comms=True, language=language))
    answer = client.api("POST", "/api/v1/posts", data="{", content_type="application/json")
    assert answer.status_code == 400 and _error(answer)["code"] == "malformed"
    assert _error(answer)["message"].startswith(words)


@pytest.mark.parametrize(("language", "words"), [
    ("en", "Invalid preferences: quiet_start: Input should be less than or equal to 23; working_days: Value error, "
           "working days are weekday numbers 0 (Monday) to 6 (Sunday), at least one"),
    ("es", "Preferencias no válidas: quiet_start: El valor debe ser menor o igual que 23; working_days: Valor no "
           "válido: los días laborables son números de día de 0 (lunes) a 6 (domingo), al menos uno"),
    ("ca", "Preferències no vàlides: quiet_start: El valor ha de ser més petit o igual que 23; working_days: Valor "
           "no vàlid: els dies laborables són números de dia de 0 (dilluns) a 6 (diumenge), almenys un"),
])
def test_field_problems_are_worded_in_the_persons_language(client_for, make_employee, language, words):
    """A validation error names the API's fields as they are and words each problem (English unchanged)."""
    client = client_for(make_employee(language=language))
    answer = client.api("PUT", "/api/v1/me/preferences", json={"working_days": [], "quiet_start": 30})
    assert answer.status_code == 422 and _error(answer)["code"] == "invalid"
    assert _error(answer)["message"] == words
    assert [d["loc"] for d in _error(answer)["details"]] == ["quiet_start", "working_days"]
