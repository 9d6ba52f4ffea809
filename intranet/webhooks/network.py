"""Where webhook deliveries may go, and the HTTP client that keeps them there.

A webhook URL is typed by an admin, but it is still a request Beacon makes from inside the
network: pointed at ``http://169.254.169.254/`` or ``http://localhost:5432/`` it would reach
services no outsider should. So deliveries use http(s) only, never follow redirects, ignore proxy
settings from the environment, and, in production, refuse loopback, private, link-local and other
non-global addresses unless ``INTRANET_WEBHOOKS_ALLOW_PRIVATE`` is set. The address is checked on
the connected socket itself, after DNS resolution, so a name that resolves to a public address
when registered and to an internal one later (DNS rebinding) is still refused.
"""
from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import MaxRetryError, NewConnectionError

from intranet.errors import InvalidInput
from intranet.languages import N_
from intranet.settings import Settings

SCHEMES = ("http", "https")
USER_AGENT = "Beacon-Webhooks/1"


def private_allowed(settings: Settings) -> bool:
    """Whether deliveries may reach non-global addresses: when allowed, or outside production."""
    return settings.webhooks.allow_private or settings.site.env != "production"


def is_global(address: str) -> bool:
    """Whether *address* (an IP) is a public, unicast one (not loopback, private, link-local, ...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, *, allow_private: bool, resolve: bool = True) -> str:
    """*url*, if deliveries may go there; a friendly early check when an endpoint is registered.

    The check that counts happens on every connection (:class:`RefusedAddress`); this one only
    tells an admin at once. A name that does not resolve (yet) is accepted.

    :raise InvalidInput: not http(s), no host, credentials in the URL, or (unless *allow_private*)
        an address or a name resolving to an address that is not public.
    """
    url = url.strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise InvalidInput(N_("A webhook URL starts with https:// (or http://) and names a host."), details={"field": "url"})
    if parts.username or parts.password:
        raise InvalidInput(N_("Put no user name or password in a webhook URL: deliveries are signed instead."),
                           details={"field": "url"})
    try:
        parts.port
    except ValueError:
        raise InvalidInput(N_("The webhook URL's port is not a number from 1 to 65535."), details={"field": "url"}) from None
    if allow_private:
        return url
    host = parts.hostname
    try:
        addresses = [host] if _is_ip(host) else (
            sorted({info[4][0] for info in socket.getaddrinfo(host, None)}) if resolve else [])
    except (socket.gaierror, UnicodeError):
        addresses = []
    private = [a for a in addresses if not is_global(a)]
    if private or host.rstrip(".").lower() == "localhost" or host.lower().endswith(".localhost"):
        raise InvalidInput(N_("%(host)s is at %(address)s, a private address: webhooks go to public addresses (set "
                              "INTRANET_WEBHOOKS_ALLOW_PRIVATE to allow internal receivers).") if private else
                           N_("%(host)s is this machine, a private address: webhooks go to public addresses (set "
                              "INTRANET_WEBHOOKS_ALLOW_PRIVATE to allow internal receivers)."),
                           host=host, address=private[0] if private else "", details={"field": "url"})
    return url


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


class RefusedAddress(NewConnectionError):
    """The connection reached an address deliveries may not go to; it was closed before sending."""


def refusal(exc: BaseException) -> str | None:
    """Why *exc* (raised by the client) is a refused address, or None when it is something else."""
    reason = exc.args[0].reason if exc.args and isinstance(exc.args[0], MaxRetryError) else None
    return str(reason.args[-1]) if isinstance(reason, RefusedAddress) else None


def _checked(connection_class: type[HTTPConnection]) -> type[HTTPConnection]:
    class Checked(connection_class):  # type: ignore[misc,valid-type]
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            address = sock.getpeername()[0]
            if not is_global(address):
                sock.close()
                raise RefusedAddress(self, f"refused: {self.host} is at {address}, not a public address "
                                           "(INTRANET_WEBHOOKS_ALLOW_PRIVATE allows it)")
            return sock

    return Checked


class _Pool(HTTPConnectionPool):
    ConnectionCls = _checked(HTTPConnection)


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _checked(HTTPSConnection)  # type: ignore[assignment]


class _PublicOnly(HTTPAdapter):
    """Connects only to public addresses (checked on the socket, after resolution)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}


def client(*, allow_private: bool) -> requests.Session:
    """An HTTP client for deliveries: no proxies or netrc from the environment, and (unless
    *allow_private*) connections to public addresses only. Callers pass ``allow_redirects=False``."""
    http = requests.Session()
    http.trust_env = False
    http.headers["User-Agent"] = USER_AGENT
    if not allow_private:
        for scheme in SCHEMES:
            http.mount(f"{scheme}://", _PublicOnly())
    return http
