"""Beacon's own exception types: each carries what a person needs to act on it."""
from __future__ import annotations

from typing import Any


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

    @classmethod
    def from_validation(cls, exc: Any, what: str) -> InvalidInput:
        """Turn a pydantic ``ValidationError`` into a 422 naming each wrong field.

        :param what: what was being validated, for the message ("request", "audience", ...).
        """
        details = [{"loc": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        listed = "; ".join(f"{d['loc'] or 'body'}: {d['message']}" for d in details)
        return cls(f"Invalid {what}: {listed}", details=details)


class Malformed(IntranetError):
    """The request cannot be read at all (broken JSON, absurd nesting, text that is not Unicode)."""

    code = "malformed"
    status = 400


class Conflict(IntranetError):
    code = "conflict"
    status = 409


class ConfigurationError(RuntimeError):
    """Beacon was configured in a way that is unsafe or cannot work; the message says how to fix it."""
