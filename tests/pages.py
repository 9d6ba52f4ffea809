"""Reading Beacon's pages in tests."""
from __future__ import annotations

import re

_CSRF_TOKEN = re.compile(rb'(name="csrf[-_]token" (?:content|value)=")[^"]+"')


def without_csrf_token(page: bytes) -> bytes:
    """*page* with its CSRF tokens blanked, to compare two pages byte for byte.

    A token is signed with the current second, so two requests a second apart differ there
    whatever they show; it says nothing about what the page reveals.
    """
    return _CSRF_TOKEN.sub(rb'\1"', page)
