"""A real webhook receiver on loopback, and one round of the sender, for the webhook tests.

The receiver is a werkzeug server in a thread. It answers each request with the next scripted
answer (200 once the script runs out) and keeps what it received, so tests check signatures with
the reference ``standardwebhooks`` library, as a host would.
"""
from __future__ import annotations

import dataclasses
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

from sqlmodel import Session
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from intranet.webhooks import endpoints, network, sender
from intranet.webhooks.sealing import SecretBox


@dataclasses.dataclass
class Received:
    headers: dict[str, str]
    body: str

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


class Receiver:
    """Records deliveries; ``script`` holds the answers to give, as (status, headers) pairs."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: list[tuple[int, dict[str, str]]] = []
        self.lock = threading.Lock()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/beacon"

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self.lock:
            self.received.append(Received({k.lower(): v for k, v in request.headers.items()},
                                          request.get_data(as_text=True)))
            status, headers = self.script.pop(0) if self.script else (200, {})
        return Response("receiver says " + "x" * 5000 if status >= 400 else "ok", status=status,
                        headers=headers)(environ, start_response)

    def ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.received]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.thread.join(5)


def receiving() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


def register(db: Session, url: str, now: Any, *types: str, box: SecretBox | None = None) -> endpoints.Created:
    """Register an endpoint for *types* (every type if none), committed."""
    data = endpoints.EndpointIn(url=url, event_types=list(types) or ["post.published", "post.acknowledged",
                                                                       "digest.sent"])
    created = endpoints.create(db, data, actor=None, now=now, box=box or SecretBox(), allow_private=True)
    db.commit()
    return created


def deliver(app: Any, db: Session, clock: Any, **kwargs: Any) -> sender.SendReport:
    """One round of the sender, as the job runs it (loopback allowed: the tests' receiver lives there)."""
    settings = app.extensions["intranet"].settings
    with network.client(allow_private=network.private_allowed(settings)) as http:
        return sender.send_due(db, clock, settings, http=http, **kwargs)
