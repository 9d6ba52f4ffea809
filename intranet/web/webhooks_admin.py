"""Admin page for outgoing webhooks: register endpoints, pause, test, rotate secrets, see failures.

Load, check access, act through :mod:`intranet.webhooks.endpoints`, commit. A new or rotated
signing secret is shown in the answer to that POST only (never flashed, which would keep it in the
session store, and never shown again).
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from intranet.errors import IntranetError, validated
from intranet.models import WEBHOOK_EVENT_TYPES
from intranet.web.context import current_employee, now, require_role, session, settings
from intranet.web.i18n import _, error_message
from intranet.webhooks import endpoints, network, sender
from intranet.webhooks.sealing import SecretBox

bp = Blueprint("intranet_webhooks_admin", __name__)


def _page(status: int = 200, **extra: Any):  # type: ignore[no-untyped-def]
    return render_template("intranet/admin/webhooks.html", employee=current_employee(),
                           endpoints=endpoints.health(session()), problems=endpoints.problems(session()),
                           event_types=WEBHOOK_EVENT_TYPES, descriptions={t: _(d) for t, d in endpoints.DESCRIPTIONS.items()},
                           encrypting=SecretBox(settings().webhooks.encryption_key).encrypting,
                           give_up_hours=settings().webhooks.give_up_hours, **extra), status


def _box() -> SecretBox:
    return SecretBox(settings().webhooks.encryption_key)


@bp.get("/admin/webhooks")
@require_role("admin")
def index():  # type: ignore[no-untyped-def]
    return _page()


@bp.post("/admin/webhooks")
@require_role("admin")
def add():  # type: ignore[no-untyped-def]
    form = {"url": request.form.get("url", ""), "description": request.form.get("description", ""),
            "event_types": request.form.getlist("event_types")}
    try:
        data = validated(endpoints.EndpointIn, form, what="Webhook endpoint")
        created = endpoints.create(session(), data, actor=current_employee(), now=now(), box=_box(),
                                   allow_private=network.private_allowed(settings()))
    except IntranetError as exc:
        session().rollback()
        return _page(422, error=error_message(exc), form=form)
    session().commit()
    return _page(secret=created.secret, secret_for=created.endpoint)


@bp.post("/admin/webhooks/<int:endpoint_id>/active")
@require_role("admin")
def set_active(endpoint_id: int):  # type: ignore[no-untyped-def]
    endpoint = endpoints.get_or_404(session(), endpoint_id)
    endpoints.set_active(session(), endpoint, request.form.get("active") == "1")
    session().commit()
    flash(_("Endpoint %(id)s is active.", id=endpoint.id) if endpoint.active else _("Endpoint %(id)s is paused.", id=endpoint.id), "ok")
    return redirect(url_for("intranet_webhooks_admin.index"))


@bp.post("/admin/webhooks/<int:endpoint_id>/test")
@require_role("admin")
def test(endpoint_id: int):  # type: ignore[no-untyped-def]
    endpoint = endpoints.get_or_404(session(), endpoint_id)
    with network.client(allow_private=network.private_allowed(settings())) as http:
        outcome = sender.ping(endpoint, settings(), http=http, now=now())
    flash(_("Test event to endpoint %(id)s: %(outcome)s", id=endpoint.id, outcome=outcome), "ok" if outcome.startswith("answered 2") else "error")
    return redirect(url_for("intranet_webhooks_admin.index"))


@bp.post("/admin/webhooks/<int:endpoint_id>/rotate")
@require_role("admin")
def rotate(endpoint_id: int):  # type: ignore[no-untyped-def]
    endpoint = endpoints.get_or_404(session(), endpoint_id)
    secret = endpoints.rotate_secret(session(), endpoint, box=_box())
    session().commit()
    return _page(secret=secret, secret_for=endpoint)


@bp.post("/admin/webhooks/<int:endpoint_id>/remove")
@require_role("admin")
def remove(endpoint_id: int):  # type: ignore[no-untyped-def]
    endpoint = endpoints.get_or_404(session(), endpoint_id)
    endpoints.remove(session(), endpoint)
    session().commit()
    flash(_("Endpoint %(id)s is removed, with its deliveries.", id=endpoint_id), "ok")
    return redirect(url_for("intranet_webhooks_admin.index"))
