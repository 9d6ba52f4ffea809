"""Cleaning directory values: one spelling per department, ISO countries, ordinal levels, zones.

Every value goes through the same pipeline: Unicode NFC, trimmed, whitespace collapsed, then
compared casefolded against the maps in ``config/directory.toml``. A value no map mentions is
kept exactly as it came (so audiences can still use it) and counted in :attr:`Normalizer.unmapped`,
which the sync turns into the admin's "unmapped values" list: a new spelling shows up as a
question instead of silently splitting a department.
"""
from __future__ import annotations

import collections
import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from intranet.zones import canonical_for

LEVEL_PATTERN = re.compile(r"^(?:l|lvl|level|grade|g|band|m|ic|p)?\s*[-_.]?\s*(\d{1,2})$")
LANGUAGE_PATTERN = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Za-z0-9]{2,8}))*$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def clean(value: Any) -> str | None:
    """NFC, trimmed, inner whitespace collapsed; empty becomes None."""
    if value is None:
        return None
    text = value if type(value) is str else str(value)
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    if "  " in text or "\t" in text or "\n" in text or text[:1].isspace() or text[-1:].isspace():
        text = " ".join(text.split())
    return text or None


def _memoized(method: Any) -> Any:
    """Cache a normalization by its input (directory values repeat a lot); unmapped values still
    count once per occurrence."""

    @functools.wraps(method)
    def wrapper(self: Normalizer, raw: Any, *args: Any) -> Any:
        key = (method.__name__, raw, args)
        try:
            result, miss = self._memo[key]
        except KeyError:
            self._miss_key = None
            result = method(self, raw, *args)
            miss = self._miss_key
            self._memo[key] = (result, miss)
        except TypeError:  # unhashable input: no cache
            self._miss_key = None
            result = method(self, raw, *args)
            miss = self._miss_key
        if miss is not None:
            self.unmapped[miss] += 1
        return result

    return wrapper


def fold(value: str) -> str:
    """The comparison key of a value: cleaned and casefolded."""
    return " ".join(unicodedata.normalize("NFC", value).split()).casefold()


@functools.lru_cache(maxsize=1)
def _tzdata_tables() -> tuple[dict[str, str], dict[str, list[str]]]:
    """ISO 3166 names (from tzdata's iso3166.tab) and the zones of each country (zone1970-free zone.tab)."""
    names: dict[str, str] = {}
    zones: dict[str, list[str]] = collections.defaultdict(list)
    base = resources.files("tzdata").joinpath("zoneinfo")
    for line in base.joinpath("iso3166.tab").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            code, _, name = line.partition("\t")
            names[fold(name)] = code.strip().upper()
    for line in base.joinpath("zone.tab").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            parts = line.split("\t")
            if len(parts) >= 3:
                zones[parts[0].strip().upper()].append(parts[2].strip())
    return names, dict(zones)


def is_zone(value: str | None) -> bool:
    """Whether *value* names a zone people may have (:mod:`intranet.zones`: links count, localtime does not)."""
    return canonical_for(value) is not None


def _aliases(table: Mapping[str, Any]) -> dict[str, str]:
    """``{canonical: [aliases]}`` -> ``{folded alias or canonical: canonical}``."""
    out: dict[str, str] = {}
    for canonical, aliases in table.items():
        canonical = clean(canonical) or ""
        out[fold(canonical)] = canonical
        for alias in aliases or ():
            if clean(alias):
                out[fold(alias)] = canonical
    return out


@dataclass(frozen=True)
class Maps:
    """The normalization maps, keyed by folded value."""

    departments: dict[str, str] = field(default_factory=dict)
    divisions: dict[str, str] = field(default_factory=dict)
    countries: dict[str, str] = field(default_factory=dict)
    levels: dict[str, int] = field(default_factory=dict)
    title_levels: dict[str, int] = field(default_factory=dict)
    office_zones: dict[str, str] = field(default_factory=dict)
    country_regions: dict[str, str] = field(default_factory=dict)
    regions: dict[str, str] = field(default_factory=dict)
    country_zones: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, maps: Mapping[str, Any]) -> Maps:
        """Build from the ``[maps.*]`` tables of ``config/directory.toml``.

        :raise ValueError: a level outside 1..10 or a time zone that is not an IANA name.
        """
        iso_names, _ = _tzdata_tables()
        countries = dict(iso_names)
        for code, names in (maps.get("country") or {}).items():
            code = code.strip().upper()
            countries[fold(code)] = code
            for name in names or ():
                countries[fold(name)] = code
        levels: dict[str, int] = {}
        for level, labels in (maps.get("level") or {}).items():
            number = int(level)
            if not 1 <= number <= 10:
                raise ValueError(f"[maps.level] {level} is outside 1..10")
            for label in labels or ():
                levels[fold(label)] = number
        title_levels = {fold(title): int(level) for title, level in (maps.get("title_level") or {}).items()}
        office_zones = {}
        for office, zone in (maps.get("office_timezone") or {}).items():
            if not is_zone(zone):
                raise ValueError(f"[maps.office_timezone] {office!r} = {zone!r} is not an IANA time zone")
            office_zones[fold(office)] = canonical_for(zone)
        country_zones = {}
        for code, zone in (maps.get("country_timezone") or {}).items():
            if not is_zone(zone):
                raise ValueError(f"[maps.country_timezone] {code} = {zone!r} is not an IANA time zone")
            country_zones[code.strip().upper()] = canonical_for(zone)
        return cls(
            country_zones=country_zones,
            departments=_aliases(maps.get("department") or {}),
            divisions=_aliases(maps.get("division") or {}),
            countries=countries,
            levels=levels,
            title_levels=title_levels,
            office_zones=office_zones,
            country_regions={code.strip().upper(): region for code, region in (maps.get("country_region") or {}).items()},
            regions=_aliases(maps.get("region") or {}),
        )


class Normalizer:
    """Applies :class:`Maps`; remembers what it could not map (dimension, value) -> occurrences."""

    def __init__(self, maps: Maps) -> None:
        self.maps = maps
        self.unmapped: collections.Counter[tuple[str, str]] = collections.Counter()
        self._memo: dict[Any, tuple[Any, tuple[str, str] | None]] = {}
        self._miss_key: tuple[str, str] | None = None
        self._zone_memo: dict[tuple[Any, ...], tuple[str | None, str | None]] = {}

    def _miss(self, dimension: str, value: str) -> None:
        self._miss_key = (dimension, value)

    def _mapped(self, dimension: str, table: Mapping[str, str], raw: Any) -> str | None:
        value = clean(raw)
        if value is None:
            return None
        hit = table.get(fold(value))
        if hit is not None:
            return hit
        if table:  # a dimension nobody configured has no "unmapped" values
            self._miss(dimension, value)
        return value

    @_memoized
    def department(self, raw: Any) -> str | None:
        return self._mapped("department", self.maps.departments, raw)

    @_memoized
    def division(self, raw: Any) -> str | None:
        return self._mapped("division", self.maps.divisions, raw)

    @_memoized
    def region(self, raw: Any) -> str | None:
        value = self._mapped("region", self.maps.regions, raw)
        return value[:64] if value else None

    @_memoized
    def country(self, raw: Any) -> str | None:
        """An ISO 3166 alpha-2 code, or None (an unknown name cannot be stored as a code; it is listed)."""
        value = clean(raw)
        if value is None:
            return None
        if len(value) == 2 and value.isalpha():
            code = value.upper()
            _, zones = _tzdata_tables()
            if code in zones or code in self.maps.countries.values():
                return code
        hit = self.maps.countries.get(fold(value))
        if hit is not None:
            return hit
        self._miss("country", value)
        return None

    @_memoized
    def level(self, raw: Any, dimension: str = "level") -> tuple[int | None, str | None]:
        """``(ordinal 1..10 or None, label)``: "L5", "Level 5", "5" -> (5, "L5"); unknown -> (None, raw)."""
        value = clean(raw)
        if value is None:
            return None, None
        match = LEVEL_PATTERN.match(value.casefold())
        if match and 1 <= int(match.group(1)) <= 10:
            number = int(match.group(1))
            return number, f"L{number}"
        hit = self.maps.levels.get(fold(value))
        if hit is not None:
            return hit, value[:64]
        self._miss(dimension, value)
        return None, value[:64]

    @_memoized
    def title_level(self, raw: Any) -> tuple[int | None, str | None]:
        value = clean(raw)
        if value is None:
            return None, None
        hit = self.maps.title_levels.get(fold(value))
        if hit is None:
            self._miss("job_title_level", value)
            return None, None
        return hit, f"L{hit}"

    @_memoized
    def language(self, raw: Any) -> str | None:
        """A BCP 47 tag: ``en_us`` -> ``en-US``; anything else is dropped (the column is a tag)."""
        value = clean(raw)
        if value is None:
            return None
        match = LANGUAGE_PATTERN.match(value)
        if not match:
            return None
        parts = re.split(r"[-_]", value)
        tag = [parts[0].lower()] + [p.upper() if len(p) == 2 else p for p in parts[1:]]
        return "-".join(tag)[:16]

    @_memoized
    def email(self, raw: Any) -> str | None:
        value = clean(raw)
        if value is None:
            return None
        value = value.casefold()
        return value if EMAIL_PATTERN.match(value) else None

    @_memoized
    def employee_number(self, raw: Any, strip_leading_zeros: bool = False) -> str | None:
        value = clean(raw)
        if value is None:
            return None
        value = value.replace(" ", "")
        if strip_leading_zeros:
            value = value.lstrip("0") or "0"
        return value[:64]

    # -- derived attributes -------------------------------------------------------------------

    def zone_for(self, office: str | None, city: str | None, country: str | None) -> tuple[str | None, str | None]:
        """``(zone, how)`` from the office map, else the country's only zone; how is "office"/"country"."""
        key = (office, city, country)
        found = self._zone_memo.get(key)
        if found is None:
            found = self._zone_memo[key] = self._zone_for(office, city, country)
        return found

    def _zone_for(self, office: str | None, city: str | None, country: str | None) -> tuple[str | None, str | None]:
        for place in (office, city):
            if place:
                zone = self.maps.office_zones.get(fold(place))
                if zone:
                    return zone, "office"
        if country:
            if country in self.maps.country_zones:
                return self.maps.country_zones[country], "country"
            _, zones = _tzdata_tables()
            candidates = zones.get(country, [])
            if len(candidates) == 1:
                return candidates[0], "country"
        return None, None

    def region_for(self, country: str | None) -> str | None:
        return self.maps.country_regions.get(country) if country else None

    @_memoized
    def zone(self, raw: Any) -> str | None:
        value = clean(raw)
        if value is None:
            return None
        canonical = canonical_for(value)
        if canonical:
            return canonical  # a link such as US/Eastern is stored as the zone people choose from
        self._miss("timezone", value)
        return None


def unmapped_rows(counter: Mapping[tuple[str, str], int]) -> Iterable[dict[str, Any]]:
    """The counter as rows for :class:`intranet.models.UnmappedValue`."""
    for (dimension, value), occurrences in sorted(counter.items()):
        yield {"dimension": dimension, "value": value[:255], "occurrences": occurrences}
