"""Pieces the API's output models share, so each kind of value is written one way in every response.

The output models themselves (``FeedItemPublic``, ``PostPublic``, ``RatingPublic``, ...) live
next to the input models of their module; :mod:`intranet.web.openapi` serializes them and builds
``/api/v1/openapi.json`` from them.
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import PlainSerializer, WithJsonSchema


def _iso(value: dt.datetime) -> str:
    return value.isoformat()


#: A moment, written as ISO 8601 with its offset (``2026-12-05T09:30:00+00:00``) as Python writes it.
Time = Annotated[dt.datetime, PlainSerializer(_iso, return_type=str),
                 WithJsonSchema({"type": "string", "format": "date-time"})]
