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
        # Field names stay as the API names them; pydantic's words are reworded (pydantic_words).
        # The "%(loc)s: %(problem)s" glue is no catalog entry: it reads the same in every language.
        worded = [pydantic_words(e) for e in exc.errors()]
        if what is None:
            raise InvalidInput(Phrase("%(problems)s", problems=tuple(
                Phrase("%(loc)s: %(problem)s", loc=d["loc"], problem=w) for d, w in zip(details, worded))),
                details=details) from None
        problems = tuple(Phrase("%(loc)s: %(problem)s", loc=d["loc"] or "body", problem=w)
                         for d, w in zip(details, worded))
        if what in INVALID:
            raise InvalidInput(INVALID[what], details=details, problems=problems) from None
        raise InvalidInput(f"Invalid {what}: " + "; ".join(str(p) for p in problems), details=details) from None


#: pydantic's messages, by error type, in words Beacon's catalogs translate (its English is kept as
#: pydantic writes it: :attr:`Phrase.english`). Types not listed stay in pydantic's English.
PYDANTIC: dict[str, str] = {
    "missing": N_("Field required"),
    "extra_forbidden": N_("Extra inputs are not permitted"),
    "string_too_short": N_("String should have at least %(min_length)s characters"),
    "string_too_long": N_("String should have at most %(max_length)s characters"),
    "too_short": N_("List should have at least %(min_length)s items"),
    "too_long": N_("List should have at most %(max_length)s items"),
    "int_parsing": N_("Input should be a valid integer"),
    "int_type": N_("Input should be a valid integer"),
    "string_type": N_("Input should be a valid string"),
    "bool_parsing": N_("Input should be a valid boolean"),
    "bool_type": N_("Input should be a valid boolean"),
    "list_type": N_("Input should be a valid list"),
    "datetime_parsing": N_("Input should be a valid date and time"),
    "datetime_from_date_parsing": N_("Input should be a valid date and time"),
    "date_parsing": N_("Input should be a valid date"),
    "date_from_datetime_parsing": N_("Input should be a valid date"),
    "greater_than_equal": N_("Input should be greater than or equal to %(ge)s"),
    "less_than_equal": N_("Input should be less than or equal to %(le)s"),
    "greater_than": N_("Input should be greater than %(gt)s"),
    "less_than": N_("Input should be less than %(lt)s"),
    "literal_error": N_("Input should be %(expected)s"),
    "value_error": N_("Value error, %(error)s"),
}
#: The one-character minimum, said on its own (an empty text, in most languages).
AT_LEAST_ONE_CHARACTER = N_("String should have at least 1 character")


def pydantic_words(error: Any) -> Phrase:
    """One pydantic *error* (an item of ``ValidationError.errors()``) as a phrase: pydantic's English, reworded elsewhere.

    A validator's own message (``value_error``) is translated too when it was marked ``N_``.
    """
    ctx = error.get("ctx") or {}
    if error["type"] == "string_too_short" and ctx.get("min_length") == 1:
        return Phrase(AT_LEAST_ONE_CHARACTER, english=error["msg"])
    template = PYDANTIC.get(error["type"])
    if template is None:
        return Phrase(error["msg"])
    values = {name: str(value) for name, value in ctx.items() if f"%({name})s" in template}
    if error["type"] == "value_error":
        values["error"] = Phrase(str(ctx.get("error", "")))
    return Phrase(template, english=error["msg"], **values)


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
