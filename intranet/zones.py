"""Time zones people may choose, how to read and show them, and country names (all from tzdata).

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
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from intranet.errors import InvalidInput

EXTRA_ZONES = ("UTC",)


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
def country_names() -> dict[str, str]:
    """ISO 3166 country codes and their short English names (``DE`` -> ``Germany``), from tzdata."""
    names = {}
    for line in _tzdata_file("iso3166.tab").splitlines():
        if line and not line.startswith("#"):
            code, _, name = line.partition("\t")
            names[code.strip()] = name.strip()
    return names


@functools.lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, list[str]], dict[str, str]]:
    """``({zone: [country names]}, {link: target})`` from tzdata's zone.tab, iso3166.tab and tzdata.zi."""
    country_names_ = country_names()
    zones: dict[str, list[str]] = {zone: [] for zone in EXTRA_ZONES}
    for line in _tzdata_file("zone.tab").splitlines():
        if line and not line.startswith("#"):
            parts = line.split("\t")
            if len(parts) >= 3:
                zones.setdefault(parts[2].strip(), []).append(country_names_.get(parts[0].strip(), parts[0].strip()))
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


@functools.lru_cache(maxsize=1)
def choices() -> tuple[tuple[str, tuple[ZoneChoice, ...]], ...]:
    """The choosable zones grouped by area (``Africa``, ``America``, ...), sorted by city."""
    by_area: dict[str, list[ZoneChoice]] = {}
    for name, countries in _tables()[0].items():
        area, _, rest = name.partition("/")
        city = (rest or area).replace("_", " ").replace("/", " – ")
        by_area.setdefault(area if rest else "Other", []).append(
            ZoneChoice(name=name, area=area if rest else "Other", city=city, countries=", ".join(countries)))
    return tuple((area, tuple(sorted(zs, key=lambda z: z.city))) for area, zs in sorted(by_area.items()))


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

