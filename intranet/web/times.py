"""Times on pages: always in the viewer's zone, one filter for every template.

Templates write ``{{ when(post.published_at) }}`` (the macro in ``templates/intranet/_time.html``,
built on the ``beacon_time`` filter), which renders ``<time datetime="…UTC…" title="Tue 24 Nov
2026, 10:00 (Europe/Berlin)">24 Nov 2026, 10:00</time>``; ``when(t, "relative")`` says "2 hours ago"
instead (feeds), and ``when(t, "date")`` only the date. Relative times are computed here from Beacon's
clock (``state().clock``), not in the browser, so a page reads the same in a test as in use.
The viewer's zone is their directory zone, or the organisation's when they have none.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

from flask import Flask, g

from intranet import languages, zones
from intranet.web import i18n
from intranet.web.context import current_employee_or_none, now, settings


def viewer_zone() -> ZoneInfo:
    """The signed-in person's zone (else the organisation's), for showing times."""
    if "intranet_viewer_zone" not in g:
        employee = current_employee_or_none()
        g.intranet_viewer_zone = zones.zone_or_default(employee.timezone if employee else None,
                                                       settings().site.org_timezone)
    return g.intranet_viewer_zone


def relative(value: dt.datetime, at: dt.datetime, zone: ZoneInfo, language: str | None = None) -> str:
    """*value* said relative to *at* in *language*: "just now", "5 minutes ago", "in 3 hours", "yesterday".

    Beyond a week it falls back to the local date ("24 Nov", with the year when it is not *at*'s).
    """
    seconds = (at - value).total_seconds()
    past = seconds >= 0
    seconds = abs(seconds)
    if seconds < 60:
        return languages.translate(language, "just now")
    if seconds < 3600:
        n = int(seconds // 60)
        return (languages.ntranslate(language, "%(num)d minute ago", "%(num)d minutes ago", n) if past
                else languages.ntranslate(language, "in %(num)d minute", "in %(num)d minutes", n))
    if seconds < 86400:
        n = int(seconds // 3600)
        return (languages.ntranslate(language, "%(num)d hour ago", "%(num)d hours ago", n) if past
                else languages.ntranslate(language, "in %(num)d hour", "in %(num)d hours", n))
    days = abs((at.astimezone(zone).date() - value.astimezone(zone).date()).days)
    if days == 1:
        return languages.translate(language, "yesterday") if past else languages.translate(language, "tomorrow")
    if days >= 7:
        same_year = value.astimezone(zone).year == at.astimezone(zone).year
        return languages.format_datetime(value, languages.DAY_MONTH if same_year else languages.DATE,
                                         language=language, zone=zone)
    return (languages.ntranslate(language, "%(num)d day ago", "%(num)d days ago", days) if past
            else languages.ntranslate(language, "in %(num)d day", "in %(num)d days", days))


@dataclasses.dataclass(frozen=True)
class LocalTime:
    """A time as a page shows it: ``text`` to read, ``title`` in full, ``iso`` (UTC) for ``<time datetime>``."""

    iso: str
    title: str
    text: str

    def __str__(self) -> str:
        return self.text


def beacon_time(value: dt.datetime | None, style: str = "datetime") -> LocalTime | None:
    """*value* in the viewer's zone; *style* is ``datetime``, ``date`` or ``relative`` (to Beacon's clock)."""
    if value is None:
        return None
    if value.tzinfo is None:  # stored times are UTC; SQLite may hand them back naive
        value = value.replace(tzinfo=dt.timezone.utc)
    zone = viewer_zone()
    language = i18n.locale()
    if style == "relative":
        text = relative(value, now(), zone, language)
    else:
        text = languages.format_datetime(value, languages.DATE if style == "date" else languages.DATETIME,
                                         language=language, zone=zone)
    full = languages.format_datetime(value, languages.FULL, language=language, zone=zone)
    return LocalTime(iso=value.astimezone(dt.timezone.utc).isoformat(timespec="seconds"),
                     title=f"{full} ({zone.key})", text=text)


def beacon_date(value: dt.date | None, style: str = "date") -> str:
    """A calendar date (already local, e.g. a hire date) in the page's language; *style* ``date`` or ``day`` (with the weekday)."""
    if value is None:
        return ""
    return languages.format_date(value, languages.DAY_DATE if style == "day" else languages.DATE,
                                 language=i18n.locale())


def init_app(app: Flask) -> None:
    # Prefixed: the filter and global land in a host app's Jinja environment.
    app.add_template_filter(beacon_time, "beacon_time")
    app.add_template_filter(beacon_date, "beacon_date")
    app.add_template_global(lambda: viewer_zone().key, "beacon_zone_name")
