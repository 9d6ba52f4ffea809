"""Who should see what: Beacon's one targeting rule.

An audience is ``{"all": true}`` or one or more segments OR-ed together, minus exclusions. Inside
a segment the dimensions are AND-ed and the values of one dimension OR-ed; level bounds are
inclusive and a person without a level never matches a bound. Only active employees are ever in
an audience, and audiences are evaluated against current directory data.

Two rules are relative, so their members change without anyone editing the audience:

* ``hired_within_days: N`` - hired in the last N days: a hire date from ``today - N`` to ``today``
  inclusive (``today`` is the UTC date of the moment asked about; a future hire date does not
  match yet, and a person without a hire date never matches);
* ``reports_to: [employee ids]`` - reports to one of these people directly or indirectly: anyone
  on the person's chain of managers (``manager_id`` upwards, a cycle in the data stops the walk).
  The SQL forms walk the chain with a recursive CTE (SQLite and PostgreSQL alike).

Journey steps (:mod:`intranet.journeys`) are posts marked ``journey_only``: on top of the rule
above, such a post is seen only by the people its step was released to (a release row with status
``released``), so feed, post page, API, search, digests and alerts honour releases without knowing
about journeys. :func:`shown_at` is when a post reached a person: its release for a journey step,
else its publication (freshness in the feed, "new since the last digest").

The rule exists here three times, and a property test proves the three agree:

* :func:`employee_matches` – a Python predicate, for single checks (a post page, a digest item);
* :func:`employee_filter` – SQL over employees, for counting and listing an audience;
* :func:`visible_posts_filter` – SQL over posts, for one employee's feed.
"""
from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import (ColumnElement, Integer, String, and_, bindparam, case, delete, distinct, false, func, literal, or_, select, true,
                        union_all)
from sqlalchemy.orm import aliased
from sqlmodel import Session

from intranet import zones
from intranet.db import UTCDateTime
from intranet.errors import InvalidInput, NotFound, validated
from intranet.languages import N_, Phrase
from intranet.models import AudienceSegment, AudienceValue, Employee, Group, GroupMember, JourneyRelease, Post

# Segment field -> (dimension stored in AudienceValue, Employee column or None for groups).
SEGMENT_FIELDS: dict[str, str] = {
    "departments": "department",
    "divisions": "division",
    "regions": "region",
    "countries": "country",
    "offices": "office",
    "groups": "group",
    "reports_to": "reports_to",
}
#: Each dimension as a refusal names it ("no employee has department 'Salse'").
DIMENSION_WORDS: dict[str, Phrase] = {
    "department": Phrase(N_("department")), "division": Phrase(N_("division")), "region": Phrase(N_("region")),
    "country": Phrase(N_("country")), "office": Phrase(N_("office")), "group": Phrase(N_("group")),
    "reports_to": Phrase(N_("reports_to")),
}
EMPLOYEE_COLUMNS = {"department": Employee.department, "division": Employee.division, "region": Employee.region,
                    "country": Employee.country, "office": Employee.office}
LIVE_STATUSES = ("scheduled", "published")

# Bounds on one audience as people send it. Every query over an audience grows with its size (an
# employee filter is an OR of its segments; SQLite refuses expressions more than 1,000 deep), and a
# post's segments are matched in every feed, so a post must not be able to slow everyone's. Real
# audiences stay far below: a segment per department of a large organisation, or one group.
#: Most included segments, and again most excluded ones.
MAX_SEGMENTS = 50
#: Most values in one dimension of one segment (departments, offices, groups, ...).
MAX_VALUES_PER_DIMENSION = 200
#: Most values in the whole audience, all segments and exclusions together.
MAX_VALUES = 1000
#: The longest value (the stored column's width).
MAX_VALUE_LENGTH = 255
#: Unknown values get spelling suggestions up to this many (each costs a pass over the directory).
MAX_SUGGESTED = 20
#: The longest "hired in the last N days" window (ten years).
MAX_HIRED_WITHIN_DAYS = 3650
#: Longest reporting chain walked; deeper data is an error in the directory, not an organisation.
MAX_CHAIN = 50


class Segment(BaseModel):
    """One segment of an audience: every given dimension must match."""

    model_config = ConfigDict(extra="forbid")

    departments: list[str] = Field(default_factory=list)
    divisions: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    countries: list[str] = Field(default_factory=list)
    offices: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    reports_to: list[str] = Field(default_factory=list)
    level_min: int | None = Field(default=None, ge=1, le=10)
    level_max: int | None = Field(default=None, ge=1, le=10)
    hired_within_days: int | None = Field(default=None, ge=0, le=MAX_HIRED_WITHIN_DAYS)

    @model_validator(mode="after")
    def _has_criteria(self) -> Segment:
        if (not self.dimension_values() and self.level_min is None and self.level_max is None
                and self.hired_within_days is None):
            raise ValueError(N_("choose at least one criterion (a department, country, group, level, ...)"))
        if self.level_min is not None and self.level_max is not None and self.level_min > self.level_max:
            raise ValueError(N_("the lowest level is above the highest level"))
        return self

    def dimension_values(self) -> dict[str, set[str]]:
        """The non-empty dimensions of this segment, as {dimension: values}."""
        out: dict[str, set[str]] = {}
        for field, dimension in SEGMENT_FIELDS.items():
            values = {v.strip() for v in getattr(self, field) if v and v.strip()}
            if values:
                out[dimension] = values
        return out


class Audience(BaseModel):
    """Who a post is for. An audience with no criteria is an error, never "everyone"."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    all_staff: bool = Field(default=False, alias="all")
    segments: list[Segment] = Field(default_factory=list)
    exclude: list[Segment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> Audience:
        if not self.all_staff and not self.segments:
            raise ValueError(N_('choose "All staff" or at least one group of people'))
        return self

    def to_json(self) -> dict[str, Any]:
        """The audience as stored and returned by the API."""
        data: dict[str, Any] = {}
        if self.all_staff:
            data["all"] = True
        if self.segments:
            data["segments"] = [s.model_dump(exclude_defaults=True) for s in self.segments]
        if self.exclude:
            data["exclude"] = [s.model_dump(exclude_defaults=True) for s in self.exclude]
        return data


class AudiencePreviewIn(BaseModel):
    """``POST /api/v1/audiences/preview``: the audience to count (read by :func:`parse_audience`)."""

    audience: Audience = Field(description='Either {"all": true} or one or more segments (OR-ed), minus '
                                           "exclusions. Inside a segment dimensions are AND-ed and values "
                                           "OR-ed; level bounds are inclusive.")


class PreviewPublic(BaseModel):
    """Exact headcounts of an audience: overall, and by department, region and level ("unknown" when missing)."""

    count: int
    by_department: dict[str, int]
    by_region: dict[str, int]
    by_level: dict[str, int]


def parse_audience(raw: Any) -> Audience:
    """Validate an audience as given by a client.

    :raise InvalidInput: naming what is wrong, when *raw* is not a valid, non-empty audience.
    """
    if not isinstance(raw, dict) or not raw:
        raise InvalidInput(N_('An audience is required: {"all": true} or {"segments": [...]}.'), details={"field": "audience"})
    check_bounds(raw)
    return validated(Audience, raw, describe=describe_problems)


def describe_problems(exc: ValidationError) -> Phrase:
    """What is wrong with an audience, in the words of the builder (no field paths, no JSON)."""
    problems: list[Phrase | str] = []
    for error in exc.errors():
        loc = list(error["loc"])
        where: tuple[str, int] | None = None
        if len(loc) >= 2 and loc[0] in ("segments", "exclude") and isinstance(loc[1], int):
            where = (N_("People who match (group %(number)s): %(problem)s") if loc[0] == "segments"
                     else N_("People left out (group %(number)s): %(problem)s"), loc[1] + 1)
            loc = loc[2:]
        message: Phrase | str
        if loc and loc[-1] in ("level_min", "level_max"):
            message = Phrase(N_("levels are whole numbers from 1 to 10"), capitalised=where is None)
        elif loc and loc[-1] == "hired_within_days":
            message = Phrase(N_("“hired in the last … days” is a whole number from 0 to %(most)s"),
                             most=f"{MAX_HIRED_WITHIN_DAYS:,}", capitalised=where is None)
        elif error["type"] == "extra_forbidden":
            message = Phrase(N_("“%(name)s” is not something an audience can be chosen by"),
                             name=loc[-1] if loc else "?", capitalised=where is None)
        else:  # the model's validators' words (marked below); pydantic's own stay English
            message = Phrase(error["msg"].removeprefix("Value error, "), capitalised=where is None)
        problems.append(Phrase(where[0], number=where[1], problem=message) if where else message)
    return Phrase(N_("Check the audience. %(problems)s."), problems=tuple(problems))


#: For people who match, then people left out: the refusals of too many segments and of too many values in one.
BOUNDS_WORDS: tuple[tuple[str, str, str], ...] = (
    ("segments",
     N_("An audience can have at most %(most)s segments; this one has %(count)s. "
        "Target a group, or a department or region that covers them, instead."),
     N_("One segment can name at most %(most)s %(field)s; segment %(number)s of the segments names %(count)s. "
        "Target a group or a wider dimension instead.")),
    ("exclude",
     N_("An audience can have at most %(most)s exclusions; this one has %(count)s. "
        "Target a group, or a department or region that covers them, instead."),
     N_("One segment can name at most %(most)s %(field)s; segment %(number)s of the exclusions names %(count)s. "
        "Target a group or a wider dimension instead.")),
)


def check_bounds(raw: dict[str, Any]) -> None:
    """Refuse an audience larger than the bounds above, before any work on its contents.

    Only what people send is bounded: an audience stored before the bounds existed still reads.

    :raise InvalidInput: saying which bound was passed and what to do instead.
    """
    total = 0
    for key, too_many, too_many_values in BOUNDS_WORDS:
        segments = raw.get(key)
        if not isinstance(segments, list):
            continue  # the model explains a wrong type
        if len(segments) > MAX_SEGMENTS:
            raise InvalidInput(too_many, most=MAX_SEGMENTS, count=f"{len(segments):,}",
                               details={"field": f"audience.{key}", "limit": MAX_SEGMENTS})
        for number, segment in enumerate(segments, 1):
            if not isinstance(segment, dict):
                continue
            for field in SEGMENT_FIELDS:
                values = segment.get(field)
                if not isinstance(values, list):
                    continue
                if len(values) > MAX_VALUES_PER_DIMENSION:
                    raise InvalidInput(
                        too_many_values, most=MAX_VALUES_PER_DIMENSION, field=field, number=number, count=f"{len(values):,}",
                        details={"field": f"audience.{key}.{number - 1}.{field}", "limit": MAX_VALUES_PER_DIMENSION})
                if any(isinstance(v, str) and len(v) > MAX_VALUE_LENGTH for v in values):
                    raise InvalidInput(N_("A value in %(field)s is longer than %(most)s characters; no "
                                          "directory value is that long."), field=field, most=MAX_VALUE_LENGTH,
                                       details={"field": f"audience.{key}.{number - 1}.{field}",
                                                "limit": MAX_VALUE_LENGTH})
                total += len(values)
    if total > MAX_VALUES:
        raise InvalidInput(N_("An audience can name at most %(most)s values in all; this one names %(count)s. "
                              "Target groups or wider dimensions instead."), most=f"{MAX_VALUES:,}", count=f"{total:,}",
                           details={"field": "audience", "limit": MAX_VALUES})


def within_bounds(raw: dict[str, Any]) -> bool:
    """Whether a stored audience (as in ``Post.audience``) keeps the bounds new audiences must keep."""
    try:
        check_bounds(raw)
    except InvalidInput:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Known values: a misspelled department is an error, not an empty audience
# --------------------------------------------------------------------------------------------


def known_values(session: Session, dimension: str) -> set[str]:
    """Every value *dimension* currently has in the directory (group keys for ``group``)."""
    if dimension == "group":
        return set(session.exec(select(Group.key)).scalars())
    if dimension == "reports_to":
        return set(session.exec(select(Employee.employee_id).where(Employee.active.is_(True))).scalars())
    column = EMPLOYEE_COLUMNS[dimension]
    return set(session.exec(select(column).where(column.is_not(None)).distinct()).scalars())


def known_among(session: Session, dimension: str, values: set[str]) -> set[str]:
    """Which of *values* :func:`known_values` holds, without reading every value of the directory.

    An audience preview checks its values on every keystroke of the builder: reading the whole
    directory's departments (or all 100,000 employee ids for ``reports_to``) each time was most
    of a preview's database work at 100,000 people.
    """
    if not values:
        return set()
    wanted = sorted(values)
    if dimension == "group":
        return set(session.exec(select(Group.key).where(Group.key.in_(wanted))).scalars())
    if dimension == "reports_to":
        return set(session.exec(select(Employee.employee_id).where(
            Employee.active.is_(True), Employee.employee_id.in_(wanted))).scalars())
    column = EMPLOYEE_COLUMNS[dimension]
    # Both states of `active` named, so the (active, department|region) indexes answer the lookup;
    # the set is the same as known_values' (every person, active or not).
    return set(session.exec(select(column).where(Employee.active.in_([True, False]), column.in_(wanted))
                            .distinct()).scalars())


def value_names(session: Session, dimension: str, *, locale: str | None = None) -> dict[str, str]:
    """Every value *dimension* has, with the name people know it by (group names, country names in *locale*)."""
    if dimension == "group":
        return dict(session.exec(select(Group.key, Group.name)).all())
    if dimension == "reports_to":
        # People someone reports to: the builder offers managers, not all staff.
        managed = select(Employee.manager_id).where(Employee.active.is_(True), Employee.manager_id.is_not(None))
        return dict(session.exec(select(Employee.employee_id, Employee.display_name).where(
            Employee.active.is_(True), Employee.employee_id.in_(managed))).all())
    names = zones.country_names(locale) if dimension == "country" else {}
    return {value: names.get(value, value) for value in known_values(session, dimension)}


def check_known_values(session: Session, audience: Audience) -> None:
    """Refuse values that no employee (or group) has, suggesting the closest known ones.

    :raise InvalidInput: listing each unknown value with suggestions.
    """
    wanted: dict[str, set[str]] = {}
    for segment in [*audience.segments, *audience.exclude]:
        for dimension, values in segment.dimension_values().items():
            wanted.setdefault(dimension, set()).update(values)
    unknown = []
    for dimension, values in wanted.items():
        missing = values - known_among(session, dimension, values)
        if not missing:
            continue
        known = known_values(session, dimension)  # only to suggest what was meant
        for value in sorted(missing):
            suggestions = difflib.get_close_matches(value, sorted(known), n=3, cutoff=0.5) \
                if len(unknown) < MAX_SUGGESTED else []
            unknown.append({"dimension": dimension, "value": value, "suggestions": suggestions})
    if unknown:
        parts = tuple(
            Phrase(N_("no employee has %(dimension)s %(value)s (did you mean %(suggestions)s?)"),
                   dimension=DIMENSION_WORDS.get(item["dimension"], item["dimension"]), value=repr(item["value"]),
                   suggestions=", ".join(repr(s) for s in item["suggestions"]))
            if item["suggestions"] else
            Phrase(N_("no employee has %(dimension)s %(value)s"),
                   dimension=DIMENSION_WORDS.get(item["dimension"], item["dimension"]), value=repr(item["value"]))
            for item in unknown[:MAX_SUGGESTED])
        more = (Phrase(N_("; and %(count)s more"), count=f"{len(unknown) - MAX_SUGGESTED:,}")
                if len(unknown) > MAX_SUGGESTED else "")
        raise InvalidInput(N_("Unknown audience value: %(parts)s%(more)s."), parts=parts, more=more, details=unknown)


# --------------------------------------------------------------------------------------------
# The rule as a Python predicate
# --------------------------------------------------------------------------------------------


def days_since_hire(employee: Employee, today: dt.date) -> int | None:
    """Whole days from *employee*'s hire date to *today* (None without a hire date)."""
    return None if employee.hire_date is None else (today - employee.hire_date).days


def _hired_within(days: int | None, window: int) -> bool:
    return days is not None and 0 <= days <= window


def _segment_matches(segment: Segment, employee: Employee, group_keys: set[str], managers: set[str],
                     today: dt.date) -> bool:
    for dimension, values in segment.dimension_values().items():
        if dimension == "group":
            own = group_keys
        elif dimension == "reports_to":
            own = managers
        else:
            own = {getattr(employee, dimension)}
        if not own & values:
            return False
    if segment.hired_within_days is not None and not _hired_within(days_since_hire(employee, today),
                                                                   segment.hired_within_days):
        return False
    if segment.level_min is not None and (employee.level is None or employee.level < segment.level_min):
        return False
    if segment.level_max is not None and (employee.level is None or employee.level > segment.level_max):
        return False
    return True


def uses_managers(audience: Audience) -> bool:
    """Whether *audience* has a "reports to" rule (so a check needs the person's managers)."""
    return any(s.reports_to for s in (*audience.segments, *audience.exclude))


def employee_matches(audience: Audience, employee: Employee, group_keys: Iterable[str] = (), *,
                     managers: Iterable[str] = (), now: dt.datetime | None = None) -> bool:
    """Whether *employee* (a member of the groups *group_keys*) is in *audience*.

    :param managers: the employee ids on *employee*'s chain of managers (:func:`managers_of`);
        needed only when the audience has a "reports to" rule (:func:`uses_managers`).
    :param now: the moment asked about, for "hired in the last N days" (the current time if None).
    """
    if not employee.active:
        return False
    keys, chain = set(group_keys), set(managers)
    today = (now or dt.datetime.now(dt.timezone.utc)).date()
    included = audience.all_staff or any(_segment_matches(s, employee, keys, chain, today)
                                         for s in audience.segments)
    return included and not any(_segment_matches(s, employee, keys, chain, today) for s in audience.exclude)


def is_live(post: Post, now: dt.datetime) -> bool:
    """Whether *post* is published, due and unexpired at *now*."""
    return (
        post.status in LIVE_STATUSES
        and post.published_at is not None
        and post.published_at <= now
        and (post.expires_at is None or post.expires_at > now)
    )


def _group_keys_query(employee_pk: int) -> Any:
    return select(Group.key).join(GroupMember, GroupMember.group_id == Group.id).where(
        GroupMember.employee_pk == employee_pk
    )


def group_keys_of(session: Session, employee_pk: int) -> set[str]:
    """The keys of the groups *employee_pk* belongs to."""
    return set(session.exec(_group_keys_query(employee_pk)).scalars())


def _chain_up(employee: Employee, name: str) -> Any:
    """A recursive CTE of the employee ids above *employee* (its manager, theirs, ...)."""
    above = aliased(Employee)
    start = select(Employee.employee_id.label("employee_id"), Employee.manager_id.label("manager_id"),
                   literal(1).label("depth"))
    start = start.where(Employee.employee_id == literal(employee.manager_id))
    chain = start.cte(name, recursive=True)
    # UNION (not UNION ALL) and a depth bound: a cycle in the directory ends the walk.
    return chain.union(select(above.employee_id, above.manager_id, chain.c.depth + 1)
                       .where(above.employee_id == chain.c.manager_id, chain.c.depth < MAX_CHAIN))


def managers_of(session: Session, employee: Employee) -> set[str]:
    """The employee ids on *employee*'s chain of managers, nearest first up to the top (unordered)."""
    if not employee.manager_id:
        return set()
    chain = _chain_up(employee, "managers_up")
    return set(session.exec(select(chain.c.employee_id)).scalars())


def _viewer_scope_statement() -> Any:
    # Built once: this runs on every post page and rating, and building the expression cost more
    # CPU than compiling it (SQLAlchemy caches the compiled form, not the construction).
    above = aliased(Employee)
    start = select(Employee.employee_id.label("employee_id"), Employee.manager_id.label("manager_id"),
                   literal(1).label("depth")).where(Employee.employee_id == bindparam("manager_id", type_=String))
    chain = start.cte("managers_up", recursive=True)
    chain = chain.union(select(above.employee_id, above.manager_id, chain.c.depth + 1)
                        .where(above.employee_id == chain.c.manager_id, chain.c.depth < MAX_CHAIN))
    groups = (select(literal("group", String).label("kind"), Group.key.label("value"))
              .join(GroupMember, GroupMember.group_id == Group.id)
              .where(GroupMember.employee_pk == bindparam("employee_pk")))
    return union_all(groups, select(literal("manager", String), chain.c.employee_id))


_VIEWER_SCOPE = _viewer_scope_statement()


def viewer_scope(session: Session, employee: Employee) -> tuple[set[str], set[str]]:
    """(:func:`group_keys_of`, :func:`managers_of`) of *employee* in one round trip."""
    keys: set[str] = set()
    managers: set[str] = set()
    for kind, value in session.execute(_VIEWER_SCOPE, {"employee_pk": employee.id,
                                                       "manager_id": employee.manager_id or None}):
        (keys if kind == "group" else managers).add(value)
    return keys, managers


def released_post_ids(session: Session, employee_pk: int, post_ids: Iterable[int], now: dt.datetime) -> set[int]:
    """Which of *post_ids* (journey steps) have been released to *employee_pk* by *now*."""
    ids = sorted(set(post_ids))
    if not ids:
        return set()
    return set(session.exec(select(JourneyRelease.post_id).where(
        JourneyRelease.employee_pk == employee_pk, JourneyRelease.post_id.in_(ids),
        JourneyRelease.status == "released", JourneyRelease.released_at <= now)).scalars())


def released_filter(employee_pk: int, now: dt.datetime) -> ColumnElement[bool]:
    """A WHERE clause over :class:`Post`: not a journey step, or a step released to *employee_pk*."""
    released = select(JourneyRelease.post_id).where(
        JourneyRelease.employee_pk == employee_pk, JourneyRelease.status == "released",
        JourneyRelease.released_at <= now)
    return or_(Post.journey_only.is_(False), Post.id.in_(released))


def shown_at(employee_pk: int) -> ColumnElement[Any]:
    """SQL over :class:`Post`: when it reached *employee_pk* (a journey step's release, else publication)."""
    released = select(func.max(JourneyRelease.released_at)).where(
        JourneyRelease.post_id == Post.id, JourneyRelease.employee_pk == employee_pk,
        JourneyRelease.status == "released").scalar_subquery()
    # Only journey steps are released: other posts skip the lookup (a feed asks this of every visible post).
    return case((Post.journey_only.is_(True), func.coalesce(released, Post.published_at)), else_=Post.published_at)


def may_see(session: Session, employee: Employee, post: Post, now: dt.datetime) -> bool:
    """The single check for one post: live, targeted at *employee*, and released to them if a journey step."""
    if not is_live(post, now):
        return False
    if post.journey_only and not released_post_ids(session, employee.id, [post.id], now):
        return False
    audience = Audience.model_validate(post.audience)
    managers = managers_of(session, employee) if uses_managers(audience) else set()
    return employee_matches(audience, employee, group_keys_of(session, employee.id), managers=managers, now=now)


def visible_post_or_404(session: Session, employee: Employee, post_id: int, now: dt.datetime) -> Post:
    """Load a post *employee* may see, or raise the same 404 as for a post that does not exist.

    :raise NotFound: when the post is missing, not live, or not targeted at *employee*.
    """
    # The same queries whatever the answer: the groups are read before the post, even when there
    # is no post to check them against, so a missing post, one not live and one targeted at others
    # cost the same round trips. The Python predicate decides, not the SQL filter: a database skips
    # the targeting subqueries when the id matches nothing, which would bring the difference back.
    keys, managers = viewer_scope(session, employee)
    post = session.get(Post, post_id)
    if post is None or not (is_live(post, now)
                            and employee_matches(Audience.model_validate(post.audience), employee, keys,
                                                 managers=managers, now=now)
                            and (not post.journey_only or released_post_ids(session, employee.id, [post.id], now))):
        raise NotFound(N_("This post does not exist."))
    return post


# --------------------------------------------------------------------------------------------
# The rule as SQL over employees (audience counts and lists)
# --------------------------------------------------------------------------------------------


def _reports_to(managers: list[str], name: str) -> Any:
    """A recursive CTE of the employee ids below *managers* (their reports, theirs, ...)."""
    below = aliased(Employee)
    start = select(Employee.employee_id.label("employee_id"), literal(1).label("depth")).where(
        Employee.manager_id.in_(managers))
    chain = start.cte(name, recursive=True)
    return chain.union(select(below.employee_id, chain.c.depth + 1)
                       .where(below.manager_id == chain.c.employee_id, chain.c.depth < MAX_CHAIN))


def _segment_employee_clause(segment: Segment, today: dt.date, name: str) -> ColumnElement[bool]:
    # Each condition is written so that a NULL attribute yields FALSE, never NULL: NOT(NULL) would
    # otherwise make an exclusion silently drop people whose level or department is unknown.
    clauses: list[ColumnElement[bool]] = []
    for dimension, values in segment.dimension_values().items():
        if dimension == "reports_to":
            chain = _reports_to(sorted(values), name)
            clauses.append(Employee.employee_id.in_(select(chain.c.employee_id)))
        elif dimension == "group":
            members = select(GroupMember.employee_pk).join(Group, Group.id == GroupMember.group_id).where(
                Group.key.in_(sorted(values))
            )
            clauses.append(Employee.id.in_(members))
        else:
            column = EMPLOYEE_COLUMNS[dimension]
            clauses.append(and_(column.is_not(None), column.in_(sorted(values))))
    if segment.level_min is not None:
        clauses.append(and_(Employee.level.is_not(None), Employee.level >= segment.level_min))
    if segment.level_max is not None:
        clauses.append(and_(Employee.level.is_not(None), Employee.level <= segment.level_max))
    if segment.hired_within_days is not None:
        clauses.append(and_(Employee.hire_date.is_not(None),
                            Employee.hire_date >= today - dt.timedelta(days=segment.hired_within_days),
                            Employee.hire_date <= today))
    return and_(*clauses)


def employee_filter(audience: Audience, *, now: dt.datetime | None = None,
                    name: str = "reports") -> ColumnElement[bool]:
    """A WHERE clause over :class:`Employee` selecting exactly *audience* (active people only).

    :param now: the moment asked about, for "hired in the last N days" (the current time if None).
    :param name: the prefix of the clause's CTE names (one per "reports to" rule); give another one
        to combine two audiences in one statement.
    """
    today = (now or dt.datetime.now(dt.timezone.utc)).date()
    included = true() if audience.all_staff else or_(*(_segment_employee_clause(s, today, f"{name}_in{i}")
                                                       for i, s in enumerate(audience.segments)))
    clause = and_(Employee.active.is_(True), included)
    if audience.exclude:
        clause = and_(clause, ~or_(*(_segment_employee_clause(s, today, f"{name}_ex{i}")
                                     for i, s in enumerate(audience.exclude))))
    return clause


def count_audience(session: Session, audience: Audience, *, now: dt.datetime | None = None) -> int:
    """The exact number of active employees in *audience* (at *now*, for relative rules)."""
    return session.exec(select(func.count()).select_from(Employee)
                        .where(employee_filter(audience, now=now))).one()[0]


def released_to_filter(post_id: int) -> ColumnElement[bool]:
    """A WHERE clause over :class:`Employee`: the people journey step *post_id* was released to."""
    return Employee.id.in_(select(JourneyRelease.employee_pk).where(JourneyRelease.post_id == post_id,
                                                                    JourneyRelease.status == "released"))


def post_audience_filter(post: Post, audience: Audience, *, now: dt.datetime | None = None,
                         name: str = "reports") -> ColumnElement[bool]:
    """A WHERE clause over :class:`Employee`: the people *post* (with *audience*) is for.

    A journey step is for the people it was released to (within its audience), not for everyone
    its audience names: until then nobody may see it. *name* as for :func:`employee_filter`.
    """
    where = employee_filter(audience, now=now, name=name)
    return and_(where, released_to_filter(post.id)) if post.journey_only else where  # type: ignore[arg-type]


def _profile_countable(post: Post, audience: Audience) -> bool:
    """Whether *audience* reads only employee columns and levels (so alike people are counted alike)."""
    return not post.journey_only and all(
        s.hired_within_days is None and not s.groups and not s.reports_to
        for s in (*audience.segments, *audience.exclude))


def _count_by_profiles(session: Session, audiences: Sequence[Audience]) -> list[int]:
    """Each of *audiences* (all :func:`_profile_countable`) counted from one GROUP BY pass over the directory.

    The active people are grouped by the columns the audiences name (and level, when one has a
    bound); each audience is then set operations over those groups, counted with their sizes, so the
    counts are exact and come from one snapshot of the directory. This is :func:`employee_filter`
    evaluated in Python over those groups; the property test comparing counts made together with
    each audience counted alone holds the two to the same answers.
    """
    if not audiences:
        return []
    used: set[str] = set()
    for audience in audiences:
        for segment in (*audience.segments, *audience.exclude):
            used.update(segment.dimension_values())
    names = sorted(used)
    columns = [EMPLOYEE_COLUMNS[n] for n in names] + [Employee.level]
    profiles = [tuple(row) for row in session.execute(
        select(*columns, func.count()).where(Employee.active.is_(True)).group_by(*columns))]
    # Which groups have each (column position, value); a segment's groups are then set operations.
    index: dict[tuple[int, Any], set[int]] = {}
    for i, profile in enumerate(profiles):
        for position in range(len(columns)):
            index.setdefault((position, profile[position]), set()).add(i)
    everyone = set(range(len(profiles)))
    level_at = len(names)

    def segment_groups(segment: Segment) -> set[int]:
        groups = everyone
        for dimension, values in segment.dimension_values().items():
            position = names.index(dimension)
            groups = groups & set().union(*(index.get((position, v), set()) for v in values))
        if segment.level_min is not None or segment.level_max is not None:
            # Levels are 1-10; a bound never matches a person without a level (the None key is not read).
            low, high = segment.level_min or 1, segment.level_max or 10
            groups = groups & set().union(*(index.get((level_at, n), set()) for n in range(low, high + 1)))
        return groups

    counts = []
    for audience in audiences:
        groups = everyone if audience.all_staff else set().union(*map(segment_groups, audience.segments))
        for segment in audience.exclude:
            groups = groups - segment_groups(segment)
        counts.append(sum(profiles[i][-1] for i in groups))
    return counts


#: From this many distinct audiences on, :func:`count_post_audiences` counts those it can together.
#: The pass over the directory costs the same for one audience as for 160: at 100k people on
#: SQLite, 20 must-reads took 80 CPU-ms counted one by one against 250 together, 160 took 720
#: against 500.
COUNT_TOGETHER_FROM = 80


def count_post_audiences(session: Session, posts: Sequence[tuple[Post, Audience]], *,
                         now: dt.datetime | None = None, together_from: int = COUNT_TOGETHER_FROM) -> list[int]:
    """The headcount of each (post, its audience) in *posts*, in order (:func:`post_audience_filter`),
    one count per distinct audience.

    When there are at least *together_from* distinct audiences, those that read only employee
    columns and levels (most must-reads: departments, regions, level bounds, office exclusions)
    are counted together from one GROUP BY pass over the directory (:func:`_count_by_profiles`):
    160 separate counts over 100k people were half of the dashboard page. The rest (groups,
    "reports to", "hired in the last N days", journey steps), and all of them below that number,
    are one statement each, which can use the (active, department) and (active, region) indexes;
    counting 160 audiences as ``COUNT(*) FILTER (WHERE ...)`` columns of one pass took twice as
    long on SQLite as 160 counts.
    """
    def key(post: Post, audience: Audience) -> tuple[str, int | None]:
        # A journey step's headcount is its released people: its own, even for an audience others share.
        return audience.model_dump_json(), (post.id if post.journey_only else None)

    moment = now or dt.datetime.now(dt.timezone.utc)
    distinct_posts: dict[tuple[str, int | None], tuple[Post, Audience]] = {}
    for post, audience in posts:
        distinct_posts.setdefault(key(post, audience), (post, audience))
    together = [k for k, (post, audience) in distinct_posts.items() if _profile_countable(post, audience)]
    if len(distinct_posts) < together_from:
        together = []
    counted = dict(zip(together, _count_by_profiles(session, [distinct_posts[k][1] for k in together])))
    for k, (post, audience) in distinct_posts.items():
        if k not in counted:
            counted[k] = int(session.exec(select(func.count()).select_from(Employee)
                                          .where(post_audience_filter(post, audience, now=moment))).one()[0])
    return [counted[key(post, audience)] for post, audience in posts]


def audience_breakdown(session: Session, audience: Audience, *, now: dt.datetime | None = None,
                       post: Post | None = None, by_language: bool = False) -> dict[str, Any]:
    """Exact headcounts of *audience*, overall and by department, region and level (and language).

    Missing values are counted under ``"unknown"``; these are directory facts, not reading data.
    Everyone-audiences are answered from covering-index scans, one per dimension; any other
    filter is evaluated once, grouping by all the dimensions, and summed here.

    :param post: the post the audience is of, when it is stored: a journey step counts only the
        people it was released to (:func:`post_audience_filter`).
    :param by_language: split by the directory's language tag too (``by_language``), in the same
        pass (the audience preview, which people wait on, does not ask for it).
    """
    where = employee_filter(audience, now=now) if post is None else post_audience_filter(post, audience, now=now)
    dimensions = (("by_department", Employee.department), ("by_region", Employee.region),
                  ("by_level", Employee.level))
    if by_language:
        dimensions += (("by_language", Employee.language),)
    totals: dict[str, dict[Any, int]] = {name: {} for name, _ in dimensions}
    if audience.all_staff and not audience.exclude:
        for name, column in dimensions:
            totals[name] = dict(session.exec(select(column, func.count()).where(where).group_by(column)).all())
    else:
        columns = [column for _, column in dimensions]
        for *keys, n in session.exec(select(*columns, func.count()).where(where).group_by(*columns)).all():
            for (name, _), key in zip(dimensions, keys):
                totals[name][key] = totals[name].get(key, 0) + n
    result: dict[str, Any] = {"count": sum(totals["by_department"].values())}
    for name, counts in totals.items():
        result[name] = {("unknown" if key is None else str(key)): n
                        for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))}
    return result


# --------------------------------------------------------------------------------------------
# The rule as SQL over posts (one employee's feed)
# --------------------------------------------------------------------------------------------


def store_audience(session: Session, post: Post, audience: Audience) -> None:
    """Set *post*'s audience and its compiled segments (the post must have an id)."""
    post.audience = audience.to_json()
    post.all_staff = audience.all_staff
    session.exec(delete(AudienceSegment).where(AudienceSegment.post_id == post.id))
    for exclude, segments in ((False, audience.segments), (True, audience.exclude)):
        for segment in segments:
            values = segment.dimension_values()
            row = AudienceSegment(post_id=post.id, exclude=exclude, n_dimensions=len(values),
                                  level_min=segment.level_min, level_max=segment.level_max,
                                  hired_within_days=segment.hired_within_days)
            session.add(row)
            session.flush()
            session.add_all(AudienceValue(segment_id=row.id, dimension=d, value=v)
                            for d, vs in values.items() for v in sorted(vs))
    session.flush()


def employee_pairs(employee: Employee, group_keys: Iterable[str]) -> list[tuple[str, str]]:
    """The (dimension, value) pairs an employee can match, for the post-side filter."""
    pairs = [(d, getattr(employee, d)) for d in EMPLOYEE_COLUMNS if getattr(employee, d) is not None]
    return pairs + [("group", key) for key in sorted(group_keys)]


def live_filter(now: dt.datetime) -> ColumnElement[bool]:
    """A WHERE clause over :class:`Post`: published, due and unexpired at *now*."""
    return and_(
        # One plain parameter per status, not an "expanding" list: SQLAlchemy re-renders an
        # expanding statement's text on every execution, even when the statement is cached.
        Post.status.in_([literal(status) for status in LIVE_STATUSES]),
        Post.published_at.is_not(None),
        Post.published_at <= now,
        or_(Post.expires_at.is_(None), Post.expires_at > now),
    )


def rule_shape(employee: Employee, group_keys: Iterable[str] | None, now: dt.datetime) -> tuple[Any, ...]:
    """What :func:`visible_posts_filter`'s statement looks like for *employee* at *now*, apart from its values.

    Two people with the same shape get the same statement with other bound values
    (:func:`visible_posts_values`), so a caller may build it once per shape and run it for anyone
    of that shape (the feed does: building the statement cost more CPU than running it).
    """
    if not employee.active:
        return (False,)
    days = days_since_hire(employee, now.date())
    return (True, tuple(d for d, _ in employee_pairs(employee, group_keys or ())), group_keys is None,
            bool(employee.manager_id), employee.level is None, days is None or days < 0)


def visible_posts_values(employee: Employee, group_keys: Iterable[str] | None, now: dt.datetime, *,
                         name: str = "matching_segments") -> dict[str, Any]:
    """The bound values of :func:`visible_posts_filter` for *employee* at *now*, by parameter name.

    Every value the rule takes from the person or the clock is one of these: executing a statement
    built for someone of the same :func:`rule_shape` with them gives *employee*'s rule exactly.
    """
    values: dict[str, Any] = {f"{name}_employee_pk": employee.id, f"{name}_now": now}
    if not employee.active:
        return values
    for i, (dimension, value) in enumerate(employee_pairs(employee, group_keys or ())):
        values[f"{name}_dimension_{i}"] = dimension
        values[f"{name}_value_{i}"] = value
    if employee.manager_id:
        values[f"{name}_manager_id"] = employee.manager_id
    if employee.level is not None:
        values[f"{name}_level"] = employee.level
    days = days_since_hire(employee, now.date())
    if days is not None and days >= 0:
        values[f"{name}_days"] = days
    return values


def visible_posts_filter(employee: Employee, group_keys: Iterable[str] | None, now: dt.datetime, *,
                         name: str = "matching_segments") -> ColumnElement[bool]:
    """A WHERE clause over :class:`Post` selecting the live posts targeted at *employee*.

    :param group_keys: the person's groups (:func:`group_keys_of`), or None to read them inside
        the statement (one round trip fewer for a caller that needs them nowhere else).
    :param name: the name of the clause's CTE and the prefix of its parameters; give another one
        to combine two people's rules in one statement.
    """
    values = visible_posts_values(employee, group_keys, now, name=name)
    shape = rule_shape(employee, group_keys, now)
    if not shape[0]:
        return false()
    # Every per-person value is a named parameter (see rule_shape): the statement's form depends on the shape only.
    param = lambda key, type_=None: bindparam(f"{name}_{key}", values[f"{name}_{key}"], type_=type_)  # noqa: E731
    _, dimensions, read_groups, has_manager, no_level, no_days = shape
    employee_pk = param("employee_pk", Integer)
    now_value = param("now", UTCDateTime())
    # The person's (dimension, value) pairs as one small relation joined to the values' index: an
    # OR of per-dimension tests with subqueries in it made the databases scan every stored value.
    parts = [select(param(f"dimension_{i}", String(16)).label("dimension"), param(f"value_{i}", String(255)).label("value"))
             for i in range(len(dimensions))]
    if read_groups:
        parts.append(select(literal("group", String(16)).label("dimension"), Group.key.label("value"))
                     .join(GroupMember, GroupMember.group_id == Group.id)
                     .where(GroupMember.employee_pk == employee_pk))
    if has_manager:
        # "Reports to": the values are managers' employee ids, matched against the person's chain.
        above = aliased(Employee)
        start = select(Employee.employee_id.label("employee_id"), Employee.manager_id.label("manager_id"),
                       literal(1).label("depth")).where(Employee.employee_id == param("manager_id", String))
        chain = start.cte(f"{name}_managers", recursive=True)
        # UNION (not UNION ALL) and a depth bound: a cycle in the directory ends the walk.
        chain = chain.union(select(above.employee_id, above.manager_id, chain.c.depth + 1)
                            .where(above.employee_id == chain.c.manager_id, chain.c.depth < MAX_CHAIN))
        parts.append(select(literal("reports_to", String(16)).label("dimension"), chain.c.employee_id.label("value")))
    if parts:
        mine = (union_all(*parts) if len(parts) > 1 else parts[0]).cte(f"{name}_pairs")
        matched = (
            select(AudienceValue.segment_id, func.count(distinct(AudienceValue.dimension)).label("n"))
            .join(mine, and_(AudienceValue.dimension == mine.c.dimension, AudienceValue.value == mine.c.value))
            .group_by(AudienceValue.segment_id)
            .subquery()
        )
    else:
        matched = (select(AudienceValue.segment_id, func.count(distinct(AudienceValue.dimension)).label("n"))
                   .where(false()).group_by(AudienceValue.segment_id).subquery())
    if no_level:
        level_ok = and_(AudienceSegment.level_min.is_(None), AudienceSegment.level_max.is_(None))
    else:
        level = param("level", Integer)
        level_ok = and_(or_(AudienceSegment.level_min.is_(None), AudienceSegment.level_min <= level),
                        or_(AudienceSegment.level_max.is_(None), AudienceSegment.level_max >= level))
    # "Hired in the last N days": the person's days since hire are a constant here.
    if no_days:
        level_ok = and_(level_ok, AudienceSegment.hired_within_days.is_(None))
    else:
        level_ok = and_(level_ok, or_(AudienceSegment.hired_within_days.is_(None),
                                      AudienceSegment.hired_within_days >= param("days", Integer)))
    # One CTE for includes and excludes, so the database matches the employee's segments once.
    matching_segments = (
        select(AudienceSegment.post_id, AudienceSegment.exclude)
        .outerjoin(matched, matched.c.segment_id == AudienceSegment.id)
        .where(func.coalesce(matched.c.n, 0) == AudienceSegment.n_dimensions, level_ok)
        .cte(name)
    )
    included = select(matching_segments.c.post_id).where(matching_segments.c.exclude.is_(False))
    excluded = select(matching_segments.c.post_id).where(matching_segments.c.exclude.is_(True))
    return and_(live_filter(now_value), or_(Post.all_staff.is_(True), Post.id.in_(included)),
                Post.id.not_in(excluded), released_filter(employee_pk, now_value))
