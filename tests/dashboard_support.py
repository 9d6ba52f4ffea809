"""A small organisation that has read a post, for the dashboard tests (pages, CSV, browser).

Shared by the dashboard tests (tests never import each other).
"""
from __future__ import annotations

import datetime as dt
import io
import json
import re
from typing import Any

import plotly.graph_objects as go
from sqlmodel import Session

from intranet import ratings
from intranet.engagement import events
from tests.conftest import NOW

CHART_BLOCK = re.compile(r'<script type="application/json" class="intranet-chart" data-target="chart-([a-z-]+)">(.*?)'
                         r'</script>', re.S)


def read_by(db: Session, people: list[Any], post: Any, *, at: dt.datetime = NOW - dt.timedelta(minutes=30),
            kind: str = "open") -> None:
    """Each of *people* opens *post* (or sees it: *kind* ``impression``) at *at*, through the historical
    import, which feeds the rollups."""
    lines = ["employee_id,post_id,kind,occurred_at,dwell_ms"]
    lines += [f"{p.employee_id},{post.id},{kind},{at.isoformat()}," for p in people]
    result = events.import_csv(db, io.StringIO("\n".join(lines) + "\n"), now=NOW)
    assert not result.errors, result.errors
    db.commit()


def rate_by(db: Session, people: list[Any], post: Any, stars: int) -> None:
    for person in people:
        ratings.rate(db, employee=person, post=post, rating=ratings.RatingIn(stars=stars), now=NOW)
    db.commit()


def organisation(make_employee: Any, make_post: Any, db: Session, *, department: str = "Sales") -> dict[str, Any]:
    """Six readers in *department*, two in Legal (too few to show) and five in Finance who saw the post
    but did not read it (hidden too, so that Legal cannot be worked out from the total), all at level 3
    in EMEA; one all-staff post, rated 4 stars by five of the readers."""
    big = [make_employee(department=department, region="EMEA", level=3) for _ in range(6)]
    small = [make_employee(department="Legal", region="EMEA", level=3) for _ in range(2)]
    quiet = [make_employee(department="Finance", region="EMEA", level=3) for _ in range(5)]
    post = make_post(title="Quarterly results", topic="Finance")
    read_by(db, big + small, post)
    read_by(db, quiet, post, kind="impression")
    rate_by(db, big[:5], post, 4)
    return {"big": big, "small": small, "quiet": quiet, "post": post}


def figures(page: str) -> dict[str, dict[str, Any]]:
    """The chart figures embedded in *page*, by chart key (parsed as the browser's JSON.parse would),
    each checked against plotly's schema: the charts write figures as plain data, and plotly would
    neither refuse nor change any of them."""
    found = {key: json.loads(body) for key, body in CHART_BLOCK.findall(page)}
    for key, figure in found.items():
        assert json.loads(go.Figure(figure).to_json()) == figure, key
    return found
