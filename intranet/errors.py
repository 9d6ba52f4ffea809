"""Beacon's own exception types: each carries what a person needs to act on it."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

class IntranetError(Exception):
    """Base class; ``code`` is stable (used in API errors), ``message`` is for people."""

    code = "error"
    status = 400

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(IntranetError):
    """The object does not exist, or the person may not see it: deliberately indistinguishable."""

    code = "not_found"
    status = 404

    def __init__(self, message: str = "Not found.", *, details: Any = None) -> None:
        super().__init__(message, details=details)


class Forbidden(IntranetError):
    code = "forbidden"
    status = 403


class InvalidInput(IntranetError):
    code = "invalid"
    status = 422


def validated(model: type[M], data: Any, *, what: str | None = "request",
              describe: Callable[[ValidationError], str] | None = None) -> M:
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
            message = describe(exc)
        elif what is None:
            message = "; ".join(f"{d['loc']}: {d['message']}" for d in details)
        else:
            message = f"Invalid {what}: " + "; ".join(f"{d['loc'] or 'body'}: {d['message']}" for d in details)
        raise InvalidInput(message, details=details) from None


class Malformed(IntranetError):
    """The request cannot be read at all (broken JSON, absurd nesting, text that is not Unicode)."""

    code = "malformed"
    status = 400


class TooManyRequests(IntranetError):
    """The person is over a rate limit; ``retry_after`` is how many seconds until they may try again."""

    code = "too_many_requests"
    status = 429

    def __init__(self, message: str, *, retry_after: int, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class Unavailable(IntranetError):
    """Beacon cannot reach something it needs (its database) just now; try again in ``retry_after`` seconds."""

    code = "unavailable"
    status = 503

    def __init__(self, message: str, *, retry_after: int = 5, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class Conflict(IntranetError):
    code = "conflict"
    status = 409


class ConfigurationError(RuntimeError):
    """Beacon was configured in a way that is unsafe or cannot work; the message says how to fix it."""
