"""A local fake of Entra ID and Microsoft Graph that speaks the documented wire format.

:class:`FakeEntraGraph` is a plain WSGI application holding a small directory and a
change log. It serves what msal and :mod:`intranet.directory.graph` call:

* Entra: instance discovery, OIDC discovery (v2 and v1 paths), JWKS, ``authorize``
  (a user picker, then a ``form_post`` page with a button; no script), and the token
  endpoint (client credentials, authorization code with PKCE, refresh token), with
  AAD-shaped errors.
* Graph: ``/v1.0/users/delta`` (and ``/users/microsoft.graph.delta``) with opaque
  ``$skiptoken`` / ``$deltatoken`` links, ``Prefer: odata.maxpagesize`` and
  ``return=minimal``, ``@removed``, ``manager@delta``, replays, empty pages, token
  expiry; ``/v1.0/users`` with ``$filter=id in (...)``, ``/users/{id}`` and
  ``/users/{id}/manager``; ``request-id`` headers on every answer.

Mount it in one of two ways:

* :class:`FakeEntraServer`: real HTTPS on 127.0.0.1 (certificate from ``trustme``).
  requests lets ``REQUESTS_CA_BUNDLE`` override ``verify=``, so point that variable
  at :attr:`FakeEntraServer.ca_bundle_path` (``monkeypatch.setenv``).
* :func:`routed_real_hosts`: ``responses`` routes ``login.microsoftonline.com`` and
  ``graph.microsoft.com`` into the app in-process, so production URLs stay unchanged.

Scenario API: :meth:`~FakeEntraGraph.add_user`, :meth:`~FakeEntraGraph.update_user`,
:meth:`~FakeEntraGraph.remove_user`, :meth:`~FakeEntraGraph.restore_user`,
:meth:`~FakeEntraGraph.replay`, :meth:`~FakeEntraGraph.inject`,
:meth:`~FakeEntraGraph.expire_delta_tokens`, :meth:`~FakeEntraGraph.populate`,
and :meth:`~FakeEntraGraph.count` over the recorded :attr:`~FakeEntraGraph.calls`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import json
import logging
import random
import re
import secrets
import shutil
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt
import responses
import trustme
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.datastructures import Headers
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.test import EnvironBuilder, run_wsgi_app
from werkzeug.wrappers import Request, Response

logger = logging.getLogger(__name__)

#: Hosts that :func:`routed_real_hosts` intercepts.
REAL_HOSTS = ("login.microsoftonline.com", "graph.microsoft.com")

# What Graph returns from delta when there is no $select.
_DEFAULT_DELTA_PROPERTIES = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
)
# Roles that allow reading users with an app-only token.
_READ_ROLES = frozenset({"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"})
_GRAPH_ERROR_CODES = {
    400: (
        "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
    ),
    401: ("InvalidAuthenticationToken", "Access token has expired or is not yet valid."),
    403: ("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
    404: (
        "Request_ResourceNotFound",
        "Resource does not exist or one of its queried reference-property objects are not present.",
    ),
    410: ("Gone", "The delta token is no longer valid; a full resync is required."),
    429: ("TooManyRequests", "Too many requests"),
    500: ("generalException", "General exception while processing."),
    502: ("BadGateway", "Bad gateway."),
    503: ("serviceNotAvailable", "Service unavailable."),
    504: ("GatewayTimeout", "Gateway timeout."),
}

_signing_key_lock = threading.Lock()
_signing_key: rsa.RSAPrivateKey | None = None


def _rsa_key() -> rsa.RSAPrivateKey:
    # Generating an RSA key takes tens of milliseconds; share one per process.
    global _signing_key
    with _signing_key_lock:
        if _signing_key is None:
            _signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return _signing_key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Call:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class _Fault:
    status: int
    remaining: int
    on_path: str
    method: str | None
    retry_after: float | str | None
    code: str | None
    message: str | None
    headers: dict[str, str]
    #: Only requests carrying this query parameter (``$skiptoken``: a round's later pages).
    with_arg: str | None = None


@dataclass
class _Round:
    """A delta round being paged through: the items are rendered when served."""

    items: list[tuple[Any, ...]]
    select: frozenset[str] | None
    end_watermark: int
    generation: int
    pages_served: int = 0


@dataclass
class _ChangeSummary:
    kind: str = "upsert"  # upsert | removed
    reason: str | None = None
    full: bool = False
    props: set[str] = field(default_factory=set)
    manager_changed: bool = False
    old_manager: str | None = None


class FakeEntraGraph:
    """Entra ID and Microsoft Graph for one tenant, as a WSGI app.

    :param tenant_id: Tenant GUID (random by default).
    :param client_id: The only app registration that may get tokens (random by default).
    :param client_secret: Its secret.
    :param domain: Domain used for generated user principal names.
    """

    def __init__(
        self,
        *,
        tenant_id: str | None = None,
        client_id: str | None = None,
        client_secret: str = "fake-client-secret",
        domain: str = "contoso.test",
    ) -> None:
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.client_id = client_id or str(uuid.uuid4())
        self.client_secret = client_secret
        self.domain = domain
        #: Roles put into app-only tokens; drop ``User.Read.All`` to get 403s.
        self.app_roles: list[str] = ["User.Read.All"]
        #: ``expires_in`` of issued tokens; below 300 msal will not reuse them.
        self.token_lifetime_s = 3599
        #: When > 0, every Nth page of a round is preceded by an empty page.
        self.empty_page_every = 0
        #: Page size when the client sends no ``Prefer: odata.maxpagesize``, and the cap.
        self.default_page_size = 100
        self.max_page_size = 999
        #: Claims merged into issued ID tokens; a value of ``None`` removes the claim.
        self.id_token_overrides: dict[str, Any] = {}
        #: Registered redirect URIs; ``None`` accepts any (like a permissive app registration).
        self.redirect_uris: set[str] | None = None
        #: Every request received, in order.
        self.calls: list[Call] = []

        self._lock = threading.RLock()
        self._users: dict[str, dict[str, Any]] = {}
        self._managers: dict[str, str] = {}
        self._recycle_bin: dict[str, tuple[dict[str, Any], str | None]] = {}
        # The change log: (user id, kind, changed props, old manager). A deltaLink's
        # watermark is an index into it.
        self._log: list[tuple[str, str, frozenset[str], str | None]] = []
        self._generation = 0
        self._rounds: dict[str, _Round] = {}
        self._skip_tokens: dict[str, tuple[str, int, bool]] = {}
        self._delta_tokens: dict[str, tuple[int, int, frozenset[str] | None]] = {}
        self._replays: list[str] = []
        self._faults: list[_Fault] = []
        self._access_tokens: dict[str, dict[str, Any]] = {}
        self._pending_authorizations: dict[str, dict[str, Any]] = {}
        self._codes: dict[str, dict[str, Any]] = {}
        self._refresh_tokens: dict[str, dict[str, Any]] = {}
        self._kid = "fake-key-1"
        self._counter = 0

    # ================================================================ scenario API

    def add_user(self, id: str | None = None, *, manager: str | None = None, **props: Any) -> str:
        """Create a user and return its id. ``props`` use Graph property names.

        Sensible defaults are filled in for ``displayName``, ``userPrincipalName``,
        ``mail``, ``userType`` and ``accountEnabled`` unless given (pass ``None`` to
        leave a property unset).
        """
        with self._lock:
            self._counter += 1
            user_id = id or str(uuid.uuid4())
            if user_id in self._users:
                raise ValueError(f"user {user_id} already exists")
            name = props.get("displayName") or f"User {self._counter}"
            upn = f"{re.sub(r'[^a-z0-9]+', '.', name.lower()).strip('.')}.{self._counter}@{self.domain}"
            user: dict[str, Any] = {
                "displayName": name,
                "userPrincipalName": upn,
                "mail": upn,
                "userType": "Member",
                "accountEnabled": True,
            }
            user.update(props)
            user = {"id": user_id, **{key: value for key, value in user.items() if value is not None and key != "id"}}
            self._users[user_id] = user
            if manager:
                self._managers[user_id] = manager
            self._log.append((user_id, "created", frozenset(user), None))
            return user_id

    def populate(self, n: int, *, seed: int = 0, departments: Iterable[str] | None = None) -> list[str]:
        """Add ``n`` realistic employees (managers form a tree) and return their ids."""
        rng = random.Random(seed)
        depts = list(departments or ("Sales", "Marketing", "Engineering", "Finance", "HR", "Operations"))
        countries = ("US", "DE", "FR", "GB", "IN", "JP")
        ids: list[str] = []
        for i in range(n):
            manager = ids[rng.randrange(len(ids))] if ids and i % 10 else (ids[0] if ids else None)
            dept = depts[rng.randrange(len(depts))]
            ids.append(
                self.add_user(
                    str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    manager=manager,
                    displayName=f"Employee {i:06d}",
                    givenName="Employee",
                    surname=f"{i:06d}",
                    jobTitle=rng.choice(("Engineer", "Analyst", "Manager", "Director", "Associate")),
                    department=dept,
                    companyName="Contoso",
                    officeLocation=f"B{rng.randrange(1, 40)}/{rng.randrange(100, 999)}",
                    city="Springfield",
                    country=countries[rng.randrange(len(countries))],
                    usageLocation="US",
                    preferredLanguage="en-US",
                    employeeId=f"E{i:07d}",
                    employeeType="Employee",
                    employeeOrgData={"division": dept, "costCenter": f"CC-{rng.randrange(100, 999)}"},
                    onPremisesExtensionAttributes={
                        f"extensionAttribute{k}": (f"L{rng.randrange(1, 10)}" if k == 1 else None) for k in range(1, 16)
                    },
                )
            )
        return ids

    def update_user(self, user_id: str, **props: Any) -> None:
        """Change properties (``None`` clears one; ``manager=`` sets or clears the manager)."""
        with self._lock:
            user = self._users[user_id]
            old_manager: str | None = None
            changed: set[str] = set()
            if "manager" in props:
                new_manager = props.pop("manager")
                old_manager = self._managers.get(user_id)
                if new_manager != old_manager:
                    changed.add("manager")
                    if new_manager:
                        self._managers[user_id] = new_manager
                    else:
                        self._managers.pop(user_id, None)
            for key, value in props.items():
                if key == "id":
                    raise ValueError("the id of a user cannot change")
                if value is None and key not in user:
                    continue  # clearing a property that was never set changes nothing
                if user.get(key, _MISSING) != value:
                    user[key] = value
                    changed.add(key)
            if changed:
                self._log.append((user_id, "updated", frozenset(changed), old_manager))

    def remove_user(self, user_id: str, reason: str = "changed") -> None:
        """Delete a user: ``changed`` moves it to the recycle bin, ``deleted`` is permanent."""
        if reason not in ("changed", "deleted"):
            raise ValueError("reason is 'changed' (soft delete) or 'deleted' (permanent)")
        with self._lock:
            if user_id in self._users:
                user = self._users.pop(user_id)
                manager = self._managers.pop(user_id, None)
                if reason == "changed":
                    self._recycle_bin[user_id] = (user, manager)
            elif user_id in self._recycle_bin and reason == "deleted":
                del self._recycle_bin[user_id]
            else:
                raise KeyError(user_id)
            self._log.append((user_id, f"removed:{reason}", frozenset(), None))

    def restore_user(self, user_id: str) -> None:
        """Bring a soft-deleted user back (it reappears in delta without annotation)."""
        with self._lock:
            user, manager = self._recycle_bin.pop(user_id)
            self._users[user_id] = user
            if manager:
                self._managers[user_id] = manager
            self._log.append((user_id, "restored", frozenset(user), None))

    def user(self, user_id: str) -> dict[str, Any]:
        """Return a copy of a user's current properties."""
        with self._lock:
            return dict(self._users[user_id])

    def replay(self, user_id: str, times: int = 1) -> None:
        """Make the next delta round built deliver ``user_id`` again at its end (a legal duplicate)."""
        with self._lock:
            self._replays.extend([user_id] * times)

    def inject(
        self,
        status: int,
        times: int = 1,
        retry_after: float | str | None = None,
        on_path: str = "/users",
        *,
        method: str | None = None,
        code: str | None = None,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
        with_arg: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests whose path contains ``on_path`` (and whose query has
        ``with_arg``, when given: ``"$skiptoken"`` hits a round's second page) with ``status``.

        Graph paths get a Graph error body (``400`` defaults to ``syncStateNotFound``,
        ``410`` carries a ``Location``); Entra paths (``/oauth2/``) get an AAD error body.
        """
        with self._lock:
            self._faults.append(
                _Fault(status, times, on_path, method, retry_after, code, message, dict(headers or {}), with_arg)
            )

    def expire_delta_tokens(self) -> None:
        """Invalidate every deltaLink issued so far (the 7-day expiry): they answer ``syncStateNotFound``."""
        with self._lock:
            self._generation += 1

    def revoke_tokens(self) -> None:
        """Invalidate every access token issued so far (Graph then answers 401)."""
        with self._lock:
            self._access_tokens.clear()

    def count(self, path: str | None = None, method: str | None = None) -> int:
        """Count recorded requests whose path contains ``path`` (and with ``method``)."""
        with self._lock:
            return sum(
                1
                for call in self.calls
                if (path is None or path in call.path) and (method is None or call.method == method)
            )

    @property
    def token_requests(self) -> int:
        """How many times the token endpoint was called."""
        return self.count("/oauth2/v2.0/token", "POST")

    # ================================================================ WSGI

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        with self._lock:
            response = self._dispatch(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        form = dict(request.form) if request.method == "POST" else {}
        self.calls.append(
            Call(request.method, request.path, dict(request.args), dict(request.headers), form)
        )
        path = request.path
        fault = self._take_fault(request)
        if fault is not None:
            return self._fault_response(request, fault)
        if path.startswith("/v1.0/"):
            return self._graph(request, path[len("/v1.0") :])
        return self._entra(request, path)

    def _take_fault(self, request: Request) -> _Fault | None:
        for fault in self._faults:
            if (fault.remaining > 0 and fault.on_path in request.path and fault.method in (None, request.method)
                    and (fault.with_arg is None or fault.with_arg in request.args)):
                fault.remaining -= 1
                return fault
        return None

    def _fault_response(self, request: Request, fault: _Fault) -> Response:
        headers = dict(fault.headers)
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        if "/oauth2/" in request.path:
            error = fault.code or ("temporarily_unavailable" if fault.status >= 500 else "invalid_request")
            response = self._aad_error(request, error, fault.message or "Injected fault.", 0, fault.status)
            response.headers.update(headers)
            return response
        code, message = _GRAPH_ERROR_CODES.get(fault.status, ("UnknownError", "Injected fault."))
        if fault.status == 429:
            headers.setdefault("x-ms-throttle-scope", f"Tenant_Application/Read/{self.client_id}/{self.tenant_id}")
            headers.setdefault("x-ms-throttle-information", "ResourceUnitLimitExceeded")
        if fault.status == 410:
            headers.setdefault("Location", f"{self._graph_base(request)}/users/delta?$deltatoken=")
        return self._graph_error(request, fault.status, fault.code or code, fault.message or message, headers)

    # ================================================================ Entra

    def _entra(self, request: Request, path: str) -> Response:
        parts = [part for part in path.split("/") if part]
        if parts[:3] == ["common", "discovery", "instance"]:
            return self._instance_discovery(request)
        if not parts:
            return self._aad_error(request, "invalid_request", "Unknown endpoint.", 90002, 404)
        tenant, rest = parts[0], "/".join(parts[1:])
        if tenant.lower() not in (self.tenant_id, self.domain):
            return self._aad_error(
                request, "invalid_tenant", f"AADSTS90002: Tenant '{tenant}' not found.", 90002, 400
            )
        if rest in ("v2.0/.well-known/openid-configuration", ".well-known/openid-configuration"):
            return _json(self._openid_configuration(request))
        if rest == "discovery/v2.0/keys":
            return _json(self._jwks())
        if rest == "oauth2/v2.0/authorize":
            return self._authorize(request)
        if rest == "oauth2/v2.0/token" and request.method == "POST":
            return self._token(request)
        if rest == "oauth2/v2.0/logout":
            target = request.args.get("post_logout_redirect_uri")
            if target:
                return Response(status=302, headers={"Location": target})
            return Response("<p>You signed out.</p>", mimetype="text/html")
        return self._aad_error(request, "invalid_request", f"Unknown endpoint {path}.", 900561, 404)

    def _issuer_base(self, request: Request) -> str:
        return request.host_url.rstrip("/")

    def _instance_discovery(self, request: Request) -> Response:
        host = request.host
        discovery = f"https://{host}/{self.tenant_id}/v2.0/.well-known/openid-configuration"
        if request.args.get("api-version") == "1.1":
            return _json(
                {
                    "tenant_discovery_endpoint": discovery,
                    "api-version": "1.1",
                    "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
                }
            )
        return _json({"tenant_discovery_endpoint": discovery})

    def _openid_configuration(self, request: Request) -> dict[str, Any]:
        base = f"{self._issuer_base(request)}/{self.tenant_id}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self._issuer_base(request)}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce",
                "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email",
            ],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        }

    def _jwks(self) -> dict[str, Any]:
        numbers = _rsa_key().public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self._kid,
                    "n": _b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                    "e": _b64url(numbers.e.to_bytes(3, "big")),
                }
            ]
        }

    def _authorize(self, request: Request) -> Response:
        if request.method == "POST" and "transaction" in request.form:
            return self._authorize_submit(request)
        args = request.args
        if args.get("client_id") != self.client_id:
            return self._error_page(
                f"AADSTS700016: Application with identifier '{args.get('client_id')}' was not found in the directory.",
            )
        if args.get("response_type") != "code":
            return self._error_page("AADSTS900144: Only response_type=code is supported by this fake.")
        redirect_uri = args.get("redirect_uri", "")
        if not redirect_uri or (self.redirect_uris is not None and redirect_uri not in self.redirect_uris):
            return self._error_page(
                f"AADSTS50011: The redirect URI '{redirect_uri}' does not match the redirect URIs configured"
                " for the application."
            )
        transaction = secrets.token_urlsafe(16)
        self._pending_authorizations[transaction] = {
            "redirect_uri": redirect_uri,
            "scope": args.get("scope", ""),
            "state": args.get("state"),
            "nonce": args.get("nonce"),
            "code_challenge": args.get("code_challenge"),
            "code_challenge_method": args.get("code_challenge_method"),
            "response_mode": args.get("response_mode", "query"),
            "client_info": args.get("client_info") == "1",
        }
        hint = (args.get("login_hint") or "").lower()
        for user_id, user in self._users.items():
            if hint and hint == str(user.get("userPrincipalName", "")).lower():
                return self._complete_authorization(transaction, user_id)
        # A user picker: the "person" chooses who signs in and presses the button.
        rows = []
        for index, (user_id, user) in enumerate(list(self._users.items())[:50]):
            checked = " checked" if index == 0 else ""
            label = html.escape(f"{user.get('displayName')} <{user.get('userPrincipalName')}>")
            value = html.escape(user_id)
            rows.append(f'<label><input type="radio" name="user_id" value="{value}"{checked}> {label}</label><br>')
        page = (
            "<!doctype html><title>Sign in to the fake tenant</title>"
            f'<form method="post" action="{html.escape(request.base_url)}">'
            f'<input type="hidden" name="transaction" value="{transaction}">'
            + "".join(rows)
            + '<button type="submit">Sign in</button></form>'
        )
        return Response(page, mimetype="text/html")

    def _authorize_submit(self, request: Request) -> Response:
        transaction = request.form["transaction"]
        if transaction not in self._pending_authorizations:
            return self._error_page("AADSTS90014: The sign-in request expired or was already completed.")
        user_id = request.form.get("user_id", "")
        if user_id not in self._users:
            return self._error_page("AADSTS50034: The user account does not exist in this directory.")
        return self._complete_authorization(transaction, user_id)

    def _complete_authorization(self, transaction: str, user_id: str) -> Response:
        pending = self._pending_authorizations.pop(transaction)
        code = secrets.token_urlsafe(32)
        self._codes[code] = {**pending, "user_id": user_id, "redeemed": False, "issued_at": time.time()}
        fields = {"code": code, "state": pending["state"], "session_state": str(uuid.uuid4())}
        if pending["client_info"]:
            fields["client_info"] = self._client_info(user_id)
        fields = {key: value for key, value in fields.items() if value is not None}
        if pending["response_mode"] == "form_post":
            inputs = "".join(
                f'<input type="hidden" name="{name}" value="{html.escape(value)}">' for name, value in fields.items()
            )
            page = (
                "<!doctype html><title>Working...</title>"
                f'<form method="post" action="{html.escape(pending["redirect_uri"])}">{inputs}'
                '<button type="submit">Continue</button></form>'
            )
            return Response(page, mimetype="text/html")
        separator = "&" if "?" in pending["redirect_uri"] else "?"
        return Response(status=302, headers={"Location": pending["redirect_uri"] + separator + urlencode(fields)})

    def _client_info(self, user_id: str) -> str:
        return _b64url(json.dumps({"uid": user_id, "utid": self.tenant_id}).encode())

    def _token(self, request: Request) -> Response:
        form = request.form
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if request.authorization and request.authorization.type == "basic":
            client_id = request.authorization.username
            secret = request.authorization.password
        if client_id != self.client_id:
            return self._aad_error(
                request,
                "unauthorized_client",
                f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory.",
                700016,
                400,
            )
        assertion_ok = (
            form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            and bool(form.get("client_assertion"))
        )
        if secret != self.client_secret and not assertion_ok:
            return self._aad_error(
                request, "invalid_client", "AADSTS7000215: Invalid client secret provided.", 7000215, 401
            )
        grant = form.get("grant_type")
        if grant == "client_credentials":
            scopes = form.get("scope", "").split()
            if len(scopes) != 1 or not scopes[0].endswith("/.default"):
                return self._aad_error(
                    request,
                    "invalid_scope",
                    "AADSTS1002012: The provided value for scope is not valid. Client credential flows must"
                    " have a scope value with /.default suffixed to the resource identifier.",
                    1002012,
                    400,
                )
            audience = scopes[0][: -len("/.default")]
            token = self._issue_access_token(request, audience, roles=list(self.app_roles), app_only=True)
            return _json(
                {"token_type": "Bearer", "expires_in": self.token_lifetime_s, "ext_expires_in": self.token_lifetime_s,
                 "access_token": token}
            )
        if grant == "authorization_code":
            return self._redeem_code(request)
        if grant == "refresh_token":
            grant_data = self._refresh_tokens.get(form.get("refresh_token", ""))
            if grant_data is None:
                return self._aad_error(
                    request, "invalid_grant", "AADSTS700082: The refresh token has expired.", 700082, 400
                )
            return self._user_tokens(request, grant_data, nonce=None)
        return self._aad_error(
            request, "unsupported_grant_type", f"AADSTS70003: grant_type '{grant}' is not supported.", 70003, 400
        )

    def _redeem_code(self, request: Request) -> Response:
        form = request.form
        grant = self._codes.get(form.get("code", ""))
        if grant is None:
            return self._aad_error(
                request, "invalid_grant", "AADSTS70008: The provided authorization code is expired.", 70008, 400
            )
        if grant["redeemed"]:
            return self._aad_error(
                request,
                "invalid_grant",
                "AADSTS54005: OAuth2 Authorization code was already redeemed, please retry with a new valid code.",
                54005,
                400,
            )
        grant["redeemed"] = True
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return self._aad_error(
                request,
                "invalid_grant",
                "AADSTS50011: The redirect URI does not match the one used to obtain the code.",
                50011,
                400,
            )
        if grant["code_challenge"]:
            verifier = form.get("code_verifier", "")
            expected = grant["code_challenge"]
            actual = (
                _b64url(hashlib.sha256(verifier.encode()).digest())
                if grant["code_challenge_method"] == "S256"
                else verifier
            )
            if not verifier or actual != expected:
                return self._aad_error(
                    request,
                    "invalid_grant",
                    "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the"
                    " authorization request.",
                    501481,
                    400,
                )
        return self._user_tokens(request, grant, nonce=grant["nonce"])

    def _user_tokens(self, request: Request, grant: Mapping[str, Any], nonce: str | None) -> Response:
        user_id = grant["user_id"]
        user = self._users.get(user_id)
        if user is None:
            return self._aad_error(
                request, "invalid_grant", "AADSTS50034: The user account does not exist.", 50034, 400
            )
        requested = grant["scope"].split()
        oidc_scopes = ("openid", "profile", "offline_access", "email")
        resource_scopes = [scope for scope in requested if scope not in oidc_scopes]
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": self.client_id,
            "iss": f"{self._issuer_base(request)}/{self.tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": user.get("displayName"),
            "oid": user_id,
            "preferred_username": user.get("userPrincipalName"),
            "rh": "0.fake",
            "sid": str(uuid.uuid4()),
            "sub": _b64url(hashlib.sha256(f"{user_id}:{self.client_id}".encode()).digest()),
            "tid": self.tenant_id,
            "uti": secrets.token_urlsafe(12),
            "ver": "2.0",
        }
        if nonce:
            claims["nonce"] = nonce
        if "email" in requested and user.get("mail"):
            claims["email"] = user["mail"]
        for key, value in self.id_token_overrides.items():
            if value is None:
                claims.pop(key, None)
            else:
                claims[key] = value
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(requested),
            "expires_in": self.token_lifetime_s,
            "ext_expires_in": self.token_lifetime_s,
            "access_token": self._issue_access_token(
                request, "https://graph.microsoft.com", scp=" ".join(resource_scopes) or "User.Read", user_id=user_id
            ),
            "id_token": jwt.encode(claims, _rsa_key(), algorithm="RS256", headers={"kid": self._kid}),
        }
        if "offline_access" in requested:
            refresh_token = secrets.token_urlsafe(32)
            self._refresh_tokens[refresh_token] = dict(grant)
            body["refresh_token"] = refresh_token
        if request.form.get("client_info") == "1":
            body["client_info"] = self._client_info(user_id)
        return _json(body)

    def _issue_access_token(
        self,
        request: Request,
        audience: str,
        *,
        roles: list[str] | None = None,
        scp: str | None = None,
        user_id: str | None = None,
        app_only: bool = False,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + self.token_lifetime_s,
            "tid": self.tenant_id,
            "appid": self.client_id,
            "idtyp": "app" if app_only else "user",
            "uti": secrets.token_urlsafe(12),
        }
        if roles is not None:
            claims["roles"] = roles
        if scp is not None:
            claims["scp"] = scp
        if user_id is not None:
            claims["oid"] = user_id
        token = jwt.encode(claims, _rsa_key(), algorithm="RS256", headers={"kid": self._kid})
        self._access_tokens[token] = claims
        return token

    def _aad_error(self, request: Request, error: str, description: str, code: int, status: int) -> Response:
        correlation_id = request.headers.get("client-request-id") or str(uuid.uuid4())
        trace_id = str(uuid.uuid4())
        stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
        return _json(
            {
                "error": error,
                "error_description": f"{description} Trace ID: {trace_id} Correlation ID: {correlation_id}"
                f" Timestamp: {stamp}",
                "error_codes": [code],
                "timestamp": stamp,
                "trace_id": trace_id,
                "correlation_id": correlation_id,
                "error_uri": f"{self._issuer_base(request)}/error?code={code}",
            },
            status=status,
        )

    def _error_page(self, message: str) -> Response:
        return Response(
            f"<!doctype html><title>Sign-in error</title><p>{html.escape(message)}</p>",
            status=400,
            mimetype="text/html",
        )

    # ================================================================ Graph

    def _graph_base(self, request: Request) -> str:
        return f"{request.host_url.rstrip('/')}/v1.0"

    def _graph(self, request: Request, path: str) -> Response:
        if request.method != "GET":
            return self._graph_error(request, 405, "Request_BadRequest", "Only GET is supported by this fake.")
        denied = self._check_bearer(request)
        if denied is not None:
            return denied
        if path in ("/users/delta", "/users/delta()", "/users/microsoft.graph.delta", "/users/microsoft.graph.delta()"):
            return self._delta(request)
        if path == "/users":
            return self._list_users(request)
        match = re.fullmatch(r"/users/([^/]+)(/manager)?", path)
        if match:
            return self._get_user(request, match.group(1), bool(match.group(2)))
        return self._graph_error(request, 400, "BadRequest", f"Resource not found for the segment '{path}'.")

    def _check_bearer(self, request: Request) -> Response | None:
        header = request.headers.get("Authorization", "")
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
        claims = self._access_tokens.get(token)
        if claims is None or claims["exp"] < time.time():
            return self._graph_error(
                request, 401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
            )
        if claims.get("idtyp") == "app" and not _READ_ROLES & set(claims.get("roles", ())):
            return self._graph_error(
                request, 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
            )
        return None

    def _graph_error(
        self,
        request: Request,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        request_id = str(uuid.uuid4())
        client_request_id = request.headers.get("client-request-id") or request_id
        body = {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            }
        }
        response = _json(body, status=status)
        response.headers["request-id"] = request_id
        response.headers["client-request-id"] = client_request_id
        response.headers.update(dict(headers or {}))
        return response

    def _graph_ok(self, request: Request, body: dict[str, Any]) -> Response:
        request_id = str(uuid.uuid4())
        response = Response(
            json.dumps(body, separators=(",", ":")),
            content_type=(
                "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
            ),
        )
        response.headers["request-id"] = request_id
        response.headers["client-request-id"] = request.headers.get("client-request-id") or request_id
        response.headers["x-ms-resource-unit"] = "1"
        return response

    def _prefer(self, request: Request) -> tuple[int, bool]:
        size, minimal = self.default_page_size, False
        for value in request.headers.getlist("Prefer"):
            for item in value.split(","):
                name, _, arg = item.strip().partition("=")
                if name.lower() == "odata.maxpagesize" and arg.strip().isdigit():
                    size = int(arg)
                elif name.lower() == "return" and arg.strip().lower() == "minimal":
                    minimal = True
        return max(1, min(size, self.max_page_size)), minimal

    def _delta(self, request: Request) -> Response:
        args = request.args
        unsupported = [name for name in ("$expand", "$top", "$orderby") if name in args]
        if unsupported:
            return self._graph_error(
                request,
                400,
                "Request_UnsupportedQuery",
                f"Unsupported query option(s) on delta: {', '.join(unsupported)}.",
            )
        page_size, minimal = self._prefer(request)
        skiptoken, deltatoken = args.get("$skiptoken"), args.get("$deltatoken")
        if (skiptoken or deltatoken) and any(name in args for name in ("$select", "$filter")):
            # Graph encodes the original query into the tokens; the links must be followed verbatim.
            return self._graph_error(
                request, 400, "Request_BadRequest", "Query parameters cannot be changed on a nextLink or deltaLink."
            )
        if skiptoken:
            state = self._skip_tokens.get(skiptoken)
            if state is None:
                return self._graph_error(request, 400, "Request_BadRequest", "The skip token is not valid.")
            round_id, offset, empty_done = state
            return self._serve_page(request, round_id, offset, page_size, empty_done)
        if deltatoken == "latest":
            select = _parse_select(args.get("$select"))
            token = self._new_delta_token(len(self._log), select)
            return self._graph_ok(
                request,
                {"@odata.context": f"{self._graph_base(request)}/$metadata#users",
                 "@odata.deltaLink": f"{self._graph_base(request)}/users/delta?$deltatoken={token}",
                 "value": []},
            )
        if deltatoken is not None:
            state = self._delta_tokens.get(deltatoken)
            if state is None:
                return self._graph_error(request, 400, "Request_BadRequest", "The delta token is not valid.")
            generation, watermark, select = state
            if generation != self._generation:
                code, message = _GRAPH_ERROR_CODES[400]
                return self._graph_error(request, 400, code, message)
            items = self._changes_since(watermark, minimal)
            round_id = self._new_round(items, select)
        else:
            select = _parse_select(args.get("$select"))
            round_id = self._new_round([("full", user_id, False, None) for user_id in self._users], select)
        return self._serve_page(request, round_id, 0, page_size, False)

    def _new_round(self, items: list[tuple[Any, ...]], select: frozenset[str] | None) -> str:
        for user_id in self._replays:
            items.append(("full", user_id, False, None))
        self._replays.clear()
        round_id = secrets.token_urlsafe(8)
        self._rounds[round_id] = _Round(items, select, len(self._log), self._generation)
        return round_id

    def _new_delta_token(self, watermark: int, select: frozenset[str] | None) -> str:
        token = secrets.token_urlsafe(40)
        self._delta_tokens[token] = (self._generation, watermark, select)
        return token

    def _serve_page(self, request: Request, round_id: str, offset: int, page_size: int, empty_done: bool) -> Response:
        rnd = self._rounds[round_id]
        base = self._graph_base(request)
        rnd.pages_served += 1
        body: dict[str, Any] = {"@odata.context": f"{base}/$metadata#users"}
        if self.empty_page_every and not empty_done and rnd.pages_served % self.empty_page_every == 0:
            token = secrets.token_urlsafe(40)
            self._skip_tokens[token] = (round_id, offset, True)
            body["@odata.nextLink"] = f"{base}/users/delta?$skiptoken={token}"
            body["value"] = []
            return self._graph_ok(request, body)
        end = offset + page_size
        value = [rendered for item in rnd.items[offset:end] if (rendered := self._render(item, rnd.select)) is not None]
        if end < len(rnd.items):
            token = secrets.token_urlsafe(40)
            self._skip_tokens[token] = (round_id, end, False)
            body["@odata.nextLink"] = f"{base}/users/delta?$skiptoken={token}"
        else:
            token = self._new_delta_token(rnd.end_watermark, rnd.select)
            body["@odata.deltaLink"] = f"{base}/users/delta?$deltatoken={token}"
        body["value"] = value
        return self._graph_ok(request, body)

    def _changes_since(self, watermark: int, minimal: bool) -> list[tuple[Any, ...]]:
        summaries: dict[str, _ChangeSummary] = {}
        for user_id, kind, props, old_manager in self._log[watermark:]:
            summary = summaries.get(user_id)
            if summary is None:
                summary = summaries[user_id] = _ChangeSummary()
            if kind.startswith("removed:"):
                summary.kind, summary.reason = "removed", kind.split(":", 1)[1]
            elif kind in ("created", "restored"):
                summary.kind, summary.full = "upsert", True
            else:
                summary.kind = "upsert"
                summary.props |= props
                if "manager" in props:
                    if not summary.manager_changed:
                        summary.old_manager = old_manager
                    summary.manager_changed = True
        items: list[tuple[Any, ...]] = []
        for user_id, summary in summaries.items():
            if summary.kind == "removed":
                items.append(("removed", user_id, summary.reason))
            elif summary.full or not minimal:
                items.append(("full", user_id, summary.manager_changed, summary.old_manager))
            else:
                items.append(("partial", user_id, summary.props, summary.manager_changed, summary.old_manager))
        return items

    def _render(self, item: tuple[Any, ...], select: frozenset[str] | None) -> dict[str, Any] | None:
        kind, user_id = item[0], item[1]
        if kind == "removed":
            return {"id": user_id, "@removed": {"reason": item[2]}}
        user = self._users.get(user_id)
        if user is None:
            # Removed after the round started; the next round reports the removal.
            return None
        wanted = select if select is not None else _DEFAULT_SELECT_LOWER
        if kind == "full":
            manager_changed, old_manager = item[2], item[3]
            out = {key: value for key, value in user.items() if key == "id" or key.lower() in wanted}
        else:
            props, manager_changed, old_manager = item[2], item[3], item[4]
            out = {"id": user_id}
            out.update((key, user.get(key)) for key in props if key != "manager" and key.lower() in wanted)
        if "manager" in wanted:
            manager = self._managers.get(user_id)
            if manager and (kind == "full" or manager_changed):
                out["manager@delta"] = [{"@odata.type": "#microsoft.graph.user", "id": manager}]
            elif manager_changed and old_manager:
                out["manager@delta"] = [{"id": old_manager, "@removed": {"reason": "deleted"}}]
        return out

    def _list_users(self, request: Request) -> Response:
        args = request.args
        select = _parse_select(args.get("$select"))
        wanted = select if select is not None else _DEFAULT_SELECT_LOWER
        expand_manager = args.get("$expand", "").startswith("manager")
        filter_ = args.get("$filter")
        if filter_:
            match = re.fullmatch(r"id in \(((?:'[0-9a-fA-F-]+',?)+)\)", filter_.strip())
            if not match:
                return self._graph_error(request, 400, "Request_UnsupportedQuery", "Unsupported $filter in this fake.")
            ids = re.findall(r"'([0-9a-fA-F-]+)'", match.group(1))
            if len(ids) > 15:
                return self._graph_error(
                    request, 400, "Request_UnsupportedQuery", "Too many values in the 'in' operator (max 15)."
                )
        else:
            ids = list(self._users)
        value = []
        for user_id in ids:
            user = self._users.get(user_id)
            if user is None:
                continue
            out = {key: val for key, val in user.items() if key == "id" or key.lower() in wanted}
            if expand_manager and user_id in self._managers:
                out["manager"] = {"@odata.type": "#microsoft.graph.user", "id": self._managers[user_id]}
            value.append(out)
        context = f"{self._graph_base(request)}/$metadata#users"
        return self._graph_ok(request, {"@odata.context": context, "value": value})

    def _get_user(self, request: Request, user_id: str, manager: bool) -> Response:
        user = self._users.get(user_id)
        if user is None:
            code, message = _GRAPH_ERROR_CODES[404]
            return self._graph_error(request, 404, code, message)
        if manager:
            manager_id = self._managers.get(user_id)
            if manager_id is None or manager_id not in self._users:
                code, message = _GRAPH_ERROR_CODES[404]
                return self._graph_error(request, 404, code, message)
            target = self._users[manager_id]
            return self._graph_ok(request, {"@odata.type": "#microsoft.graph.user", **target})
        select = _parse_select(request.args.get("$select"))
        wanted = select if select is not None else _DEFAULT_SELECT_LOWER
        return self._graph_ok(request, {key: val for key, val in user.items() if key == "id" or key.lower() in wanted})


_MISSING = object()
_DEFAULT_SELECT_LOWER = frozenset(name.lower() for name in _DEFAULT_DELTA_PROPERTIES)


def _parse_select(value: str | None) -> frozenset[str] | None:
    if not value:
        return None
    return frozenset(name.strip().lower() for name in value.split(",") if name.strip())


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json; charset=utf-8")


# ==================================================================== HTTPS server


class _QuietHandler(WSGIRequestHandler):
    """Send werkzeug's per-request log lines to debug instead of stderr; keep connections open.

    HTTP/1.1 keeps a client's TLS connection alive between requests, as Graph does: with
    werkzeug's default (HTTP/1.0) every page of a delta round paid a new TLS handshake.
    """

    protocol_version = "HTTP/1.1"

    def log(self, type: str, message: str, *args: Any) -> None:
        logger.debug("fake entra/graph %s: " + message, type, *args)


class FakeEntraServer:
    """Serve a :class:`FakeEntraGraph` over real HTTPS on 127.0.0.1 in a background thread.

    Use as a context manager. Point requests at the test CA with
    ``monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_bundle_path)``: the variable
    overrides ``verify=`` in requests (and so in msal).

    :param fake: The app to serve (a new one by default).
    """

    def __init__(self, fake: FakeEntraGraph | None = None) -> None:
        self.fake = fake or FakeEntraGraph()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: str | None = None
        self.url = ""
        self.ca_bundle_path = ""

    def start(self) -> FakeEntraServer:
        """Create the certificate, bind an ephemeral port and start serving."""
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        self._tmpdir = tempfile.mkdtemp(prefix="fake-entra-")
        self.ca_bundle_path = f"{self._tmpdir}/ca.pem"
        ca.cert_pem.write_to_path(self.ca_bundle_path)
        self._server = make_server(
            "127.0.0.1", 0, self.fake, threaded=True, ssl_context=context, request_handler=_QuietHandler
        )
        self.url = f"https://127.0.0.1:{self._server.server_port}"
        # A short poll interval keeps shutdown() (and so each test's teardown) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-entra-graph", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and delete the certificate files."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> FakeEntraServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def authority(self) -> str:
        """The Entra authority URL to configure (``INTRANET_ENTRA_AUTHORITY``)."""
        return f"{self.url}/{self.fake.tenant_id}"

    @property
    def graph_base_url(self) -> str:
        """The Graph base URL to configure (``INTRANET_GRAPH_BASE_URL``)."""
        return f"{self.url}/v1.0"

    def config(self) -> dict[str, Any]:
        """Flask config keys that point Beacon at this fake."""
        return {
            "INTRANET_ENTRA_TENANT_ID": self.fake.tenant_id,
            "INTRANET_ENTRA_CLIENT_ID": self.fake.client_id,
            "INTRANET_ENTRA_CLIENT_SECRET": self.fake.client_secret,
            "INTRANET_ENTRA_AUTHORITY": self.authority,
            # 127.0.0.1 is unknown to Microsoft's instance discovery, which is offline anyway.
            "INTRANET_ENTRA_INSTANCE_DISCOVERY": False,
            "INTRANET_GRAPH_BASE_URL": self.graph_base_url,
        }


# ==================================================================== responses routing


def _routed_response(fake: FakeEntraGraph, request: Any) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(request.url)
    body = request.body
    if isinstance(body, str):
        body = body.encode()
    builder = EnvironBuilder(
        path=parts.path,
        base_url=f"{parts.scheme}://{parts.netloc}",
        query_string=parts.query,
        method=request.method,
        headers=Headers(list(request.headers.items())),
        data=body or b"",
    )
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    app_iter, status, headers = run_wsgi_app(fake, environ, buffered=True)
    try:
        content = b"".join(app_iter)
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()
    return int(status.split()[0]), dict(headers.items()), content


@contextlib.contextmanager
def routed_real_hosts(
    fake: FakeEntraGraph, hosts: Iterable[str] = REAL_HOSTS
) -> Iterator[responses.RequestsMock]:
    """Route requests for the real Entra and Graph hosts into ``fake``, in process.

    Any other URL raises ``ConnectionError``, which also catches accidental real calls.
    """
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for host in hosts:
            pattern = re.compile(rf"https://{re.escape(host)}/.*")
            for method in ("GET", "POST"):
                mock.add_callback(
                    method, pattern, callback=lambda request: _routed_response(fake, request), content_type=None
                )
        yield mock


def routed_config(fake: FakeEntraGraph) -> dict[str, Any]:
    """Flask config keys for :func:`routed_real_hosts` (production URLs, fake credentials)."""
    return {
        "INTRANET_ENTRA_TENANT_ID": fake.tenant_id,
        "INTRANET_ENTRA_CLIENT_ID": fake.client_id,
        "INTRANET_ENTRA_CLIENT_SECRET": fake.client_secret,
    }


# ==================================================================== HTML helpers


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.options: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and self.action is None:
            self.action = values.get("action", "")
        elif tag == "input" and "name" in values:
            name, kind = values["name"], values.get("type", "text")
            if kind == "radio":
                self.options.setdefault(name, []).append(values.get("value", ""))
                if "checked" in values:
                    self.fields[name] = values.get("value", "")
            else:
                self.fields[name] = values.get("value", "")


@dataclass
class HtmlForm:
    """The first form of a page: where it posts, its values, and the choices of radio inputs."""

    action: str
    fields: dict[str, str]
    options: dict[str, list[str]]


def parse_form(page: str) -> HtmlForm:
    """Read the first ``<form>`` of an HTML page, as a browser would submit it.

    :raise ValueError: the page has no form.
    """
    parser = _FormParser()
    parser.feed(page)
    if parser.action is None:
        raise ValueError(f"no form in page: {page[:200]!r}")
    return HtmlForm(parser.action, parser.fields, parser.options)


def follow_sign_in(auth_uri: str, session: Any, user_id: str | None = None) -> HtmlForm:
    """Play the browser: open ``auth_uri``, pick ``user_id`` (or the first user), submit.

    Returns the ``form_post`` form that would be POSTed to the redirect URI; its
    ``fields`` are what the callback receives.

    :param session: A :class:`requests.Session` (trusting the fake's CA).
    """
    picker = session.get(auth_uri, timeout=10)
    picker.raise_for_status()
    form = parse_form(picker.text)
    if "code" in form.fields:  # login_hint matched: no picker
        return form
    if user_id is not None:
        form.fields["user_id"] = user_id
    posted = session.post(form.action, data=form.fields, timeout=10)
    posted.raise_for_status()
    return parse_form(posted.text)


__all__ = [
    "REAL_HOSTS",
    "Call",
    "FakeEntraGraph",
    "FakeEntraServer",
    "HtmlForm",
    "follow_sign_in",
    "parse_form",
    "routed_config",
    "routed_real_hosts",
]
