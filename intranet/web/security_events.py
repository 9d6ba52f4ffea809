"""Security events: one structured JSON record per event, on the ``intranet.security`` logger.

A security team reads these with a log pipeline, not by eye, so each event is one JSON object
with the same keys: ``event``, ``at`` (UTC, ISO 8601), ``request_id``, ``actor`` (the person's
Entra object id, else ``employee:<employee id>``; never an email address), ``method``, ``path``
and ``ip``, plus the event's own fields (and ``api_key``, the public prefix of the API key a request
used, never the key itself). The object is also attached to the log record as
``record.security_event``, for handlers that format records themselves. ``json.dumps`` escapes
line breaks, so text a person chose (a display name, a path) can never start a second record.
"""
from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

from flask import g, request

from intranet.models import Employee
from intranet.web.context import current_employee_or_none, now

logger = logging.getLogger("intranet.security")

#: A request id a proxy or load balancer sent that is safe to repeat in logs.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")


def request_id() -> str:
    """This request's id: the caller's ``X-Request-ID`` when it is well formed, else a new one."""
    if "intranet_request_id" not in g:
        sent = request.headers.get("X-Request-ID", "")
        g.intranet_request_id = sent if _REQUEST_ID.match(sent) else uuid.uuid4().hex
    return str(g.intranet_request_id)


def actor(employee: Employee | None) -> str | None:
    """How a security event names *employee*: the Entra object id, else the HR employee number."""
    if employee is None:
        return None
    return employee.entra_object_id or f"employee:{employee.employee_id}"


def acting_for(employee: Employee) -> None:
    """Name *employee* as this request's actor where nobody is signed in (a signed rating link)."""
    g.intranet_security_actor = employee


def record(event: str, **fields: Any) -> dict[str, Any]:
    """Log one security event of the current request (a warning), and return what was logged.

    :param event: what happened, in snake case (``rate_limited``, ...).
    :param fields: the event's own details (plain JSON values).
    """
    payload = {"event": event, "at": now().isoformat(), "request_id": request_id(),
               "actor": actor(g.get("intranet_security_actor") or current_employee_or_none()), "method": request.method, "path": request.path,
               "ip": request.remote_addr, **fields}
    if "api_key" not in fields and g.get("intranet_api_key_prefix"):
        payload["api_key"] = g.intranet_api_key_prefix  # the public prefix: never the secret
    logger.warning("%s", json.dumps(payload, sort_keys=True, default=str), extra={"security_event": payload})
    return payload
