"""Server-side sessions stored in Beacon's database.

The cookie carries a random token; the table holds only its SHA-256, so a database leak does not
hand out live sessions. Because every instance reads the same table, signing out, or deactivating
a person, ends their sessions everywhere at once.

A row is written only when the session holds something to keep (a signed-in person, a sign-in
flow in progress, a flash message, a CSRF token for a form to post). Pages for people who are
not signed in ask for no CSRF token unless they have such a form (``templates/intranet/base.html``),
so browsing signed out, a 404 included, writes nothing.

A session made for the iframe page from an embed token (``embed_only`` in its data, see
:mod:`intranet.web.cross_origin`) travels in a cookie of its own, ``SameSite=None; Secure;
Partitioned``: a browser sends it to Beacon inside frames on the embedding site (and only there,
where third-party cookies are partitioned), while Beacon's own cookie stays ``SameSite=Lax``.

Inside a host app these sessions serve Beacon's routes only (:class:`ScopedSessionInterface`);
the host's routes keep the host's own session, and when the host signs people in (an
``employee_loader``), Beacon's routes use the host's session too.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from flask import Flask, Request, Response, g
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.exceptions import HTTPException
from sqlalchemy import Row, bindparam, delete, select
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session
from werkzeug.datastructures import CallbackDict

from intranet.db import is_unavailable
from intranet.models import AuthSession, Employee, Preference
from intranet.web.context import session as request_db

#: Marks a session made from an embed token: it serves the embed views only (``web/cross_origin.py``).
EMBED_SESSION_KEY = "embed_only"

LAST_SEEN_RESOLUTION = dt.timedelta(seconds=60)
_EMPLOYEE_COLUMNS = tuple(Employee.__table__.c)  # type: ignore[attr-defined]
_EMPLOYEE_KEYS = tuple(c.key for c in _EMPLOYEE_COLUMNS)
_SESSION_COLUMNS = (AuthSession.id, AuthSession.data, AuthSession.created_at, AuthSession.last_seen_at)
#: The session row and, in the same query, the person it belongs to (every column, so the request
#: can use that person as an ORM object without a second query; see ``context.current_employee``).
#: Last, the language the person chose (their Preference row), which every page needs for its locale.
_BY_ID = (select(*_SESSION_COLUMNS, *(c.label(f"owner_{c.key}") for c in _EMPLOYEE_COLUMNS),
                 Preference.language.label("owner_chosen_language"))  # type: ignore[attr-defined]
          .outerjoin(Employee, Employee.id == AuthSession.employee_pk)  # type: ignore[arg-type]
          .outerjoin(Preference, Preference.employee_pk == Employee.id)  # type: ignore[arg-type]
          .where(AuthSession.id == bindparam("id")))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ServerSession(CallbackDict, SessionMixin):
    """Session data plus the bookkeeping needed to rotate and expire it."""

    def __init__(self, initial: dict[str, Any] | None = None, *, token: str | None = None,
                 row: Row[Any] | None = None) -> None:
        def on_update(this: ServerSession) -> None:
            this.modified = True

        super().__init__(initial or {}, on_update)
        self.token = token
        self.row = row
        #: The session owner's employee row as read with the session (column name -> value), or None.
        self.employee_values: dict[str, Any] | None = None
        #: (the owner's row id, the language they chose or None) as read with the session, or None.
        self.owner_language: tuple[int, str | None] | None = None
        if row is not None and row.owner_id is not None:
            # The person's columns follow the session's, in _EMPLOYEE_KEYS order (read on every request).
            start = len(_SESSION_COLUMNS)
            self.employee_values = dict(zip(_EMPLOYEE_KEYS, row[start:start + len(_EMPLOYEE_KEYS)]))
            self.owner_language = (row.owner_id, row.owner_chosen_language)
        self.modified = False
        self.rotate_requested = False
        #: Whether the session arrived in the embed cookie (so ending it deletes that cookie).
        self.embed_cookie = False

    def rotate(self) -> None:
        """Issue a new session id on the next save (at sign-in) and drop the old one."""
        self.rotate_requested = True
        self.modified = True


class DatabaseSessionInterface(SessionInterface):
    """Beacon's server-side sessions.

    :param secure: whether the cookie is Secure; None reads the app's ``SESSION_COOKIE_SECURE``
        (the standalone app, which owns that setting). Inside a host it is Beacon's own setting.
    """

    def __init__(self, secure: bool | None = None) -> None:
        self.secure = secure

    def cookie_name(self, app: Flask) -> str:
        # "__Host-" cookies are refused by browsers unless Secure, Path=/ and without Domain.
        return "__Host-beacon" if self.get_cookie_secure(app) else "beacon_session"

    def embed_cookie_name(self, app: Flask) -> str:
        """The cookie of an iframe page's session (always Secure: SameSite=None requires it)."""
        return "__Host-beacon-embed" if self.get_cookie_secure(app) else "beacon_embed_session"

    def _cookie(self, app: Flask, session: ServerSession) -> tuple[str, dict[str, Any]]:
        if session.get(EMBED_SESSION_KEY) or (not session and session.embed_cookie):
            # Browsers treat http://localhost as secure, so development frames work too.
            return self.embed_cookie_name(app), dict(httponly=True, secure=True, samesite="None", path="/",
                                                     partitioned=True)
        return self.cookie_name(app), dict(httponly=True, secure=self.get_cookie_secure(app), samesite="Lax",
                                           path="/")

    def get_cookie_secure(self, app: Flask) -> bool:
        if self.secure is not None:
            return self.secure
        return bool(app.config["SESSION_COOKIE_SECURE"])

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        # Beacon's own cookie first; inside a third-party frame only the embed cookie arrives.
        row, token, embed_cookie = None, None, False
        for name, embed_cookie in ((self.cookie_name(app), False), (self.embed_cookie_name(app), True)):
            token = request.cookies.get(name)
            if token:
                # The request's own database session (Flask pushes the app context before opening the
                # session), so the lookup and the view share one pooled connection per request. A Core
                # row, not an ORM object: this runs on every request, and identity-map bookkeeping cost
                # more than the query. save_session loads the ORM row when it writes.
                try:
                    row = request_db().connection().execute(_BY_ID, {"id": _digest(token)}).first()
                except DBAPIError as exc:
                    if not is_unavailable(exc):
                        raise
                    # Opening the session runs before any error handler: note that the database is
                    # away and let the request's first hook refuse it cleanly (503, Retry-After).
                    g.intranet_db_unavailable = True
                    request_db().rollback()
                    return ServerSession()
                if row is not None:
                    break
        if row is None:
            return ServerSession()
        state = app.extensions["intranet"]
        db = request_db()
        now = state.clock()
        timeouts = state.settings.sessions
        if now - row.last_seen_at > timeouts.idle or now - row.created_at > timeouts.absolute:
            db.execute(delete(AuthSession).where(AuthSession.id == row.id))
            db.commit()
            return ServerSession()
        found = ServerSession(dict(row.data), token=token, row=row)
        found.embed_cookie = embed_cookie
        return found

    def save_session(self, app: Flask, session: ServerSession, response: Response) -> None:  # type: ignore[override]
        if g.get("intranet_db_unavailable"):
            return  # refused while the database was away: the cookie stays as the browser has it
        name, cookie = self._cookie(app, session)
        now = app.extensions["intranet"].clock()
        if session.row is not None and (not session or session.rotate_requested):
            db = _writable_db()
            db.execute(delete(AuthSession).where(AuthSession.id == session.row.id))
            db.commit()
            session.row = None
        if not session:
            if session.token:
                response.delete_cookie(name, **cookie)
            return
        if session.row is None:
            db = _writable_db()
            token = secrets.token_urlsafe(32)
            row = AuthSession(id=_digest(token), data=dict(session), created_at=now, last_seen_at=now,
                              employee_pk=session.get("employee_pk"),
                              authenticated_at=now if session.get("employee_pk") else None)
            db.add(row)
            db.commit()
            response.set_cookie(name, token, **cookie)
            response.vary.add("Cookie")
            return
        if session.modified or now - session.row.last_seen_at > LAST_SEEN_RESOLUTION:
            db = _writable_db()
            stored = db.get(AuthSession, session.row.id)
            if stored is None:  # ended elsewhere (sign-out on another instance) while we served
                response.delete_cookie(name, **cookie)
                return
            stored.data = dict(session)
            stored.employee_pk = session.get("employee_pk")
            stored.last_seen_at = now
            db.add(stored)
            db.commit()


def _writable_db() -> Session:
    """The request's database session, ready to write the session row in a transaction of its own.

    A view commits its own work; whatever it left uncommitted (it failed, or only read) is
    discarded here as it would be at teardown, so committing the session row never commits it,
    and a write lock a failed view still holds on SQLite cannot make this write wait.
    """
    db = request_db()
    db.rollback()
    return db


class ScopedSessionInterface(SessionInterface):
    """Beacon's sessions on Beacon's routes, the host's own session interface everywhere else.

    A Flask app has one session interface, so inside a host Beacon wraps the host's and hands it
    every request that is not Beacon's. When the host signs people in (an ``employee_loader`` is
    registered), Beacon keeps no sessions of its own: its CSRF token lives in the host's session.
    """

    def __init__(self, host: SessionInterface, beacon: DatabaseSessionInterface) -> None:
        self.host = host
        self.beacon = beacon

    def cookie_name(self, app: Flask) -> str:
        """The cookie that carries a session on Beacon's routes: the host's when the host signs people in."""
        if app.extensions["intranet"].employee_loader is not None:
            return self.host.get_cookie_name(app)
        return self.beacon.cookie_name(app)

    def _serves_beacon(self, app: Flask, request: Request) -> bool:
        state = app.extensions["intranet"]
        if state.employee_loader is not None:
            return False
        prefix = state.settings.site.url_prefix.rstrip("/")
        if prefix:
            return request.path == prefix or request.path.startswith(prefix + "/")
        # Mounted at the root, among the host's routes: the session opens before Flask matches
        # the URL, so match it here.
        adapter = app.create_url_adapter(request)
        if adapter is None:
            return False
        try:
            endpoint, _ = adapter.match()
        except HTTPException:
            return False
        return str(endpoint).startswith("intranet")

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        if self._serves_beacon(app, request):
            return self.beacon.open_session(app, request)
        return self.host.open_session(app, request)

    def make_null_session(self, app: Flask) -> Any:
        return self.host.make_null_session(app)

    def is_null_session(self, obj: object) -> bool:
        return self.host.is_null_session(obj)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if isinstance(session, ServerSession):
            self.beacon.save_session(app, session, response)
        else:
            self.host.save_session(app, session, response)
