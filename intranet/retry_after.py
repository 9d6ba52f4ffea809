"""Reading an HTTP ``Retry-After`` header (RFC 9110 10.2.3), for every outside service Beacon calls.

Graph and Teams both throttle with 429/503 and say when to come back, either as a number of
seconds or as an HTTP date; both forms must be honoured, or a client retries too early and is
throttled for longer.
"""
from __future__ import annotations

import datetime as dt
import email.utils


def retry_after_seconds(value: str | None, now: dt.datetime) -> float | None:
    """Seconds to wait according to a ``Retry-After`` value, or ``None`` when it says nothing usable.

    :param value: The header as received: delta seconds (``"7"``) or an HTTP date
        (``"Wed, 21 Oct 2026 07:28:00 GMT"``).
    :param now: The current time (aware), against which an HTTP date is measured.
    :return: A non-negative number of seconds; a date in the past means "now" (0).
    """
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # float() also reads "nan" and "inf", which no server means.
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110: HTTP dates are GMT
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())
