"""Beacon's own exception types: each carries what a person needs to act on it."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from intranet.languages import N_, Phrase

M = TypeVar("M", bound=BaseModel)

class IntranetError(Exception):
    """Base class; ``code`` is stable (used in API errors), ``message`` is for people.

    Services know nothing of the request, so an error carries its English words (marked ``N_`` for
    the catalogs) and the values that fill their ``%(name)s`` placeholders; the edge words it in
    the reader's language with :meth:`message_in`. ``message`` stays the English (logs, CLI).
    """

    code = "error"
    status = 400

    def __init__(self, message: str | Phrase, *, details: Any = None, **values: Any) -> None:
        self.phrase = message if isinstance(message, Phrase) else Phrase(message, **values)
        self.message = str(self.phrase)
        super().__init__(self.message)
        self.details = details

    def message_in(self, language: str | None) -> str:
        """The message in *language* (English when Beacon lacks it, or for words nobody marked)."""
        return self.phrase.in_language(language)


class NotFound(IntranetError):
    """The object does not exist, or the person may not see it: deliberately indistinguishable."""

    code = "not_found"
    status = 404

    def __init__(self, message: str | Phrase = N_("Not found."), *, details: Any = None, **values: Any) -> None:
        super().__init__(message, details=details, **values)


class Forbidden(IntranetError):
    code = "forbidden"
    status = 403


class InvalidInput(IntranetError):
    code = "invalid"
    status = 422


def validated(model: type[M], data: Any, *, what: str | None = "request",
              describe: Callable[[ValidationError], str | Phrase] | None = None) -> M:
    """*data* parsed with *model*, or a 422 naming each wrong field (``details``: ``loc`` and ``message``).

    Every edge and service validates client input through here, so a bad field reads the same
    wherever it was sent.

    :param what: what is validated, for the message ("Invalid request: title: ..."); ``None``
        for the bare list of problems (the desk shows it beside the form).
    :param describe: words the message instead, from the pydantic error (the audience builder's words).
    :raise InvalidInput: when *data* does not fit *model*.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [{"loc": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        if describe is not None:
            raise InvalidInput(describe(exc), details=details) from None
        if what is None:
            raise InvalidInput("; ".join(f"{d['loc']}: {d['message']}" for d in details), details=details) from None
        problems = "; ".join(f"{d['loc'] or 'body'}: {d['message']}" for d in details)
        # The field names and pydantic's own words stay English (they name the API's fields).
        if what in INVALID:
            raise InvalidInput(INVALID[what], details=details, problems=problems) from None
        raise InvalidInput(f"Invalid {what}: {problems}", details=details) from None


#: "Invalid ...: <problems>" for each thing an edge or service validates, to be worded per language.
INVALID: dict[str, str] = {
    "request": N_("Invalid request: %(problems)s"),
    "query": N_("Invalid query: %(problems)s"),
    "journey": N_("Invalid journey: %(problems)s"),
    "step": N_("Invalid step: %(problems)s"),
    "language": N_("Invalid language: %(problems)s"),
    "preferences": N_("Invalid preferences: %(problems)s"),
    "rating": N_("Invalid rating: %(problems)s"),
    "reply": N_("Invalid reply: %(problems)s"),
}


class Malformed(IntranetError):
    """The request cannot be read at all (broken JSON, absurd nesting, text that is not Unicode)."""

    code = "malformed"
    status = 400


class TooManyRequests(IntranetError):
    """The person is over a rate limit; ``retry_after`` is how many seconds until they may try again."""

    code = "too_many_requests"
    status = 429

    def __init__(self, message: str | Phrase, *, retry_after: int, details: Any = None, **values: Any) -> None:
        super().__init__(message, details=details, **values)
        self.retry_after = retry_after


class Unavailable(IntranetError):
    """Beacon cannot reach something it needs (its database) just now; try again in ``retry_after`` seconds."""

    code = "unavailable"
    status = 503

    def __init__(self, message: str | Phrase, *, retry_after: int = 5, details: Any = None, **values: Any) -> None:
        super().__init__(message, details=details, **values)
        self.retry_after = retry_after


class Conflict(IntranetError):
    code = "conflict"
    status = 409


class ConfigurationError(RuntimeError):
    """Beacon was configured in a way that is unsafe or cannot work; the message says how to fix it."""
