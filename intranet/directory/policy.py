"""The directory policy: who counts as an employee, which source owns which field, the maps, the guard.

Read once from ``config/directory.toml`` (or ``INTRANET_DIRECTORY_CONFIG``); every key has a
default, so a missing file still gives a working, conservative policy.
"""
from __future__ import annotations

import dataclasses
import functools
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from intranet.directory.normalize import Maps
from intranet.errors import ConfigurationError
from intranet.settings import DirectorySettings

ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_CONFIG = ROOT / "config" / "directory.toml"
HR_MAPPINGS = ROOT / "config" / "hr_mappings"


#: Fields the merge knows, with their default owners (first non-empty wins).
DEFAULT_OWNERS: dict[str, tuple[str, ...]] = {
    "display_name": ("entra", "hr"),
    "email": ("entra", "hr"),
    "job_title": ("hr", "entra"),
    "department": ("hr", "entra"),
    "division": ("hr", "entra"),
    "cost_center": ("hr", "entra"),
    "manager": ("hr", "entra"),
    "office": ("hr", "entra"),
    "country": ("hr", "entra"),
    "language": ("entra", "hr"),
}
LEVEL_SOURCE = re.compile(r"^(hr|entra:title_map|entra:ext:[A-Za-z0-9_]+|entra:onprem:extensionAttribute(?:[1-9]|1[0-5]))$")


@dataclasses.dataclass(frozen=True)
class IncludeRule:
    """Which Graph users are employees (everyone else is stored but never becomes one)."""

    user_types: tuple[str, ...] = ("Member",)
    require_employee_id: bool = True
    exclude_employee_types: tuple[str, ...] = ()
    exclude_upn_prefixes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "_excluded_types", frozenset(t.casefold() for t in self.exclude_employee_types))
        object.__setattr__(self, "_prefixes", tuple(p.casefold() for p in self.exclude_upn_prefixes))

    def includes(self, props: Mapping[str, Any]) -> bool:
        if self.user_types and (props.get("userType") or "Member") not in self.user_types:
            return False
        if self.require_employee_id and not str(props.get("employeeId") or "").strip():
            return False
        employee_type = props.get("employeeType")
        if employee_type and str(employee_type).strip().casefold() in self._excluded_types:  # type: ignore[attr-defined]
            return False
        upn = props.get("userPrincipalName")
        return not (upn and self._prefixes and str(upn).casefold().startswith(self._prefixes))  # type: ignore[attr-defined]


@dataclasses.dataclass(frozen=True)
class Guard:
    min_count: int = 25
    percent: float = 5.0
    hr_row_drop: float = 0.10
    hr_row_drop_min_rows: int = 10  # a drop from 12 rows to 10 is not "sharp"

    def limit(self, active: int) -> int:
        """The most deactivations one run may apply without an admin: max(min_count, percent of active)."""
        return max(self.min_count, int(active * self.percent / 100))


@dataclasses.dataclass(frozen=True)
class Policy:
    include: IncludeRule
    owners: dict[str, tuple[str, ...]]
    level_sources: tuple[str, ...]
    maps: Maps
    guard: Guard
    strip_leading_zeros: bool = False
    interval_minutes: int = 30
    full_resync_hours: int = 72
    erase_after_days: int = 30
    hr_mapping: str = "workday"
    hr_stale_after_days: int = 3
    hr_create_unmatched: bool = True
    hr_full_snapshot: bool = True
    mappings_dir: Path = HR_MAPPINGS

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], mappings_dir: Path = HR_MAPPINGS) -> Policy:
        """Build a policy from the parsed TOML.

        :raise ConfigurationError: naming the key to fix.
        """
        graph = data.get("graph") or {}
        hr = data.get("hr") or {}
        guard = data.get("guard") or {}
        owners = dict(DEFAULT_OWNERS)
        for name, order in (data.get("merge") or {}).items():
            if name not in DEFAULT_OWNERS:
                raise ConfigurationError(f"[merge] {name}: unknown field; known: {', '.join(DEFAULT_OWNERS)}.")
            bad = [s for s in order if s not in ("entra", "hr")]
            if bad or not order:
                raise ConfigurationError(f"[merge] {name} must list 'entra' and/or 'hr', got {order!r}.")
            owners[name] = tuple(order)
        level_sources = tuple((data.get("level") or {}).get("sources", ("hr", "entra:onprem:extensionAttribute1")))
        for source in level_sources:
            if not LEVEL_SOURCE.match(source):
                raise ConfigurationError(
                    f"[level] sources: {source!r} is not one of 'hr', 'entra:ext:<extension name>',"
                    " 'entra:onprem:extensionAttribute1'..'15' or 'entra:title_map'.")
        try:
            maps = Maps.from_config(data.get("maps") or {})
        except ValueError as exc:
            raise ConfigurationError(f"directory maps: {exc}") from None
        return cls(
            include=IncludeRule(
                user_types=tuple(graph.get("include_user_types", ("Member",))),
                require_employee_id=bool(graph.get("require_employee_id", True)),
                exclude_employee_types=tuple(graph.get("exclude_employee_types", ())),
                exclude_upn_prefixes=tuple(graph.get("exclude_upn_prefixes", ())),
            ),
            owners=owners,
            level_sources=level_sources,
            maps=maps,
            guard=Guard(min_count=int(guard.get("min_count", 25)), percent=float(guard.get("percent", 5.0)),
                        hr_row_drop=float(guard.get("hr_row_drop", 0.10)),
                        hr_row_drop_min_rows=int(guard.get("hr_row_drop_min_rows", 10))),
            strip_leading_zeros=bool(graph.get("strip_leading_zeros", False)),
            interval_minutes=int(graph.get("interval_minutes", 30)),
            full_resync_hours=int(graph.get("full_resync_hours", 72)),
            erase_after_days=int(graph.get("erase_after_days", 30)),
            hr_mapping=str(hr.get("mapping", "workday")),
            hr_stale_after_days=int(hr.get("stale_after_days", 3)),
            hr_create_unmatched=bool(hr.get("create_unmatched", True)),
            hr_full_snapshot=bool(hr.get("full_snapshot", True)),
            mappings_dir=mappings_dir,
        )

    def replace(self, **changes: Any) -> Policy:
        return dataclasses.replace(self, **changes)

    def source_orders(self, *, hr_fresh: bool) -> Mapping[str, tuple[str, ...]]:
        """Each merged field's sources in order of precedence (``"level"``: the level sources); a
        stale HR file goes last. Asked for every employee of a run, so computed once per policy."""
        return self._orders[hr_fresh]

    @functools.cached_property
    def _orders(self) -> dict[bool, dict[str, tuple[str, ...]]]:
        def demote(order: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(s for s in order if s != "hr") + (("hr",) if "hr" in order else ())

        fresh = {**{f: ("hr", "entra") for f in ("cost_center", "manager")}, **self.owners,
                 "level": self.level_sources}
        return {True: fresh, False: {field: demote(order) for field, order in fresh.items()}}


@functools.lru_cache(maxsize=8)
def _load(path: str, mappings_dir: str) -> Policy:
    file = Path(path)
    data: dict[str, Any] = {}
    if file.exists():
        try:
            with file.open("rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{file} is not valid TOML: {exc}") from None
    return Policy.from_dict(data, Path(mappings_dir))


def load(settings: DirectorySettings | None = None) -> Policy:
    """The policy named by ``INTRANET_DIRECTORY_CONFIG`` (default ``config/directory.toml``), cached."""
    settings = settings or DirectorySettings()
    return _load(str(settings.config_path or DEFAULT_CONFIG), str(settings.hr_mappings_dir or HR_MAPPINGS))
