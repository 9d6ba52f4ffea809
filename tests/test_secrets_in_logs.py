"""No secret or token reaches the logs (SECURITY.md E5, H8, G8, 16.2.5).

Every record of every logger, at DEBUG (msal, urllib3 and smtplib's neighbours included), is captured
while Beacon signs someone in through Entra ID, syncs the directory from Graph and sends a digest
over SMTP with authentication, with secrets configured; then the records (message, arguments and
traceback text) are searched for each secret and for anything shaped like a JWT.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from intranet.delivery.channels.email import SmtpMailer
from tests.conftest import CSRF_META, _free_port
from tests.delivery_support import choose, queue_digest, send
from tests.fakes.entra_graph import follow_sign_in
from tests.fakes.smtp import Recorder

#: Anything shaped like a JWT (ID, access and refresh tokens from Entra ID, embed tokens).
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.")
SMTP_PASSWORD = "smtp-Pa55word-never-logged"
#: Loggers of the test's own servers (aiosmtpd logs every line it receives), not Beacon's process.
SERVER_SIDE = ("mail.log",)


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    """Everything the captured records would write: messages, extra fields and tracebacks."""
    formatter = logging.Formatter()
    parts = []
    for record in caplog.records:
        if record.name.startswith(SERVER_SIDE):
            continue
        parts.append(record.getMessage())
        parts.append(repr(vars(record)))
        if record.exc_info:
            parts.append(formatter.formatException(record.exc_info))
    return "\n".join(parts)


def _assert_clean(text: str, secrets: dict[str, str]) -> None:
    leaked = [name for name, value in secrets.items() if value and value in text]
    assert leaked == [], f"logged: {leaked}"
    assert not JWT.search(text), JWT.search(text).group(0)  # type: ignore[union-attr]


@pytest.fixture
def entra_app(make_app, entra_server):  # type: ignore[no-untyped-def]
    return make_app(**entra_server.config(), INTRANET_GRAPH_PAGE_SIZE=3)


def test_entra_sign_in_and_out_log_no_code_token_cookie_or_secret(entra_app, entra_server, make_employee, caplog):
    """The authorization code, state, ID token, the session cookie, the CSRF token and the client
    secret stay out of every log record of a sign-in, a page and a sign-out."""
    oid = entra_server.fake.add_user(displayName="Adele Vance", employeeId="E0002")
    make_employee(display_name="Adele Vance", employee_id="E0002", entra_tenant_id=entra_server.fake.tenant_id,
                  entra_object_id=oid)
    client = entra_app.test_client()
    caplog.set_level(logging.DEBUG)
    started = client.get("/auth/entra/start")
    browser = requests.Session()
    with caplog.at_level(logging.CRITICAL):  # the test's own browser, not Beacon
        form = follow_sign_in(started.location, browser, user_id=oid)
    client.post("/auth/entra/callback", data=form.fields)
    signed_in = client.post("/auth/entra/complete", data=form.fields)
    assert signed_in.status_code == 302
    cookie = client.get_cookie("__Host-beacon").value
    csrf = CSRF_META.search(client.get("/").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    client.post("/auth/logout", data={"csrf_token": csrf}, headers={"Referer": "https://localhost/"})
    secrets = {"client secret": entra_server.fake.client_secret, "session cookie": cookie, "csrf token": csrf,
               **{f"callback {name}": value for name, value in form.fields.items() if len(value) >= 16}}
    assert len(secrets) >= 4 and caplog.records
    _assert_clean(_logged(caplog), secrets)


def test_graph_sync_logs_no_client_secret_or_access_token(entra_app, entra_server, caplog):
    """A directory sync over several Graph pages logs progress, never the secret or the bearer token."""
    for n in range(7):
        entra_server.fake.add_user(displayName=f"Person {n}", employeeId=f"E{n:04d}", department="Sales",
                                   mail=f"p{n}@contoso.test", userPrincipalName=f"p{n}@contoso.test")
    caplog.set_level(logging.DEBUG)
    result = entra_app.test_cli_runner().invoke(args=["intranet", "directory", "sync"])
    assert result.exit_code == 0, result.output
    assert caplog.records
    _assert_clean(_logged(caplog) + result.output, {"client secret": entra_server.fake.client_secret})


class _Authenticator:
    """Accepts SMTP_PASSWORD and counts the logins it accepted."""

    def __init__(self) -> None:
        self.logins = 0

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = getattr(auth_data, "password", b"") == SMTP_PASSWORD.encode()
        self.logins += ok
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_with_auth() -> Iterator[Recorder]:
    """A loopback SMTP server that requires AUTH (over plain text: loopback only)."""
    handler = Recorder()
    # AUTH offered over plain text (loopback); the test checks it was used, since requiring it
    # without TLS makes aiosmtpd warn.
    handler.authenticator = _Authenticator()  # type: ignore[attr-defined]
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port(), authenticator=handler.authenticator,
                            auth_require_tls=False)
    controller.start()
    handler.port = controller.port  # type: ignore[attr-defined]
    yield handler
    controller.stop()


def test_smtp_send_logs_no_password_or_link_tokens(app, db, make_employee, make_post, clock, smtp_with_auth, caplog):
    """Sending a digest with SMTP AUTH logs neither the password nor the signed links the mail carries."""
    config = app.extensions["intranet"].settings
    person = make_employee(email="ana@example.com")
    make_post({"all": True}, title="Canteen reopens")
    choose(db, person, cadence="daily")
    queue_digest(db, person, clock.now)
    mailer = SmtpMailer("127.0.0.1", smtp_with_auth.port, username="beacon", password=SMTP_PASSWORD,  # type: ignore[attr-defined]
                        sender="Beacon <news@example.com>")
    caplog.set_level(logging.DEBUG)
    report = send(app, db, config, clock, channels={"email": mailer})
    assert report.sent == 1 and smtp_with_auth.recipients() == ["ana@example.com"]
    assert smtp_with_auth.authenticator.logins == 1  # type: ignore[attr-defined]
    body = smtp_with_auth.parsed()[0].get_body(("plain",)).get_content()
    tokens = re.findall(r"/(?:rate|digest/unsubscribe)/([A-Za-z0-9._-]{20,})", body)
    assert tokens
    _assert_clean(_logged(caplog), {"smtp password": SMTP_PASSWORD,
                                    **{f"link token {n}": t for n, t in enumerate(tokens)}})
