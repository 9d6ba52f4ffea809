"""Sign-in with Entra ID: OIDC authorization code flow with PKCE (through msal, in graph.py).

``GET /auth/entra/start`` keeps msal's flow (state, nonce, PKCE verifier) in the server-side
session and sends the browser to Entra. Entra answers with ``response_mode=form_post``: a
cross-site POST, which does not carry Beacon's ``SameSite=Lax`` session cookie. So
``POST /auth/entra/callback`` touches no session: it only hands the fields to a same-site POST
(``/auth/entra/complete``, submitted by a static script or a button) that does carry the cookie.
There the flow is popped (a replay finds nothing), msal checks state and PKCE, Beacon checks the
ID token (audience, issuer, tenant, lifetime, nonce: msal no longer does), and the person is found
by ``(tid, oid)`` -- never by email. Both POSTs are exempt
from Beacon's CSRF check (:func:`intranet.web.csrf.exempt`): the OAuth ``state`` bound to the session is their CSRF protection.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flask import Blueprint, redirect, render_template, request, session as flask_session, url_for
from sqlmodel import select

from intranet.errors import ConfigurationError
from intranet.models import Employee
from intranet.settings import EntraSettings
from intranet.web import csrf
from intranet.web.auth import safe_next, sign_in
from intranet.web.context import public, session, settings, state

if TYPE_CHECKING:
    from intranet.directory.graph import GraphSettings

logger = logging.getLogger(__name__)
bp = Blueprint("intranet_entra", __name__)
FLOW_KEY, NEXT_KEY = "entra_flow", "entra_next"
CALLBACK_FIELDS = ("code", "state", "session_state", "client_info", "error", "error_description", "error_uri")



def configured(entra: EntraSettings) -> bool:
    """Whether Entra sign-in is set up (tenant, client id and a credential)."""
    return entra.configured and bool(entra.client_secret or entra.client_certificate)


def _settings() -> GraphSettings:
    from intranet.directory.graph import GraphSettings

    return GraphSettings.from_settings(settings().entra)


def _refuse(message: str, status: int = 400):  # type: ignore[no-untyped-def]
    return render_template("intranet/auth/entra_error.html", message=message), status


@bp.get("/auth/entra/start")
@public
def start():  # type: ignore[no-untyped-def]
    from intranet.directory.graph import GraphError, begin_sign_in

    if not configured(settings().entra) or state().employee_loader is not None:
        return _refuse("Entra ID sign-in is not configured on this site.", 404)
    try:
        flow = begin_sign_in(_settings(), url_for(".callback", _external=True))
    except (GraphError, ConfigurationError) as exc:
        logger.error("Cannot start an Entra sign-in: %s", exc)
        return _refuse("Sign-in with Entra ID is unavailable right now. Try again in a few minutes.", 503)
    flask_session[FLOW_KEY] = flow
    flask_session[NEXT_KEY] = safe_next(request.args.get("next"))
    return redirect(flow["auth_uri"])


@bp.post("/auth/entra/callback")
@csrf.exempt  # the OAuth state bound to the session is the check
@public
def callback():  # type: ignore[no-untyped-def]
    # Cross-site POST from Entra: no session cookie here, and none must be set (it would replace
    # the browser's session holding the flow). Re-post the fields same-site.
    fields = {k: request.form[k] for k in CALLBACK_FIELDS if k in request.form}
    return render_template("intranet/auth/entra_continue.html", fields=fields,
                           action=url_for(".complete"))


@bp.post("/auth/entra/complete")
@csrf.exempt  # the OAuth state bound to the session is the check
@public
def complete():  # type: ignore[no-untyped-def]
    from intranet.directory.graph import GraphAuthError, SignInRefused, finish_sign_in

    flow = flask_session.pop(FLOW_KEY, None)
    target = safe_next(flask_session.pop(NEXT_KEY, None))
    if not flow:
        logger.warning("Entra sign-in completion without a pending flow (replayed, or another browser)")
        return _refuse("This sign-in link was already used or has expired. Please start again.")
    try:
        identity = finish_sign_in(_settings(), flow, request.form)
    except SignInRefused as exc:
        logger.warning("Entra sign-in refused: %s", exc)
        return _refuse("Sign-in was refused: the response from Entra ID could not be verified "
                       "(it may have been altered, replayed, or be for another organisation). Please start again.")
    except GraphAuthError as exc:
        logger.error("Entra sign-in failed: %s", exc)
        return _refuse("Entra ID could not be reached to finish signing you in. Try again in a few minutes.", 503)
    employee = session().exec(select(Employee).where(Employee.entra_tenant_id == identity.tid,
                                                     Employee.entra_object_id == identity.oid)).first()
    if employee is None:
        logger.info("Entra sign-in of oid %s: not in the directory", identity.oid)
        return render_template("intranet/auth/entra_unknown.html", name=identity.name), 403
    if not employee.active:
        return _refuse("Your account is no longer active in the directory.", 403)
    sign_in(employee)
    return redirect(target)

