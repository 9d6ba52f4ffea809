"""Engagement dashboards for comms managers and admins: the organisation, one post, directory health.

Handlers are thin: parse the filters, ask the analytics services (every answer has passed the
minimum-group rule there), turn the answers into charts (:mod:`intranet.analytics.charts`) and
render them, or send one chart's table as CSV. Pages carry the figures as JSON blocks that
``static/intranet/js/charts.js`` draws; they need no inline script. Plotly.js positions its
tooltips and drag layers with ``style`` attributes, so these pages (and only these) relax the
Content-Security-Policy to ``style-src 'self' 'unsafe-inline'``; scripts stay at ``'self'``.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, abort, render_template, request
from sqlalchemy import func
from sqlmodel import select

from intranet import csv_export, targeting, zones
from intranet.analytics import charts, post_detail, queries, rollups
from intranet.directory import queries as directory_queries
from intranet.errors import InvalidInput, NotFound
from intranet.languages import N_
from intranet.models import Employee, Post
from intranet.web import security
from intranet.web import i18n
from intranet.web.context import current_employee, now, require_role, session, settings

logger = logging.getLogger(__name__)

bp = Blueprint("intranet_dashboards", __name__)

#: Queued live event batches folded before a dashboard answers (the fold job takes the rest).
FOLD_BEFORE_ANSWER = 2000
#: The longest window a dashboard answers (the raw events behind it are kept 13 months by default).
MAX_DAYS = 3660
DEFAULT_DAYS = 28
MAX_PAGE = 10_000
#: Up to this many authors the author filter is a list of names; beyond, a box for an employee ID or
#: e-mail address (9,100 authors at 100k people made a 430 kB list, four fifths of the page).
AUTHORS_LISTED = 300


@dataclasses.dataclass(frozen=True)
class Filters:
    """The dashboard's filters, parsed from the query string (absent ones are None)."""

    start: dt.date
    end: dt.date
    zone: str
    topic: str | None = None
    author: Employee | None = None
    department: str | None = None
    region: str | None = None
    level: int | None = None
    #: The page of must-reads the acknowledgement chart shows (1: the newest).
    must_reads_page: int = 1

    def args(self) -> dict[str, str]:
        """The query string that gives these filters again (for CSV links and the form)."""
        values = {"from": self.start.isoformat(), "to": self.end.isoformat(), "zone": self.zone, "topic": self.topic,
                  "author": self.author.employee_id if self.author else None, "department": self.department,
                  "region": self.region, "level": None if self.level is None else str(self.level),
                  "must_reads_page": str(self.must_reads_page) if self.must_reads_page > 1 else None}
        return {k: v for k, v in values.items() if v}


def _day(name: str, default: dt.date) -> dt.date:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return default
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(N_("“%(value)s” is not a date: use the date picker (for example 2026-11-24)."), value=raw[:20],
                           details={"field": name}) from None


#: The refusal of a filter value that is not one of the list's.
CHOOSE_FROM_LIST: dict[str, str] = {
    "level": N_("Choose the level from the list."), "topic": N_("Choose the topic from the list."),
    "department": N_("Choose the department from the list."), "region": N_("Choose the region from the list."),
}


def _choice(name: str, known: Callable[[str], bool]) -> str | None:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    if not known(raw):
        raise InvalidInput(CHOOSE_FROM_LIST[name], details={"field": name})
    return raw


def _someone_has(dimension: str) -> Callable[[str], bool]:
    # One lookup of the value asked about, not the directory's whole list of values; both values of
    # ``active`` are named so the (active, department) and (active, region) indexes serve it.
    column = getattr(Employee, dimension)
    return lambda value: session().execute(select(column).where(Employee.active.in_((True, False)), column == value)
                                           .limit(1)).first() is not None


def _published_topic(value: str) -> bool:
    return session().execute(select(Post.id).where(Post.topic == value, Post.published_at.is_not(None))
                             .limit(1)).first() is not None


def parse_filters() -> Filters:
    """The filters of this request.

    :raise InvalidInput: for a value that is not one of the choices, or a window that is upside down.
    """
    db = session()
    today = now().date()
    end = _day("to", today)
    start = _day("from", end - dt.timedelta(days=DEFAULT_DAYS - 1))
    if start > end or (end - start).days > MAX_DAYS:
        raise InvalidInput(N_("The start must be on or before the end, at most ten years apart."), details={"field": "from"})
    raw_zone = (request.args.get("zone") or rollups.LOCAL).strip()
    zone = raw_zone if raw_zone == rollups.LOCAL else zones.parse_zone(raw_zone, field="zone")
    author = None
    if request.args.get("author"):
        # An employee ID (the list's values), or an e-mail address typed where there are too many to list.
        wanted = request.args["author"].strip()
        author = db.exec(_author_query().where(Employee.employee_id == wanted)).first()
        if author is None and "@" in wanted:
            author = db.exec(_author_query().where(func.lower(Employee.email) == wanted.lower())).first()
        if author is None:
            raise InvalidInput(N_("Choose an author who has published: from the list, or by employee ID or e-mail."),
                               details={"field": "author"})
    level = _choice("level", {str(n) for n in range(1, 11)}.__contains__)
    page = (request.args.get("must_reads_page") or "1").strip()
    if not page.isdigit() or not 1 <= int(page) <= MAX_PAGE:
        raise InvalidInput(N_("The page of must-reads is a number from 1 to %(most)s."), most=MAX_PAGE,
                           details={"field": "must_reads_page"})
    return Filters(start=start, end=end, zone=zone, topic=_choice("topic", _published_topic), author=author,
                   department=_choice("department", _someone_has("department")),
                   region=_choice("region", _someone_has("region")), level=None if level is None else int(level),
                   must_reads_page=int(page))


def _author_query() -> Any:
    return select(Employee).where(Employee.id.in_(select(Post.author_pk).where(Post.published_at.is_not(None))))


def _topics() -> set[str]:
    return set(session().exec(select(Post.topic).where(Post.published_at.is_not(None)).distinct()).all())


def _choices() -> dict[str, Any]:
    db = session()
    published_by = select(Post.author_pk).where(Post.published_at.is_not(None))
    authors = None
    n_authors = db.execute(select(func.count()).select_from(Employee).where(Employee.id.in_(published_by))).scalar_one()
    if n_authors <= AUTHORS_LISTED:
        # Names only: an organisation where thousands have published would otherwise load every author whole.
        authors = db.execute(select(Employee.id, Employee.employee_id, Employee.display_name)
                             .where(Employee.id.in_(published_by)).order_by(Employee.display_name, Employee.id)).all()
    return {"topics": sorted(_topics()), "authors": authors,
            "departments": sorted(targeting.known_values(db, "department")),
            "regions": sorted(targeting.known_values(db, "region")), "levels": list(range(1, 11)),
            "zone_choices": zones.choices(i18n.locale())}


def _k() -> int:
    return settings().analytics.min_group  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# The charts of each page
# --------------------------------------------------------------------------------------------


def _fold_recent() -> None:
    # Live events wait in a queue for the fold job (every minute); fold what is there first, so
    # a dashboard counts every read already acknowledged to its sender (the API does the same).
    # Rollups are derived data: this write on a GET changes nothing anyone asked to change.
    rollups.fold_pending(session(), org_timezone=settings().site.org_timezone, limit=FOLD_BEFORE_ANSWER)
    # Posts published again on another day are refiled once and kept so (the read rates would
    # otherwise redo it, uncommitted, on every request until something else commits).
    rollups.refile(session())
    # Always: a fold's turn (an advisory lock on PostgreSQL) lasts until commit, and the charts
    # below would otherwise hold it while they read.
    session().commit()


def _organisation_builders(filters: Filters) -> dict[str, Callable[[], charts.Chart]]:
    """Each organisation chart's key and how to build it under *filters* (each applies the filters
    its rollups can). Kept apart from building so a CSV download builds only the chart it serves."""
    db, k = session(), _k()
    narrowed = queries.Filters(start=filters.start, end=filters.end, topic=filters.topic,
                               author_pk=filters.author.id if filters.author else None,
                               department=filters.department, region=filters.region, level=filters.level)
    lang = i18n.locale()  # the charts' own words (titles, axes, notes) in the viewer's language

    def hours() -> charts.Chart:
        answer = queries.reading_hours(db, zone=filters.zone, start=filters.start, end=filters.end, k=k,
                                       org_timezone=settings().site.org_timezone)
        return charts.reading_hours(answer, k=k, language=lang)

    def rate(dimension: str) -> Callable[[], charts.Chart]:
        return lambda: charts.rate_over_time(queries.read_rate_by_group(db, dimension=dimension, filters=narrowed,
                                                                        k=k), dimension, k=k, language=lang)

    return {
        "reading-hours": hours,
        **{f"rate-{d}": rate(d) for d in rollups.DIMENSIONS},
        "topics": lambda: charts.topics(queries.topic_engagement(db, filters=narrowed, k=k), k=k, language=lang),
        "digests": lambda: charts.digests(queries.digest_performance(db, start=filters.start, end=filters.end, k=k),
                                          k=k, language=lang),
        "acknowledgements": lambda: charts.acknowledgements(queries.acknowledgement_progress(
            db, filters=narrowed, k=k, limit=queries.MUST_READS_PER_PAGE,
            offset=(filters.must_reads_page - 1) * queries.MUST_READS_PER_PAGE), k=k, language=lang),
        "timing-lift": lambda: charts.timing_lift(
            queries.learned_timing_lift(db, start=filters.start, end=filters.end, k=k), k=k, language=lang),
        "coverage": lambda: charts.coverage(directory_queries.coverage(db), language=lang),
    }


def organisation_charts(filters: Filters) -> list[charts.Chart]:
    """The organisation's charts under *filters*."""
    _fold_recent()
    return [build() for build in _organisation_builders(filters).values()]


def organisation_chart(filters: Filters, key: str) -> charts.Chart | None:
    """The organisation's chart *key* under *filters*, built alone (None: no such chart)."""
    build = _organisation_builders(filters).get(key)
    if build is None:
        return None
    _fold_recent()
    return build()


def _post_builders(post: Post) -> dict[str, Callable[[], charts.Chart]]:
    """Each of one post's charts by key; the rollup answer several share is asked once, when first needed."""
    db, k = session(), _k()
    lang = i18n.locale()
    asked: dict[str, queries.PostAnalytics] = {}

    def answer() -> queries.PostAnalytics:
        if "post" not in asked:
            asked["post"] = queries.post_analytics(db, post, k=k)
        return asked["post"]

    def readership() -> charts.Chart:
        # The headcount from the funnel's answer on the page; alone (its CSV), one count, not the whole answer.
        audience = asked["post"].audience if "post" in asked else queries.audience_count(db, post)
        return charts.readership(post_detail.readership(db, post, audience=audience, k=k), k=k, language=lang)

    def by(dimension: str) -> Callable[[], charts.Chart]:
        return lambda: charts.by_dimension(answer(), dimension, k=k, language=lang)

    return {"funnel": lambda: charts.funnel(answer(), must_read=post.must_read, k=k, language=lang),
            "readership": readership,
            "ratings": lambda: charts.ratings(post_detail.rating_distribution(db, post, k=k), k=k, language=lang),
            **{f"by-{d}": by(d) for d in rollups.DIMENSIONS}}


def post_charts(post: Post) -> list[charts.Chart]:
    """One post's charts."""
    _fold_recent()
    return [build() for build in _post_builders(post).values()]


def post_chart(post: Post, key: str) -> charts.Chart | None:
    """One post's chart *key*, built alone (None: no such chart)."""
    build = _post_builders(post).get(key)
    if build is None:
        return None
    _fold_recent()
    return build()


def _published_post_or_404(post_id: int) -> Post:
    post = session().get(Post, post_id)
    if post is None or post.published_at is None:
        raise NotFound(N_("No published post has this number."))
    return post


def _chart_csv(chart: charts.Chart | None, filename: str) -> Response:
    if chart is None:
        abort(404)
    body = csv_export.to_csv(chart.header, chart.rows)
    return Response(body, mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def dashboard_page(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a dashboard page: its responses allow inline styles (plotly.js positions with them)."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        response = view(*args, **kwargs)
        return security.with_chart_styles(response)

    return wrapped


# --------------------------------------------------------------------------------------------
# Routes
# --------------------------------------------------------------------------------------------


@bp.get("/analytics")
@require_role("comms")
@dashboard_page
def organisation():  # type: ignore[no-untyped-def]
    filters = parse_filters()
    found = organisation_charts(filters)
    recent = post_detail.published_posts(session(), start=filters.start, end=filters.end, topic=filters.topic,
                                         author_pk=filters.author.id if filters.author else None)
    logger.info("Analytics: %s opened the organisation dashboard", current_employee().employee_id)
    return render_template("intranet/analytics/organisation.html", employee=current_employee(), charts=found,
                           filters=filters, args=filters.args(), posts=recent, k=_k(), **_choices())


@bp.get("/analytics/charts/<key>.csv")
@require_role("comms")
def organisation_csv(key: str):  # type: ignore[no-untyped-def]
    filters = parse_filters()
    return _chart_csv(organisation_chart(filters, key), f"beacon-{key}-{filters.start}-{filters.end}.csv")


@bp.get("/analytics/posts/<int:post_id>")
@require_role("comms")
@dashboard_page
def post(post_id: int):  # type: ignore[no-untyped-def]
    item = _published_post_or_404(post_id)
    logger.info("Analytics: %s opened the dashboard of post %s", current_employee().employee_id, item.id)
    return render_template("intranet/analytics/post.html", employee=current_employee(), post=item,
                           charts=post_charts(item), k=_k(),
                           author=session().get(Employee, item.author_pk) if item.author_pk else None)


@bp.get("/analytics/posts/<int:post_id>/charts/<key>.csv")
@require_role("comms")
def post_csv(post_id: int, key: str):  # type: ignore[no-untyped-def]
    item = _published_post_or_404(post_id)
    return _chart_csv(post_chart(item, key), f"beacon-post-{item.id}-{key}.csv")

