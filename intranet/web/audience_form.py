"""The audience builder as the editor shows it: criteria with people's names for their values.

Values are stored as the directory has them (a country code, a group key); people see names
("Germany", "Green team"). The builder's form fields are read back by :mod:`intranet.web.publish`.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session

from intranet import targeting, zones
from intranet.languages import N_

#: Segment field -> (plural label, singular label), in the order the builder offers them.
#: Marked for translation; the builder's template says them in the viewer's language.
CRITERIA: dict[str, tuple[str, str]] = {
    "departments": (N_("Departments"), N_("Department")), "groups": (N_("Groups"), N_("Group")),
    "countries": (N_("Countries"), N_("Country")), "offices": (N_("Offices"), N_("Office")),
    "regions": (N_("Regions"), N_("Region")), "divisions": (N_("Divisions"), N_("Division")),
    # A relative rule: the team below each chosen manager, however deep, as the directory has it today.
    "reports_to": (N_("Reports to (directly or indirectly)"), N_("Reports to")),
}


@dataclasses.dataclass(frozen=True)
class Option:
    value: str
    label: str


@dataclasses.dataclass(frozen=True)
class Criterion:
    """One kind of criterion (departments, countries, ...) and the values it can take."""

    field: str
    label: str
    singular: str
    options: tuple[Option, ...]

    def options_with(self, chosen: Iterable[str]) -> list[Option]:
        """The options, plus chosen values the directory no longer has (so a saved choice never vanishes)."""
        known = {o.value for o in self.options}
        extra = [Option(v, v) for v in chosen if v not in known]
        return sorted([*self.options, *extra], key=lambda o: zones.sort_key(o.label))


def criteria(session: Session, locale: str | None = None) -> list[Criterion]:
    """Every criterion with its current values, labelled for people (countries named in *locale*)."""
    out = []
    for field, (label, singular) in CRITERIA.items():
        names = targeting.value_names(session, targeting.SEGMENT_FIELDS[field], locale=locale)
        options = tuple(sorted((Option(v, n) for v, n in names.items()), key=lambda o: zones.sort_key(o.label)))
        out.append(Criterion(field=field, label=label, singular=singular, options=options))
    return out


def for_template(audience: dict[str, Any] | None) -> dict[str, Any]:
    """An audience as the builder renders it, with one blank segment of each kind to fill in
    (browsers without JavaScript cannot add one; ``publish.js`` hides the blank ones)."""
    audience = audience or {}
    return {"all": bool(audience.get("all")), "segments": (audience.get("segments") or []) + [{}],
            "exclude": (audience.get("exclude") or []) + [{}]}


def breakdown(session: Session, audience: dict[str, Any] | None) -> dict[str, Any] | None:
    """The headcount of *audience*, or None when it is empty or not valid (the page says why elsewhere)."""
    # An audience stored before audiences were bounded may be too large to count at all.
    if not audience or not targeting.within_bounds(audience):
        return None
    try:
        parsed = targeting.Audience.model_validate(audience)
    except ValidationError:
        return None
    counted = targeting.audience_breakdown(session, parsed)
    # Levels read best in order (1, 2, 3, ... then unknown), as publish.js lists them too.
    levels = counted.get("by_level") or {}
    counted["by_level"] = {k: levels[k] for k in sorted(levels, key=_level_order)}
    return counted


def _level_order(key: Any) -> tuple[int, int]:
    text = str(key)
    return (0, int(text)) if text.isdigit() else (1, 0)


def state(audience: dict[str, Any] | None, counted: dict[str, Any] | None) -> str:
    """What the count panel says: ``empty`` (nothing chosen), ``counted``, or ``chosen`` (not counted yet)."""
    if not audience:
        return "empty"
    return "counted" if counted is not None else "chosen"
