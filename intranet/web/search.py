"""Search: the posts a person may see that mention what they typed (page and JSON API)."""
from __future__ import annotations

from flask import Blueprint, render_template, request

from intranet import feed, search
from intranet.errors import InvalidInput
from intranet.web import i18n
from intranet.web.context import current_employee, now, require_role, session

bp = Blueprint("intranet_search", __name__)


@bp.get("/search")
@require_role("employee")
def page():  # type: ignore[no-untyped-def]
    employee = current_employee()
    query = request.args.get("q", "").strip()
    problem = None
    try:
        hits = search.search(session(), employee, query, now=now(), language=i18n.locale())
    except InvalidInput as exc:
        hits, problem = [], i18n.error_message(exc)
    cards = feed.cards(session(), [hit.post for hit in hits])
    return render_template("intranet/search.html", employee=employee, query=query, hits=hits, problem=problem,
                           cards=cards)

