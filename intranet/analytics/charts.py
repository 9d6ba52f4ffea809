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

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DIMENSION_LABELS = {"department": "Department", "region": "Region", "level": "Level", "language": "Language"}
#: ColorBrewer's "Blues" as plotly expands the name (the figure carries the scale itself).
BLUES = [[0.0, "rgb(247,251,255)"], [0.125, "rgb(222,235,247)"], [0.25, "rgb(198,219,239)"],
         [0.375, "rgb(158,202,225)"], [0.5, "rgb(107,174,214)"], [0.625, "rgb(66,146,198)"],
         [0.75, "rgb(33,113,181)"], [0.875, "rgb(8,81,156)"], [1.0, "rgb(8,48,107)"]]
COLORS = ("#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d")


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


def group_label(dimension: str, value: Any) -> str:
    """How a group is named in a chart: ``Level 3``, ``Sales``; ``Not known`` for a missing value."""
    if value is None or value == "":
        return "Not known"
    return f"Level {value}" if dimension == "level" else str(value)


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


def _hidden_note(hidden_rows: int, k: int, what: tuple[str, str] = ("group", "groups")) -> str:
    if not hidden_rows:
        return ""
    name = what[0] if hidden_rows == 1 else what[1]
    return (f"{hidden_rows} {name} {'is' if hidden_rows == 1 else 'are'} not shown: too few people (under {k}), "
            f"or showing {'it' if hidden_rows == 1 else 'them'} would let someone work out a group that small.")


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


# --------------------------------------------------------------------------------------------
# One post
# --------------------------------------------------------------------------------------------


def funnel(post: Any, *, must_read: bool, k: int) -> Chart:
    """Audience vs reached vs read (vs acknowledged, for a must-read) of one post.

    :param post: a :class:`intranet.analytics.queries.PostAnalytics`. Reached and read below *k*
        people are not shown (the audience is an exact headcount, acknowledgement a disclosed act).
    """
    stages = [("Audience", post.audience, False), ("Reached", post.reached, True), ("Read", post.read, True)]
    if must_read:
        stages.append(("Acknowledged", post.acknowledged, False))
    shown = [(name, n) for name, n, private in stages if not (private and 0 < n < k)]
    hidden = len(stages) - len(shown)
    data = [_trace("funnel", y=[name for name, _ in shown], x=[n for _, n in shown], textinfo="value+percent initial",
                      hovertemplate="%{y}: %{x} people<extra></extra>")]
    rows = [(name, n, _rate(n, post.audience)) for name, n in shown]
    return Chart("funnel", "Who it reached", _figure(data, "Who it reached"), ("stage", "people", "share_of_audience"),
                 rows, f"Stages with fewer than {k} people are not shown." if hidden else "")


def by_dimension(post: Any, dimension: str, *, k: int) -> Chart:
    """Read rate (read / audience) of one post by department, region or level, with the counts in the hover."""
    groups = list(post.by.get(dimension, []))
    label = DIMENSION_LABELS[dimension]
    names = [text(group_label(dimension, g.value)) for g in groups]
    rates = [_rate(g.read, g.audience) for g in groups]
    custom = [[g.audience, g.reached, g.read] for g in groups]
    data = [_trace("bar", x=names, y=rates, customdata=custom, marker={"color": COLORS[0]},
                   hovertemplate="%{x}<br>Read rate %{y:.0%}<br>Audience %{customdata[0]}, reached %{customdata[1]}, "
                                 "read %{customdata[2]}<extra></extra>")]
    figure = _figure(data, f"Read rate by {label.lower()}", yaxis={"tickformat": ".0%", "rangemode": "tozero"},
                     xaxis={"type": "category"})
    rows = [(group_label(dimension, g.value), g.audience, g.reached, g.read, _rate(g.read, g.audience)) for g in groups]
    note = "" if groups else f"No {label.lower()} has {k} or more people to show."
    return Chart(f"by-{dimension}", f"Read rate by {label.lower()}", figure,
                 (dimension, "audience", "reached", "read", "read_rate"), rows, note)


def readership(readership: Any, *, k: int) -> Chart:
    """Read rate over the days since publishing (cumulative, in steps of at least *k* readers).

    :param readership: an :class:`intranet.analytics.post_detail.Readership`.
    """
    steps = readership.steps
    audience = readership.audience
    # The curve starts from nobody at publishing (a fact, not reading data).
    xs = ([0] if steps else []) + [s.days_since_publishing for s in steps]
    rates = ([0.0] if steps else []) + [_rate(s.readers, audience) for s in steps]
    custom = ([["publishing", 0]] if steps else []) + [[s.day.isoformat(), s.readers] for s in steps]
    data = [_trace("scatter", x=xs, y=rates, mode="lines+markers", line={"shape": "hv"}, customdata=custom,
                       hovertemplate="Day %{x} (%{customdata[0]})<br>%{customdata[1]} readers, %{y:.0%} of the "
                                     "audience<extra></extra>")]
    figure = _figure(data, "Read rate since publishing", yaxis={"tickformat": ".0%", "rangemode": "tozero"},
                     xaxis={"title": {"text": "Days since publishing"}, "rangemode": "tozero"})
    rows = [(s.day, s.days_since_publishing, s.readers, _rate(s.readers, audience)) for s in steps]
    note = f"Fewer than {k} people have read it: the curve is not shown." if readership.hidden_readers else ""
    return Chart("readership", "Read rate since publishing", figure,
                 ("day", "days_since_publishing", "readers", "read_rate"), rows, note)


def ratings(distribution: Any, *, k: int) -> Chart:
    """How people rated one post (stars 1-5, or thumbs), shown once at least *k* people rated."""
    labels = [("★" * int(label)) if distribution.style == "stars" else ("👍" if label == "up" else "👎")
              for label, _ in distribution.counts]
    counts = [n for _, n in distribution.counts]
    data = [_trace("bar", x=labels, y=counts, marker={"color": COLORS[2]},
                   hovertemplate="%{x}: %{y} people<extra></extra>")]
    figure = _figure(data, "Ratings", xaxis={"type": "category"}, yaxis={"rangemode": "tozero"})
    note = f"Fewer than {k} people rated it: the ratings are not shown." if distribution.hidden else (
        "" if distribution.counts else "Nobody has rated it yet.")
    return Chart("ratings", "Ratings", figure, ("rating", "people"), list(distribution.counts), note)


# --------------------------------------------------------------------------------------------
# The organisation
# --------------------------------------------------------------------------------------------


def reading_hours(hours: Any, *, k: int) -> Chart:
    """Reads by weekday x hour as a heatmap (cells read by fewer than *k* people are blank).

    :param hours: a :class:`intranet.analytics.queries.ReadingHours`.
    """
    z: list[list[int | None]] = [[None] * 24 for _ in range(7)]
    custom: list[list[int | None]] = [[None] * 24 for _ in range(7)]
    for cell in hours.cells:
        z[cell.weekday][cell.hour] = cell.reads
        custom[cell.weekday][cell.hour] = cell.readers
    zone = "each reader's local time" if hours.zone == "local" else text(hours.zone)
    data = [_trace("heatmap", z=z, x=[f"{h:02d}:00" for h in range(24)], y=[d[:3] for d in DAY_NAMES],
                   customdata=custom,
                       colorscale=BLUES, hoverongaps=False, colorbar={"title": {"text": "Reads"}},
                       hovertemplate="%{y} %{x}<br>%{z} reads by %{customdata} people<extra></extra>")]
    figure = _figure(data, f"When people read ({zone})", yaxis={"autorange": "reversed", "type": "category"},
                     xaxis={"type": "category"})
    rows = [(DAY_NAMES[c.weekday], c.hour, c.reads, c.readers) for c in hours.cells]
    note = (f"Hours read by fewer than {k} people are blank. Times are "
            + ("each reader's own local time." if hours.zone == "local" else f"in {hours.zone}.")
            + " Counts every read in the dates chosen (the other filters do not apply).")
    return Chart("reading-hours", "When people read", figure, ("weekday", "hour", "reads", "readers"), rows, note)


def _narrowed_note(series: Any, k: int, what: tuple[str, str] = ("group", "groups")) -> str:
    hidden = getattr(series, "hidden", None)
    if hidden is not None:
        return (f"These filters leave fewer than {k} people: only that {hidden.hidden_people} "
                f"{'person is' if hidden.hidden_people == 1 else 'people are'} hidden can be said.")
    return _hidden_note(getattr(series, "hidden_rows", 0), k, what)


def rate_over_time(series: Any, dimension: str, *, k: int) -> Chart:
    """Read rate (people reading / people reached, over the posts published each week) per group.

    :param series: :func:`intranet.analytics.queries.read_rate_by_group` for *dimension*.
    """
    label = DIMENSION_LABELS[dimension]
    groups: dict[str, list[Any]] = {}
    for row in series.rows:
        groups.setdefault(group_label(dimension, row.value), []).append(row)
    lines_ = [(name, [r.period.strftime("%d %b %Y") for r in rows], [_rate(r.read, r.reached) for r in rows],
               [[r.reached, r.read] for r in rows]) for name, rows in groups.items()]
    rows = [(r.period, group_label(dimension, r.value), r.reached, r.read, _rate(r.read, r.reached))
            for r in series.rows]
    title = f"Weekly read rate by {label.lower()}"
    chart = lines(f"rate-{dimension}", title, lines_, header=("week", dimension, "reached", "read", "read_rate"),
                  rows=rows, x_title="Week of publishing",
                  hover="%{fullData.name}, week of %{x}<br>%{y:.0%}: %{customdata[1]} of %{customdata[0]} "
                        "reached read<extra></extra>",
                  note=" ".join(filter(None, [_narrowed_note(series, k), f"Posts published in the dates chosen, of the "
                                              f"topic and author chosen; of the filters by group, only the "
                                              f"{label.lower()} applies here."])))
    return chart


def topics(series: Any, *, k: int) -> Chart:
    """Per topic: read rate over the posts published in the window, with posts, reach and read events.

    :param series: :func:`intranet.analytics.queries.topic_engagement`.
    """
    rows_ = series.rows
    custom = [[r.posts, r.reached, r.read, r.reads] for r in rows_]
    chart = bars("topics", "Engagement by topic", [r.topic for r in rows_],
                 [("Read rate", [_rate(r.read, r.reached) for r in rows_], custom)],
                 header=("topic", "posts", "reached", "read", "read_events", "read_rate"),
                 rows=[(r.topic, r.posts, r.reached, r.read, r.reads, _rate(r.read, r.reached)) for r in rows_],
                 hover="%{x}<br>Read rate %{y:.0%}<br>%{customdata[0]} posts, %{customdata[2]} of %{customdata[1]} "
                       "reached read, %{customdata[3]} reads<extra></extra>",
                 note=_narrowed_note(series, k, ("topic", "topics")))
    return chart


def digests(series: Any, *, k: int) -> Chart:
    """Per channel: digests and alerts sent, and the shares opened, read within 2 h and within 24 h.

    :param series: :func:`intranet.analytics.queries.digest_performance`.
    """
    rows_ = series.rows
    names = [r.channel.replace("_", "-") for r in rows_]
    measures = [("Opened", "opened"), ("Read within 2 h", "read_2h"), ("Read within 24 h", "read_24h")]
    data = [(name, [_rate(getattr(r, attr), r.sent) for r in rows_], [[getattr(r, attr), r.sent] for r in rows_])
            for name, attr in measures]
    note = _narrowed_note(series, k, ("channel", "channels"))
    return bars("digests", "Digests by channel", names, data,
                header=("channel", "sent", "opened", "read_2h", "read_24h"),
                rows=[(r.channel, r.sent, r.opened, r.read_2h, r.read_24h) for r in rows_],
                hover="%{x}, %{fullData.name}: %{y:.0%} (%{customdata[0]} of %{customdata[1]} sent)<extra></extra>",
                note=(note + " " if note else "") + "Messages sent in the dates chosen (the other filters do not apply).")


def acknowledgements(series: Any, *, k: int) -> Chart:
    """Must-read posts: the share of each one's audience that has acknowledged it.

    :param series: :func:`intranet.analytics.queries.acknowledgement_progress`.
    """
    rows_ = series.rows
    titles = [text(r.title) for r in rows_]
    custom = [[r.acknowledged, r.audience, r.ack_deadline.date().isoformat() if r.ack_deadline else "none"]
              for r in rows_]
    data = [_trace("bar", y=titles, x=[_rate(r.acknowledged, r.audience) for r in rows_], orientation="h",
                   customdata=custom,
                   marker={"color": COLORS[4]},
                   hovertemplate="%{y}<br>%{customdata[0]} of %{customdata[1]} acknowledged (%{x:.0%})<br>"
                                 "Deadline: %{customdata[2]}<extra></extra>")]
    figure = _figure(data, "Must-read acknowledgements", xaxis={"tickformat": ".0%", "range": [0, 1]},
                     yaxis={"type": "category", "automargin": True, "autorange": "reversed"})
    rows = [(r.post_id, r.title, r.audience, r.acknowledged, _rate(r.acknowledged, r.audience), r.ack_deadline)
            for r in rows_]
    return Chart("acknowledgements", "Must-read acknowledgements", figure,
                 ("post_id", "title", "audience", "acknowledged", "share", "deadline"), rows,
                 _narrowed_note(series, k, ("must-read", "must-reads")) or (
                     "" if rows_ else "No must-read was published in this period."))


def timing_lift(lift: Any, *, k: int) -> Chart:
    """Learned send times against the control group (the default hour): read-within-24-h rates,
    the difference with its 95 % interval, and the sample sizes.

    :param lift: :func:`intranet.analytics.queries.learned_timing_lift`.
    """
    if lift.hidden is not None:
        return Chart("timing-lift", "Learned send times vs the default hour", _figure([], "Learned send times"),
                     ("arm", "sent", "read_24h", "rate"), [],
                     f"Too few digests to compare: each arm needs at least {k} (the smaller has "
                     f"{lift.hidden.hidden_people}).")
    arms = [("Learned times", lift.personalised_sent, lift.personalised_read),
            ("Default hour (control)", lift.control_sent, lift.control_read)]
    labels = [f"Learned times (n = {lift.personalised_sent})", f"Default hour (n = {lift.control_sent})"]
    rates, errors = [], []
    for _, n, x in arms:
        p = x / n
        rates.append(round(p, 4))
        errors.append(round(1.96 * (p * (1 - p) / n) ** 0.5, 4))
    data = [_trace("bar", x=labels, y=rates, error_y={"type": "data", "array": errors, "visible": True},
                   customdata=[[x, n] for _, n, x in arms], marker={"color": [COLORS[0], COLORS[7]]},
                   hovertemplate="%{x}<br>%{y:.1%} read within 24 h (%{customdata[0]} of %{customdata[1]} digests)"
                                 "<extra></extra>")]
    headline = (f"Difference {lift.difference:+.1%} (95 % interval {lift.low:+.1%} to {lift.high:+.1%}); "
                f"n = {lift.personalised_sent} and {lift.control_sent}")
    figure = _figure(data, f"Learned times: {lift.difference:+.1%} read in 24 h",
                     yaxis={"tickformat": ".0%", "rangemode": "tozero"}, xaxis={"type": "category"})
    rows = [(name, n, x, round(x / n, 4)) for name, n, x in arms]
    rows.append(("difference (learned - control)", None, None, lift.difference))
    rows.append(("95% interval low", None, None, lift.low))
    rows.append(("95% interval high", None, None, lift.high))
    return Chart("timing-lift", "Learned send times vs the default hour", figure, ("arm", "sent", "read_24h", "rate"),
                 rows, headline + ". Error bars: 95 % intervals of each rate. Digests sent in the dates chosen "
                       "(the other filters do not apply).")


def coverage(data: dict[str, Any]) -> Chart:
    """Directory health: the share of active employees with each attribute the dashboards group by.

    :param data: :func:`intranet.directory.queries.coverage` (exact headcounts: directory facts).
    """
    names = [("department", "Department"), ("region", "Region"), ("level", "Level"), ("timezone", "Time zone")]
    shares = [data[name]["share"] for name, _ in names]
    counts = [data[name]["count"] for name, _ in names]
    bars = [_trace("bar", x=[label for _, label in names], y=shares, customdata=counts, marker={"color": COLORS[1]},
                   hovertemplate="%{x}: %{customdata} people (%{y:.0%})<extra></extra>")]
    figure = _figure(bars, f"Directory coverage ({data['active']} active people)",
                     yaxis={"tickformat": ".0%", "range": [0, 1]}, xaxis={"type": "category"})
    rows = [(label, data[name]["count"], data["active"], round(data[name]["share"], 4)) for name, label in names]
    note = ("People without an attribute are counted as 'Not known' in every chart grouped by it; "
            "fill the gaps in the directory to make those charts useful.")
    return Chart("coverage", "Directory health", figure, ("attribute", "employees_with_it", "active_employees", "share"),
                 rows, note)


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
