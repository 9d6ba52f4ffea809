"""Feed cards show who wrote the post, its cover image (its first picture) and an estimated reading time."""
from __future__ import annotations

import re

from intranet import feed
from intranet.models import Attachment, Post


def attach(db, post: Post, kind: str, n: int) -> Attachment:  # type: ignore[no-untyped-def]
    attachment = Attachment(post_id=post.id, filename=f"f{n}", content_type="image/png" if kind == "image" else
                            "application/pdf", size_bytes=10, sha256="0" * 64, storage_key=f"k{post.id}-{n}", kind=kind)
    db.add(attachment)
    db.commit()
    return attachment


def test_card_shows_author_cover_and_reading_time(client_for, make_employee, make_post, db):
    """The cover is the first image (not a PDF before it, not a later image); 690 words read in 3 minutes."""
    author = make_employee(display_name="Casey Comms")
    reader = make_employee()
    long = make_post(title="Long read", author_pk=author.id, summary="", body_text=" ".join(["word"] * 690))
    attach(db, long, "file", 1)
    cover = attach(db, long, "image", 2)
    attach(db, long, "image", 3)
    short = make_post(title="Short one", body_text="Hi")
    page = client_for(reader).get("/").get_data(as_text=True)
    long_card, short_card = (page.split(f'data-post-id="{p}"')[1].split("</li>")[0] for p in (long.id, short.id))
    assert '<span class="author">Casey Comms</span>' in long_card and "3 min read" in long_card
    assert re.search(rf'<img class="cover" src="/attachments/{cover.id}" alt=""', long_card)
    assert "<img" not in short_card and "1 min read" in short_card and 'class="author"' not in short_card


def test_post_page_shows_author_and_reading_time(client_for, make_employee, make_post):
    author = make_employee(display_name="Casey Comms")
    post = make_post(author_pk=author.id, summary="", body_text=" ".join(["word"] * 1000))
    page = client_for(make_employee()).get(f"/posts/{post.id}").get_data(as_text=True)
    assert '<span class="author">Casey Comms</span> · <span class="reading-time">4 min read</span>' in page


def test_reading_minutes_rounds_and_is_at_least_one():
    assert feed.reading_minutes(Post(title="t", summary="", body_text="")) == 1
    assert feed.reading_minutes(Post(title="t", summary="a b", body_text=" ".join(["w"] * 458))) == 2


def test_post_page_shows_cover_and_files(client_for, make_employee, make_post, db):
    """A picture attached (not in the body) shows as the cover; attached files are listed to download."""
    reader = make_employee()
    post = make_post(title="With files")
    pdf = attach(db, post, "file", 1)
    picture = attach(db, post, "image", 2)
    page = client_for(reader).get(f"/posts/{post.id}").get_data(as_text=True)
    assert f'<img class="post-cover" src="/attachments/{picture.id}" alt="">' in page
    files = page.split('id="files-heading"')[1].split("</section>")[0]
    assert f'href="/attachments/{pdf.id}">f1</a> <span class="muted">10 bytes</span>' in files
    assert f"/attachments/{picture.id}" not in files


def test_cover_is_not_repeated_when_the_body_shows_it(client_for, make_employee, make_post, db):
    reader = make_employee()
    post = make_post(title="Inline picture")
    picture = attach(db, post, "image", 1)
    post.body_html = f'<p>Look:</p><p><img src="/attachments/{picture.id}" alt="Team photo"></p>'
    db.add(post)
    db.commit()
    page = client_for(reader).get(f"/posts/{post.id}").get_data(as_text=True)
    assert 'class="post-cover"' not in page and "Attachments" not in page


def test_preview_matches_the_post_page(client_for, make_employee, make_post, db):
    """The desk's preview shows the same byline, cover and files as readers get."""
    comms = make_employee(is_comms=True, display_name="Casey Comms")
    post = make_post(title="Preview me", author_pk=comms.id)
    attach(db, post, "file", 1)
    picture = attach(db, post, "image", 2)
    page = client_for(comms).get(f"/publish/posts/{post.id}/preview").get_data(as_text=True)
    assert '<span class="author">Casey Comms</span>' in page and "1 min read" in page
    assert f'<img class="post-cover" src="/attachments/{picture.id}"' in page and 'id="files-heading"' in page
