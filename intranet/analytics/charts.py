"""Every dashboard chart, built with plotly on the server: the only module that imports plotly.

A chart is data: :class:`Chart` carries the figure in plotly's JSON schema (``{"data": [traces],
"layout": {...}}``, template ``"none"``, drawn in the browser by ``static/intranet/js/charts.js``
with the strict plotly.js bundle) and the table behind it, which is what its CSV download contains.
Figures are written as plain dicts in that schema rather than through ``plotly.graph_objects``:
building and validating graph objects took about half a second of the organisation page for a
dozen small figures of a fixed shape. The tests check every figure the pages embed against
plotly's schema (``plotly.graph_objects.Figure(figure)`` raises on an unknown or invalid
property), so plotly stays the reference for what a figure may hold. Both are built from the
same rows, which have already passed the minimum-group rule in the query services: a group that
is hidden there is absent here, from the bars, the hover text, the JSON and the CSV alike.

Text from data (department names, topics, post titles) is HTML-escaped before it goes into a
figure: plotly.js reads a few tags in labels (``<a href>``, ``<b>``, ``<br>``) and shows entities
as the characters they stand for, so an escaped label is displayed as typed and never becomes
markup. Pages embed the figure with Jinja's ``tojson`` (see :attr:`Chart.data`).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import html
import json
from collections.abc import Iterable, Sequence
from typing import Any

from intranet import languages
from intranet.languages import ntranslate, translate

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
#: ColorBrewer's "Blues" as plotly expands the name (the figure carries the scale itself).
BLUES = [[0.0, "rgb(247,251,255)"], [0.125, "rgb(222,235,247)"], [0.25, "rgb(198,219,239)"],
         [0.375, "rgb(158,202,225)"], [0.5, "rgb(107,174,214)"], [0.625, "rgb(66,146,198)"],
         [0.75, "rgb(33,113,181)"], [0.875, "rgb(8,81,156)"], [1.0, "rgb(8,48,107)"]]
COLORS = ("#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d")


@dataclasses.dataclass(frozen=True)
class Page:
    """Where a paged chart's rows lie among all of them: items *first* to *last* (1-based) of *total*."""

    number: int
    first: int
    last: int
    total: int

    @property
    def newer(self) -> int | None:
        """The number of the page before (newer items), if any."""
        return self.number - 1 if self.number > 1 else None

    @property
    def older(self) -> int | None:
        """The number of the page after (older items), if any."""
        return self.number + 1 if self.last < self.total else None


@dataclasses.dataclass(frozen=True)
class Chart:
    """One chart: its figure (plotly JSON text) and the table its CSV download holds."""

    key: str
    title: str
    #: The figure in plotly's JSON schema (plain data: text, numbers, None, lists and dicts).
    spec: dict[str, Any]
    header: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    #: Said under the chart: what the minimum-group rule left out, or why there is nothing to show.
    note: str = ""
    #: For a chart of one page of its items (must-reads): which page.
    page: Page | None = None

    @property
    def empty(self) -> bool:
        return not self.rows

    @property
    def data(self) -> dict[str, Any]:
        """The figure as data, for the page: Jinja's ``tojson`` writes it into
        ``<script type="application/json">`` with ``<``, ``>``, ``&`` and ``'`` as ``\\u`` escapes,
        so no text from data can close the element, and ``JSON.parse`` returns the figure."""
        return self.spec

    @property
    def figure(self) -> str:
        """The figure as JSON text (what ``fig.to_json()`` gives for the same figure)."""
        return json.dumps(self.spec, default=_plain, separators=(",", ":"))


def _plain(value: Any) -> Any:
    # Sums can come back from PostgreSQL as Decimal; dates appear only in hover data.
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON data")


def text(value: Any) -> str:
    """A label from data, escaped for plotly (shown as typed, never read as markup)."""
    return html.escape("" if value is None else str(value), quote=False)


def group_label(dimension: str, value: Any, language: str | None = None) -> str:
    """How a group is named in a chart: ``Level 3``, ``Sales``; ``Not known`` for a missing value (in *language*)."""
    if value is None or value == "":
        return translate(language, "Not known")
    return translate(language, "Level %(level)s", level=value) if dimension == "level" else str(value)


def _hover(worded: str) -> str:
    """A hover template from its words (translated with plotly's own ``%{...}`` fields as the placeholders' values)."""
    return worded + "<extra></extra>"


#: Plotly's ``"none"`` template as ``fig.to_json()`` writes it (no theme: the layout below is the look).
_TEMPLATE_NONE = {"data": {"scatter": [{"type": "scatter"}]}}


def _trace(kind: str, **properties: Any) -> dict[str, Any]:
    """One trace (``bar``, ``scatter``, ``heatmap``, ``funnel``) with its plotly properties."""
    return {"type": kind, **properties}


def _figure(data: Sequence[dict[str, Any]], title: str, **layout: Any) -> dict[str, Any]:
    # The title sits below the toolbar (top right), so the two never overlap.
    return {"data": list(data), "layout": {
        "template": _TEMPLATE_NONE, "title": {"text": text(title), "x": 0, "xref": "paper", "y": 0.9,
                                              "yanchor": "top", "yref": "container"},
        "margin": {"l": 60, "r": 20, "t": 75, "b": 50}, "font": {"family": "system-ui, sans-serif", "size": 13},
        "colorway": list(COLORS), "separators": ".,", **layout}}


def _hidden_note(hidden_rows: int, k: int, what: str = "group", language: str | None = None) -> str:
    if not hidden_rows:
        return ""
    if what == "topic":
        return ntranslate(language, "%(num)d topic is not shown: too few people (under %(k)s), or showing it would "
                          "let someone work out a group that small.", "%(num)d topics are not shown: too few people "
                          "(under %(k)s), or showing them would let someone work out a group that small.",
                          hidden_rows, k=k)
    if what == "channel":
        return ntranslate(language, "%(num)d channel is not shown: too few people (under %(k)s), or showing it would "
                          "let someone work out a group that small.", "%(num)d channels are not shown: too few people "
                          "(under %(k)s), or showing them would let someone work out a group that small.",
                          hidden_rows, k=k)
    if what == "must-read":
        return ntranslate(language, "%(num)d must-read is not shown: too few people (under %(k)s), or showing it "
                          "would let someone work out a group that small.", "%(num)d must-reads are not shown: too "
                          "few people (under %(k)s), or showing them would let someone work out a group that small.",
                          hidden_rows, k=k)
    return ntranslate(language, "%(num)d group is not shown: too few people (under %(k)s), or showing it would let "
                      "someone work out a group that small.", "%(num)d groups are not shown: too few people (under "
                      "%(k)s), or showing them would let someone work out a group that small.", hidden_rows, k=k)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


# --------------------------------------------------------------------------------------------
# One post
# --------------------------------------------------------------------------------------------


def funnel(post: Any, *, must_read: bool, k: int, language: str | None = None) -> Chart:
    """Audience vs reached vs read (vs acknowledged, for a must-read) of one post, worded in *language*.

    :param post: a :class:`intranet.analytics.queries.PostAnalytics`. Reached and read below *k*
        people are not shown (the audience is an exact headcount, acknowledgement a disclosed act).
    """
    stages = [(translate(language, "Audience"), post.audience, False), (translate(language, "Reached"), post.reached, True),
              (translate(language, "Read"), post.read, True)]
    if must_read:
        stages.append((translate(language, "Acknowledged"), post.acknowledged, False))
    shown = [(name, n) for name, n, private in stages if not (private and 0 < n < k)]
    hidden = len(stages) - len(shown)
    data = [_trace("funnel", y=[name for name, _ in shown], x=[n for _, n in shown], textinfo="value+percent initial",
                   hovertemplate=_hover(translate(language, "%(stage)s: %(people)s people", stage="%{y}", people="%{x}")))]
    rows = [(name, n, _rate(n, post.audience)) for name, n in shown]
    title = translate(language, "Who it reached")
    return Chart("funnel", title, _figure(data, title), ("stage", "people", "share_of_audience"),
                 rows, translate(language, "Stages with fewer than %(k)s people are not shown.", k=k) if hidden else "")


def _by_title(dimension: str, language: str | None) -> str:
    return {"department": translate(language, "Read rate by department"),
            "region": translate(language, "Read rate by region"),
            "level": translate(language, "Read rate by level"),
            "language": translate(language, "Read rate by language")}.get(dimension, dimension)


def by_dimension(post: Any, dimension: str, *, k: int, language: str | None = None) -> Chart:
    """Read rate (read / audience) of one post by department, region or level, with the counts in the hover."""
    groups = list(post.by.get(dimension, []))
    names = [text(group_label(dimension, g.value, language)) for g in groups]
    rates = [_rate(g.read, g.audience) for g in groups]
    custom = [[g.audience, g.reached, g.read] for g in groups]
    data = [_trace("bar", x=names, y=rates, customdata=custom, marker={"color": COLORS[0]},
                   hovertemplate=_hover(translate(language, "%(group)s<br>Read rate %(rate)s<br>Audience %(audience)s, reached "
                                        "%(reached)s, read %(read)s", group="%{x}", rate="%{y:.0%}",
                                        audience="%{customdata[0]}", reached="%{customdata[1]}",
                                        read="%{customdata[2]}")))]
    title = _by_title(dimension, language)
    figure = _figure(data, title, yaxis={"tickformat": ".0%", "rangemode": "tozero"}, xaxis={"type": "category"})
    rows = [(group_label(dimension, g.value, language), g.audience, g.reached, g.read, _rate(g.read, g.audience))
            for g in groups]
    note = "" if groups else translate(language, "No group has %(k)s or more people to show.", k=k)
    return Chart(f"by-{dimension}", title, figure, (dimension, "audience", "reached", "read", "read_rate"), rows, note)


def readership(readership: Any, *, k: int, language: str | None = None) -> Chart:
    """Read rate over the days since publishing (cumulative, in steps of at least *k* readers).

    :param readership: an :class:`intranet.analytics.post_detail.Readership`.
    """
    steps = readership.steps
    audience = readership.audience
    # The curve starts from nobody at publishing (a fact, not reading data).
    xs = ([0] if steps else []) + [s.days_since_publishing for s in steps]
    rates = ([0.0] if steps else []) + [_rate(s.readers, audience) for s in steps]
    custom = ([[translate(language, "publishing"), 0]] if steps else []) + [[s.day.isoformat(), s.readers] for s in steps]
    data = [_trace("scatter", x=xs, y=rates, mode="lines+markers", line={"shape": "hv"}, customdata=custom,
                   hovertemplate=_hover(translate(language, "Day %(day)s (%(date)s)<br>%(readers)s readers, %(rate)s of the "
                                        "audience", day="%{x}", date="%{customdata[0]}", readers="%{customdata[1]}",
                                        rate="%{y:.0%}")))]
    title = translate(language, "Read rate since publishing")
    figure = _figure(data, title, yaxis={"tickformat": ".0%", "rangemode": "tozero"},
                     xaxis={"title": {"text": translate(language, "Days since publishing")}, "rangemode": "tozero"})
    rows = [(s.day, s.days_since_publishing, s.readers, _rate(s.readers, audience)) for s in steps]
    note = (translate(language, "Fewer than %(k)s people have read it: the curve is not shown.", k=k)
            if readership.hidden_readers else "")
    return Chart("readership", title, figure, ("day", "days_since_publishing", "readers", "read_rate"), rows, note)


def ratings(distribution: Any, *, k: int, language: str | None = None) -> Chart:
    """How people rated one post (stars 1-5, or thumbs), shown once at least *k* people rated."""
    labels = [("★" * int(label)) if distribution.style == "stars" else ("👍" if label == "up" else "👎")
              for label, _ in distribution.counts]
    counts = [n for _, n in distribution.counts]
    data = [_trace("bar", x=labels, y=counts, marker={"color": COLORS[2]},
                   hovertemplate=_hover(translate(language, "%(rating)s: %(people)s people", rating="%{x}", people="%{y}")))]
    title = translate(language, "Ratings")
    figure = _figure(data, title, xaxis={"type": "category"}, yaxis={"rangemode": "tozero"})
    note = translate(language, "Fewer than %(k)s people rated it: the ratings are not shown.", k=k) \
        if distribution.hidden else ("" if distribution.counts else translate(language, "Nobody has rated it yet."))
    return Chart("ratings", title, figure, ("rating", "people"), list(distribution.counts), note)


# --------------------------------------------------------------------------------------------
# The organisation
# --------------------------------------------------------------------------------------------


def reading_hours(hours: Any, *, k: int, language: str | None = None) -> Chart:
    """Reads by weekday x hour as a heatmap (cells read by fewer than *k* people are blank).

    :param hours: a :class:`intranet.analytics.queries.ReadingHours`.
    """
    z: list[list[int | None]] = [[None] * 24 for _ in range(7)]
    custom: list[list[int | None]] = [[None] * 24 for _ in range(7)]
    for cell in hours.cells:
        z[cell.weekday][cell.hour] = cell.reads
        custom[cell.weekday][cell.hour] = cell.readers
    local = hours.zone == "local"
    data = [_trace("heatmap", z=z, x=[f"{h:02d}:00" for h in range(24)], y=languages.weekday_names(language),
                   customdata=custom, colorscale=BLUES, hoverongaps=False,
                   colorbar={"title": {"text": translate(language, "Reads")}},
                   hovertemplate=_hover(translate(language, "%(day)s %(hour)s<br>%(reads)s reads by %(people)s people",
                                        day="%{y}", hour="%{x}", reads="%{z}", people="%{customdata}")))]
    figure = _figure(data, translate(language, "When people read (each reader's local time)") if local else
                     translate(language, "When people read (%(zone)s)", zone=text(hours.zone)),
                     yaxis={"autorange": "reversed", "type": "category"}, xaxis={"type": "category"})
    rows = [(DAY_NAMES[c.weekday], c.hour, c.reads, c.readers) for c in hours.cells]
    note = " ".join([translate(language, "Hours read by fewer than %(k)s people are blank.", k=k),
                     translate(language, "Times are each reader's own local time.") if local else
                     translate(language, "Times are in %(zone)s.", zone=hours.zone),
                     translate(language, "Counts every read in the dates chosen (the other filters do not apply).")])
    return Chart("reading-hours", translate(language, "When people read"), figure,
                 ("weekday", "hour", "reads", "readers"), rows, note)


def _narrowed_note(series: Any, k: int, what: str = "group", language: str | None = None) -> str:
    hidden = getattr(series, "hidden", None)
    if hidden is not None:
        return ntranslate(language, "These filters leave fewer than %(k)s people: only that %(num)d person is hidden "
                          "can be said.", "These filters leave fewer than %(k)s people: only that %(num)d people are "
                          "hidden can be said.", hidden.hidden_people, k=k)
    return _hidden_note(getattr(series, "hidden_rows", 0), k, what, language)


def _weekly_title(dimension: str, language: str | None) -> str:
    return {"department": translate(language, "Weekly read rate by department"),
            "region": translate(language, "Weekly read rate by region"),
            "level": translate(language, "Weekly read rate by level"),
            "language": translate(language, "Weekly read rate by language")}.get(dimension, dimension)


def rate_over_time(series: Any, dimension: str, *, k: int, language: str | None = None) -> Chart:
    """Read rate (people reading / people reached, over the posts published each week) per group.

    :param series: :func:`intranet.analytics.queries.read_rate_by_group` for *dimension*.
    """
    groups: dict[str, list[Any]] = {}
    for row in series.rows:
        groups.setdefault(group_label(dimension, row.value, language), []).append(row)
    lines_ = [(name, [languages.format_date(r.period, languages.DATE, language=language) for r in rows],
               [_rate(r.read, r.reached) for r in rows], [[r.reached, r.read] for r in rows])
              for name, rows in groups.items()]
    rows = [(r.period, group_label(dimension, r.value, language), r.reached, r.read, _rate(r.read, r.reached))
            for r in series.rows]
    chart = lines(f"rate-{dimension}", _weekly_title(dimension, language), lines_,
                  header=("week", dimension, "reached", "read", "read_rate"),
                  rows=rows, x_title=translate(language, "Week of publishing"),
                  hover=_hover(translate(language, "%(group)s, week of %(week)s<br>%(rate)s: %(read)s of %(reached)s reached "
                               "read", group="%{fullData.name}", week="%{x}", rate="%{y:.0%}",
                               read="%{customdata[1]}", reached="%{customdata[0]}")),
                  note=" ".join(filter(None, [_narrowed_note(series, k, language=language), translate(
                      language, "Posts published in the dates chosen, of the topic and author chosen; of the filters "
                      "by group, only the one for this chart applies here.")])))
    return chart


def topics(series: Any, *, k: int, language: str | None = None) -> Chart:
    """Per topic: read rate over the posts published in the window, with posts, reach and read events.

    :param series: :func:`intranet.analytics.queries.topic_engagement`.
    """
    rows_ = series.rows
    custom = [[r.posts, r.reached, r.read, r.reads] for r in rows_]
    chart = bars("topics", translate(language, "Engagement by topic"), [r.topic for r in rows_],
                 [(translate(language, "Read rate"), [_rate(r.read, r.reached) for r in rows_], custom)],
                 header=("topic", "posts", "reached", "read", "read_events", "read_rate"),
                 rows=[(r.topic, r.posts, r.reached, r.read, r.reads, _rate(r.read, r.reached)) for r in rows_],
                 hover=_hover(translate(language, "%(topic)s<br>Read rate %(rate)s<br>%(posts)s posts, %(read)s of %(reached)s "
                              "reached read, %(reads)s reads", topic="%{x}", rate="%{y:.0%}",
                              posts="%{customdata[0]}", read="%{customdata[2]}", reached="%{customdata[1]}",
                              reads="%{customdata[3]}")),
                 note=_narrowed_note(series, k, "topic", language))
    return chart


def digests(series: Any, *, k: int, language: str | None = None) -> Chart:
    """Per channel: digests and alerts sent, and the shares opened, read within 2 h and within 24 h.

    :param series: :func:`intranet.analytics.queries.digest_performance`.
    """
    rows_ = series.rows
    names = [r.channel.replace("_", "-") for r in rows_]
    measures = [(translate(language, "Opened"), "opened"), (translate(language, "Read within 2 h"), "read_2h"),
                (translate(language, "Read within 24 h"), "read_24h")]
    data = [(name, [_rate(getattr(r, attr), r.sent) for r in rows_], [[getattr(r, attr), r.sent] for r in rows_])
            for name, attr in measures]
    note = _narrowed_note(series, k, "channel", language)
    return bars("digests", translate(language, "Digests by channel"), names, data,
                header=("channel", "sent", "opened", "read_2h", "read_24h"),
                rows=[(r.channel, r.sent, r.opened, r.read_2h, r.read_24h) for r in rows_],
                hover=_hover(translate(language, "%(channel)s, %(measure)s: %(rate)s (%(count)s of %(sent)s sent)",
                             channel="%{x}", measure="%{fullData.name}", rate="%{y:.0%}", count="%{customdata[0]}",
                             sent="%{customdata[1]}")),
                note=(note + " " if note else "")
                + translate(language, "Messages sent in the dates chosen (the other filters do not apply)."))


def acknowledgements(series: Any, *, k: int, language: str | None = None) -> Chart:
    """Must-read posts: the share of each one's audience that has acknowledged it (one page of them, when paged).

    :param series: :func:`intranet.analytics.queries.acknowledgement_progress`.
    """
    rows_ = series.rows
    titles = [text(r.title) for r in rows_]
    custom = [[r.acknowledged, r.audience,
               r.ack_deadline.date().isoformat() if r.ack_deadline else translate(language, "none")] for r in rows_]
    data = [_trace("bar", y=titles, x=[_rate(r.acknowledged, r.audience) for r in rows_], orientation="h",
                   customdata=custom,
                   marker={"color": COLORS[4]},
                   hovertemplate=_hover(translate(language, "%(post)s<br>%(done)s of %(audience)s acknowledged (%(rate)s)<br>"
                                        "Deadline: %(deadline)s", post="%{y}", done="%{customdata[0]}",
                                        audience="%{customdata[1]}", rate="%{x:.0%}", deadline="%{customdata[2]}")))]
    title = translate(language, "Must-read acknowledgements")
    figure = _figure(data, title, xaxis={"tickformat": ".0%", "range": [0, 1]},
                     yaxis={"type": "category", "automargin": True, "autorange": "reversed"})
    rows = [(r.post_id, r.title, r.audience, r.acknowledged, _rate(r.acknowledged, r.audience), r.ack_deadline)
            for r in rows_]
    page = None
    if getattr(series, "limit", None):
        on_page = len(rows_) + series.hidden_rows
        page = Page(number=series.offset // series.limit + 1, first=series.offset + 1 if on_page else 0,
                    last=series.offset + on_page, total=series.total)
    return Chart("acknowledgements", title, figure,
                 ("post_id", "title", "audience", "acknowledged", "share", "deadline"), rows,
                 _narrowed_note(series, k, "must-read", language) or (
                     "" if rows_ else translate(language, "No must-read was published in this period.")), page)


def timing_lift(lift: Any, *, k: int, language: str | None = None) -> Chart:
    """Learned send times against the control group (the default hour): read-within-24-h rates,
    the difference with its 95 % interval, and the sample sizes.

    :param lift: :func:`intranet.analytics.queries.learned_timing_lift`.
    """
    title = translate(language, "Learned send times vs the default hour")
    if lift.hidden is not None:
        return Chart("timing-lift", title, _figure([], translate(language, "Learned send times")),
                     ("arm", "sent", "read_24h", "rate"), [],
                     translate(language, "Too few digests to compare: each arm needs at least %(k)s (the smaller has "
                               "%(smaller)s).", k=k, smaller=lift.hidden.hidden_people))
    arms = [("Learned times", lift.personalised_sent, lift.personalised_read),
            ("Default hour (control)", lift.control_sent, lift.control_read)]
    labels = [translate(language, "Learned times (n = %(n)s)", n=lift.personalised_sent),
              translate(language, "Default hour (n = %(n)s)", n=lift.control_sent)]
    rates, errors = [], []
    for _, n, x in arms:
        p = x / n
        rates.append(round(p, 4))
        errors.append(round(1.96 * (p * (1 - p) / n) ** 0.5, 4))
    data = [_trace("bar", x=labels, y=rates, error_y={"type": "data", "array": errors, "visible": True},
                   customdata=[[x, n] for _, n, x in arms], marker={"color": [COLORS[0], COLORS[7]]},
                   hovertemplate=_hover(translate(language, "%(arm)s<br>%(rate)s read within 24 h (%(read)s of %(sent)s digests)",
                                        arm="%{x}", rate="%{y:.1%}", read="%{customdata[0]}",
                                        sent="%{customdata[1]}")))]
    headline = translate(language, "Difference %(difference)s (95 %% interval %(low)s to %(high)s); n = %(learned)s "
                         "and %(control)s", difference=f"{lift.difference:+.1%}", low=f"{lift.low:+.1%}",
                         high=f"{lift.high:+.1%}", learned=lift.personalised_sent, control=lift.control_sent)
    figure = _figure(data, translate(language, "Learned times: %(difference)s read in 24 h",
                                     difference=f"{lift.difference:+.1%}"),
                     yaxis={"tickformat": ".0%", "rangemode": "tozero"}, xaxis={"type": "category"})
    rows = [(name, n, x, round(x / n, 4)) for name, n, x in arms]
    rows.append(("difference (learned - control)", None, None, lift.difference))
    rows.append(("95% interval low", None, None, lift.low))
    rows.append(("95% interval high", None, None, lift.high))
    return Chart("timing-lift", title, figure, ("arm", "sent", "read_24h", "rate"), rows,
                 headline + ". " + translate(language, "Error bars: 95 %% intervals of each rate. Digests sent in the "
                                             "dates chosen (the other filters do not apply).", k=k))


def coverage(data: dict[str, Any], *, language: str | None = None) -> Chart:
    """Directory health: the share of active employees with each attribute the dashboards group by.

    :param data: :func:`intranet.directory.queries.coverage` (exact headcounts: directory facts).
    """
    names = [("department", translate(language, "Department")), ("region", translate(language, "Region")),
             ("level", translate(language, "Level")), ("timezone", translate(language, "Time zone"))]
    shares = [data[name]["share"] for name, _ in names]
    counts = [data[name]["count"] for name, _ in names]
    bars = [_trace("bar", x=[label for _, label in names], y=shares, customdata=counts, marker={"color": COLORS[1]},
                   hovertemplate=_hover(translate(language, "%(attribute)s: %(people)s people (%(share)s)", attribute="%{x}",
                                        people="%{customdata}", share="%{y:.0%}")))]
    figure = _figure(bars, translate(language, "Directory coverage (%(active)s active people)", active=data["active"]),
                     yaxis={"tickformat": ".0%", "range": [0, 1]}, xaxis={"type": "category"})
    rows = [(label, data[name]["count"], data["active"], round(data[name]["share"], 4)) for name, label in names]
    note = translate(language, "People without an attribute are counted as “Not known” in every chart grouped by it; "
                     "fill the gaps in the directory to make those charts useful.")
    return Chart("coverage", translate(language, "Directory health"), figure,
                 ("attribute", "employees_with_it", "active_employees", "share"), rows, note)


def lines(key: str, title: str, series: Iterable[tuple[str, Sequence[Any], Sequence[float | None],
                                                      Sequence[Sequence[Any]]]], *,
          header: tuple[str, ...], rows: list[tuple[Any, ...]], y_title: str = "", percent: bool = True,
          hover: str = "%{fullData.name}<br>%{x}: %{y:.0%}<extra></extra>", note: str = "", x_title: str = "") -> Chart:
    """A line per series ``(name, x, y, customdata)``: read rates over time, by group or by arm."""
    data = [_trace("scatter", x=list(x), y=list(y), name=text(name), mode="lines+markers",
                   customdata=[list(c) for c in custom],
                       hovertemplate=hover) for name, x, y, custom in series]
    figure = _figure(data, title, yaxis={"tickformat": ".0%" if percent else "", "rangemode": "tozero",
                                         "title": {"text": y_title}}, hovermode="closest",
                     xaxis={"type": "category", "title": {"text": text(x_title)}})
    return Chart(key, title, figure, header, rows, note)


def bars(key: str, title: str, categories: Sequence[Any], series: Iterable[tuple[str, Sequence[float | None],
                                                                                 Sequence[Sequence[Any]]]], *,
         header: tuple[str, ...], rows: list[tuple[Any, ...]], percent: bool = True, hover: str | None = None,
         note: str = "") -> Chart:
    """Grouped bars: one bar per series ``(name, y, customdata)`` in each category."""
    data = [_trace("bar", x=[text(c) for c in categories], y=list(y), name=text(name),
                   customdata=[list(c) for c in custom],
                   hovertemplate=hover or "%{fullData.name}<br>%{x}: %{y:.0%}<extra></extra>")
            for name, y, custom in series]
    figure = _figure(data, title, barmode="group", xaxis={"type": "category"},
                     yaxis={"tickformat": ".0%" if percent else "", "rangemode": "tozero"})
    return Chart(key, title, figure, header, rows, note)
