"""Request rate limits every instance shares: Flask-Limiter, counting in Redis (the only Flask-Limiter user).

Limited here (each rate an ``INTRANET_RATELIMIT_*`` setting):

* sign-in (the start of an Entra sign-in, its callback and completion, the development sign-in),
  per client address (``request.remote_addr``: the real one behind ``INTRANET_TRUSTED_PROXIES``);
* reading-event batches (``POST /api/v1/events``), per person (per address when signed out);
* audience previews (``POST /api/v1/audiences/preview``), per person.

Rating writes keep their own limit (``INTRANET_RATINGS_PER_MINUTE``, :mod:`intranet.throttle`):
it is counted in the database, which every instance already shares, and a digest's rating link
names a person who is not signed in, which a limit keyed before the view runs cannot see.

**Checked once.** Each limited view counts its request once (its decorator); requests to
views without a limit are not looked at.

**Shared.** With ``INTRANET_RATELIMIT_STORAGE_URI=redis://...`` every worker of every instance
counts in the same Redis keys (fixed one-minute windows, ``INCR`` + ``EXPIRE``), so N workers
do not grant N budgets. ``memory://`` (the default, for ``make run`` and tests) counts per
process.

**When Redis dies: open, with a per-process fallback.** These limits protect capacity, not a
secret (passwords are checked by Entra ID, which has its own lockout), so refusing every sign-in
and event while Redis is down would turn a cache outage into a full outage. Flask-Limiter
instead counts in process memory (each worker enforces the limit on its own: at most workers x
instances times the budget) and logs a warning; it probes Redis again and goes back to it when it
answers. Redis calls time out after half a second, so a dead Redis costs no more than that.

A refusal is Beacon's 429: JSON or a page, ``Retry-After`` (seconds to the end of the window) and
one ``rate_limited`` security event, exactly like the ratings limit.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from flask import Flask, request
from flask_limiter import Limiter, RateLimitExceeded

from intranet.errors import TooManyRequests
from intranet.languages import N_
from intranet.settings import RateLimitSettings
from intranet.web.context import current_employee_or_none

__all__ = ["RateLimitExceeded", "init_app", "refusal"]
logger = logging.getLogger(__name__)

#: Which views each limit applies to (endpoint names) and who is counted.
SIGN_IN_ENDPOINTS = ("intranet_auth.dev_login", "intranet_entra.start", "intranet_entra.callback",
                     "intranet_entra.complete")
EVENT_ENDPOINTS = ("intranet_delivery_api.post_events",)
PREVIEW_ENDPOINTS = ("intranet_api.audience_preview",)


def client_address() -> str:
    """The caller's address (behind trusted proxies, the forwarded one)."""
    return f"ip:{request.remote_addr or 'unknown'}"


def person_or_address() -> str:
    """The signed-in person (their row id), else the caller's address."""
    employee = current_employee_or_none()
    return f"employee:{employee.id}" if employee is not None else client_address()


def limits_for(settings: RateLimitSettings) -> list[tuple[tuple[str, ...], str, Callable[[], str]]]:
    """(endpoints, rate, key function) for every limit, from the settings."""
    return [
        (SIGN_IN_ENDPOINTS, settings.sign_in, client_address),
        (EVENT_ENDPOINTS, settings.events, person_or_address),
        (PREVIEW_ENDPOINTS, settings.audience_preview, person_or_address),
    ]


def _storage_options(uri: str) -> dict[str, float]:
    if uri.startswith(("redis://", "rediss://", "redis+unix://")):
        return {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    return {}


def init_app(app: Flask, settings: RateLimitSettings) -> Limiter:
    """Give *app* its own limiter (one per app, as each app may name its own storage) with Beacon's limits.

    Call after Beacon's blueprints are registered: limits attach to their view functions by name.
    """
    limiter = Limiter(
        key_func=client_address,
        storage_uri=settings.storage_uri,
        storage_options=_storage_options(settings.storage_uri),
        key_prefix=settings.key_prefix,
        strategy="fixed-window",
        headers_enabled=False,
        swallow_errors=True,
        in_memory_fallback_enabled=True,
    )
    limiter.init_app(app)
    # Flask-Limiter checks each request in a before_request hook (for default and application-wide
    # limits) and again in every decorated view. Beacon declares only per-view limits, so the hook
    # finds nothing to count and only costs time (it resolved the view's limits on every request,
    # the feed's included): without it each request is checked once, by its view's decorator.
    app.before_request_funcs[None].remove(limiter._check_request_limit)
    for endpoints, rate, key_func in limits_for(settings):
        for endpoint in endpoints:
            view = app.view_functions.get(endpoint)
            if view is not None:  # e.g. Entra sign-in is not routed when a host signs people in
                # Blueprints (and so view functions) are shared by every app in the process, limiters
                # are per app: this app's URL table gets the limited view, the blueprint keeps the plain one.
                app.view_functions[endpoint] = limiter.limit(rate, key_func=key_func)(view)
    return limiter


def refusal(exc: RateLimitExceeded) -> TooManyRequests:
    """Beacon's 429 for a limit Flask-Limiter found exceeded, with the seconds until its window ends."""
    from flask import current_app

    window = int(exc.limit.limit.get_expiry())
    wait = window
    limiters = [ext for ext in current_app.extensions.get("limiter", ()) if isinstance(ext, Limiter)]
    for limiter in limiters:
        current = limiter.current_limit
        if current is not None and current.breached:
            # Redis rounds its expiry up: never promise more than one window.
            wait = min(window, max(1, math.ceil(current.reset_at - time.time())))
            break
    return TooManyRequests(N_("Too many requests (%(limit)s); try again in %(seconds)s seconds."), limit=str(exc.limit.limit),
                           seconds=wait, retry_after=wait)
