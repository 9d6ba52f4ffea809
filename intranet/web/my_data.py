"""Your data: everything Beacon holds about the signed-in person, as a JSON download.

There is no employee id in the URL: the only data anyone can download here is their own.
"""
from __future__ import annotations

import json
import logging

from flask import Blueprint, Response

from intranet import personal_data
from intranet.web.context import current_employee, now, require_role, session, settings

logger = logging.getLogger(__name__)

bp = Blueprint("intranet_my_data", __name__)


@bp.get("/me/data.json")
@require_role("employee")
def download():  # type: ignore[no-untyped-def]
    employee = current_employee()
    document = personal_data.export(session(), employee, now=now(), org_timezone=settings().site.org_timezone)
    logger.info("Personal data: %s downloaded their data", employee.employee_id)
    return Response(json.dumps(document, ensure_ascii=False, indent=1), mimetype="application/json", headers={
        "Content-Disposition": 'attachment; filename="my-beacon-data.json"'})
