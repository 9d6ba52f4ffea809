"""Must-read acknowledgements are named and disclosed: the author and admins list and export them."""
from __future__ import annotations

import csv
import io

from intranet import csv_export, feed
from tests.conftest import NOW


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_author_lists_who_has_and_has_not_acknowledged(client_for, make_employee, make_post, db):
    """Pending people first, then those who acknowledged; the counts are of the audience as it is now."""
    author = make_employee(is_contributor=True, display_name="Ada Author", department="Comms")
    sales = [make_employee(display_name=f"Seller {i}") for i in range(3)]
    make_employee(display_name="Fin Outsider", department="Finance")
    post = make_post({"segments": [{"departments": ["Sales"]}]}, must_read=True, author_pk=author.id)
    feed.acknowledge(db, sales[0], post, now=NOW)
    db.commit()
    client = client_for(author)
    page = client.get(f"/publish/posts/{post.id}/acks").get_data(as_text=True)
    assert "1 of 3 acknowledged" in page
    pending, done = page.split('id="pending"')[1].split('id="acknowledged"')
    assert "Seller 1" in pending and "Seller 2" in pending and "Seller 0" not in pending
    assert "Seller 0" in done and "Fin Outsider" not in page
    exported = client.get(f"/publish/posts/{post.id}/acks.csv")
    assert exported.mimetype == "text/csv" and "attachment" in exported.headers["Content-Disposition"]
    rows = _rows(exported.get_data(as_text=True))
    assert [(r["name"], r["acknowledged_at"] != "") for r in rows] == [
        ("Seller 1", False), ("Seller 2", False), ("Seller 0", True)]


def test_admins_see_the_list_and_others_get_404(client_for, make_employee, make_post):
    """An admin may list any must-read; a comms manager who is not the author, or an employee, gets 404
    (as for a post that does not exist); a post that is not a must-read has no list."""
    author = make_employee(is_contributor=True)
    post = make_post(must_read=True, author_pk=author.id)
    plain = make_post(author_pk=author.id)
    assert client_for(make_employee(is_admin=True)).get(f"/publish/posts/{post.id}/acks").status_code == 200
    for person in (make_employee(is_comms=True), make_employee()):
        client = client_for(person)
        assert client.get(f"/publish/posts/{post.id}/acks").status_code == 404
        assert client.get(f"/publish/posts/{post.id}/acks.csv").status_code == 404
    assert client_for(author).get(f"/publish/posts/{plain.id}/acks").status_code == 404
    assert client_for(author).get("/publish/posts/999999/acks").status_code == 404


def test_the_post_tells_people_their_acknowledgement_is_recorded_by_name(client_for, make_employee, make_post):
    """The disclosure is on the post, before and after acknowledging."""
    person = make_employee()
    post = make_post(must_read=True)
    client = client_for(person)
    assert "recorded with your name" in client.get(f"/posts/{post.id}").get_data(as_text=True)
    client.post(f"/posts/{post.id}/acknowledge", data={"csrf_token": client.csrf})
    assert "can see that you did" in client.get(f"/posts/{post.id}").get_data(as_text=True)


def test_export_cells_cannot_run_as_formulas(client_for, make_employee, make_post):
    """A department or a name that starts like a formula is exported as text (a leading ')."""
    author = make_employee(is_contributor=True)
    make_employee(display_name="=HYPERLINK(\"http://evil\",\"x\")", department="+Sales")
    make_employee(display_name="@SUM(A1)", department="-Ops")
    post = make_post(must_read=True, author_pk=author.id)
    text = client_for(author).get(f"/publish/posts/{post.id}/acks.csv").get_data(as_text=True)
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    assert "'=HYPERLINK(\"http://evil\",\"x\")" in cells and "'+Sales" in cells and "'@SUM(A1)" in cells
    assert "'-Ops" in cells
    assert not any(cell.startswith(csv_export.FORMULA_STARTS) for cell in cells)


def test_safe_cells_leave_data_alone_and_neutralize_formulas():
    """Every formula start (= + - @ tab CR) gets a '; numbers, plain text and empty cells are unchanged."""
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert csv_export.safe_cell(f"{start}1+1") == f"'{start}1+1"
    assert [csv_export.safe_cell(v) for v in (-3, 2.5, "Sales", None, True, "a=b")] == [-3, 2.5, "Sales", "", "true",
                                                                                     "a=b"]
    assert csv_export.to_csv(["h"], [["=1"], [-1]]) == "h\r\n'=1\r\n-1\r\n"


def test_the_desk_links_the_list_and_a_former_author_loses_it(client_for, make_employee, make_post, db):
    """The post's desk page links to the list; once the author's contributor role is gone, so is the list."""
    author = make_employee(is_contributor=True)
    post = make_post(must_read=True, author_pk=author.id)
    client = client_for(author)
    assert f'href="/publish/posts/{post.id}/acks"' in client.get(f"/publish/posts/{post.id}").get_data(as_text=True)
    author.is_contributor = False
    db.add(author)
    db.commit()
    assert client.get(f"/publish/posts/{post.id}/acks").status_code == 404
