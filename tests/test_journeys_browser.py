"""The journey timeline in Chromium, at phone (360 px) and desktop width."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from intranet.journeys import definitions

pytestmark = [pytest.mark.browser, pytest.mark.sqlite_only]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"


@pytest.mark.parametrize("width", [360, 1280])
def test_timeline_reads_in_order_and_fits_the_screen(page: Any, live_server: str, db: Any, make_employee: Any,
                                                     sign_in_browser: Any, clock: Any, width: int) -> None:
    """A comms manager previews a journey for a new joiner: three dated steps, in order, no sideways scrolling
    (on the phone, in Catalan: the longer words must fit too)."""
    manager = make_employee(is_comms=True, display_name="Casey Comms", language="ca" if width == 360 else "en")
    joiner = make_employee(display_name="Nadia Newcomer", hire_date=dt.date(2026, 12, 1), timezone="Europe/Madrid")
    journey = definitions.create_journey(db, definitions.JourneyIn(name="New joiners", trigger="hire"),
                                         author=manager, now=clock.now)
    for key, offset, title in (("welcome", 0, "Welcome aboard"), ("tools", 3, "A rather long title for the tools "
                                                                              "guide that must wrap on a phone"),
                               ("benefits", 10, "Your benefits")):
        definitions.add_step(db, journey, definitions.StepIn(key=key, offset_days=offset, title=title,
                                                             must_read=key == "benefits"), author=manager, now=clock.now)
    db.commit()
    page.set_viewport_size({"width": width, "height": 740})
    sign_in_browser(manager)
    page.goto(f"{live_server}/journeys/{journey.id}/timeline?employee={joiner.email}")
    steps = page.locator("#journey-timeline .timeline-step")
    assert steps.count() == 3
    dates = [steps.nth(i).locator("time").get_attribute("datetime") for i in range(3)]
    assert dates == ["2026-12-01", "2026-12-04", "2026-12-11"]
    assert "Nadia Newcomer" in page.locator("#timeline-for").inner_text()
    if width == 360:
        assert page.locator("html").get_attribute("lang") == "ca"
        assert "incorporació el 01 de des. 2026" in page.locator("#timeline-for").inner_text()
        assert "dt. 1 de des. 2026" in steps.nth(0).inner_text()
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"journey-timeline-test-{width}.png"), full_page=True)
