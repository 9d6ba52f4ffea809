"""The API keys page in Chromium: an admin creates a key, sees it once, and the page stays accessible."""
from __future__ import annotations

import re
from typing import Any

import pytest

from tests.test_accessibility_browser import AXE, WIDTHS, serious_violations

pytestmark = [pytest.mark.browser, pytest.mark.sqlite_only]


def test_an_admin_creates_a_key_and_sees_it_once(page: Any, live_server: str, sign_in_browser: Any,
                                                 make_employee: Any) -> None:
    """Filling the form shows the key in a labelled field, once; reloading the list does not show it again."""
    if not AXE.exists():
        pytest.skip("axe-core is missing: run `cd tests && npm ci`")
    admin = make_employee(display_name="Alex Admin", is_admin=True)
    page.set_viewport_size(WIDTHS["phone"])
    sign_in_browser(admin)
    page.goto(f"{live_server}/admin/api-keys")
    page.get_by_label("Name (what the key is for)").fill("Intranet portal")
    page.get_by_label(re.compile("Read feeds")).check()
    page.get_by_role("button", name="Create key").click()
    key_field = page.get_by_label("The new key")
    key_text = key_field.input_value()
    assert re.fullmatch(r"bcn_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", key_text)
    assert serious_violations(page) == []
    assert page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
    page.goto(f"{live_server}/admin/api-keys")
    assert key_text not in page.content() and "Intranet portal" in page.content()
