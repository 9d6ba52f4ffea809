"""Closing the loop: comments left with ratings reach the author's inbox, anonymously unless
signed, and the author's private reply reaches the writer in Beacon and by email."""
from __future__ import annotations

import json

import pytest

from intranet import jobs
from intranet.delivery import feedback_mail
from intranet.directory import lifecycle
from intranet.delivery.channels.email import SmtpMailer
from tests.delivery_support import choose

STRANGER_NAME = "Zelda Quartermain"


@pytest.fixture
def cast(make_employee, make_post):  # type: ignore[no-untyped-def]
    """An author with a post, a comms manager, another contributor, and the writer of the feedback."""
    author = make_employee(display_name="Ada Author", is_contributor=True, department="Comms")
    comms = make_employee(display_name="Cora Comms", is_comms=True, department="Comms")
    other = make_employee(display_name="Otto Other", is_contributor=True, department="Comms")
    writer = make_employee(display_name=STRANGER_NAME, email="zelda.q@example.test", employee_id="EMP-ZQ-77",
                           department="Logistics")
    post = make_post(title="Canteen changes", author_pk=author.id)
    return {"author": author, "comms": comms, "other": other, "writer": writer, "post": post}


def rate(client, post, **body):  # type: ignore[no-untyped-def]
    response = client.api("PUT", f"/api/v1/posts/{post.id}/rating", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def inbox(client, status: str = "waiting") -> dict:  # type: ignore[no-untyped-def, type-arg]
    response = client.get(f"/api/v1/feedback?status={status}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def identity_of(person) -> list[str]:  # type: ignore[no-untyped-def]
    return [person.display_name, person.email, person.employee_id, "Zelda", "Logistics"]


def test_a_comment_lands_in_the_authors_and_the_comms_managers_inbox(cast, client_for):
    """A rating with a comment is waiting in the author's inbox and every comms manager's."""
    rate(client_for(cast["writer"]), cast["post"], stars=2, comment="The menu is too short")
    for viewer in ("author", "comms"):
        items = inbox(client_for(cast[viewer]))["items"]
        assert [(i["comment"], i["stars"], i["post_id"]) for i in items] == [
            ("The menu is too short", 2, cast["post"].id)]


def test_a_rating_without_a_comment_is_not_feedback(cast, client_for):
    """Stars alone put nothing in the inbox."""
    rate(client_for(cast["writer"]), cast["post"], stars=4)
    assert inbox(client_for(cast["author"]))["items"] == []


def test_other_authors_do_not_see_feedback_on_posts_that_are_not_theirs(cast, client_for):
    """Another contributor's inbox is empty, and the feedback itself is the same 404 as a missing one."""
    rate(client_for(cast["writer"]), cast["post"], stars=2, comment="Too short")
    fid = inbox(client_for(cast["author"]))["items"][0]["id"]
    other = client_for(cast["other"])
    assert inbox(other)["items"] == []
    missing = other.get("/api/v1/feedback/999999")
    theirs = other.get(f"/api/v1/feedback/{fid}")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.get_json() == missing.get_json()
    assert other.get(f"/feedback/{fid}").status_code == 404
    assert other.api("POST", f"/api/v1/feedback/{fid}/replies", json={"body": "hi"}).status_code == 404
    assert other.post(f"/feedback/{fid}/reply", data={"csrf_token": other.csrf, "body": "hi"}).status_code == 404
    assert other.api("POST", f"/api/v1/feedback/{fid}/answered").status_code == 404


def test_people_who_do_not_write_posts_have_no_inbox(cast, client_for):
    """An employee without author rights is refused the inbox (page and API)."""
    client = client_for(cast["writer"])
    assert client.get("/api/v1/feedback").status_code == 403
    assert client.get("/feedback").status_code == 403


def test_an_unsigned_comment_names_nobody_anywhere(cast, client_for):
    """Inbox pages, the thread, its JSON and the reply flow never show who wrote an unsigned comment."""
    rate(client_for(cast["writer"]), cast["post"], stars=1, comment="Please bring back soup", signed=False)
    for viewer in ("author", "comms"):
        client = client_for(cast[viewer])
        fid = inbox(client, "all")["items"][0]["id"]
        replied = client.post(f"/feedback/{fid}/reply", data={"csrf_token": client.csrf, "body": "Soup is back Monday"},
                              follow_redirects=True)
        pages = [client.get("/feedback").get_data(as_text=True), client.get("/feedback?status=all").get_data(as_text=True),
                 client.get(f"/feedback/{fid}").get_data(as_text=True), replied.get_data(as_text=True),
                 json.dumps(inbox(client, "all")), client.get(f"/api/v1/feedback/{fid}").get_data(as_text=True),
                 client.api("POST", f"/api/v1/feedback/{fid}/replies", json={"body": "And bread"}).get_data(as_text=True)]
        for page in pages:
            for trace in identity_of(cast["writer"]):
                assert trace not in page, (viewer, trace)
        assert json.loads(pages[5])["signed_by"] is None


def test_a_signed_comment_shows_the_writers_name(cast, client_for):
    """Signing shows the name; unsigning later hides it again."""
    writer = client_for(cast["writer"])
    rate(writer, cast["post"], stars=5, comment="Great", signed=True)
    author = client_for(cast["author"])
    assert inbox(author)["items"][0]["signed_by"] == STRANGER_NAME
    assert STRANGER_NAME in author.get("/feedback").get_data(as_text=True)
    rate(writer, cast["post"], stars=5, comment="Great", signed=False)
    assert inbox(author)["items"][0]["signed_by"] is None
    assert STRANGER_NAME not in author.get("/feedback").get_data(as_text=True)


def test_the_inbox_lists_waiting_feedback_oldest_first_with_its_age(cast, make_employee, client_for, clock):
    """Waiting feedback comes oldest first, with how long it has waited; over a day is highlighted."""
    rate(client_for(cast["writer"]), cast["post"], stars=2, comment="First")
    clock.advance(hours=20)
    rate(client_for(make_employee()), cast["post"], stars=3, comment="Second")
    clock.advance(hours=5)
    client = client_for(cast["author"])
    data = inbox(client)
    assert [(i["comment"], i["waiting_seconds"] // 3600, i["overdue"]) for i in data["items"]] == [
        ("First", 25, True), ("Second", 5, False)]
    assert (data["waiting"], data["overdue"], data["oldest_waiting_seconds"] // 3600) == (2, 1, 25)
    page = client.get("/feedback").get_data(as_text=True)
    assert page.index("First") < page.index("Second")
    assert "waiting 25 h" in page and "1 waiting more than a day" in page
    assert page.count('class="feedback-item overdue"') == 1


def test_marking_as_answered_takes_feedback_off_the_waiting_list(cast, client_for):
    """Mark as answered (page form) moves the feedback from waiting to answered."""
    rate(client_for(cast["writer"]), cast["post"], stars=2, comment="Noted?")
    client = client_for(cast["author"])
    fid = inbox(client)["items"][0]["id"]
    assert client.post(f"/feedback/{fid}/answered", data={"csrf_token": client.csrf}).status_code == 302
    assert inbox(client)["items"] == []
    assert [i["id"] for i in inbox(client, "answered")["items"]] == [fid]


def test_changing_the_comment_puts_it_back_in_the_inbox(cast, client_for, clock):
    """New words are new feedback (waiting again from now); the same words keep their place."""
    writer, author = client_for(cast["writer"]), client_for(cast["author"])
    rate(writer, cast["post"], stars=2, comment="Too short")
    fid = inbox(author)["items"][0]["id"]
    author.api("POST", f"/api/v1/feedback/{fid}/answered")
    clock.advance(hours=3)
    writer, author = client_for(cast["writer"]), client_for(cast["author"])  # sessions idle out meanwhile
    rate(writer, cast["post"], stars=3, comment="Too short")
    assert inbox(author)["items"] == []
    rate(writer, cast["post"], stars=3, comment="Still too short")
    items = inbox(author)["items"]
    assert [(i["id"], i["comment"], i["waiting_seconds"]) for i in items] == [(fid, "Still too short", 0)]


def test_withdrawing_the_rating_withdraws_its_comment(cast, client_for):
    """Unanswered feedback disappears with its rating; answered feedback keeps the replies but not the words."""
    writer, author = client_for(cast["writer"]), client_for(cast["author"])
    rate(writer, cast["post"], stars=2, comment="Gone soon")
    assert writer.api("DELETE", f"/api/v1/posts/{cast['post'].id}/rating").status_code == 204
    assert inbox(author, "all")["items"] == []
    rate(writer, cast["post"], stars=2, comment="Answered then gone")
    fid = inbox(author)["items"][0]["id"]
    author.api("POST", f"/api/v1/feedback/{fid}/replies", json={"body": "Thanks"})
    writer.api("DELETE", f"/api/v1/posts/{cast['post'].id}/rating")
    [item] = inbox(author, "all")["items"]
    assert item["comment"] is None and "Answered then gone" not in author.get(f"/feedback/{fid}").get_data(as_text=True)
    assert writer.get("/api/v1/me/feedback").get_json()["items"][0]["replies"][0]["body"] == "Thanks"
    assert author.api("POST", f"/api/v1/feedback/{fid}/replies", json={"body": "More"}).status_code == 404


def test_reply_forms_need_the_csrf_token(cast, client_for):
    """The reply and mark-answered forms, and the API's POSTs, are refused without the CSRF token."""
    rate(client_for(cast["writer"]), cast["post"], stars=2, comment="Hello")
    client = client_for(cast["author"])
    fid = inbox(client)["items"][0]["id"]
    assert client.post(f"/feedback/{fid}/reply", data={"body": "Hi"}).status_code == 400
    assert client.post(f"/feedback/{fid}/answered").status_code == 400
    assert client.post(f"/api/v1/feedback/{fid}/replies", json={"body": "Hi"}).status_code == 400
    assert client.post("/feedback/mine/seen").status_code == 400
    assert inbox(client)["items"][0]["replies"] == []


@pytest.mark.parametrize("body", ["", "   ", "x" * 2001, "a\u0000b", None, 5, ["hi"]])
def test_invalid_replies_are_refused_and_write_nothing(cast, client_for, body):
    """Blank, huge, non-text and control-character replies are a 400/422 and nothing is stored."""
    rate(client_for(cast["writer"]), cast["post"], stars=2, comment="Hello")
    client = client_for(cast["author"])
    fid = inbox(client)["items"][0]["id"]
    assert client.api("POST", f"/api/v1/feedback/{fid}/replies", json={"body": body}).status_code in (400, 422)
    assert inbox(client)["items"][0]["replies"] == []


def test_a_reply_reaches_the_writer_in_beacon(cast, client_for):
    """The writer gets a notice on the feed and the post page, reads the reply in "your feedback", marks it read."""
    writer = client_for(cast["writer"])
    rate(writer, cast["post"], stars=2, comment="Too short")
    author = client_for(cast["author"])
    fid = inbox(author)["items"][0]["id"]
    author.post(f"/feedback/{fid}/reply", data={"csrf_token": author.csrf, "body": "We are adding two dishes."})
    feed = writer.get("/").get_data(as_text=True)
    assert "1 new reply to your feedback" in feed
    post_page = writer.get(f"/posts/{cast['post'].id}").get_data(as_text=True)
    assert "We are adding two dishes." in post_page and "Ada Author" in post_page
    mine = writer.get("/feedback/mine").get_data(as_text=True)
    assert "We are adding two dishes." in mine and "Too short" in mine
    assert writer.get("/api/v1/me/feedback").get_json()["unseen_replies"] == 1
    assert writer.post("/feedback/mine/seen", data={"csrf_token": writer.csrf}).status_code == 302
    assert writer.get("/api/v1/me/feedback").get_json()["unseen_replies"] == 0
    assert "new reply" not in writer.get("/").get_data(as_text=True)
    assert inbox(author, "answered")["items"][0]["replies"][0]["body"] == "We are adding two dishes."


def test_a_reply_is_emailed_to_the_writer_after_commit(app, db, config, smtp, cast, client_for, clock):
    """With email among their channels, the writer gets the reply by email, once; nobody else gets anything."""
    choose(db, cast["writer"], channels=["email", "in_app"])
    rate(client_for(cast["writer"]), cast["post"], stars=2, comment="Too short")
    author = client_for(cast["author"])
    fid = inbox(author)["items"][0]["id"]
    author.post(f"/feedback/{fid}/reply", data={"csrf_token": author.csrf, "body": "Two more dishes from May."})
    assert smtp.messages == []  # queued, not sent on the request
    mailer = SmtpMailer(config.mail.smtp_host, config.mail.smtp_port, sender=config.mail.mail_from)
    try:
        with app.app_context():
            report = feedback_mail.send_due(db, clock, config, app.jinja_env, channel=mailer)
            again = feedback_mail.send_due(db, clock, config, app.jinja_env, channel=mailer)
    finally:
        mailer.close()
    assert (report.sent, again.sent) == (1, 0)
    assert smtp.recipients() == ["zelda.q@example.test"]
    [message] = smtp.parsed()
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "Two more dishes from May." in text and "Too short" in text and "Ada Author" in text
    assert "Canteen changes" in message["Subject"] and message["List-Unsubscribe"] is None
    html = message.get_body(preferencelist=("html",)).get_content()
    assert f"/feedback/mine#feedback-{fid}" in html


def test_no_email_when_the_writer_did_not_choose_email(app, db, config, smtp, cast, client_for, clock):
    """A writer whose channels leave out email gets the reply in Beacon only."""
    choose(db, cast["writer"], channels=["in_app"])
    rate(client_for(cast["writer"]), cast["post"], stars=2, comment="Too short")
    author = client_for(cast["author"])
    fid = inbox(author)["items"][0]["id"]
    author.api("POST", f"/api/v1/feedback/{fid}/replies", json={"body": "Thanks"})
    mailer = SmtpMailer(config.mail.smtp_host, config.mail.smtp_port, sender=config.mail.mail_from)
    try:
        with app.app_context():
            report = feedback_mail.send_due(db, clock, config, app.jinja_env, channel=mailer)
    finally:
        mailer.close()
    assert report.sent == 0 and smtp.messages == []
    assert client_for(cast["writer"]).get("/api/v1/me/feedback").get_json()["unseen_replies"] == 1


def test_a_persons_feedback_is_in_their_data_export_and_goes_with_their_erasure(db, cast, client_for, clock):
    """The export lists one's feedback with its replies; erasing the person deletes both."""
    writer = client_for(cast["writer"])
    rate(writer, cast["post"], stars=2, comment="Too short")
    author = client_for(cast["author"])
    fid = inbox(author)["items"][0]["id"]
    author.api("POST", f"/api/v1/feedback/{fid}/replies", json={"body": "Thanks"})
    exported = writer.get("/me/data.json").get_json()
    assert [(f["comment"], [r["body"] for r in f["replies"]]) for f in exported["feedback"]] == [("Too short", ["Thanks"])]
    erasure = lifecycle.erase(db, db.merge(cast["writer"]), clock.now)
    db.commit()
    assert erasure.deleted["feedback"] == 1
    assert inbox(author, "all")["items"] == []


def test_the_comments_csv_names_only_those_who_signed(cast, make_employee, client_for):
    """The post's comments as CSV: formula-safe, signed names only, and a 404 for other authors."""
    rate(client_for(cast["writer"]), cast["post"], stars=1, comment="=HYPERLINK(\"http://evil\")")
    signer = make_employee(display_name="Sam Signer")
    rate(client_for(signer), cast["post"], stars=5, comment="Lovely", signed=True)
    for viewer in ("author", "comms"):
        response = client_for(cast[viewer]).get(f"/publish/posts/{cast['post'].id}/feedback.csv")
        assert response.status_code == 200 and response.mimetype == "text/csv"
        body = response.get_data(as_text=True)
        assert "Sam Signer" in body and "Lovely" in body and "'=HYPERLINK" in body
        for trace in identity_of(cast["writer"]):
            assert trace not in body
    other = client_for(cast["other"])
    assert other.get(f"/publish/posts/{cast['post'].id}/feedback.csv").status_code == 404
    assert other.get("/publish/posts/999999/feedback.csv").status_code == 404


def test_the_scheduled_job_emails_replies(app, db, config, smtp, cast, client_for):
    """The feedback-send job (as the scheduler runs it) sends the queued reply email once."""
    choose(db, cast["writer"], channels=["email"])
    rate(client_for(cast["writer"]), cast["post"], stars=2, comment="Too short")
    author = client_for(cast["author"])
    fid = inbox(author)["items"][0]["id"]
    author.api("POST", f"/api/v1/feedback/{fid}/replies", json={"body": "Noted, thank you."})
    job = next(j for j in jobs.periodic_job_definitions() if j.id == "feedback-send")
    assert "sent 1" in jobs.run_once(app, job)
    assert "sent 0" in jobs.run_once(app, job)
    assert smtp.recipients() == ["zelda.q@example.test"]
