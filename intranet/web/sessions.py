"""Server-side sessions stored in Beacon's database.

The cookie carries a random token; the table holds only its SHA-256, so a database leak does not
hand out live sessions. Because every instance reads the same table, signing out, or deactivating
a person, ends their sessions everywhere at once.

A row is written only when the session holds something to keep (a signed-in person, a sign-in
flow in progress, a flash message, a CSRF token for a form to post). Pages for people who are
not signed in ask for no CSRF token unless they have such a form (``templates/intranet/base.html``),
so browsing signed out, a 404 included, writes nothing.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import Row, bindparam, delete, select
from sqlmodel import Session
from werkzeug.datastructures import CallbackDict

from intranet.models import AuthSession

LAST_SEEN_RESOLUTION = dt.timedelta(seconds=60)
_BY_ID = select(AuthSession.id, AuthSession.data, AuthSession.created_at, AuthSession.last_seen_at).where(
    AuthSession.id == bindparam("id"))


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
        self.modified = False
        self.rotate_requested = False

    def rotate(self) -> None:
        """Issue a new session id on the next save (at sign-in) and drop the old one."""
        self.rotate_requested = True
        self.modified = True


class DatabaseSessionInterface(SessionInterface):
    def cookie_name(self, app: Flask) -> str:
        # "__Host-" cookies are refused by browsers unless Secure, Path=/ and without Domain.
        return "__Host-beacon" if self.get_cookie_secure(app) else "beacon_session"

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"])

    def _db(self, app: Flask) -> Session:
        return app.extensions["intranet"].sessions()

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        token = request.cookies.get(self.cookie_name(app))
        if not token:
            return ServerSession()
        state = app.extensions["intranet"]
        with self._db(app) as db:
            # A Core row, not an ORM object: this lookup runs on every request, and identity-map
            # bookkeeping cost more than the query. save_session loads the ORM row when it writes.
            row = db.connection().execute(_BY_ID, {"id": _digest(token)}).first()
            if row is None:
                return ServerSession()
            now = state.clock()
            timeouts = state.settings.sessions
            if now - row.last_seen_at > timeouts.idle or now - row.created_at > timeouts.absolute:
                db.exec(delete(AuthSession).where(AuthSession.id == row.id))
                db.commit()
                return ServerSession()
            return ServerSession(dict(row.data), token=token, row=row)

    def save_session(self, app: Flask, session: ServerSession, response: Response) -> None:  # type: ignore[override]
        name = self.cookie_name(app)
        cookie = dict(httponly=True, secure=self.get_cookie_secure(app), samesite="Lax", path="/")
        now = app.extensions["intranet"].clock()
        with self._db(app) as db:
            if session.row is not None and (not session or session.rotate_requested):
                db.exec(delete(AuthSession).where(AuthSession.id == session.row.id))
                db.commit()
                session.row = None
            if not session:
                if session.token:
                    response.delete_cookie(name, path="/", secure=cookie["secure"], samesite="Lax", httponly=True)
                return
            if session.row is None:
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
                row = db.get(AuthSession, session.row.id)
                if row is None:  # ended elsewhere (sign-out on another instance) while we served
                    response.delete_cookie(name, path="/", secure=cookie["secure"], samesite="Lax", httponly=True)
                    return
                row.data = dict(session)
                row.employee_pk = session.get("employee_pk")
                row.last_seen_at = now
                db.add(row)
                db.commit()

