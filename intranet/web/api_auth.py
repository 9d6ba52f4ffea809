"""API keys on Beacon's ``/api/v1`` routes: ``Authorization: Bearer bcn_<prefix>_<secret>``.

:func:`authenticate` runs before every API view (a ``before_request`` of each API blueprint,
ahead of the CSRF check). A request that carries an ``Authorization`` header is a key request
from then on: the key must be valid (else 401), within its rate limit (else 429), and hold the
scope the route's :func:`~intranet.web.openapi.operation` names (else 403). It then runs as the
employee it names (``feed:read``, ``posts:publish``) or as nobody (``analytics:read``), never as
the person of a session cookie sent alongside, so CSRF does not apply to it: without the key a
forged cross-site request has nothing to act with. Cookie requests keep their CSRF check.

An embed token (a JWT, :mod:`intranet.web.cross_origin`) on a view the embeddable widget calls is
not an API key: it is left to that module. Any other bearer credential is judged here.

The key never reaches a log: security events name its public prefix only.
"""
from __future__ import annotations

import dataclasses

from flask import current_app, g, request

from intranet import api_keys, throttle
from intranet.api_keys import ApiKeyRejected, ScopeMissing
from intranet.errors import TooManyRequests
from intranet.languages import N_
from intranet.models import ApiKey, Employee
from intranet.web import cross_origin, security_events
from intranet.web.context import now, session, settings


@dataclasses.dataclass(frozen=True)
class ApiClient:
    """The key a request was authenticated with, the scope that opened the route, and whom it acts for."""

    key: ApiKey
    scope: str
    employee: Employee | None


def client() -> ApiClient | None:
    """The API key client of this request, or None for a cookie (or anonymous) request."""
    return g.get("intranet_api_client")


def _view_scope() -> tuple[bool, str | None]:
    view = current_app.view_functions.get(request.endpoint or "")
    public = getattr(view, "intranet_role", "") is None
    return public, getattr(getattr(view, "operation", None), "scope", None)


def authenticate() -> None:
    """``before_request`` of every API blueprint: turn a bearer key into this request's client.

    :raise ApiKeyRejected: (401) a missing, malformed, unknown, revoked or expired key.
    :raise TooManyRequests: (429) over ``INTRANET_API_KEY_REQUESTS_PER_MINUTE``.
    :raise ScopeMissing: (403) the key lacks the scope this route needs.
    :raise InvalidInput: (422) a ``feed:read`` or ``posts:publish`` request that names nobody Beacon can act for.
    """
    header = request.headers.get("Authorization")
    if header is None:
        return
    public, scope = _view_scope()
    if public:  # the OpenAPI document: open to all, so no key is checked
        return
    if cross_origin.bearer_token() is not None:
        return  # an embed token (a JWT) on a view the widget calls: intranet.web.cross_origin judges it
    # From here on nobody is signed in by a cookie sent alongside: the key alone decides.
    g.intranet_employee = None
    kind, _, presented = header.strip().partition(" ")
    try:
        if kind.lower() != "bearer" or not presented.strip():
            raise ApiKeyRejected(N_("Send the API key as 'Authorization: Bearer <key>'."), reason="malformed")
        key = api_keys.authenticate(session(), presented.strip(), now=now())
    except ApiKeyRejected as exc:
        security_events.record("api_key_rejected", status=401, reason=exc.reason, api_key=exc.prefix)
        raise
    g.intranet_api_key_prefix = key.prefix  # names the key in this request's security events
    limits = settings().api_keys
    # Every authenticated request counts, refused ones too, so hammering earns no fresh budget.
    verdict = throttle.hit(session(), f"apikey:{key.id}", limit=limits.per_minute, window=limits.window, now=now())
    session().commit()  # the count and the last-used time; the counter's row lock ends here
    if not verdict.allowed:
        raise TooManyRequests(N_("This API key made too many requests; try again in %(seconds)s seconds."), seconds=verdict.retry_after,
                              retry_after=verdict.retry_after)
    if not api_keys.allows(key, scope):
        security_events.record("api_key_scope_denied", status=403, needed_scope=scope, endpoint=request.endpoint)
        if scope is None:
            raise ScopeMissing(N_("API keys cannot call this endpoint; it is for people signed in to Beacon."), needed=None)
        raise ScopeMissing(N_("This API key does not have the %(scope)s scope this endpoint needs."), needed=scope, scope=scope)
    employee = None
    if api_keys.SCOPES[scope].on_behalf:  # type: ignore[index]
        employee = api_keys.on_behalf_of(session(), request.headers.get(api_keys.ON_BEHALF_HEADER, ""))
    g.intranet_employee = employee
    g.intranet_api_client = ApiClient(key=key, scope=scope, employee=employee)  # type: ignore[arg-type]
