"""Time zones people may choose, how to read and show them, and country names (from tzdata; in
Spanish and Catalan from Babel's CLDR data, see :func:`choices` and :func:`country_names`).

The IANA database holds ~600 names, and most are not places anyone would pick: ``Factory``,
``localtime`` (the *server's* zone), ``posix/...`` and ``right/...`` copies, and backward-compatible
links such as ``US/Eastern`` or ``Asia/Calcutta``. People choose from the canonical zones of
``zone.tab`` (one or more per country, named after a city) plus ``UTC``; every form and API that
takes a zone asks :func:`parse_zone`, so the list offered and the rule enforced are the same.
Stored zones that came from elsewhere (a directory sync) are still *displayed* through
:func:`zone_or_default`, which never fails.
"""
from __future__ import annotations

import dataclasses
import functools
import unicodedata
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.dates import get_timezone_location

from intranet.errors import InvalidInput
from intranet.languages import N_, supported

EXTRA_ZONES = ("UTC",)
#: The pickers' groups (tzdata's areas), marked for translation: the picker says them in the viewer's language.
AREAS: dict[str, str] = {
    "Africa": N_("Africa"), "America": N_("America"), "Antarctica": N_("Antarctica"), "Arctic": N_("Arctic"),
    "Asia": N_("Asia"), "Atlantic": N_("Atlantic"), "Australia": N_("Australia"), "Europe": N_("Europe"),
    "Indian": N_("Indian Ocean"), "Pacific": N_("Pacific"), "Other": N_("Other"),
}


@dataclasses.dataclass(frozen=True)
class ZoneChoice:
    """One zone as a picker shows it: ``Europe/Berlin`` as "Berlin" in "Europe", with its countries."""

    name: str
    area: str
    city: str
    countries: str


def _tzdata_file(name: str) -> str:
    return resources.files("tzdata").joinpath("zoneinfo").joinpath(name).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def _tzdata_country_names() -> dict[str, str]:
    names = {}
    for line in _tzdata_file("iso3166.tab").splitlines():
        if line and not line.startswith("#"):
            code, _, name = line.partition("\t")
            names[code.strip()] = name.strip()
    return names


@functools.lru_cache(maxsize=8)
def country_names(locale: str | None = None) -> dict[str, str]:
    """ISO 3166 country codes and their short names in *locale* (``DE`` -> ``Germany``, ``Alemania``).

    English as tzdata has them; Beacon's other languages from CLDR (Babel), tzdata's name where
    CLDR has none. Codes are never translated: they are what is stored.
    """
    names = _tzdata_country_names()
    language = supported(locale) or "en"
    if language == "en":
        return names
    territories = Locale.parse(language).territories
    return {code: territories.get(code, name) for code, name in names.items()}


def sort_key(label: str) -> str:
    """A label's place in a list people read: case and accents ignored, so "Ámsterdam" comes among the A's."""
    return "".join(c for c in unicodedata.normalize("NFKD", label.casefold()) if not unicodedata.combining(c))


@functools.lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, list[str]], dict[str, str]]:
    """``({zone: [country codes]}, {link: target})`` from tzdata's zone.tab, iso3166.tab and tzdata.zi."""
    zones: dict[str, list[str]] = {zone: [] for zone in EXTRA_ZONES}
    for line in _tzdata_file("zone.tab").splitlines():
        if line and not line.startswith("#"):
            parts = line.split("\t")
            if len(parts) >= 3:
                zones.setdefault(parts[2].strip(), []).append(parts[0].strip())
    links = {}
    for line in _tzdata_file("tzdata.zi").splitlines():
        if line.startswith("L "):
            _, target, link = line.split()[:3]
            links[link] = target
    return zones, links


def canonical_zones() -> frozenset[str]:
    """Every zone a person may choose."""
    return frozenset(_tables()[0])


def is_canonical(name: str | None) -> bool:
    return bool(name) and name in _tables()[0]


def _city(name: str, language: str) -> str:
    area, _, rest = name.partition("/")
    english = (rest or area).replace("_", " ").replace("/", " – ")
    if language == "en" or not rest:
        return english
    # CLDR's exemplar city ("Nueva York", "Nova York"); Babel falls back to the id's own words.
    return get_timezone_location(name, locale=language, return_city=True) or english


@functools.lru_cache(maxsize=8)
def choices(locale: str | None = None) -> tuple[tuple[str, tuple[ZoneChoice, ...]], ...]:
    """The choosable zones grouped by area (``Africa``, ``America``, ...), sorted by city in *locale*.

    Cities and countries are named in *locale* (English as tzdata has them, else from CLDR); each
    group is its :data:`AREAS` label, in English, for the page to translate. Values stay IANA ids.
    """
    language = supported(locale) or "en"
    countries_named = country_names(language)
    by_area: dict[str, list[ZoneChoice]] = {}
    for name, codes in _tables()[0].items():
        area, _, rest = name.partition("/")
        area = area if rest else "Other"
        by_area.setdefault(area, []).append(ZoneChoice(
            name=name, area=area, city=_city(name, language),
            countries=", ".join(countries_named.get(code, code) for code in codes)))
    return tuple((AREAS.get(area, area), tuple(sorted(zs, key=lambda z: (sort_key(z.city), z.name))))
                 for area, zs in sorted(by_area.items()))


#: Zones that are UTC under another name (``UTC`` itself is a link to ``Etc/UTC`` in tzdata).
SAME_AS_UTC = frozenset({"Etc/UTC", "Etc/GMT"})


def canonical_for(name: str | None) -> str | None:
    """The choosable zone *name* stands for (itself, or the target of a link such as ``US/Eastern``), or None."""
    zones, links = _tables()
    seen = set()
    while name and name not in zones and name in links and name not in seen:
        seen.add(name)
        name = links[name]
    if name in SAME_AS_UTC:
        return "UTC"
    return name if name in zones else None


def parse_zone(raw: str | None, *, field: str = "timezone") -> str:
    """The canonical zone *raw* names, for storing or reading local times.

    :raise InvalidInput: for anything else, saying what to choose instead.
    """
    name = (raw or "").strip()
    if is_canonical(name):
        return name
    target = canonical_for(name)
    if target:
        hint = f" It is another name for {target}: choose that instead."
    else:
        hint = " Choose the city of your time zone from the list, for example Europe/Berlin or America/New_York."
    what = f"“{name}”" if name else "An empty value"
    raise InvalidInput(f"{what} is not a time zone you can choose.{hint}", details={"field": field})


def zone_or_default(name: str | None, default: str = "UTC") -> ZoneInfo:
    """The zone called *name* for display, else *default*, else UTC; never raises.

    Directory data may hold links (``US/Eastern``) or junk; a page must still render.
    """
    for candidate in (name, default):
        if candidate and candidate not in ("localtime", "Factory"):
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")

