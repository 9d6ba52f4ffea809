"""Installable on a phone: the manifest, the service worker, and the feed's last state offline."""
from __future__ import annotations

import struct
from typing import Any

import pytest

from intranet.models import Employee


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.settings(INTRANET_ORG_NAME="Acme News")
def test_manifest_names_the_app_and_its_icons(app: Any) -> None:
    client = app.test_client()
    response = client.get("/manifest.webmanifest")
    assert response.status_code == 200 and response.mimetype == "application/manifest+json"
    manifest = response.json
    assert manifest["name"] == "Acme News" and manifest["start_url"] == "/" and manifest["scope"] == "/"
    assert manifest["display"] == "standalone"
    purposes = set()
    for icon in manifest["icons"]:
        with client.get(icon["src"]) as image:
            assert image.status_code == 200 and image.mimetype == "image/png"
            width, height = png_size(image.data)
        assert icon["sizes"] == f"{width}x{height}"
        purposes.add((icon["purpose"], width))
    assert {("any", 192), ("any", 512), ("maskable", 512)} <= purposes  # what Chromium asks to install
    assert "Set-Cookie" not in response.headers


def test_pages_link_the_manifest_and_the_worker(client_for: Any, make_employee: Any) -> None:
    page = client_for(make_employee()).get("/").get_data(as_text=True)
    assert '<link rel="manifest" href="/manifest.webmanifest">' in page
    assert 'data-service-worker="/service-worker.js"' in page


def test_service_worker_and_offline_page(app: Any) -> None:
    client = app.test_client()
    with client.get("/service-worker.js") as worker:
        assert worker.status_code == 200 and worker.mimetype in ("text/javascript", "application/javascript")
        assert worker.headers["Cache-Control"] == "no-cache"
        assert b"beacon-feed" in worker.data
    offline = client.get("/offline")
    assert offline.status_code == 200 and "You are offline" in offline.get_data(as_text=True)
    assert "Set-Cookie" not in offline.headers  # anonymous pages write no session


@pytest.mark.settings(INTRANET_URL_PREFIX="/news")
def test_under_a_url_prefix_the_app_is_scoped_to_it(app: Any) -> None:
    manifest = app.test_client().get("/news/manifest.webmanifest").json
    assert manifest["start_url"] == "/news/" and manifest["scope"] == "/news/"
    assert all(icon["src"].startswith("/news/_beacon/static/") for icon in manifest["icons"])
    with app.test_client().get("/news/service-worker.js") as worker:
        assert worker.status_code == 200


@pytest.mark.browser
@pytest.mark.sqlite_only
def test_the_feed_opens_offline_as_last_seen_and_sign_out_forgets_it(page: Any, live_server: str,
                                                                      sign_in_browser: Any, make_employee: Any,
                                                                      make_post: Any) -> None:
    me: Employee = make_employee(department="Sales")
    make_post({"segments": [{"departments": ["Sales"]}]}, title="Shift rota for December")
    sign_in_browser(me)
    page.evaluate("() => navigator.serviceWorker.ready")
    page.reload()  # now controlled by the worker, which keeps this copy of the feed
    assert page.evaluate("() => Boolean(navigator.serviceWorker.controller)")
    page.wait_for_function("() => caches.has('beacon-feed')")

    page.context.set_offline(True)
    page.reload()
    assert page.locator(".feed-item h2").all_inner_texts() == ["Shift rota for December"]
    assert page.locator(".offline-note").is_visible()
    page.goto(f"{live_server}/groups")
    assert "You are offline" in page.locator("h1").inner_text()

    page.context.set_offline(False)
    page.goto(f"{live_server}/")
    with page.expect_navigation():
        page.click("text=Sign out")
    assert not page.evaluate("() => caches.has('beacon-feed')")
    page.context.set_offline(True)
    page.goto(f"{live_server}/")
    assert "Shift rota" not in page.content()
