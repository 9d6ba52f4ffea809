"""Languages: which ones Beacon speaks, whose language is whose, and the message catalogs.

Beacon's interface comes in the languages of :data:`SUPPORTED` (catalogs in
``intranet/translations/<lang>/LC_MESSAGES/beacon.po``, compiled to ``.mo`` by ``make install``).
A person's language is the one they chose in their preferences, else the one the directory synced
(``Employee.language``, a BCP 47 tag such as ``es-ES``) when Beacon speaks it; pages for people
signed out follow the browser's ``Accept-Language`` (the web edge decides that), and English is
the last resort.

This module knows nothing of Flask: digests and emails are rendered outside any request, by the
scheduler, with :func:`translations` for the recipient's language.
"""
from __future__ import annotations

import datetime as dt
import functools
import io
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date as _babel_format_date, format_datetime as _babel_format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from jinja2 import Environment

logger = logging.getLogger(__name__)

#: The languages of Beacon's interface, English (the source language) first.
SUPPORTED: tuple[str, ...] = ("en", "es", "ca")
#: The same, as a type for input models.
Language = Literal["en", "es", "ca"]
DEFAULT = "en"
#: Each language in its own words (what a person picks from, whatever language the page is in).
NAMES: dict[str, str] = {"en": "English", "es": "Español", "ca": "Català"}
DOMAIN = "beacon"
CATALOGS = Path(__file__).resolve().parent / "translations"


def N_(message: str) -> str:  # noqa: N802 (the conventional name, which the extractor looks for)
    """Mark *message* for extraction without translating it now (it is translated where shown)."""
    return message


class Phrase:
    """Words to be said later, in whatever language the reader reads: English marked ``N_``, and its values.

    A service that cannot know the reader (errors, run outcomes) keeps a phrase; whoever shows it
    calls :meth:`in_language`. A value may itself be a phrase (worded in the same language), or a
    tuple of them (each worded, joined with ``"; "``); other values are data, never translated.
    ``capitalised`` upper-cases the first letter of the result (a phrase that starts a sentence);
    ``english`` is said instead in English (words a library wrote, which Beacon's catalogs reword).
    """

    __slots__ = ("message", "values", "capitalised", "english")

    def __init__(self, message: str, /, *, capitalised: bool = False, english: str | None = None,
                 **values: Any) -> None:
        self.message = message
        self.values = values
        self.capitalised = capitalised
        self.english = english

    def in_language(self, language: str | None) -> str:
        """The phrase in *language*'s words (English when Beacon does not speak it)."""
        if self.english is not None and (supported(language) or DEFAULT) == DEFAULT:
            return self.english
        text = translate(language, self.message, **{name: worded(value, language) for name, value in self.values.items()})
        return text[:1].upper() + text[1:] if self.capitalised else text

    def __str__(self) -> str:
        return self.in_language(DEFAULT)

    def __repr__(self) -> str:
        return f"Phrase({self.message!r}, **{self.values!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Phrase) and (self.message, self.values) == (other.message, other.values)

    def __hash__(self) -> int:
        return hash(self.message)


def worded(value: Any, language: str | None) -> Any:
    """*value* as shown in *language*: a :class:`Phrase` (or a tuple of them) worded, anything else as is."""
    if isinstance(value, Phrase):
        return value.in_language(language)
    if isinstance(value, tuple):
        return "; ".join(str(worded(v, language)) for v in value)
    return value


@functools.cache
def _pattern(template: str) -> re.Pattern[str]:
    """A regular expression matching what *template* writes, each placeholder a named group."""
    seen: set[str] = set()
    regex = []
    for part in re.split(r"(%\(\w+\)[sd]|%%)", template):
        if part == "%%":
            regex.append("%")
        elif part.startswith("%(") and part[-1] in "sd" and part.endswith((")s", ")d")):
            name = part[2:-2]
            regex.append(f"(?P={name})" if name in seen else f"(?P<{name}>.+?)")
            seen.add(name)
        else:
            regex.append(re.escape(part))
    return re.compile("".join(regex) + r"\Z", re.S)


def recognised(text: str, templates: Iterable[str]) -> Phrase | str:
    """The phrase among *templates* that wrote the English *text* (its values read back), else *text* itself.

    For words stored in English before anyone knew who would read them (a held sync run's reason,
    kept in the database): they are worded again, in the reader's language, when shown.
    """
    for template in templates:
        match = _pattern(template).match(text)
        if match:
            return Phrase(template, **match.groupdict())
    return text


def supported(tag: str | None) -> str | None:
    """The language of :data:`SUPPORTED` that the tag *tag* (``es``, ``es-ES``, ``ca_ES``) names, or None."""
    if not tag:
        return None
    primary = tag.replace("_", "-").split("-", 1)[0].strip().lower()
    return primary if primary in SUPPORTED else None


def choose(chosen: str | None, directory: str | None) -> str | None:
    """A person's language: the one they *chosen* in their preferences, else the *directory*'s, if Beacon speaks it.

    None means "not known": the caller falls back (to the browser's language, then English).
    """
    return supported(chosen) or supported(directory)


def name(language: str) -> str:
    """*language* in its own words (``es`` -> ``Español``); the tag itself when Beacon does not know it."""
    return NAMES.get(language) or NAMES.get(supported(language) or "", language)


def name_in(language: str, shown_in: str) -> str:
    """*language*'s name as a speaker of *shown_in* says it (``es`` in ``ca`` -> ``espanyol``)."""
    try:
        found = Locale.parse(shown_in).languages.get(language.replace("-", "_").split("_")[0])
    except (ValueError, TypeError):
        found = None
    return found or name(language)


def _compiled(po: Path) -> Translations:
    """The catalog *po* as translations: its ``.mo`` when that is newer, else compiled in memory.

    ``make install`` compiles the ``.mo`` files; compiling here as well means a checkout whose
    catalogs changed since (or that never ran the install step) still speaks every language.
    """
    mo = po.with_suffix(".mo")
    if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
        with mo.open("rb") as fp:
            return Translations(fp, domain=DOMAIN)
    with po.open("rb") as fp:
        catalog = read_po(fp, locale=po.parent.parent.name, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


@functools.cache
def translations(language: str | None) -> NullTranslations:
    """The message catalog for *language* (English, the source, is the identity)."""
    language = supported(language) or DEFAULT
    po = CATALOGS / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if language == DEFAULT or not po.exists():
        return NullTranslations()
    return _compiled(po)


def translate(language: str | None, message: str, /, **values: Any) -> str:
    """*message* in *language*, with ``%(name)s`` placeholders filled from *values*."""
    text = translations(language).gettext(message)
    return text % values if values else text


def ntranslate(language: str | None, singular: str, plural: str, num: int, /, **values: Any) -> str:
    """The singular or plural form of a message for *num*, in *language* (``%(num)d`` is filled)."""
    values.setdefault("num", num)
    return translations(language).ngettext(singular, plural, num) % values


#: Date and time patterns (CLDR, https://unicode.org/reports/tr35/tr35-dates.html) in each locale's words.
DATETIME = "dd MMM y, HH:mm"
DATE = "dd MMM y"
DAY_MONTH = "dd MMM"
FULL = "EEE dd MMM y, HH:mm"
#: A calendar date with its weekday ("Tue 1 Dec 2026", "dt. 1 de des. 2026").
DAY_DATE = "EEE d MMM y"


def format_datetime(value: dt.datetime, pattern: str, *, language: str | None, zone: ZoneInfo | None = None) -> str:
    """*value* (UTC when naive) in *zone*, written with the CLDR *pattern* in *language*'s words."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    if zone is not None:
        value = value.astimezone(zone)
    # babel would convert to its own default zone; the value is already local, so it keeps its own.
    return _babel_format_datetime(value, pattern, tzinfo=value.tzinfo, locale=supported(language) or DEFAULT)


def format_date(value: dt.date, pattern: str, *, language: str | None) -> str:
    """The calendar date *value* (no zone: it is already someone's local date) with the CLDR *pattern* in *language*'s words."""
    return _babel_format_date(value, pattern, locale=supported(language) or DEFAULT)


def weekday_names(language: str | None) -> list[str]:
    """Monday to Sunday, abbreviated, in *language*'s words (CLDR: ``Mon``, ``lun``, ``dl.``)."""
    days = Locale.parse(supported(language) or DEFAULT).days["format"]["abbreviated"]
    return [days[i] for i in range(7)]


def template_functions(language: Callable[[], str | None]) -> dict[str, Any]:
    """``gettext`` and ``ngettext`` for templates, in the catalog of the language *language* returns when used.

    Jinja wraps them as its "newstyle" gettext (what ``{% trans %}`` compiles to): placeholders are
    filled by the function, and in an autoescaped template the translation counts as markup while
    the values put into it are escaped. The wrapping is Jinja's own, done in a private environment,
    so a host's environment keeps its own callables.
    """
    wrapper = Environment(extensions=["jinja2.ext.i18n"])
    wrapper.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda message: translations(language()).gettext(message),
        ngettext=lambda singular, plural, n: translations(language()).ngettext(singular, plural, n),
        newstyle=True)
    return {"gettext": wrapper.globals["gettext"], "ngettext": wrapper.globals["ngettext"]}


@functools.cache
def message_functions(language: str | None) -> dict[str, Any]:
    """Template functions for a message in *language* (an email rendered for its recipient, outside any request)."""
    fixed = supported(language) or DEFAULT
    return template_functions(lambda: fixed)
