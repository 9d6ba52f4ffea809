"""Entra ID and Microsoft Graph at the wire level.

This is the only module in Beacon that imports :mod:`msal`. It offers two things:

* :class:`GraphClient`, which reads ``/users/delta`` page by page with an app-only
  token (client credentials) and a bounded retry policy, and
* :func:`begin_sign_in` / :func:`finish_sign_in`, the two halves of the Entra ID
  sign-in (OIDC authorization code flow with PKCE, ``response_mode=form_post``).

Nothing here touches the database: :mod:`intranet.directory.runs` plans and applies the
pages and decides when a deltaLink may be committed.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import hmac
import json
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import msal
import requests

from ..errors import ConfigurationError
from ..retry_after import retry_after_seconds
from ..settings import EntraSettings

logger = logging.getLogger(__name__)

# msal's token cache logs each token request and response at DEBUG with the authorization code
# and client_info unredacted: keep it at INFO, so turning on DEBUG logging never writes a code.
_token_cache_logger = logging.getLogger("msal.token_cache")
if _token_cache_logger.level < logging.INFO:
    _token_cache_logger.setLevel(logging.INFO)

#: Application permission the sync needs (least privilege for ``user: delta``).
REQUIRED_PERMISSION = "User.Read.All"

#: Properties requested from ``users/delta``. Only selected properties are tracked
#: by Graph, and ``manager`` is the only way to see manager changes in delta.
DEFAULT_SELECT: tuple[str, ...] = (
    "id",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "userPrincipalName",
    "userType",
    "accountEnabled",
    "jobTitle",
    "department",
    "companyName",
    "officeLocation",
    "city",
    "country",
    "usageLocation",
    "preferredLanguage",
    "employeeId",
    "employeeType",
    "employeeOrgData",
    "onPremisesExtensionAttributes",
    "manager",
)

#: Scopes requested at sign-in besides the ones msal always adds (openid, profile).
#: ``email`` makes Entra include the ``email`` claim when the user has one.
DEFAULT_SIGN_IN_SCOPES: tuple[str, ...] = ("email",)

# Status codes worth retrying for an idempotent GET (Graph throttling guidance).
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Error codes Graph uses for "your delta token is no longer usable".
_RESYNC_CODES = frozenset({"syncstatenotfound", "resyncrequired"})
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_MULTI_TENANT = frozenset({"common", "organizations", "consumers"})


# --------------------------------------------------------------------------- errors


class GraphError(Exception):
    """Talking to Entra ID or Microsoft Graph failed.

    Every instance carries what a person needs to look the failure up: the Graph
    ``request-id`` and our ``client-request-id`` (quote both to Microsoft
    support), and the HTTP status and Graph error code when there was a response.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        client_request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.client_request_id = client_request_id

    def __str__(self) -> str:
        ids = [
            f"{name}: {value}"
            for name, value in (
                ("request-id", self.request_id),
                ("client-request-id", self.client_request_id),
            )
            if value
        ]
        return f"{self.message} ({', '.join(ids)})" if ids else self.message


class GraphThrottled(GraphError):
    """Graph kept answering 429/5xx (or was unreachable) beyond the retry budget.

    The caller must end the run *without* committing its deltaLink; the next run
    resumes from the last committed one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        #: What the server last asked us to wait, in seconds, if it said.
        self.retry_after = retry_after


class GraphForbidden(GraphError):
    """Graph answered 403: the app registration lacks a permission or admin consent."""

    def __init__(self, message: str, *, permission: str = REQUIRED_PERMISSION, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.permission = permission


class DeltaExpired(GraphError):
    """The deltaLink can no longer be used (410 Gone, ``syncStateNotFound``, ``resyncRequired``).

    The caller drops its stored deltaLink and runs a full sync with mark-and-sweep.
    """


class GraphAuthError(GraphError):
    """No usable token: msal failed, or Graph rejected a freshly acquired token.

    ``correlation_id`` and ``error_description`` come from Entra's token endpoint
    (the AADSTS code in the description says what to fix).
    """

    def __init__(
        self,
        message: str,
        *,
        error: str | None = None,
        error_description: str | None = None,
        correlation_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.error = error
        self.error_description = error_description
        self.correlation_id = correlation_id

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} (correlation-id: {self.correlation_id})" if self.correlation_id else text


class SignInRefused(GraphAuthError):
    """The sign-in response was not acceptable (tampered, replayed, wrong tenant, refused by Entra).

    Show the person a generic "sign-in failed, try again" page; log the exception.
    """


# --------------------------------------------------------------------------- settings


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


@dataclass(frozen=True)
class GraphSettings:
    """How to reach Entra ID and Microsoft Graph for one tenant.

    Secrets are kept out of ``repr`` so the settings can be logged.

    :param tenant_id: The directory (tenant) GUID. A GUID, not a domain, because
        sign-in compares it with the ``tid`` claim.
    :param client_id: The app registration's application (client) id.
    :param client_secret: A client secret; or use ``client_certificate``.
    :param client_certificate: msal's certificate credential, e.g.
        ``{"private_key": pem, "thumbprint": hex}``.
    :param authority: Defaults to ``https://login.microsoftonline.com/<tenant_id>``.
    :param graph_base_url: Defaults to ``https://graph.microsoft.com/v1.0``.
    :param instance_discovery: Passed to msal; set ``False`` for an authority host
        that Microsoft's instance discovery does not know (a local fake, a sovereign
        cloud proxy). ``None`` keeps msal's default.
    :param select: Properties requested from ``users/delta``.
    :param page_size: Sent as ``Prefer: odata.maxpagesize=N`` (a hint; Graph caps it).
    :param return_minimal: Also send ``Prefer: return=minimal`` so incremental rounds
        carry only the changed properties.
    :param max_attempts: Attempts per request for retryable failures.
    :param max_total_wait_s: Total time one :meth:`GraphClient.iter_delta` run may
        spend waiting between retries.
    :param base_backoff_s: First backoff step when the server gives no ``Retry-After``.
    :param max_backoff_s: Cap of one backoff step.
    :param timeout_s: Connect and read timeout of one HTTP request.
    """

    tenant_id: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    client_certificate: Mapping[str, str] | None = field(default=None, repr=False, hash=False)
    authority: str = ""
    graph_base_url: str = "https://graph.microsoft.com/v1.0"
    instance_discovery: bool | None = None
    select: tuple[str, ...] = DEFAULT_SELECT
    page_size: int = 200
    return_minimal: bool = False
    max_attempts: int = 6
    max_total_wait_s: float = 600.0
    base_backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not _GUID.match(self.tenant_id or ""):
            if (self.tenant_id or "").lower() in _MULTI_TENANT:
                raise ConfigurationError(
                    f"INTRANET_ENTRA_TENANT_ID is {self.tenant_id!r}; Beacon needs a single-tenant"
                    " authority. Use your directory (tenant) GUID from the Entra admin center."
                )
            raise ConfigurationError(
                f"INTRANET_ENTRA_TENANT_ID must be the directory (tenant) GUID, got {self.tenant_id!r}."
            )
        if not self.client_id:
            raise ConfigurationError("INTRANET_ENTRA_CLIENT_ID is empty; set the app registration's client id.")
        if bool(self.client_secret) == bool(self.client_certificate):
            raise ConfigurationError(
                "Set exactly one of INTRANET_ENTRA_CLIENT_SECRET and INTRANET_ENTRA_CLIENT_CERTIFICATE."
            )
        if not self.authority:
            object.__setattr__(self, "authority", f"https://login.microsoftonline.com/{self.tenant_id}")
        object.__setattr__(self, "authority", self.authority.rstrip("/"))
        object.__setattr__(self, "graph_base_url", self.graph_base_url.rstrip("/"))
        object.__setattr__(self, "select", tuple(self.select))
        if not 1 <= self.page_size <= 999:
            raise ConfigurationError(f"INTRANET_GRAPH_PAGE_SIZE must be 1..999, got {self.page_size}.")
        if self.max_attempts < 1:
            raise ConfigurationError(f"INTRANET_GRAPH_MAX_ATTEMPTS must be at least 1, got {self.max_attempts}.")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> GraphSettings:
        """Build settings from a flat mapping such as ``app.config``.

        Required: ``INTRANET_ENTRA_TENANT_ID``, ``INTRANET_ENTRA_CLIENT_ID`` and one of
        ``INTRANET_ENTRA_CLIENT_SECRET`` / ``INTRANET_ENTRA_CLIENT_CERTIFICATE``.
        Optional: ``INTRANET_ENTRA_AUTHORITY``, ``INTRANET_ENTRA_INSTANCE_DISCOVERY``,
        ``INTRANET_GRAPH_BASE_URL``, ``INTRANET_GRAPH_SELECT`` (list or comma-separated),
        ``INTRANET_GRAPH_PAGE_SIZE``, ``INTRANET_GRAPH_RETURN_MINIMAL``,
        ``INTRANET_GRAPH_MAX_ATTEMPTS``, ``INTRANET_GRAPH_MAX_TOTAL_WAIT_S``,
        ``INTRANET_GRAPH_BASE_BACKOFF_S``, ``INTRANET_GRAPH_MAX_BACKOFF_S``,
        ``INTRANET_GRAPH_TIMEOUT_S``. Absent or ``None`` values keep the defaults.

        :raise ConfigurationError: a required key is missing or a value is unusable.
        """
        missing = [
            key
            for key in ("INTRANET_ENTRA_TENANT_ID", "INTRANET_ENTRA_CLIENT_ID")
            if not config.get(key)
        ]
        if missing:
            raise ConfigurationError(
                f"Entra ID is not configured: set {', '.join(missing)} (see config/example.env)."
            )
        kwargs: dict[str, Any] = {
            "tenant_id": str(config["INTRANET_ENTRA_TENANT_ID"]).strip(),
            "client_id": str(config["INTRANET_ENTRA_CLIENT_ID"]).strip(),
            "client_secret": config.get("INTRANET_ENTRA_CLIENT_SECRET") or None,
            "client_certificate": config.get("INTRANET_ENTRA_CLIENT_CERTIFICATE") or None,
        }
        optional: dict[str, tuple[str, Callable[[Any], Any]]] = {
            "INTRANET_ENTRA_AUTHORITY": ("authority", str),
            "INTRANET_ENTRA_INSTANCE_DISCOVERY": ("instance_discovery", _as_bool),
            "INTRANET_GRAPH_BASE_URL": ("graph_base_url", str),
            "INTRANET_GRAPH_SELECT": ("select", _parse_select),
            "INTRANET_GRAPH_PAGE_SIZE": ("page_size", int),
            "INTRANET_GRAPH_RETURN_MINIMAL": ("return_minimal", _as_bool),
            "INTRANET_GRAPH_MAX_ATTEMPTS": ("max_attempts", int),
            "INTRANET_GRAPH_MAX_TOTAL_WAIT_S": ("max_total_wait_s", float),
            "INTRANET_GRAPH_BASE_BACKOFF_S": ("base_backoff_s", float),
            "INTRANET_GRAPH_MAX_BACKOFF_S": ("max_backoff_s", float),
            "INTRANET_GRAPH_TIMEOUT_S": ("timeout_s", float),
        }
        for key, (name, convert) in optional.items():
            value = config.get(key)
            if value is None or value == "":
                continue
            try:
                kwargs[name] = convert(value)
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"{key}={value!r} is not valid: {exc}") from None
        return cls(**kwargs)

    @classmethod
    def from_settings(cls, entra: EntraSettings) -> GraphSettings:
        """Build settings from the app's parsed Entra ID settings (``state.settings.entra``).

        :raise ConfigurationError: a required key is missing or a value is unusable.
        """
        return cls.from_config(entra.model_dump(by_alias=True))

    @property
    def graph_scope(self) -> str:
        """The client-credentials scope: the Graph origin plus ``/.default``."""
        parts = urlsplit(self.graph_base_url)
        return f"{parts.scheme}://{parts.netloc}/.default"

    def select_hash(self) -> str:
        """Return a stable hash of the ``$select`` list.

        Store it next to the deltaLink: Graph tracks only selected properties, so a
        different list needs a full resync. Order, case and duplicates do not count.
        """
        canonical = ",".join(sorted({name.strip().lower() for name in self.select if name.strip()}))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _parse_select(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(item).strip() for item in items if str(item).strip())
    if not names:
        raise ValueError("the list is empty")
    return names


# --------------------------------------------------------------------------- msal apps

# msal's constructor does network I/O (OIDC discovery) and the app owns the token
# cache, so there is one long-lived app per process per configuration, built on
# first use. The lock also serializes that first discovery call.
_apps: dict[tuple[Any, ...], msal.ConfidentialClientApplication] = {}
# Shared with the short-lived sign-in apps so that they reuse discovery responses.
_http_caches: dict[tuple[Any, ...], dict[Any, Any]] = {}
_apps_lock = threading.Lock()


def _app_key(settings: GraphSettings) -> tuple[Any, ...]:
    credential = settings.client_secret or json.dumps(dict(settings.client_certificate or {}), sort_keys=True)
    return (
        settings.authority,
        settings.client_id,
        hashlib.sha256(credential.encode()).hexdigest(),
        settings.instance_discovery,
        settings.timeout_s,
    )


def _build_app(
    settings: GraphSettings,
    http_cache: dict[Any, Any],
    **extra: Any,
) -> msal.ConfidentialClientApplication:
    kwargs: dict[str, Any] = {
        "client_credential": settings.client_secret or dict(settings.client_certificate or {}),
        "authority": settings.authority,
        "timeout": settings.timeout_s,
        "http_cache": http_cache,
        **extra,
    }
    if settings.instance_discovery is not None:
        kwargs["instance_discovery"] = settings.instance_discovery
    try:
        return msal.ConfidentialClientApplication(settings.client_id, **kwargs)
    except ValueError as exc:
        # msal says ValueError for a non-https authority and for a discovery 4xx.
        raise GraphAuthError(
            f"Cannot use the Entra authority {settings.authority}: {exc}. Check INTRANET_ENTRA_AUTHORITY"
            f" and INTRANET_ENTRA_TENANT_ID.{_instance_discovery_hint(settings)}",
        ) from exc
    except requests.RequestException as exc:
        raise GraphAuthError(
            f"Cannot reach the Entra authority {settings.authority} for OIDC discovery: {exc}."
            f"{_instance_discovery_hint(settings)}",
        ) from exc


def _instance_discovery_hint(settings: GraphSettings) -> str:
    # For a host it does not know, msal first asks login.microsoftonline.com whether the host is
    # a Microsoft authority, and its error then speaks of that host and of msal's parameter name;
    # say which Beacon setting turns the question off.
    host = (urlsplit(settings.authority).hostname or "").lower()
    if settings.instance_discovery is False or host in msal.authority.WELL_KNOWN_AUTHORITY_HOSTS:
        return ""
    return (
        f" {host} is not a Microsoft sign-in host, so msal first asked login.microsoftonline.com"
        " (instance discovery) whether it knows it. For a local fake, a proxy or another OIDC"
        " host, set INTRANET_ENTRA_INSTANCE_DISCOVERY=false."
    )


def confidential_client(settings: GraphSettings) -> msal.ConfidentialClientApplication:
    """Return this process's msal app for ``settings``, building it on first use.

    :raise GraphAuthError: the authority is unusable or unreachable.
    """
    key = _app_key(settings)
    app = _apps.get(key)
    if app is not None:
        return app
    with _apps_lock:
        app = _apps.get(key)
        if app is None:
            http_cache = _http_caches.setdefault(key, {})
            app = _apps[key] = _build_app(settings, http_cache)
            logger.info("Built msal app for client %s at %s", settings.client_id, settings.authority)
        return app


def clear_app_cache() -> None:
    """Forget every msal app and cached discovery response (for tests and reconfiguration)."""
    with _apps_lock:
        _apps.clear()
        _http_caches.clear()


def _token_error(result: Mapping[str, Any], what: str) -> GraphAuthError:
    error = result.get("error")
    description = result.get("error_description")
    return GraphAuthError(
        f"Entra refused {what}: {error}: {description}",
        error=error,
        error_description=description,
        correlation_id=result.get("correlation_id"),
    )


# --------------------------------------------------------------------------- Graph client


@dataclass(frozen=True)
class DeltaPage:
    """One page of a ``users/delta`` round.

    Exactly one of ``next_link`` and ``delta_link`` is set. ``users`` may be empty
    even when ``next_link`` is set.
    """

    users: list[dict[str, Any]]
    next_link: str | None
    delta_link: str | None
    request_id: str | None


@dataclass
class _Budget:
    """Waiting allowed to one run, shared by all its requests."""

    remaining_s: float
    waited_s: float = 0.0


class GraphClient:
    """Read the directory from Microsoft Graph with an app-only token.

    :param settings: Where and as whom to connect.
    :param session: A :class:`requests.Session` to reuse (a new one by default).
    :param sleep: Called with the seconds to wait between retries (inject in tests).
    :param clock: Monotonic clock used to account for the time spent waiting.
    """

    def __init__(
        self,
        settings: GraphSettings,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.session = session if session is not None else requests.Session()
        self._sleep = sleep
        self._clock = clock

    # -- public -----------------------------------------------------------------

    def delta_url(self) -> str:
        """The URL that starts a full round (query parameters go only here)."""
        select = quote(",".join(self.settings.select), safe=",")
        return f"{self.settings.graph_base_url}/users/delta?$select={select}"

    def iter_delta(self, delta_link: str | None) -> Iterator[DeltaPage]:
        """Yield the pages of one delta round, ending with the page that has the deltaLink.

        Start a full round with ``delta_link=None``; continue an incremental one with
        the stored deltaLink. Links are followed verbatim, empty pages included.

        :raise DeltaExpired: the deltaLink is no longer valid; run a full sync.
        :raise GraphThrottled: the retry budget ran out; do not commit anything.
        :raise GraphForbidden: the app lacks ``User.Read.All``.
        :raise GraphAuthError: no token could be obtained, or Graph rejected it.
        :raise GraphError: any other unexpected answer.
        """
        budget = _Budget(remaining_s=self.settings.max_total_wait_s)
        url: str | None = delta_link or self.delta_url()
        pages = 0
        while url is not None:
            body, response = self._get_json(url, budget)
            pages += 1
            next_link = body.get("@odata.nextLink")
            new_delta_link = body.get("@odata.deltaLink")
            if bool(next_link) == bool(new_delta_link):
                raise GraphError(
                    f"Graph returned a delta page with {'both' if next_link else 'neither'} of"
                    " @odata.nextLink and @odata.deltaLink; cannot continue the round.",
                    status=response.status_code,
                    **_ids(response),
                )
            users = body.get("value")
            if not isinstance(users, list):
                raise GraphError("Graph returned a delta page without a 'value' list.", **_ids(response))
            yield DeltaPage(
                users=users,
                next_link=next_link,
                delta_link=new_delta_link,
                request_id=response.headers.get("request-id"),
            )
            url = next_link
        logger.info("Delta round finished: %d pages, %.1f s spent waiting on throttling", pages, budget.waited_s)

    def users_by_ids(self, ids: Iterable[str]) -> Iterator[dict[str, Any]]:
        """Yield the current state of the given users (for example to repair a few records).

        ``manager`` comes back as ``{"id": ...}`` under ``"manager"`` when the user has one.
        Unknown ids are skipped silently, as Graph does for ``$filter``.

        :raise ValueError: an id is not a GUID (it would end up inside ``$filter``).
        """
        wanted = list(dict.fromkeys(ids))
        bad = [value for value in wanted if not _GUID.match(value)]
        if bad:
            raise ValueError(f"Graph user ids are GUIDs; refusing {bad[:3]!r}.")
        select = quote(",".join(name for name in self.settings.select if name != "manager"), safe=",")
        budget = _Budget(remaining_s=self.settings.max_total_wait_s)
        # Graph accepts at most 15 values in one "in (...)" filter.
        for start in range(0, len(wanted), 15):
            chunk = ",".join(f"'{value}'" for value in wanted[start : start + 15])
            url: str | None = (
                f"{self.settings.graph_base_url}/users?$filter=id in ({chunk})"
                f"&$select={select}&$expand=manager($select=id)"
            )
            while url is not None:
                body, _ = self._get_json(url, budget)
                yield from body.get("value", [])
                url = body.get("@odata.nextLink")

    # -- wire -------------------------------------------------------------------

    def _token(self) -> str:
        app = confidential_client(self.settings)
        try:
            result = app.acquire_token_for_client(scopes=[self.settings.graph_scope])
        except msal.exceptions.MsalServiceError as exc:
            # msal raises (instead of returning a dict) when the token endpoint answers 5xx.
            raise GraphAuthError(
                f"Entra's token endpoint failed ({exc}); try again later.", error="http_error"
            ) from exc
        except requests.RequestException as exc:
            raise GraphAuthError(f"Cannot reach Entra's token endpoint: {exc}.") from exc
        if "access_token" not in result:
            raise _token_error(result, f"an app-only token for {self.settings.graph_scope}")
        logger.debug("Graph token from %s", result.get("token_source"))
        return result["access_token"]

    def _purge_token(self) -> None:
        # A 401 means the cached token was revoked or expired early; drop it so
        # the next acquire goes to Entra instead of the cache.
        confidential_client(self.settings).remove_tokens_for_client()

    def _headers(self, token: str, client_request_id: str) -> dict[str, str]:
        prefer = [f"odata.maxpagesize={self.settings.page_size}"]
        if self.settings.return_minimal:
            prefer.append("return=minimal")
        return {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "Prefer": ", ".join(prefer),
            # A background job: let Graph throttle us before interactive traffic.
            "x-ms-throttle-priority": "Low",
            "client-request-id": client_request_id,
            "return-client-request-id": "true",
        }

    def _get_json(self, url: str, budget: _Budget) -> tuple[dict[str, Any], requests.Response]:
        """GET ``url`` with the retry policy and return the decoded body and the response."""
        reauthenticated = False
        attempt = 0
        timeout = (min(10.0, self.settings.timeout_s), self.settings.timeout_s)
        while True:
            attempt += 1
            client_request_id = str(uuid.uuid4())
            headers = self._headers(self._token(), client_request_id)
            try:
                response = self.session.get(url, headers=headers, timeout=timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                self._wait_or_give_up(
                    attempt, budget, None, f"cannot reach Graph ({exc})", client_request_id=client_request_id
                )
                continue
            status = response.status_code
            self._log_throttle_headers(response)
            if status == 200:
                try:
                    return response.json(), response
                except ValueError:
                    raise GraphError(
                        "Graph answered 200 with a body that is not JSON.", status=status, **_ids(response)
                    ) from None
            code, message = _graph_error(response)
            if status in _RETRY_STATUSES:
                self._wait_or_give_up(
                    attempt,
                    budget,
                    retry_after_seconds(response.headers.get("Retry-After"), dt.datetime.now(dt.timezone.utc)),
                    f"Graph answered {status} {code or ''}".rstrip(),
                    status=status,
                    code=code,
                    **_ids(response),
                )
                continue
            if status == 401 and not reauthenticated:
                logger.info("Graph answered 401 (%s); dropping the cached token and retrying once", code)
                reauthenticated = True
                self._purge_token()
                continue
            raise self._error_for(status, code, message, response)

    def _error_for(self, status: int, code: str | None, message: str | None, response: requests.Response) -> GraphError:
        ids = _ids(response)
        if status == 410 or (400 <= status < 500 and (code or "").lower() in _RESYNC_CODES):
            return DeltaExpired(
                f"Graph says the delta token is no longer valid ({status} {code or 'Gone'}): {message or ''}"
                " Drop the stored deltaLink and run a full sync.",
                status=status,
                code=code,
                **ids,
            )
        if status == 401:
            return GraphAuthError(
                f"Graph rejected a freshly acquired token ({code}: {message}). Check that the app"
                f" registration {self.settings.client_id} belongs to tenant {self.settings.tenant_id}"
                f" and that INTRANET_GRAPH_BASE_URL matches the token audience.",
                status=status,
                code=code,
                **ids,
            )
        if status == 403:
            return GraphForbidden(
                f"Graph refused to list users ({code}: {message}). Grant the app registration"
                f" {self.settings.client_id} the Application permission {REQUIRED_PERMISSION} on"
                f" Microsoft Graph and give admin consent in tenant {self.settings.tenant_id}.",
                status=status,
                code=code,
                **ids,
            )
        return GraphError(
            f"Graph answered {status} {code or ''}: {message or response.reason}", status=status, code=code, **ids
        )

    def _wait_or_give_up(
        self,
        attempt: int,
        budget: _Budget,
        retry_after: float | None,
        what: str,
        **error: Any,
    ) -> None:
        if retry_after is not None:
            delay = retry_after
        else:
            # Full jitter: spreads retries of many workers over the whole window.
            ceiling = min(self.settings.max_backoff_s, self.settings.base_backoff_s * 2 ** (attempt - 1))
            delay = random.uniform(0.0, ceiling)
        if attempt >= self.settings.max_attempts:
            raise GraphThrottled(
                f"{what}; gave up after {attempt} attempts and {budget.waited_s:.0f} s of waiting."
                " The run ends without committing; the next run resumes from the last deltaLink.",
                retry_after=retry_after,
                **error,
            )
        if delay > budget.remaining_s:
            raise GraphThrottled(
                f"{what}; waiting {delay:.0f} s more would exceed INTRANET_GRAPH_MAX_TOTAL_WAIT_S"
                f" ({self.settings.max_total_wait_s:.0f} s). The run ends without committing; the next"
                " run resumes from the last deltaLink.",
                retry_after=retry_after,
                **error,
            )
        logger.warning(
            "%s; retrying in %.1f s (attempt %d of %d)", what, delay, attempt + 1, self.settings.max_attempts
        )
        started = self._clock()
        self._sleep(delay)
        # Count at least what we asked for, more if the sleep overran.
        spent = max(delay, self._clock() - started)
        budget.remaining_s -= spent
        budget.waited_s += spent

    def _log_throttle_headers(self, response: requests.Response) -> None:
        percentage = response.headers.get("x-ms-throttle-limit-percentage")
        if percentage:
            logger.warning(
                "Graph throttle limit at %s of the quota (scope %s, request-id %s)",
                percentage,
                response.headers.get("x-ms-throttle-scope"),
                response.headers.get("request-id"),
            )


def _ids(response: requests.Response) -> dict[str, str | None]:
    return {
        "request_id": response.headers.get("request-id"),
        "client_request_id": response.headers.get("client-request-id")
        or response.request.headers.get("client-request-id"),
    }


def _graph_error(response: requests.Response) -> tuple[str | None, str | None]:
    """Return Graph's ``error.code`` and ``error.message`` if the body has them."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return None, None
    if not isinstance(error, dict):
        return None, None
    return error.get("code"), error.get("message")


# --------------------------------------------------------------------------- sign-in


@dataclass(frozen=True)
class SignInIdentity:
    """Who signed in. Key local accounts by ``(tid, oid)``; ``oid`` is the Graph user id.

    ``preferred_username`` and ``email`` are mutable and must not be used as keys.
    """

    tid: str
    oid: str
    name: str | None
    preferred_username: str | None
    email: str | None


# States of flows already redeemed in this process. Entra also refuses a second
# redemption of a code, but refusing here needs no round trip and holds even if
# the caller forgot to pop the flow from its session.
_used_states: collections.OrderedDict[str, None] = collections.OrderedDict()
_used_states_lock = threading.Lock()
_USED_STATES_MAX = 10_000


#: Clock difference tolerated between Entra and this server when checking an ID token's ``exp``,
#: ``nbf`` and ``iat``, in seconds: five minutes, the allowance Microsoft's own token validators use.
ID_TOKEN_CLOCK_SKEW_S = 300


def expected_issuer(settings: GraphSettings) -> str:
    """The ``iss`` of this tenant's v2.0 ID tokens: ``https://<authority host>/<tenant id>/v2.0``."""
    parts = urlsplit(settings.authority)
    return f"{parts.scheme}://{parts.netloc.lower()}/{settings.tenant_id.lower()}/v2.0"


def check_id_token(
    claims: Mapping[str, Any],
    settings: GraphSettings,
    *,
    nonce: str | None,
    now: float | None = None,
) -> None:
    """Validate an ID token's claims as OpenID Connect Core 3.1.3.7 asks.

    msal 1.38 and later decode the ID token but validate nothing but the nonce, so Beacon checks
    the audience, issuer, tenant, lifetime and nonce itself. The signature is not checked: the
    token comes straight from the token endpoint over verified TLS, which the specification
    accepts in its place (3.1.3.7, step 6).

    :param claims: The decoded claims (msal's ``id_token_claims``).
    :param nonce: The nonce of the flow (msal sends its SHA-256 hex digest to Entra).
    :param now: Seconds since the epoch; defaults to the current time.
    :raise SignInRefused: a claim is missing or wrong; the message names which and why.
    """
    now = time.time() if now is None else now
    aud = claims.get("aud")
    if aud != settings.client_id and aud != [settings.client_id]:
        raise SignInRefused(f"The ID token is for audience {aud!r}, not this app ({settings.client_id}).")
    issuer = expected_issuer(settings)
    if claims.get("iss") != issuer:
        raise SignInRefused(f"The ID token was issued by {claims.get('iss')!r}, not {issuer}.")
    tid = str(claims.get("tid") or "")
    if tid.lower() != settings.tenant_id.lower():
        raise SignInRefused(
            f"The ID token is for tenant {tid or '(none)'}, not the configured tenant {settings.tenant_id}."
        )
    skew = ID_TOKEN_CLOCK_SKEW_S
    exp = _time_claim(claims, "exp", required=True)
    if exp is not None and now > exp + skew:
        raise SignInRefused(f"The ID token expired {now - exp:.0f} s ago (allowed skew {skew} s).")
    for name, required in (("iat", True), ("nbf", False)):
        value = _time_claim(claims, name, required=required)
        if value is not None and value > now + skew:
            raise SignInRefused(
                f"The ID token's {name} is {value - now:.0f} s in the future (allowed skew {skew} s);"
                " check this server's clock."
            )
    # msal sends SHA-256(nonce) in the authorize request; Entra echoes it in the token.
    expected_nonce = hashlib.sha256(nonce.encode()).hexdigest() if nonce else None
    if not expected_nonce or not hmac.compare_digest(str(claims.get("nonce") or ""), expected_nonce):
        raise SignInRefused("The ID token's nonce does not match this sign-in (replayed or injected token).")


def _time_claim(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SignInRefused(f"The ID token's {name} claim is {value!r}, not a time.")
    return float(value)


def _sign_in_app(settings: GraphSettings) -> msal.ConfidentialClientApplication:
    # A fresh app per sign-in keeps users' tokens out of the long-lived app's
    # cache (which would grow with every sign-in); the shared http cache means
    # discovery is still fetched once per process.
    key = _app_key(settings)
    with _apps_lock:
        http_cache = _http_caches.setdefault(key, {})
    # No refresh tokens: sign-in needs the identity only.
    return _build_app(settings, http_cache, exclude_scopes=["offline_access"])


def begin_sign_in(
    settings: GraphSettings,
    redirect_uri: str,
    scopes: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Start an Entra sign-in (authorization code flow with PKCE, ``form_post``).

    Store the returned flow in the server-side session and redirect the browser
    to ``flow["auth_uri"]``. Entra will POST ``code`` and ``state`` to
    ``redirect_uri``, whose handler passes the form to :func:`finish_sign_in`.

    :param redirect_uri: The absolute callback URL registered on the app; it must accept POST.
    :param scopes: Extra delegated scopes; msal adds ``openid`` and ``profile`` itself.
    :raise GraphAuthError: the authority cannot be used.
    """
    app = _sign_in_app(settings)
    return app.initiate_auth_code_flow(
        list(DEFAULT_SIGN_IN_SCOPES if scopes is None else scopes),
        redirect_uri=redirect_uri,
        response_mode="form_post",
    )


def finish_sign_in(settings: GraphSettings, flow: Mapping[str, Any], form: Mapping[str, str]) -> SignInIdentity:
    """Redeem the authorization response and return who signed in.

    :param flow: The dict :func:`begin_sign_in` returned (pop it from the session first).
    :param form: The POSTed form of the callback (``code``, ``state``, ...).
    :raise SignInRefused: the response does not belong to this flow (CSRF, tampering),
        was already used, Entra reported an error, or the ID token fails :func:`check_id_token`
        (another tenant, audience or issuer, expired, wrong nonce).
    :raise GraphAuthError: Entra could not be reached.
    """
    response = {key: form[key] for key in form}
    flow = dict(flow)
    state = flow.get("state")
    if "error" in response:
        raise SignInRefused(
            f"Entra refused the sign-in: {response.get('error')}: {response.get('error_description')}",
            error=response.get("error"),
            error_description=response.get("error_description"),
        )
    if not state or response.get("state") != state:
        raise SignInRefused("The sign-in response does not match this browser session (state mismatch).")
    with _used_states_lock:
        if state in _used_states:
            raise SignInRefused("This sign-in response was already used (replay).")
        _used_states[state] = None
        while len(_used_states) > _USED_STATES_MAX:
            _used_states.popitem(last=False)
    app = _sign_in_app(settings)
    try:
        result = app.acquire_token_by_auth_code_flow(flow, response)
    except ValueError as exc:
        raise SignInRefused(f"The sign-in response was rejected: {exc}") from exc
    except RuntimeError as exc:
        # msal raises RuntimeError when the id_token's nonce does not match the flow.
        raise SignInRefused(f"The ID token failed msal's checks: {exc}") from exc
    except msal.exceptions.MsalServiceError as exc:
        raise GraphAuthError(f"Entra's token endpoint failed ({exc}); try again later.") from exc
    except requests.RequestException as exc:
        raise GraphAuthError(f"Cannot reach Entra's token endpoint: {exc}.") from exc
    if "error" in result:
        error = _token_error(result, "the sign-in")
        raise SignInRefused(
            error.message,
            error=error.error,
            error_description=error.error_description,
            correlation_id=error.correlation_id,
        )
    claims = result.get("id_token_claims") or {}
    check_id_token(claims, settings, nonce=flow.get("nonce"))
    tid = str(claims["tid"])
    oid = claims.get("oid")
    if not oid:
        raise SignInRefused("The ID token has no oid claim; cannot tell who signed in.")
    return SignInIdentity(
        tid=tid,
        oid=str(oid),
        name=claims.get("name"),
        preferred_username=claims.get("preferred_username"),
        email=claims.get("email"),
    )


__all__ = [
    "DEFAULT_SELECT",
    "REQUIRED_PERMISSION",
    "DeltaExpired",
    "DeltaPage",
    "GraphAuthError",
    "GraphClient",
    "GraphError",
    "GraphForbidden",
    "GraphSettings",
    "GraphThrottled",
    "SignInIdentity",
    "SignInRefused",
    "begin_sign_in",
    "check_id_token",
    "clear_app_cache",
    "confidential_client",
    "finish_sign_in",
]
