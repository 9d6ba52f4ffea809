"""Logs a machine can read: one JSON object per line, each carrying its request's id.

The request id is the caller's ``X-Request-ID`` when it is well formed (a proxy or load balancer
set it), else a new one (:func:`intranet.web.security_events.request_id`); it is answered in the
``X-Request-ID`` header, added to every record logged while the request runs (by
:class:`RequestIdFilter`, on the handler) and shown on the generic 500 page as the correlation id,
so a person's report finds its log lines.

What is never logged: query strings (a rating link's signature, the sign-in callback's code and
state), and anything that looks like a credential in a message or a traceback
(:func:`redact`). ``json.dumps`` escapes line breaks, so a display name holding ``\\n`` cannot
forge a second record.

The standalone app logs one ``intranet.access`` line per request (gunicorn's own access log is off:
it cannot know the id). A host application keeps its own logging: Beacon configures handlers only
when run as a server (:func:`configure`, from ``config/gunicorn.conf.py`` and ``flask intranet
scheduler|serve``).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import time
from typing import Any

from flask import Flask, Response, g, has_request_context, request

from intranet.web import security_events

access_logger = logging.getLogger("intranet.access")

#: Credentials that may appear in a message or traceback, with the part to keep before them.
_SECRETS = (
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)(\b(?:password|passwd|secret|client_secret|token|access_token|refresh_token|id_token|"
               r"api_key|apikey|code|state|sig|signature)\b[\"']?\s*[=:]\s*[\"']?)[^\s&\"',;]+"),
    re.compile(r"(://[^:/@\s]+:)[^@\s]+(@)"),  # user:password@host in a URL
    re.compile(r"(\bbcn_[0-9a-f]{12}_)[A-Za-z0-9_-]{8,}"),  # a Beacon API key anywhere: its public prefix stays
)
#: Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged as a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}


def redact(text: str) -> str:
    """*text* with bearer tokens, ``password=...``-like values and URL passwords replaced by ``[redacted]``."""
    for pattern in _SECRETS:
        if pattern.groups == 2:
            text = pattern.sub(r"\1[redacted]\2", text)
        else:
            text = pattern.sub(r"\1[redacted]", text)
    return text


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` to every record logged inside a request (on a handler: every logger's records)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = security_events.request_id() if has_request_context() else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``at`` (UTC), ``level``, ``logger``, ``message``, ``request_id``,
    fields passed with ``extra=``, and ``exc`` for a traceback. A security event's own fields are
    merged in (``event``, ``actor``, ...) rather than nested as a string."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "at": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        event = getattr(record, "security_event", None)
        if isinstance(event, dict):
            out.update(event)
        else:
            out["message"] = redact(record.getMessage())
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            out["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key != "security_event" and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, default=str, ensure_ascii=False)


def handler(log_format: str = "json", stream: Any = None) -> logging.Handler:
    """A stderr handler writing *log_format* (``json`` or ``text``), with request ids added."""
    out = logging.StreamHandler(stream or sys.stderr)
    out.addFilter(RequestIdFilter())
    if log_format == "json":
        out.setFormatter(JsonFormatter())
    else:
        out.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    out.set_name("beacon")
    return out


def configure(log_format: str, level: int = logging.INFO) -> None:
    """Send the root logger's records to stderr as *log_format*; calling it again replaces Beacon's handler."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == "beacon":
            root.removeHandler(existing)
    root.addHandler(handler(log_format))
    root.setLevel(level)
    # APScheduler logs every job it adds and runs at INFO; Beacon's jobs log what they did themselves.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _start() -> None:
    g.intranet_request_started = time.perf_counter()
    security_events.request_id()  # fixed before anything logs


def _finish(response: Response) -> Response:
    response.headers["X-Request-ID"] = security_events.request_id()
    started = g.get("intranet_request_started")
    elapsed_ms = None if started is None else round((time.perf_counter() - started) * 1000, 2)
    # The path only: query strings carry signatures and sign-in codes.
    access_logger.info("%s %s %s", request.method, request.path, response.status_code,
                       extra={"method": request.method, "path": request.path, "status": response.status_code,
                              "duration_ms": elapsed_ms, "ip": request.remote_addr})
    return response


def init_app(app: Flask) -> None:
    """Standalone app: a request id for every request, answered in ``X-Request-ID`` and logged per request."""
    app.before_request(_start)
    app.after_request(_finish)
