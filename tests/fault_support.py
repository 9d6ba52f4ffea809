"""Fault tests' tools: Beacon's CLI as a real subprocess on the test's PostgreSQL schema, and waiting.

Shared by the fault tests (tests never import each other).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.conftest import PG_URL, SECRET

ROOT = Path(__file__).resolve().parent.parent


def database_url(engine: Engine) -> str:
    """The URL of the test's PostgreSQL schema, for another process."""
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    return f"{PG_URL}{'&' if '?' in PG_URL else '?'}options={quote(f'-csearch_path={schema}')}"


class Beacon:
    """One ``flask intranet ...`` process, its output kept in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "intranet", *args],
                                        cwd=ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no rollback, no lease released."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._out.close()

    def wait(self, timeout: float = 30) -> int:
        code = self.process.wait(timeout)
        self._out.close()
        return code

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def __enter__(self) -> "Beacon":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.kill()


def environment(engine: Engine | str, **settings: Any) -> dict[str, str]:
    """The process environment: this one's without INTRANET_* settings, then a production Beacon on
    *engine* (or a URL) with *settings* (``INTRANET_`` added to each key)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTRANET_")}
    env.update(INTRANET_DATABASE_URL=engine if isinstance(engine, str) else database_url(engine),
               INTRANET_ENV="production", INTRANET_SECRET_KEY=SECRET, PYTHONUNBUFFERED="1",
               INTRANET_BASE_URL="https://news.example.com", INTRANET_MAIL_FROM="Beacon <news@example.com>")
    env.update({f"INTRANET_{k}": str(v) for k, v in settings.items()})
    return env


def wait_for(condition: Callable[[], Any], *, timeout: float = 60, what: str = "the condition",
             process: Beacon | None = None) -> Any:
    """Poll *condition* until it is truthy (and return it); fail after *timeout* seconds, showing
    *process*'s output when given. Generous: a test passing takes seconds, but the shared two cores
    can be slowed several times over by other work, and only a failure waits this long."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n--- process output ---\n{process.output()[-3000:]}" if process else ""
            raise AssertionError(f"timed out waiting for {what}{detail}")
        time.sleep(0.05)
