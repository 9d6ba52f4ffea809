"""examples/host_app: a host intranet with its own sign-in, pages and table, embedding Beacon's feed."""
from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from examples.host_app import create_app
from intranet import migrate
from intranet.db import make_engine
from intranet.models import Employee

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def _host(tmp_path: Any, name: str, beacon_engine: Any = None, **config: Any) -> Any:
    app = create_app({"TESTING": True, "SECRET_KEY": secrets.token_hex(32),
                      "HOST_DATABASE_URL": f"sqlite:///{tmp_path / name}-host.db", **config},
                     beacon_engine=beacon_engine)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["host", "add-user", "ada@example.test", "pw-ada"])
    assert result.exit_code == 0, result.output
    return app


def _sign_in(client: Any, email: str = "ada@example.test", password: str = "pw-ada", next: str = "") -> Any:
    return client.post(f"/login{next}", data={"email": email, "password": password})


@pytest.fixture
def host(tmp_path, database):  # type: ignore[no-untyped-def]
    """The example host on its own SQLite file, with Beacon on the database under test at /news."""
    return _host(tmp_path, "one", beacon_engine=database)


def test_the_hosts_sign_in_is_enough_for_the_news(host, make_employee, make_post):
    """Signed in to the host, Ada reads her Beacon feed at /news/ with no second sign-in."""
    make_employee(email="ada@example.test", display_name="Ada Lovelace")
    make_post(title="Canteen reopens")
    client = host.test_client()
    assert _sign_in(client).status_code == 302
    page = client.get("/news/").get_data(as_text=True)
    assert "Canteen reopens" in page and "Ada Lovelace" in page
    assert client.get("/news/api/v1/feed").get_json()["items"][0]["title"] == "Canteen reopens"


def test_signed_out_news_readers_go_through_the_hosts_sign_in(host, make_employee):
    """/news/ sends a stranger to the host's /login?next=/news/, which brings them back after signing in."""
    make_employee(email="ada@example.test")
    client = host.test_client()
    to_beacon_sign_in = client.get("/news/").location
    to_host = client.get(to_beacon_sign_in).location
    assert to_host == "/login?next=%2Fnews%2F"
    assert _sign_in(client, next="?next=%2Fnews%2F").location == "/news/"
    assert client.get("/news/").status_code == 200


def test_host_pages_keep_their_own_headers_cookies_and_forms(host, make_employee):
    """The host's pages carry the host's CSP and cookie; its note form posts without any token."""
    make_employee(email="ada@example.test")
    client = host.test_client()
    _sign_in(client)
    assert client.post("/notes", data={"text": "Lunch at noon"}).status_code == 302
    home = client.get("/")
    assert "Lunch at noon" in home.get_data(as_text=True)
    assert home.headers["Content-Security-Policy"] == "default-src 'self'; style-src 'self' 'unsafe-inline'"
    assert "X-Frame-Options" not in home.headers and "Cache-Control" not in home.headers
    assert client.get_cookie("host_session") is not None
    assert client.get_cookie("__Host-beacon") is None and client.get_cookie("beacon_session") is None


def test_beacon_pages_in_the_host_keep_beacons_headers_and_csrf(host, make_employee, make_post):
    """Under /news, Beacon's strict CSP and no-store apply, and a write without Beacon's token is refused."""
    make_employee(email="ada@example.test")
    post = make_post()
    client = host.test_client()
    _sign_in(client)
    page = client.get("/news/")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store" and "X-Host-Page" not in page.headers
    url = f"/news/api/v1/posts/{post.id}/rating"
    assert client.put(url, json={"stars": 5}).status_code == 400
    token = CSRF_META.search(page.get_data(as_text=True)).group(1)
    assert client.put(url, json={"stars": 5}, headers={"X-CSRFToken": token}).status_code == 200


def test_the_hosts_tables_and_beacons_stay_apart(host, database):
    """The host's tables live in the host's database, Beacon's intranet_* tables in Beacon's."""
    host_tables = set(sa.inspect(host.extensions["host_db"]).get_table_names())
    assert host_tables == {"host_users", "host_notes"}
    assert not any(name.startswith("host_") for name in sa.inspect(database).get_table_names())


def test_two_host_apps_in_one_process_stay_apart(tmp_path, database, make_employee, make_post):
    """Two hosts with their own prefixes, keys, names and databases share nothing but the Intranet object."""
    one = _host(tmp_path, "one", beacon_engine=database, INTRANET_ORG_NAME="One News")
    two_beacon = make_engine(f"sqlite:///{tmp_path / 'two-beacon.db'}")
    migrate.upgrade(two_beacon)
    two = _host(tmp_path, "two", beacon_engine=two_beacon, INTRANET_URL_PREFIX="/comms",
                INTRANET_ORG_NAME="Two Comms", INTRANET_SECRET_KEY=secrets.token_hex(32))
    make_employee(email="ada@example.test")
    make_post(title="Only in one")
    with Session(two_beacon) as db:
        db.add(Employee(employee_id="B1", email="ada@example.test", display_name="Ada in two"))
        db.commit()

    first, second = one.test_client(), two.test_client()
    _sign_in(first), _sign_in(second)
    page_one = first.get("/news/").get_data(as_text=True)
    page_two = second.get("/comms/").get_data(as_text=True)
    assert "One News" in page_one and "Only in one" in page_one
    assert "Two Comms" in page_two and "Ada in two" in page_two and "Only in one" not in page_two
    assert second.get("/news/").status_code == 404 and first.get("/comms/").status_code == 404
    assert one.extensions["intranet"] is not two.extensions["intranet"]
    assert one.extensions["intranet"].secret_key != two.extensions["intranet"].secret_key

    # A token from one host is worthless on the other, even for the same person.
    token_one, token_two = CSRF_META.search(page_one).group(1), CSRF_META.search(page_two).group(1)
    change = {"cadence": "off"}
    assert second.put("/comms/api/v1/me/preferences", json=change, headers={"X-CSRFToken": token_one}).status_code == 400
    assert second.put("/comms/api/v1/me/preferences", json=change, headers={"X-CSRFToken": token_two}).status_code == 200
    two_beacon.dispose()


def test_the_scheduler_is_not_part_of_the_host_process(host):
    """Embedded, `flask intranet serve` would not start the scheduler: it runs as `flask intranet scheduler`."""
    assert not host.extensions["intranet"].settings.scheduler.run_in_server
    assert "scheduler" in host.cli.commands["intranet"].commands  # type: ignore[attr-defined]


def test_the_documented_commands_set_the_example_up(tmp_path):
    """init-db, demo seed and host add-user, as the example's docstring lists them, give a working /news/."""
    app = create_app({"TESTING": True, "HOST_DATABASE_URL": f"sqlite:///{tmp_path / 'host.db'}",
                      "INTRANET_DATABASE_URL": f"sqlite:///{tmp_path / 'beacon.db'}"})
    runner = app.test_cli_runner()
    for args in (["intranet", "init-db"], ["intranet", "demo", "seed", "--if-empty", "--employees", "12"],
                 ["host", "add-user", "employee@beacon.example", "pw"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, result.output
    client = app.test_client()
    _sign_in(client, "employee@beacon.example", "pw")
    assert client.get("/news/api/v1/feed").get_json()["items"]
    assert _sign_in(app.test_client(), "employee@beacon.example", "wrong").status_code == 401
    app.extensions["intranet"].engine.dispose()
    app.extensions["host_db"].dispose()
