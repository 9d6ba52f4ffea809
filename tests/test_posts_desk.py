"""Publishing desk pages and attachments: forms, time zones, audience builder, uploads and who may download."""
from __future__ import annotations

import datetime as dt
import io
import re
import zipfile

import pytest
from sqlmodel import select

from intranet import attachments
from intranet.models import Attachment, Post, PostPreview

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SALES = {"segments": [{"departments": ["Sales"]}]}


@pytest.fixture
def people(make_employee):  # type: ignore[no-untyped-def]
    return {
        "comms": make_employee(is_comms=True, department="Comms", timezone="Europe/Berlin"),
        "writer": make_employee(is_contributor=True, department="Sales"),
        "sales": make_employee(department="Sales"),
        "finance": make_employee(department="Finance"),
    }


def draft(client, **fields):  # type: ignore[no-untyped-def]
    data = {"title": "Office move", "summary": "We move", "body_html": "<p>Boxes</p>", "audience": SALES, **fields}
    response = client.api("POST", "/api/v1/posts", json=data)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def fetch(client, url: str):  # type: ignore[no-untyped-def]
    """GET *url* and close the response (send_file streams from an open file)."""
    response = client.get(url)
    response.get_data()
    response.close()
    return response


def upload(client, post_id: int, data: bytes, name: str = "photo.png"):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/posts/{post_id}/attachments", data={"file": (io.BytesIO(data), name)},
                       headers={"X-CSRFToken": client.csrf}, content_type="multipart/form-data")


# --- pages -------------------------------------------------------------------------------------


def test_desk_lists_managed_posts(client_for, people):
    """The desk lists the posts a person manages, and offers 'New post' to writers."""
    writer = client_for(people["writer"])
    draft(writer, title="My draft")
    page = writer.get("/publish").get_data(as_text=True)
    assert "My draft" in page and "New post" in page
    assert "My draft" not in client_for(people["sales"]).get("/publish").get_data(as_text=True)


def test_new_post_page_is_for_writers(client_for, people):
    """The compose page is refused to people who may not write posts."""
    assert client_for(people["writer"]).get("/publish/new").status_code == 200
    assert client_for(people["sales"]).get("/publish/new").status_code == 403


def test_form_creates_a_draft_with_audience_and_local_times(client_for, people, db):
    """The compose form stores the builder's audience and reads times in the chosen zone."""
    comms = client_for(people["comms"])
    response = comms.post("/publish/new", data={
        "csrf_token": comms.csrf, "title": "Town hall", "summary": "Join us", "body_html": "<p>Agenda</p>",
        "topic": "Events", "rating_style": "thumbs", "timezone": "Europe/Berlin",
        "publish_at": "2026-12-01T10:00", "inc-0-departments": ["Sales", "Finance"], "inc-0-level_min": "2",
        "exc-0-countries": ["DE"], "inc-1-level_max": ""})
    assert response.status_code == 302
    post = db.exec(select(Post).where(Post.title == "Town hall")).one()
    assert post.status == "draft" and post.rating_style == "thumbs"
    assert post.audience == {"segments": [{"departments": ["Sales", "Finance"], "level_min": 2}],
                             "exclude": [{"countries": ["DE"]}]}
    assert post.publish_at == dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)


def test_form_errors_are_shown_not_lost(client_for, people):
    """A form with an unknown value re-renders with the message and a 422."""
    comms = client_for(people["comms"])
    response = comms.post("/publish/new", data={"csrf_token": comms.csrf, "title": "Oops",
                                                "inc-0-departments": "Salse"})
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert "Salse" in text and 'value="Oops"' in text


def test_edit_page_shows_actions_history_and_count(client_for, people):
    """The edit page shows the allowed actions, the audience count and the history."""
    writer, comms = client_for(people["writer"]), client_for(people["comms"])
    post_id = draft(writer)
    writer.api("POST", f"/api/v1/posts/{post_id}/submit")
    page = comms.get(f"/publish/posts/{post_id}").get_data(as_text=True)
    assert 'data-action="approve"' in page and 'data-action="request-changes"' in page
    assert 'id="audience-count">2<' in page  # the writer and the salesperson
    assert "submitted for review" in page and "in review" in page
    writer_page = writer.get(f"/publish/posts/{post_id}").get_data(as_text=True)
    assert 'data-action="approve"' not in writer_page


def test_actions_through_the_desk(client_for, people, db):
    """Submit, request changes and publish work as form posts and redirect back."""
    writer, comms = client_for(people["writer"]), client_for(people["comms"])
    post_id = draft(writer)
    assert writer.post(f"/publish/posts/{post_id}/submit", data={"csrf_token": writer.csrf}).status_code == 302
    comms.post(f"/publish/posts/{post_id}/request-changes", data={"csrf_token": comms.csrf, "comment": "Shorter"})
    assert db.get(Post, post_id).status == "draft"
    writer.post(f"/publish/posts/{post_id}/submit", data={"csrf_token": writer.csrf})
    comms.post(f"/publish/posts/{post_id}/approve", data={"csrf_token": comms.csrf})
    db.expire_all()
    assert db.get(Post, post_id).status == "published"
    refused = writer.post(f"/publish/posts/{post_id}/unpublish", data={"csrf_token": writer.csrf}, follow_redirects=True)
    assert "comms manager" in refused.get_data(as_text=True)
    db.expire_all()
    assert db.get(Post, post_id).status == "published"


def test_save_form_edits_a_draft(client_for, people, db):
    """Saving the edit form updates the post and keeps the audience when the builder is unchanged."""
    writer = client_for(people["writer"])
    post_id = draft(writer)
    response = writer.post(f"/publish/posts/{post_id}", data={
        "csrf_token": writer.csrf, "title": "Office move, updated", "summary": "", "body_html": "<p>More boxes</p>",
        "topic": "News", "rating_style": "stars", "timezone": "UTC", "inc-0-departments": "Sales"})
    assert response.status_code == 302
    post = db.get(Post, post_id)
    db.refresh(post)
    assert post.title == "Office move, updated" and post.audience == SALES


def test_preview_pages(client_for, people, db):
    """The post preview renders the body; the feed preview is logged and checks membership."""
    comms = client_for(people["comms"])
    post_id = draft(comms)
    assert "<p>Boxes</p>" in comms.get(f"/publish/posts/{post_id}/preview").get_data(as_text=True)
    page = comms.get(f"/publish/posts/{post_id}/preview-as?who={people['sales'].employee_id}")
    assert page.status_code == 200 and "Office move" in page.get_data(as_text=True)
    assert db.exec(select(PostPreview)).one().subject_pk == people["sales"].id
    refused = comms.get(f"/publish/posts/{post_id}/preview-as?who={people['finance'].email}", follow_redirects=True)
    assert "not in this post&#39;s audience" in refused.get_data(as_text=True)


def test_desk_pages_of_others_posts_are_not_found(client_for, people):
    """Someone who does not manage a post gets 404 on its desk pages."""
    post_id = draft(client_for(people["writer"]))
    sales = client_for(people["sales"])
    for url in (f"/publish/posts/{post_id}", f"/publish/posts/{post_id}/preview"):
        assert sales.get(url).status_code == 404


# --- attachments -------------------------------------------------------------------------------


def test_attachment_served_only_to_people_who_may_see_the_post(client_for, people, clock):
    """An image is served to the audience once live, to the author always, and 404 to everyone else."""
    comms = client_for(people["comms"])
    post_id = draft(comms)
    response = upload(comms, post_id, PNG)
    assert response.status_code == 201
    url = response.get_json()["url"]
    sales, finance = client_for(people["sales"]), client_for(people["finance"])
    assert fetch(comms, url).status_code == 200
    assert fetch(sales, url).status_code == 404  # not published yet
    comms.api("POST", f"/api/v1/posts/{post_id}/publish")
    served = fetch(sales, url)
    assert served.status_code == 200 and served.mimetype == "image/png" and served.data == PNG
    assert "sandbox" in served.headers["Content-Security-Policy"]
    missing = finance.get("/attachments/999999")
    assert fetch(finance, url).status_code == missing.status_code == 404


def test_files_are_downloads_with_a_safe_name(client_for, people, clock):
    """Non-image files are sent as downloads, named for their real type."""
    comms = client_for(people["comms"])
    post_id = draft(comms)
    url = upload(comms, post_id, b"%PDF-1.7\n...", "../../etc/report.exe").get_json()["url"]
    served = fetch(comms, url)
    assert served.mimetype == "application/pdf"
    assert served.headers["Content-Disposition"].startswith("attachment") and "report.pdf" in served.headers[
        "Content-Disposition"]


@pytest.mark.parametrize("data,name", [
    (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "x.svg"),
    (b"<!doctype html><script>alert(1)</script>", "x.png"),
    (b"MZ\x90\x00\x03\x00\x00\x00", "setup.pdf"),
    (b"", "empty.png"),
])
def test_dangerous_or_unknown_types_are_refused(client_for, people, data, name):
    """SVG, HTML, executables and empty files are refused whatever their name says."""
    comms = client_for(people["comms"])
    assert upload(comms, draft(comms), data, name).status_code == 422


def test_office_documents_are_recognised():
    """A .docx is recognised from its zip parts."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    assert attachments.sniff(buffer.getvalue(), "letter.docx")[0].endswith("wordprocessingml.document")


@pytest.mark.settings(INTRANET_MAX_ATTACHMENT_BYTES=1000, INTRANET_MAX_IMAGE_BYTES=100)
def test_oversized_uploads_are_refused(app, client_for, people):
    """Files over the limit are a 413, images over the image limit too."""
    comms = client_for(people["comms"])
    post_id = draft(comms)
    assert upload(comms, post_id, b"%PDF-" + b"x" * 2000, "big.pdf").status_code == 413
    assert upload(comms, post_id, PNG + b"x" * 200).status_code == 413
    assert upload(comms, post_id, b"%PDF-" + b"x" * 500, "ok.pdf").status_code == 201


def test_only_editors_upload(client_for, people, db):
    """A contributor cannot add files to a post once it has gone out."""
    writer, comms = client_for(people["writer"]), client_for(people["comms"])
    post_id = draft(writer)
    assert upload(writer, post_id, PNG).status_code == 201
    writer.api("POST", f"/api/v1/posts/{post_id}/submit")
    comms.api("POST", f"/api/v1/posts/{post_id}/approve")
    assert upload(writer, post_id, PNG).status_code == 403
    assert upload(client_for(people["sales"]), post_id, PNG).status_code == 404


def test_removing_an_attachment_deletes_its_file(app, client_for, people, db):
    """DELETE removes the row and the stored file."""
    comms = client_for(people["comms"])
    post_id = draft(comms)
    attachment_id = upload(comms, post_id, PNG).get_json()["id"]
    stored = db.get(Attachment, attachment_id)
    with app.app_context():
        from intranet.web.publish import upload_dir

        path = attachments.path_for(upload_dir(), stored)
    assert path.exists()
    assert comms.api("DELETE", f"/api/v1/posts/{post_id}/attachments/{attachment_id}").status_code == 204
    assert not path.exists()


# --- the audience builder, without JavaScript ---------------------------------------------------


def test_builder_shows_names_and_keeps_codes(client_for, people, make_group):
    """Countries and groups are offered by name (Germany, Green-Team) with their codes as values."""
    make_group("green-team")
    page = client_for(people["comms"]).get("/publish/new").get_data(as_text=True)
    assert 'name="inc-0-countries" value="DE" data-label="Germany"' in page and "> Germany</label>" in page
    assert 'name="inc-0-groups" value="green-team" data-label="Green-Team"' in page
    assert "<select" not in page.split('id="include-segments"')[1].split("</fieldset>")[0]  # no Ctrl-click lists


def test_refused_save_keeps_the_count(client_for, people):
    """A 422 re-shows the builder's choices with their count, not "No audience yet"."""
    comms = client_for(people["comms"])
    response = comms.post("/publish/new", data={"csrf_token": comms.csrf, "title": "Party", "summary": "s",
                                                "timezone": "Europe/Berlin", "ack_deadline": "2026-12-01T10:00",
                                                "inc-0-departments": "Sales"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'data-state="counted"' in page and 'id="audience-count">2<' in page
    assert 'value="Sales" data-label="Sales" checked' in page


def test_audience_problems_are_in_words(client_for, people):
    """Audience errors name the group and the problem, never JSON or field paths."""
    comms = client_for(people["comms"])
    response = comms.post("/publish/new", data={"csrf_token": comms.csrf, "title": "Party", "timezone": "UTC",
                                                "inc-0-level_min": "7", "inc-0-level_max": "3"})
    assert response.status_code == 422
    assert ("Check the audience. People who match (group 1): the lowest level is above the highest level."
            in response.get_data(as_text=True))
    post_id = draft(comms, audience=None)
    refused = comms.post(f"/publish/posts/{post_id}/submit", data={"csrf_token": comms.csrf}, follow_redirects=True)
    text = refused.get_data(as_text=True)
    assert "Choose who should get this post first" in text and "{&#34;all&#34;" not in text and '{"all"' not in text


def test_breakdown_lists_levels_in_order(client_for, make_employee, people):
    """The count panel lists levels 1, 2, ... then unknown, whatever their headcounts."""
    for level in (5, 5, 5, 2, None):
        make_employee(department="Sales", level=level)
    comms = client_for(people["comms"])
    post_id = draft(comms)
    page = comms.get(f"/publish/posts/{post_id}").get_data(as_text=True)
    levels = page.split("<h3>Level</h3>")[1].split("</ul>")[0]
    assert re.findall(r"<span>([^<]+)</span>", levels) == ["Level 2", "Level 3", "Level 5", "unknown"]
