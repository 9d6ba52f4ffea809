"""One reading of ``Retry-After`` for every outside service (Graph, Teams)."""
from __future__ import annotations

import datetime as dt

import pytest

from intranet.retry_after import retry_after_seconds

NOW = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(("value", "seconds"), [
    ("7", 7.0),
    (" 120 ", 120.0),
    ("1.5", 1.5),
    ("Tue, 24 Nov 2026 09:02:00 GMT", 120.0),
    ("Tue, 24 Nov 2026 08:00:00 GMT", 0.0),      # a date in the past: retry now
    ("-5", 0.0),
])
def test_delta_seconds_and_http_dates_are_both_read(value: str, seconds: float) -> None:
    """Both forms RFC 9110 allows give the seconds to wait, never a negative number."""
    assert retry_after_seconds(value, NOW) == seconds


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "nan", "inf", "Tue, 99 Nov 2026 25:00:00 GMT"])
def test_values_that_say_nothing_usable_are_none(value: str | None) -> None:
    """Absent or unreadable values leave the caller's own backoff in charge."""
    assert retry_after_seconds(value, NOW) is None
