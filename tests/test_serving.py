"""Running Beacon for real: health and readiness, request ids in JSON logs, the correlation id on
500 pages, the connection budget, and gunicorn started with config/gunicorn.conf.py."""
from __future__ import annotations

import io
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from intranet import create_app
from intranet.connections import check_connection_budget
from intranet.db import connection_demand, make_engine
from intranet.settings import Settings
from intranet.web import request_log

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("INTRANET_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
#: Nothing listens on port 1: connecting is refused at once.
DEAD_URL = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"
STRONG_KEY = secrets.token_hex(32)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def json_log() -> Any:
    """What the root logger writes as JSON lines while the test runs (parsed on demand)."""
    stream = io.StringIO()
    handler = request_log.handler("json", stream)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(previous)


# ------------------------------------------------------------------------------------------------
# /healthz and /readyz
# ------------------------------------------------------------------------------------------------


def test_healthz_and_readyz_answer_ok_with_a_database(app):
    """Both answer 200 JSON, never cached, when the database answers."""
    client = app.test_client()
    for path in ("/healthz", "/readyz"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.get_json() == {"status": "ok"}
        assert response.headers["Cache-Control"] == "no-store"


def test_readyz_is_503_when_the_database_is_down_and_healthz_stays_200(caplog):
    """A database that refuses connections makes the instance not ready, but still alive."""
    app = create_app({"INTRANET_ENV": "production", "INTRANET_SECRET_KEY": STRONG_KEY,
                      "INTRANET_DATABASE_URL": DEAD_URL, "INTRANET_DB_CONNECT_TIMEOUT": 1})
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="intranet.web.health"):
        ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json() == {"status": "unavailable", "reason": "database"}
    assert "did not answer" in caplog.text
    assert client.get("/healthz").status_code == 200


def test_health_checks_sit_under_the_url_prefix(make_app):
    """Mounted under a prefix, the checks move with Beacon's other routes."""
    client = make_app(INTRANET_URL_PREFIX="/news").test_client()
    assert client.get("/news/healthz").status_code == 200
    assert client.get("/news/readyz").status_code == 200


# ------------------------------------------------------------------------------------------------
# Request ids: answered, logged on every line, shown on the 500 page
# ------------------------------------------------------------------------------------------------


def test_a_well_formed_request_id_is_kept_and_answered(app):
    """A proxy's X-Request-ID comes back unchanged; a forged one (spaces, too long, markup) is replaced."""
    client = app.test_client()
    assert client.get("/healthz", headers={"X-Request-ID": "lb-42.abc"}).headers["X-Request-ID"] == "lb-42.abc"
    for forged in ("a b", "x" * 65, "<script>"):
        answered = client.get("/healthz", headers={"X-Request-ID": forged}).headers["X-Request-ID"]
        assert answered != forged and len(answered) == 32
    assert client.get("/healthz").headers["X-Request-ID"] != client.get("/healthz").headers["X-Request-ID"]


def test_every_log_line_of_a_request_is_json_with_its_request_id(make_app, json_log):
    """A request that fails logs the traceback and the access line, both JSON, both with the request id."""
    app = make_app()

    def boom() -> None:
        raise RuntimeError("the database password is hunter2 (password=hunter2)")

    app.view_functions["intranet_health.healthz"] = boom
    response = app.test_client().get("/healthz?code=secret-oauth-code", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    lines = [line for line in json_log() if line.get("request_id") == "req-500"]
    assert {line["logger"] for line in lines} >= {"intranet.web.errors", "intranet.access"}
    error = next(line for line in lines if line["logger"] == "intranet.web.errors")
    assert error["level"] == "error" and "RuntimeError" in error["exc"]
    assert "password=hunter2" not in error["exc"] and "password=[redacted]" in error["exc"]
    access = next(line for line in lines if line["logger"] == "intranet.access")
    assert access["status"] == 500 and access["path"] == "/healthz" and access["method"] == "GET"
    assert all("secret-oauth-code" not in json.dumps(line) for line in json_log())


def test_the_500_page_shows_the_request_id_and_no_internals(make_app, caplog):
    """The generic error page and API error name the request id as the correlation id, and no exception text."""
    app = make_app()

    def boom() -> None:
        raise RuntimeError("SELECT secret FROM intranet_employee")

    app.view_functions["intranet_health.healthz"] = boom
    app.view_functions["intranet_api.me"] = boom
    client = app.test_client()
    with caplog.at_level(logging.CRITICAL, logger="intranet.web.errors"):
        page = client.get("/healthz", headers={"X-Request-ID": "corr-1"})
        api = client.get("/api/v1/me", headers={"X-Request-ID": "corr-2"})
    assert page.status_code == 500 and b"incident corr-1" in page.data and b"SELECT" not in page.data
    assert api.status_code == 500 and api.get_json()["error"]["details"] == {"correlation_id": "corr-2"}
    assert b"SELECT" not in api.data


def test_the_json_formatter_keeps_a_security_event_as_fields_on_one_line():
    """A security event's fields are the line's fields, and a line break in them cannot start a second line."""
    record = logging.LogRecord("intranet.security", logging.WARNING, __file__, 1, "%s", ("{}",), None)
    record.security_event = {"event": "rate_limited", "actor": "evil\n2026-01-01 INFO admin signed in"}
    record.request_id = "r1"
    line = request_log.JsonFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line)["event"] == "rate_limited" and json.loads(line)["request_id"] == "r1"


def test_redact_hides_credentials():
    """Bearer tokens, key=value secrets and URL passwords are replaced; the rest of the text stays."""
    text = ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc.def client_secret=s3cr3t&x=1 "
            "postgresql://beacon:pa55word@db:5432/beacon")
    out = request_log.redact(text)
    assert "eyJhbGci" not in out and "s3cr3t" not in out and "pa55word" not in out
    assert "x=1" in out and "beacon:[redacted]@db:5432" in out


# ------------------------------------------------------------------------------------------------
# The connection budget
# ------------------------------------------------------------------------------------------------


def test_connection_demand_is_every_process_pool_and_overflow():
    """(instances x workers + scheduler) x (pool + overflow)."""
    pool = Settings.from_config({"INTRANET_DB_POOL_SIZE": 4, "INTRANET_DB_MAX_OVERFLOW": 2}).database
    assert connection_demand(pool, instances=2, workers=3) == (2 * 3 + 1) * 6


@pytest.mark.parametrize("instances, fits", [(1, True), (1000, False)])
def test_start_up_warns_when_the_pools_could_exceed_max_connections(instances, fits, caplog):
    """Checked against the real server's max_connections: a warning only when the sum is too large."""
    engine = make_engine(PG_URL)
    settings = Settings.from_config({"INTRANET_INSTANCES": instances})
    try:
        with caplog.at_level(logging.INFO, logger="intranet.connections"):
            budget = check_connection_budget(engine, settings)
    finally:
        engine.dispose()
    if budget.limit is None:
        pytest.skip(f"PostgreSQL is unreachable at {PG_URL}")
    assert budget.fits is fits
    warned = any(r.levelno == logging.WARNING and "more connections than PostgreSQL allows" in r.getMessage()
                 for r in caplog.records)
    assert warned is not fits


# ------------------------------------------------------------------------------------------------
# gunicorn with config/gunicorn.conf.py
# ------------------------------------------------------------------------------------------------


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_gunicorn_serves_with_the_production_config(tmp_path):
    """`gunicorn -c config/gunicorn.conf.py app:app` boots workers that answer /healthz and /readyz, logging JSON."""
    port = _free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("INTRANET_")},
           "INTRANET_ENV": "production", "INTRANET_SECRET_KEY": STRONG_KEY, "INTRANET_DATABASE_URL": PG_URL,
           "INTRANET_WEB_BIND": f"127.0.0.1:{port}", "INTRANET_WEB_WORKERS": "2", "INTRANET_WEB_THREADS": "2",
           "INTRANET_LOG_FORMAT": "json", "INTRANET_INSTANCES": "1000"}
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "app:app"],
                                  cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        status = None
        for _ in range(150):  # the first boot imports everything: allow up to 30 s
            try:
                status, _, body = _get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                time.sleep(0.2)
        assert status == 200, log.read_text()
        status, headers, _ = _get(f"http://127.0.0.1:{port}/readyz")
        assert status == 200 and headers["X-Request-ID"]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(line["logger"] == "gunicorn.error" and "Booting worker" in line["message"] for line in lines)
    assert sum(1 for line in lines if line["logger"] == "intranet.access") == 2
    assert all(line["request_id"] for line in lines if line["logger"] == "intranet.access")
    # INTRANET_INSTANCES=1000 cannot fit in any default max_connections: the master says so at start-up.
    assert any(line["level"] == "warning" and "more connections than PostgreSQL allows" in line["message"]
               for line in lines), log.read_text()


def test_the_example_environment_file_loads_as_the_readme_says():
    """`set -a; . config/example.env` in a shell gives only declared settings, and they parse."""
    script = f"set -a; . '{ROOT / 'config' / 'example.env'}'; set +a; env -0"
    out = subprocess.run(["bash", "-c", script], env={"PATH": os.environ.get("PATH", "")},
                         capture_output=True, check=True).stdout.decode()
    values = dict(item.split("=", 1) for item in out.split("\0") if item.startswith("INTRANET_"))
    assert values["INTRANET_MAIL_FROM"] == "Beacon <news@example.com>"
    assert set(values) <= set(Settings.from_config({}).as_config())
    settings = Settings.from_config(values)
    assert settings.database.pool_size >= settings.server.threads
