"""What every command needs: the app's state, a database session, and a way to fail."""
from __future__ import annotations

import sys
from typing import Any, NoReturn

import click
from flask import Flask, current_app
from sqlmodel import Session


def app() -> Flask:
    """The app the command runs in (``flask --app ...``)."""
    return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]


def state() -> Any:
    """Beacon's per-app state (see :class:`intranet.extension.State`)."""
    return current_app.extensions["intranet"]


def session() -> Session:
    """A new database session from the app's session factory; the command commits."""
    return state().sessions()


def fail(message: str, code: int = 1) -> NoReturn:
    """Print *message* in red on stderr and exit with *code*."""
    click.secho(message, fg="red", err=True)
    sys.exit(code)


def require_safe() -> None:
    """Refuse to serve or schedule an app loaded with unsafe production settings.

    The command line may load such an app (init-db, imports and role grants need no secret key);
    the reason init_app recorded is printed and the command exits.
    """
    unsafe = state().unsafe
    if unsafe:
        fail(unsafe)
