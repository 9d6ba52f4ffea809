"""Why a post sits where it does in someone's feed: a stable code with its values, worded when shown.

The ranker decides the reasons (:func:`intranet.ranking.explain`); the words come later, in the
language of whoever reads them, so one ranked order (kept in a feed snapshot while a person pages
through it) can be served as plain-language reasons in English, Spanish or Catalan. The values are
data (a department, a topic) and are never translated.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from intranet import languages
from intranet.languages import N_

#: Each reason's words, by code, with ``%(name)s`` placeholders for its values.
WORDS: Mapping[str, str] = {
    "must_read_from": N_("Must-read from %(department)s"),
    "must_read": N_("Must-read for you"),
    "targeted_at": N_("Targeted at %(department)s"),
    "follows": N_("You follow %(topic)s"),
    "muted": N_("You muted %(topic)s, so it is shown last"),
    "reads_topic": N_("You read most %(topic)s posts"),
    "popular_in": N_("Popular with your colleagues in %(department)s"),
    "rated_highly": N_("Rated highly by your colleagues"),
    "fresh": N_("Published in the last day"),
    "everyone": N_("Shared with everyone"),
    "group": N_("Targeted at a group you belong to"),
}


@dataclasses.dataclass(frozen=True)
class Reason:
    """One reason: a code of :data:`WORDS` and the values its words need (sorted name/value pairs)."""

    code: str
    values: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, code: str, **values: str) -> Reason:
        """The reason *code* with *values* (``Reason.of("targeted_at", department="Sales")``)."""
        if code not in WORDS:
            raise ValueError(f"Unknown feed reason {code!r}: add its words to intranet.reasons.WORDS.")
        return cls(code, tuple(sorted(values.items())))

    def to_json(self) -> list[Any]:
        """A compact JSON form (``[code, {name: value}]``), as a feed snapshot stores it."""
        return [self.code, dict(self.values)] if self.values else [self.code]

    @classmethod
    def from_json(cls, data: Any) -> Reason:
        """The reason :meth:`to_json` wrote; a plain string (a snapshot stored before reasons had codes) is kept as is."""
        if isinstance(data, str):
            return cls("", (("text", data),))
        code, *rest = data
        return cls(code, tuple(sorted((rest[0] if rest else {}).items())))


def word(reason: Reason, language: str | None) -> str:
    """*reason* in plain words in *language* (English when Beacon does not speak it)."""
    values = dict(reason.values)
    message = WORDS.get(reason.code)
    if message is None:  # a reason stored as text, before codes
        return values.get("text", reason.code)
    return languages.translate(language, message, **values)


def words(reasons: Iterable[Reason], language: str | None) -> list[str]:
    """Each of *reasons* in plain words in *language*."""
    return [word(reason, language) for reason in reasons]
