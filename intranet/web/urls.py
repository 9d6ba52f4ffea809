"""Links to many objects of one kind on a page, for the price of one ``url_for``."""
from __future__ import annotations

from collections.abc import Callable

from flask import Flask, url_for

#: An id no object has, put into the URL once so the real ids can take its place.
_MARKER = 918273645546372819


def id_url(endpoint: str, key: str) -> Callable[[int], str]:
    """A function giving ``url_for(endpoint, **{key: id})`` for any integer id.

    A feed page links each of its posts two or three times; building each link through the URL
    map cost more than the rest of a post's card. The URL is built once with a marker id and the
    marker's place is filled with each id: the same string ``url_for`` would give.
    """
    head, tail = url_for(endpoint, **{key: _MARKER}).split(str(_MARKER))
    return lambda value: f"{head}{int(value)}{tail}"


def init_app(app: Flask) -> None:
    """``beacon_id_url(endpoint, key)`` in templates (a global: macros imported without context see it)."""
    app.add_template_global(id_url, "beacon_id_url")
