"""Settings: declared in one place, parsed and validated once at start-up, typed per subsystem."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask

from intranet import Intranet, create_app
from intranet.delivery import sending
from intranet.errors import ConfigurationError
from intranet.settings import DEFAULTS, MEANINGS, NOT_SETTINGS, Settings

PACKAGE = Path(__file__).resolve().parent.parent / "intranet"
STRONG_KEY = "k" * 64

#: One or more settings of every subsystem, as an operator writes them in an env file.
ENVIRONMENT = {
    "INTRANET_ENV": "development",
    "INTRANET_DATABASE_URL": "sqlite://",
    "INTRANET_ORG_TIMEZONE": "Europe/Berlin",
    "INTRANET_FEED_PAGE_SIZE": "5",
    "INTRANET_TRUSTED_PROXIES": "1",
    "INTRANET_DEV_LOGIN": "false",
    "INTRANET_SESSION_IDLE_MINUTES": "45",
    "INTRANET_SESSION_COOKIE_SECURE": "off",
    "INTRANET_RUN_SCHEDULER": "false",
    "INTRANET_SCHEDULER_LEASE_SECONDS": "90",
    "INTRANET_SMTP_HOST": "mail.example.com",
    "INTRANET_SMTP_PORT": "587",
    "INTRANET_SMTP_STARTTLS": "false",
    "INTRANET_MAIL_RATE_PER_MINUTE": "12.5",
    "INTRANET_OUTBOX_BATCH": "7",
    "INTRANET_DIGEST_MAX_ITEMS": "4",
    "INTRANET_DIGEST_PLAN_HORIZON_HOURS": "24.5",
    "INTRANET_ALERT_BATCH_MINUTES": "30",
    "INTRANET_MUST_READ_REMINDER_HOURS": "1.5",
    "INTRANET_EVENTS_MAX_BATCH": "100",
    "INTRANET_EVENTS_MAX_AGE_HOURS": "12",
    "INTRANET_MAX_IMAGE_BYTES": "1000",
    "INTRANET_HR_MAPPINGS_DIR": "/srv/beacon/mappings",
    "INTRANET_ENTRA_INSTANCE_DISCOVERY": "false",
    "INTRANET_GRAPH_PAGE_SIZE": "500",
    "INTRANET_GRAPH_TIMEOUT_S": "12.5",
    "INTRANET_WEBHOOKS_TIMEOUT_SECONDS": "3",
    "INTRANET_WEBHOOKS_ALLOW_PRIVATE": "yes",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    return ENVIRONMENT


def test_every_subsystem_is_configured_from_the_environment(environment):
    """Environment strings become typed settings: "false" is False, "587" is 587, "12.5" is 12.5."""
    app = create_app({"INTRANET_SECRET_KEY": STRONG_KEY})
    settings = app.extensions["intranet"].settings
    assert settings.site.org_timezone == "Europe/Berlin" and settings.site.feed_page_size == 5
    assert settings.site.trusted_proxies == 1
    assert settings.sessions.dev_login is False and settings.sessions.cookie_secure is False
    assert settings.sessions.idle_minutes == 45
    assert settings.scheduler.run_in_server is False and settings.scheduler.lease_seconds == 90
    assert settings.mail.smtp_starttls is False and settings.mail.smtp_port == 587
    assert settings.mail.rate_per_minute == 12.5 and settings.mail.batch == 7
    assert settings.digests.max_items == 4 and settings.digests.plan_horizon_hours == 24.5
    assert settings.alerts.batch_minutes == 30 and settings.alerts.reminder_hours == 1.5
    assert settings.events.max_batch == 100 and settings.events.max_age_hours == 12
    assert settings.uploads.max_image_bytes == 1000
    assert settings.directory.hr_mappings_dir == "/srv/beacon/mappings"
    assert settings.entra.instance_discovery is False and settings.entra.graph_page_size == 500
    assert settings.entra.graph_timeout_s == 12.5
    assert settings.webhooks.timeout_seconds == 3 and settings.webhooks.allow_private is True


def test_app_config_holds_the_parsed_values(environment):
    """Code that still reads app.config sees the typed value, not the environment string."""
    app = create_app({"INTRANET_SECRET_KEY": STRONG_KEY})
    assert app.config["INTRANET_SMTP_STARTTLS"] is False
    assert app.config["INTRANET_MAIL_RATE_PER_MINUTE"] == 12.5
    assert app.config["INTRANET_DEV_LOGIN"] is False
    assert app.config["SESSION_COOKIE_SECURE"] is False


def test_mail_settings_from_the_environment_reach_the_sender(environment):
    """STARTTLS "false" leaves STARTTLS off, and the mail rate paces the outbox (no TypeError)."""
    settings = create_app({"INTRANET_SECRET_KEY": STRONG_KEY}).extensions["intranet"].settings
    mailer = sending.configured_channels(settings.mail)["email"]
    assert mailer.starttls is False and mailer.port == 587  # type: ignore[attr-defined]
    assert sending.Pacer(settings.mail.rate_per_minute).interval == pytest.approx(60 / 12.5)


@pytest.mark.parametrize(("key", "value", "says"), [
    ("INTRANET_SMTP_STARTTLS", "nope", "valid boolean"),
    ("INTRANET_SMTP_PORT", "twenty-five", "valid integer"),
    ("INTRANET_MAIL_RATE_PER_MINUTE", "fast", "valid number"),
    ("INTRANET_DIGEST_MAX_ITEMS", "0", "greater than or equal to 1"),
    ("INTRANET_ORG_TIMEZONE", "Berlin", "not an IANA time zone"),
    ("INTRANET_ENV", "prod", "'production' or 'development'"),
])
def test_a_bad_value_stops_the_start_naming_the_variable(monkeypatch, key, value, says):
    """A value that cannot be used stops create_app with a message naming the variable and the problem."""
    monkeypatch.setenv("INTRANET_ENV", "development")
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigurationError) as caught:
        create_app({"INTRANET_DATABASE_URL": "sqlite://"})
    message = str(caught.value)
    assert f"{key}={value!r}" in message and says in message


def test_a_host_app_is_configured_by_its_config_not_the_environment(monkeypatch):
    """init_app reads the host's config; INTRANET_* environment variables are the standalone app's."""
    monkeypatch.setenv("INTRANET_ORG_NAME", "From the environment")
    app = Flask("host")
    app.config.update(INTRANET_SECRET_KEY=STRONG_KEY, INTRANET_DATABASE_URL="sqlite://", INTRANET_OUTBOX_BATCH="9")
    Intranet(app)
    settings = app.extensions["intranet"].settings
    assert settings.site.org_name == "Beacon" and settings.mail.batch == 9


def test_a_bad_host_setting_names_the_key():
    """A host's unusable value is refused at init_app with the key in the message."""
    app = Flask("host")
    app.config.update(INTRANET_SECRET_KEY=STRONG_KEY, INTRANET_DATABASE_URL="sqlite://", INTRANET_FEED_PAGE_SIZE="ten")
    with pytest.raises(ConfigurationError, match="INTRANET_FEED_PAGE_SIZE='ten'"):
        Intranet(app)


def test_blank_environment_value_keeps_the_default():
    """`INTRANET_SMTP_PORT=` (set but empty) leaves the port at its default; an empty host turns email off."""
    settings = Settings.from_config({"INTRANET_SMTP_PORT": "", "INTRANET_SMTP_HOST": ""})
    assert settings.mail.smtp_port == DEFAULTS["INTRANET_SMTP_PORT"] == 25
    assert "email" not in sending.configured_channels(settings.mail)


def test_every_documented_default_is_kept():
    """The documented defaults (a contract with deployments) parse to themselves."""
    assert Settings.from_config({}).as_config() == DEFAULTS
    assert DEFAULTS["INTRANET_SMTP_STARTTLS"] is False and DEFAULTS["INTRANET_MAIL_RATE_PER_MINUTE"] == 30
    assert DEFAULTS["INTRANET_RUN_SCHEDULER"] is None and DEFAULTS["INTRANET_SCHEDULER_LEASE_SECONDS"] == 60


def test_every_key_used_in_the_code_is_declared_with_a_meaning():
    """Any INTRANET_* name in intranet/ is a declared setting with a one-line meaning."""
    used = set()
    for path in PACKAGE.rglob("*.py"):
        used |= set(re.findall(r"\bINTRANET_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    undeclared = used - set(DEFAULTS) - NOT_SETTINGS
    assert undeclared == set()
    assert all(MEANINGS[key] for key in DEFAULTS)


def test_secrets_stay_out_of_reprs():
    """Printing the settings (a log line, a traceback) does not show passwords or keys."""
    settings = Settings.from_config({"INTRANET_SMTP_PASSWORD": "hunter2", "INTRANET_SECRET_KEY": STRONG_KEY,
                                     "INTRANET_ENTRA_CLIENT_SECRET": "s3cret",
                                     "INTRANET_TEAMS_WORKFLOW_URL": "https://flow.example.com/?sig=abc"})
    shown = repr(settings)
    assert "hunter2" not in shown and STRONG_KEY not in shown and "s3cret" not in shown and "sig=abc" not in shown
