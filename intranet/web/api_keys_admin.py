"""Admin page for API keys (``/admin/api-keys``): create one (shown once), see them all, revoke one.

Admins only, like ``flask intranet api-keys``, which does the same through the same service. A
new key is shown in the answer to the form's POST itself, never put in the session (sessions are
rows in the database, which must not hold a key) nor in a redirect's URL.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from flask import Blueprint, flash, redirect, render_template, request, url_for

from intranet import api_keys
from intranet.errors import InvalidInput, NotFound, validated
from intranet.models import ApiKey
from intranet.web import security_events
from intranet.web.context import current_employee, now, require_role, session
from intranet.web.i18n import _, error_message

logger = logging.getLogger(__name__)

bp = Blueprint("intranet_api_keys_admin", __name__)


def _scopes() -> dict[str, api_keys.ScopeInfo]:
    """The scopes with their label and description in the admin's language."""
    return {scope: dataclasses.replace(info, label=_(info.label), description=_(info.description))
            for scope, info in api_keys.SCOPES.items()}


def _page(*, created: tuple[ApiKey, str] | None = None, error: str | None = None, form: dict | None = None,
          status: int = 200):  # type: ignore[no-untyped-def]
    return render_template("intranet/admin/api_keys.html", employee=current_employee(),
                           keys=api_keys.listing(session(), now=now()), scopes=_scopes(), created=created,
                           error=error, form=form or {}, header=api_keys.ON_BEHALF_HEADER,
                           tomorrow=(now() + dt.timedelta(days=1)).date().isoformat()), status


def _expiry(raw: str) -> dt.datetime | None:
    """The form's optional expiry day: the key stops working at 00:00 UTC that day."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(_("Choose the expiry day from the calendar (YYYY-MM-DD).")) from None
    return dt.datetime.combine(day, dt.time(0), dt.timezone.utc)


@bp.get("/admin/api-keys")
@require_role("admin")
def index():  # type: ignore[no-untyped-def]
    return _page()


@bp.post("/admin/api-keys")
@require_role("admin")
def create():  # type: ignore[no-untyped-def]
    form = {"name": request.form.get("name", ""), "scopes": request.form.getlist("scopes"),
            "expires": request.form.get("expires", "")}
    try:
        data = validated(api_keys.ApiKeyCreate, {"name": form["name"], "scopes": form["scopes"],
                                                 "expires_at": _expiry(form["expires"])}, what=None)
        key, text = api_keys.create(session(), data, by=current_employee(), now=now())
    except InvalidInput as exc:
        session().rollback()
        return _page(error=error_message(exc), form=form, status=422)
    session().commit()
    security_events.record("api_key_created", api_key=key.prefix, scopes=key.scopes.split(), name=key.name)
    return _page(created=(key, text))


@bp.post("/admin/api-keys/<int:key_id>/revoke")
@require_role("admin")
def revoke(key_id: int):  # type: ignore[no-untyped-def]
    key = session().get(ApiKey, key_id)
    if key is None:
        raise NotFound(_("There is no such API key."))
    if api_keys.revoke(session(), key, by=current_employee(), now=now()):
        session().commit()
        security_events.record("api_key_revoked", api_key=key.prefix, name=key.name)
        flash(_("The key “%(name)s” is revoked: it is refused from now on.", name=key.name), "ok")
    return redirect(url_for("intranet_api_keys_admin.index"))
