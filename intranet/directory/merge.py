"""Field-by-field merge of what Entra ID and the HR export say about one employee.

Rules (``[merge]`` in ``config/directory.toml`` orders the sources per field):

* the first source in a field's order with a non-empty value wins; an empty value never
  overwrites a known one, but an explicit ``null`` from Graph clears Entra's value;
* a stale HR file is demoted: it only fills what Entra leaves empty;
* status: the most restrictive source wins (HR terminated, Entra disabled or removed);
* time zone: HR column > office map > the country's only zone > the organisation's default,
  unless the employee chose one (provenance ``user``);
* region: HR column > country map;
* job level: the configured sources in order (HR column, directory extension,
  ``onPremisesExtensionAttributes.extensionAttributeN``, job-title map).

The result carries the provenance of each field so the admin pages can say where a value came
from. Manager references are resolved later, in the sync's second pass.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from intranet.directory.normalize import Normalizer, clean
from intranet.directory.policy import Policy

# Canonical field -> Graph property (straight copies; the rest is computed below).
GRAPH_FIELDS = {
    "display_name": "displayName",
    "email": "mail",
    "job_title": "jobTitle",
    "department": "department",
    "office": "officeLocation",
    "city": "city",
    "country": "country",
    "language": "preferredLanguage",
}
EMPLOYEE_COLUMNS = ("display_name", "email", "job_title", "department", "division", "office", "country", "region",
                    "timezone", "language", "level", "level_label")
MAX_LENGTHS = {"display_name": 255, "email": 320, "job_title": 255, "department": 255, "division": 255,
               "office": 255, "region": 64, "timezone": 64, "language": 16, "level_label": 64}
MISSING = object()
#: Fields picked by precedence (``[merge]``), in the order the merge fills them.
PICKED = ("display_name", "email", "job_title", "department", "division", "office", "country", "language",
          "cost_center")


def entra_values(props: Mapping[str, Any], n: Normalizer, policy: Policy) -> dict[str, Any]:
    """Graph user properties -> canonical values. A key is present when Graph sent the property
    (``None`` then means "cleared"); absent keys mean "Graph says nothing"."""
    out: dict[str, Any] = {}
    for name, prop in GRAPH_FIELDS.items():
        if prop in props:
            out[name] = props[prop]
    if "email" in out or "userPrincipalName" in props:
        out["email"] = n.email(props.get("mail")) or n.email(props.get("userPrincipalName"))
    if "display_name" in out:
        out["display_name"] = clean(out["display_name"])
    if "job_title" in out:
        out["job_title"] = clean(out["job_title"])
    if "office" in out:
        out["office"] = clean(out["office"])
    if "city" in out:
        out["city"] = clean(out["city"])
    if "department" in out:
        out["department"] = n.department(out["department"])
    if "country" in out or "usageLocation" in props:
        out["country"] = n.country(props.get("country")) if props.get("country") else (
            n.country(props.get("usageLocation")) if props.get("usageLocation") else None)
    if "language" in out:
        out["language"] = n.language(out["language"])
    if "employeeOrgData" in props:
        org = props.get("employeeOrgData") or {}
        out["division"] = n.division(org.get("division"))
        out["cost_center"] = (clean(org.get("costCenter")) or None)
        if out["cost_center"]:
            out["cost_center"] = out["cost_center"][:64]
    return out


def entra_level(props: Mapping[str, Any], source: str, n: Normalizer, job_title: str | None) -> tuple[int | None, str | None]:
    """The level from one configured Entra source (see ``[level] sources``)."""
    if source == "entra:title_map":
        return n.title_level(job_title)
    if source.startswith("entra:onprem:"):
        attrs = props.get("onPremisesExtensionAttributes") or {}
        return n.level(attrs.get(source.split(":", 2)[2]))
    if source.startswith("entra:ext:"):
        return n.level(props.get(source.split(":", 2)[2]))
    return None, None


def entra_active(props: Mapping[str, Any] | None, removed: str | None) -> bool | None:
    if props is None and removed is None:
        return None
    if removed:
        return False
    return props.get("accountEnabled") is not False if props is not None else None


def hr_status(hr: Mapping[str, Any] | None, today: dt.date) -> tuple[bool | None, dt.date | None]:
    """``(active, pending termination date)`` according to HR (termination dates are effective dates)."""
    if hr is None:
        return None, None
    ending = dt.date.fromisoformat(hr["termination_date"]) if hr.get("termination_date") else None
    if hr.get("inactive") or (ending is not None and ending <= today):
        return False, None
    return True, ending


@dataclasses.dataclass
class Merged:
    """What the employee row should say, where each value came from, and the manager candidates."""

    values: dict[str, Any]
    sources: dict[str, str]
    cost_center: Any = MISSING
    active: bool | None = None
    pending_termination: dt.date | None = None
    # (source, employee_id or None): None means that source explicitly has no manager.
    manager_candidates: list[tuple[str, str | None]] = dataclasses.field(default_factory=list)


def merge(*, entra_props: Mapping[str, Any] | None, entra_removed: str | None, entra_manager: Any,
          hr: Mapping[str, Any] | None, hr_fresh: bool, current_sources: Mapping[str, str],
          n: Normalizer, policy: Policy, org_timezone: str, today: dt.date) -> Merged:
    """Merge one employee.

    :param entra_manager: the manager's employee id according to Entra, ``None`` if Entra says
        there is none, or :data:`MISSING` if Entra says nothing.
    """
    entra = entra_values(entra_props, n, policy) if entra_props is not None else {}
    hr = hr or {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    cost_center: Any = MISSING
    orders = policy.source_orders(hr_fresh=hr_fresh)
    for field in PICKED:
        # The first source with a non-empty value wins; an explicit null from Entra clears.
        value: Any = MISSING
        for source in orders[field]:
            data = entra if source == "entra" else hr
            if field in data:
                candidate = data[field]
                if candidate is not None and candidate != "":
                    value, sources[field] = candidate, source
                    break
                if source == "entra":
                    value = None
        if field == "cost_center":
            cost_center = value
        elif value is not MISSING:
            if type(value) is str and len(value) > MAX_LENGTHS.get(field, len(value)):
                value = value[: MAX_LENGTHS[field]]
            values[field] = value

    # Region: HR column, else the country map.
    country = values.get("country")
    if hr.get("region"):
        values["region"], sources["region"] = hr["region"], "hr"
    elif country and n.region_for(country):
        values["region"], sources["region"] = n.region_for(country), "country_map"

    # Hire date: only HR knows it (ISO text, as plans are JSON); a missing one never clears a known one.
    if hr.get("hire_date"):
        values["hire_date"], sources["hire_date"] = hr["hire_date"], "hr"

    # Time zone: the person's own choice (kept, marked "user", so every later sync keeps it too) >
    # HR column > office map > single-zone country > organisation default.
    if current_sources.get("timezone") == "user":
        sources["timezone"] = "user"
    else:
        office = values.get("office") or hr.get("office") or entra.get("office")
        city = hr.get("city") or entra.get("city")
        if hr.get("timezone"):
            values["timezone"], sources["timezone"] = hr["timezone"], "hr"
        else:
            zone, how = n.zone_for(office, city, country)
            if zone:
                values["timezone"], sources["timezone"] = zone, f"{how}_map" if how == "office" else "country_zone"
            else:
                values["timezone"], sources["timezone"] = org_timezone, "org_default"

    # Level: configured sources in order; a stale HR file comes last.
    label_only: str | None = None
    for source in orders["level"]:
        if source == "hr":
            level, label = hr.get("level"), hr.get("level_label")
        elif entra_props is not None:
            level, label = entra_level(entra_props, source, n, values.get("job_title"))
        else:
            continue
        if level is not None:
            values["level"], values["level_label"], sources["level"] = level, label, source
            break
        label_only = label_only or label
    else:
        if label_only:  # a label no map knows: kept as-is, listed as unmapped, no ordinal
            values["level"], values["level_label"], sources["level"] = None, label_only, "unmapped"

    # Status: most restrictive wins.
    e_active = entra_active(entra_props, entra_removed)
    h_active, pending = hr_status(hr if hr else None, today)
    known = [a for a in (e_active, h_active) if a is not None]
    active = all(known) if known else None

    candidates: list[tuple[str, str | None]] = []
    for source in orders["manager"]:
        if source == "hr" and hr.get("manager"):
            candidates.append(("hr", hr["manager"]))
        elif source == "entra" and entra_manager is not MISSING:
            candidates.append(("entra", entra_manager))
    return Merged(values=values, sources=sources, cost_center=cost_center, active=active,
                  pending_termination=pending, manager_candidates=candidates)
