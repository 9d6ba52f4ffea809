"""Digest preferences: what each person chose, on top of the organisation's defaults.

A person's row stores only what they changed (NULL = "the organisation's default"), so when a
comms manager changes a default it reaches everyone who never chose otherwise. Input is parsed
with models that forbid unknown fields: a client cannot slip ``employee_pk`` or a role into a
preferences update.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import Select, bindparam, literal
from sqlmodel import Session, select

from intranet import languages
from intranet.errors import InvalidInput, validated
from intranet.languages import N_
from intranet.models import CADENCES, CHANNELS, Employee, OrgPreference, Preference

Cadence = Literal["off", "as_it_happens", "daily", "twice_daily", "weekly"]
Channel = Literal["email", "teams", "in_app"]
Device = Literal["phone", "computer", "either"]
Language = languages.Language
FIELDS = ("cadence", "weekly_day", "channels", "quiet_start", "quiet_end", "working_days", "followed_topics",
          "muted_topics", "learned_timing", "device", "open_tracking", "language")
#: Beacon's defaults (the organisation may change them): once a day, Monday to Friday, email and
#: in-app, quiet hours 20:00-07:00 local, learned timing on.
BUILTIN_DEFAULTS: dict[str, Any] = {
    "cadence": "daily", "weekly_day": 0, "channels": ["email", "in_app"], "quiet_start": 20, "quiet_end": 7,
    "working_days": [0, 1, 2, 3, 4], "followed_topics": [], "muted_topics": [], "learned_timing": True,
    "device": "either", "open_tracking": True, "language": None,
}
#: What people may not change for everyone (their own topics are personal).
ORG_FIELDS = ("cadence", "weekly_day", "channels", "quiet_start", "quiet_end", "working_days", "learned_timing",
              "open_tracking")
assert set(CADENCES) == set(Cadence.__args__) and set(CHANNELS) == set(Channel.__args__)  # type: ignore[attr-defined]
assert set(languages.SUPPORTED) == set(Language.__args__)  # type: ignore[attr-defined]


def _unique_sorted(values: list[Any]) -> list[Any]:
    return sorted(set(values))


def _check_days(value: list[int] | None) -> list[int] | None:
    if value is None:
        return None
    if not value or any(d < 0 or d > 6 for d in value):
        raise ValueError(N_("working days are weekday numbers 0 (Monday) to 6 (Sunday), at least one"))
    return _unique_sorted(value)


def _check_channels(value: list[str] | None) -> list[str] | None:
    return None if value is None else [c for c in CHANNELS if c in value]


class _DeliveryChoices(BaseModel):
    """The delivery settings a person and the organisation's defaults have in common."""

    model_config = ConfigDict(extra="forbid")

    cadence: Cadence | None = None
    weekly_day: int | None = Field(default=None, ge=0, le=6)
    channels: list[Channel] | None = None
    quiet_start: int | None = Field(default=None, ge=0, le=23)
    quiet_end: int | None = Field(default=None, ge=0, le=23)
    working_days: list[int] | None = None
    learned_timing: bool | None = None
    open_tracking: bool | None = None

    @field_validator("working_days")
    @classmethod
    def _days(cls, value: list[int] | None) -> list[int] | None:
        return _check_days(value)

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: list[str] | None) -> list[str] | None:
        return _check_channels(value)


class PreferencesIn(_DeliveryChoices):
    """A change to one person's preferences: fields left out stay, ``null`` restores the default."""

    followed_topics: list[str] | None = Field(default=None, max_length=100)
    muted_topics: list[str] | None = Field(default=None, max_length=100)
    device: Device | None = None
    #: The language of Beacon and of the person's digests; null follows the directory.
    language: Language | None = None

    @field_validator("followed_topics", "muted_topics")
    @classmethod
    def _topics(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = [t.strip()[:64] for t in value if t and t.strip()]
        return _unique_sorted(cleaned)

    @model_validator(mode="after")
    def _consistent(self) -> PreferencesIn:
        followed, muted = set(self.followed_topics or ()), set(self.muted_topics or ())
        if followed & muted:
            raise ValueError(f"a topic cannot be both followed and muted: {', '.join(sorted(followed & muted))}")
        return self


class OrgDefaultsIn(_DeliveryChoices):
    """A change to the organisation's defaults (comms managers only)."""


@dataclasses.dataclass(frozen=True)
class Preferences:
    """One person's effective preferences (their choices over the organisation's defaults)."""

    cadence: str
    weekly_day: int
    channels: tuple[str, ...]
    quiet_start: int
    quiet_end: int
    working_days: tuple[int, ...]
    followed_topics: tuple[str, ...]
    muted_topics: tuple[str, ...]
    learned_timing: bool
    device: str
    open_tracking: bool
    #: The language the person chose (None: the directory's, see :func:`intranet.languages.choose`).
    language: str | None = None
    #: The fields the person set themselves (the rest follow the organisation).
    chosen: frozenset[str] = frozenset()

    def is_quiet(self, local_hour: int) -> bool:
        """Whether *local_hour* falls in the quiet hours (which may wrap midnight)."""
        start, end = self.quiet_start, self.quiet_end
        if start == end:
            return False
        if start < end:
            return start <= local_hour < end
        return local_hour >= start or local_hour < end



class DefaultsPublic(BaseModel):
    """Digest preferences: when and where digests go out, and what they favour."""

    cadence: Cadence
    weekly_day: int = Field(description="0 (Monday) to 6 (Sunday)")
    channels: list[Channel]
    quiet_start: int = Field(description="Local hour (0-23) quiet hours start")
    quiet_end: int = Field(description="Local hour (0-23) quiet hours end")
    working_days: list[int]
    followed_topics: list[str]
    muted_topics: list[str]
    learned_timing: bool
    device: Device
    open_tracking: bool


class PreferencesPublic(DefaultsPublic):
    """Your effective preferences: your own choices over the organisation's defaults."""

    language: Language | None = Field(default=None, description="The language you chose for Beacon and your "
                                      "digests; null follows the company directory")
    chosen: list[str] = Field(description="The fields you set yourself (the rest follow the organisation)")

    @classmethod
    def of(cls, prefs: Preferences) -> PreferencesPublic:
        return cls(**{name: getattr(prefs, name) for name in FIELDS}, chosen=sorted(prefs.chosen))


def org_defaults(session: Session) -> dict[str, Any]:
    """The organisation's defaults: Beacon's, overridden by what comms managers set."""
    return _org_values(session.get(OrgPreference, 1))


def _unicode(values: Iterable[Any]) -> tuple[str, ...]:
    # Topics stored before unpaired surrogates were refused at the boundary (SQLite kept them)
    # can be neither shown nor matched: leave them out rather than break every page that lists them.
    out = []
    for value in values:
        try:
            value.encode("utf-8")
        except (UnicodeEncodeError, AttributeError):
            continue
        out.append(value)
    return tuple(out)


def _effective(row: Preference | None, defaults: dict[str, Any]) -> Preferences:
    values = dict(defaults)
    chosen = set()
    if row is not None:
        for name in FIELDS:
            value = getattr(row, name)
            if value is not None:
                values[name] = value
                chosen.add(name)
    return Preferences(cadence=values["cadence"], weekly_day=int(values["weekly_day"]),
                       channels=tuple(values["channels"]), quiet_start=int(values["quiet_start"]),
                       quiet_end=int(values["quiet_end"]), working_days=tuple(values["working_days"]),
                       followed_topics=_unicode(values["followed_topics"]),
                       muted_topics=_unicode(values["muted_topics"]),
                       learned_timing=bool(values["learned_timing"]), device=values["device"],
                       open_tracking=bool(values["open_tracking"]), language=values.get("language"),
                       chosen=frozenset(chosen))



def _org_values(row: OrgPreference | None) -> dict[str, Any]:
    return {**BUILTIN_DEFAULTS, **({k: v for k, v in row.values.items() if k in ORG_FIELDS} if row else {})}


def statement_for(employee_pk: Any) -> Select[Any]:
    """One statement reading a person's row and the organisation's defaults (either may be missing).

    Both are left-joined to a one-row anchor, so the statement always returns exactly one row
    ``(Preference | None, OrgPreference | None)``; a caller may add columns or outer joins of its
    own (the feed page adds the cadence notice and the unread replies) to save round trips.
    *employee_pk* may be a ``bindparam`` so that a caller builds the statement once.
    """
    anchor = select(literal(1).label("one")).subquery("one_row")
    return (select(Preference, OrgPreference).select_from(anchor)
            .outerjoin(Preference, Preference.employee_pk == employee_pk)
            .outerjoin(OrgPreference, OrgPreference.id == 1))


def of_rows(row: Preference | None, org: OrgPreference | None) -> Preferences:
    """The effective preferences from a row of :func:`statement_for`."""
    return _effective(row, _org_values(org))


_FOR_EMPLOYEE = statement_for(bindparam("prefs_employee_pk"))  # built once: building costs more than running it


def for_employee(session: Session, employee: Employee) -> Preferences:
    """*employee*'s effective preferences (one statement: their row and the organisation's defaults)."""
    row, org = session.execute(_FOR_EMPLOYEE, {"prefs_employee_pk": employee.id}).one()
    return of_rows(row, org)


def for_employees(session: Session, employee_pks: Iterable[int]) -> dict[int, Preferences]:
    """Effective preferences of many people in two queries (people without a row get the defaults)."""
    defaults = org_defaults(session)
    pks = list(employee_pks)
    rows: dict[int, Preference] = {}
    for start in range(0, len(pks), 5000):
        part = pks[start:start + 5000]
        rows.update((r.employee_pk, r) for r in session.exec(select(Preference).where(Preference.employee_pk.in_(part))))
    base = _effective(None, defaults)
    return {pk: (_effective(rows[pk], defaults) if pk in rows else base) for pk in pks}


def parse(data: Any, model: type[BaseModel] = PreferencesIn) -> BaseModel:
    """Validate a preferences document as sent by a client.

    :raise InvalidInput: naming each wrong or unknown field.
    """
    if not isinstance(data, dict):
        raise InvalidInput(N_("Send a JSON object of preferences."))
    return validated(model, data, what="preferences")


#: Why a digest with nowhere to go is refused (must-reads are pinned in Beacon's feed regardless).
NO_CHANNEL = N_("Choose at least one place for your digest (email, Microsoft Teams or Beacon), or set how often to "
                '"Never". Either way, must-reads still reach you in Beacon.')


def _check_reachable(values: dict[str, Any]) -> None:
    # A digest (or news as it happens) with no channel would be promised a send time and never sent.
    if values["cadence"] != "off" and not values["channels"]:
        raise InvalidInput(NO_CHANNEL, details=[{"loc": "channels", "message": NO_CHANNEL}])


def update(session: Session, employee: Employee, change: PreferencesIn, *, now: dt.datetime) -> Preferences:
    """Apply *change* to *employee*'s preferences (only the fields it sets) and return the result.

    :raise InvalidInput: if the result would have a digest cadence but no channel to send it on.
    """
    existing = session.get(Preference, employee.id)
    row = existing or Preference(employee_pk=employee.id)
    defaults = org_defaults(session)
    current = _effective(existing, defaults)
    wanted = {"cadence": current.cadence, "channels": current.channels}
    for name in ("cadence", "channels"):
        if name in change.model_fields_set:
            value = getattr(change, name)
            wanted[name] = defaults[name] if value is None else value
    _check_reachable(wanted)
    for name in change.model_fields_set:
        setattr(row, name, getattr(change, name))
    row.updated_at = now
    session.add(row)
    session.flush()
    return _effective(row, defaults)


def set_org_defaults(session: Session, change: OrgDefaultsIn, *, by: Employee, now: dt.datetime) -> dict[str, Any]:
    """Change the organisation's defaults (the caller checked the comms role); ``null`` restores Beacon's.

    :raise InvalidInput: if the defaults would have a digest cadence but no channel.
    """
    row = session.get(OrgPreference, 1) or OrgPreference(id=1, values={})
    values = dict(row.values)
    for name in change.model_fields_set:
        value = getattr(change, name)
        if value is None:
            values.pop(name, None)
        else:
            values[name] = value
    _check_reachable({**BUILTIN_DEFAULTS, **values})
    row.values = values
    row.updated_at = now
    row.updated_by_pk = by.id
    session.add(row)
    session.flush()
    return org_defaults(session)


def delivery_window(prefs: Preferences) -> Any:
    """The planner's :class:`intranet.delivery.timing.DeliveryWindow` for *prefs*.

    Quiet hours the person did not choose are the organisation's: they keep alerts away at night
    but give way for the digest in hours the person demonstrably reads in.
    """
    from intranet.delivery import timing

    return timing.DeliveryWindow(cadence=timing.Cadence(prefs.cadence), weekly_day=prefs.weekly_day,
                                 quiet_start=prefs.quiet_start, quiet_end=prefs.quiet_end,
                                 working_days=tuple(prefs.working_days), learned_timing=prefs.learned_timing,
                                 own_quiet_hours=bool({"quiet_start", "quiet_end"} & prefs.chosen))
