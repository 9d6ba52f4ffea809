"""What Beacon accepts from a request before any handler runs: body size, ids in paths, JSON.

One mechanism per kind of input, so that no handler has to remember them:

* the body of a request to Beacon's routes is capped at ``INTRANET_MAX_REQUEST_BYTES`` (or the
  host's ``MAX_CONTENT_LENGTH`` when that is smaller), answered with a 413;
* an ``<int:...>`` value in Beacon's paths above :data:`MAX_ID` is a 404, like any id that does
  not exist (the databases cannot even compare such a number with a key);
* every JSON body Beacon reads goes through :func:`load_json` (or, on hot routes, first through
  :func:`request_json_as`, a compiled schema that admits only what load_json would), which refuses broken JSON, nesting
  deeper than :data:`MAX_JSON_DEPTH`, unpaired surrogates (``"\\ud800"``: not Unicode, and
  neither database can store it) and NUL characters (PostgreSQL text cannot hold them) with a 400;
* a NUL character in a path value, a query parameter or a form field is the same 400.
"""
from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from typing import Any, TypeVar

from flask import Flask, current_app, request
from pydantic import TypeAdapter, ValidationError

from intranet.db import MAX_ID
from intranet.errors import Malformed, NotFound
from intranet.languages import N_
from intranet.web.context import settings

#: How deeply a JSON body may nest. Beacon's deepest document (an audience inside a post) needs 4.
MAX_JSON_DEPTH = 32
# A \uD800-\uDFFF or \u0000 escape: the only way JSON text can carry a surrogate or a NUL
# (raw UTF-8 cannot hold the one, JSON forbids the other unescaped).
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:[dD][89a-fA-F]|0000)")
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
T = TypeVar("T")
TOO_DEEP = N_("The JSON is nested too deeply; Beacon reads at most %(levels)s levels.")
NUL_MESSAGE = N_("The request holds a NUL character (\\u0000 or %00), which Beacon cannot store.")


def _ours(endpoint: str | None) -> bool:
    return (endpoint or "").startswith("intranet")


def _request_bounds(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """Run before every before_request function (CSRF reads the form there), for Beacon's routes only."""
    if not _ours(endpoint):
        return
    limit = settings().site.max_request_bytes
    host_limit = current_app.config.get("MAX_CONTENT_LENGTH")
    request.max_content_length = limit if host_limit is None else min(limit, host_limit)
    if values and any(type(v) is int and v > MAX_ID for v in values.values()):
        raise NotFound(N_("There is nothing at this address."))
    texts = [v for v in (values or {}).values() if isinstance(v, str)]
    texts.extend(itertools.chain.from_iterable(request.args.listvalues()))
    if request.mimetype in _FORMS:  # CSRF protection reads the form next anyway
        texts.extend(itertools.chain.from_iterable(request.form.listvalues()))
    if any("\x00" in text for text in texts):
        raise Malformed(NUL_MESSAGE)


def _texts(value: Any) -> Iterator[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            yield from item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _too_deep(value: Any, limit: int) -> bool:
    # Level by level: only the containers of each level are kept, so a batch of flat objects
    # costs one comprehension per object (a stack of (item, depth) pairs cost a tuple per value).
    level = [value]
    for _ in range(limit):
        level = [child for item in level for child in (item.values() if type(item) is dict else item)
                 if type(child) is dict or type(child) is list]
        if not level:
            return False
    return True


def load_json(data: bytes) -> Any:
    """Parse a request body as JSON: the one way Beacon reads JSON sent by clients.

    :param data: the raw body (UTF-8, or UTF-16/32 with a BOM, as :func:`json.loads` detects).
    :raise Malformed: (400) when the body is not JSON, nests deeper than :data:`MAX_JSON_DEPTH`,
        or holds an unpaired surrogate or a NUL character.
    """
    try:
        value = json.loads(data)
    except RecursionError:
        raise Malformed(TOO_DEEP, levels=MAX_JSON_DEPTH) from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise Malformed(N_("The request body is not valid JSON (%(problem)s)."), problem=str(exc)) from None
    # Counting brackets is cheap; only a body with more of them than the limit needs the walk.
    if data.count(b"[") + data.count(b"{") > MAX_JSON_DEPTH and isinstance(value, (dict, list)) \
            and _too_deep(value, MAX_JSON_DEPTH):
        raise Malformed(TOO_DEEP, levels=MAX_JSON_DEPTH)
    if _SUSPECT_ESCAPE.search(data):  # rare: only then is every string looked at
        for text in _texts(value):
            if "\x00" in text:
                raise Malformed(NUL_MESSAGE)
            try:  # paired surrogates (an emoji from an ASCII-only encoder) are fine; lone ones cannot be encoded
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise Malformed(N_("The JSON holds text that is not valid Unicode (an unpaired surrogate such as "
                                   "\\ud800).")) from None
    return value


def request_json(*, any_content_type: bool = False) -> Any:
    """The current request's JSON body, or None when it is empty or not sent as JSON.

    :param any_content_type: read the body whatever its Content-Type (``navigator.sendBeacon``
        cannot send ``application/json``).
    :raise Malformed: as :func:`load_json` does.
    """
    if not any_content_type and not request.is_json:
        return None
    data = request.get_data(cache=not any_content_type)
    return load_json(data) if data else None


def request_json_as(adapter: TypeAdapter[T], *, any_content_type: bool = False) -> T | None:
    """The current request's JSON body validated by *adapter* in one compiled pass over the bytes, or
    None when it does not validate: then read it with :func:`request_json` (and the caller's own
    validation), which says precisely what is wrong. A fast path for hot routes, accepting nothing
    :func:`request_json` would refuse: a body with a ``\\u0000`` or surrogate escape is left to it, and
    *adapter* must forbid unknown fields, which bounds the nesting.
    """
    if not any_content_type and not request.is_json:
        return None
    data = request.get_data()  # kept: request_json reads the same bytes when this answers None
    if not data or _SUSPECT_ESCAPE.search(data):
        return None
    try:
        return adapter.validate_json(data)
    except ValidationError:
        return None


def init_app(app: Flask) -> None:
    # A URL value preprocessor runs before every before_request function, including CSRF
    # protection's (which reads the form, and so the body): the size cap must be set first.
    app.url_value_preprocessor(_request_bounds)
