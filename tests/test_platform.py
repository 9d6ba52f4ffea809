"""Set-up guarantees: one migration head, schema == models, safe configuration, a real extension."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask

from intranet import Intranet, create_app, migrate
from intranet.db import metadata
from intranet.errors import ConfigurationError
from intranet.migrate import VERSION_TABLE

STRONG_KEY = "x" * 64


def test_single_migration_head():
    """The migration history is linear: exactly one head."""
    assert len(migrate.heads()) == 1


def test_migrations_match_models(database):
    """After upgrading, the database schema is exactly what the models declare."""
    with database.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "version_table": VERSION_TABLE, "compare_type": True,
            "include_object": migrate.include_object})
        assert compare_metadata(context, metadata) == []


def test_tables_are_prefixed_and_versioned(database):
    """Every Beacon table is prefixed intranet_ and the version table is intranet_alembic_version."""
    assert all(name.startswith("intranet_") for name in metadata.tables)
    assert migrate.current_revision(database) == migrate.heads()[0]


def test_upgrade_twice_loses_nothing(database, make_employee):
    """Running init-db on an up-to-date database keeps every row."""
    make_employee(employee_id="KEEP1")
    migrate.upgrade(database)
    from sqlmodel import Session, select

    from intranet.models import Employee

    with Session(database) as session:
        assert session.exec(select(Employee.employee_id)).all() == ["KEEP1"]


@pytest.mark.parametrize("key", [None, "", "dev", "short"])
def test_production_refuses_weak_secret_key(key):
    """Production start-up aborts without a strong secret key, saying how to fix it."""
    with pytest.raises(ConfigurationError, match="INTRANET_SECRET_KEY"):
        create_app({"INTRANET_ENV": "production", "INTRANET_SECRET_KEY": key, "INTRANET_DATABASE_URL": "sqlite://"})


def test_production_refuses_debug():
    """Production start-up aborts with debug on."""
    app = Flask("host")
    app.debug = True
    app.config.update(INTRANET_SECRET_KEY=STRONG_KEY, INTRANET_DATABASE_URL="sqlite://")
    with pytest.raises(ConfigurationError, match="debug"):
        Intranet(app)


def test_second_init_app_raises_with_advice():
    """Initializing Beacon twice on one app explains what to do instead."""
    app = Flask("host")
    app.config.update(INTRANET_SECRET_KEY=STRONG_KEY, INTRANET_DATABASE_URL="sqlite://")
    extension = Intranet(app)
    with pytest.raises(RuntimeError, match="reuse that Intranet instance"):
        extension.init_app(app)


def test_two_apps_in_one_process_keep_their_own_state(tmp_path):
    """One extension object serves two apps, each with its own engine and prefix."""
    extension = Intranet()
    apps = []
    for name, prefix in (("one", ""), ("two", "/news")):
        app = Flask(name)
        app.config.update(INTRANET_SECRET_KEY=STRONG_KEY, INTRANET_URL_PREFIX=prefix,
                          INTRANET_DATABASE_URL=f"sqlite:///{tmp_path / name}.db")
        extension.init_app(app)
        apps.append(app)
    assert apps[0].extensions["intranet"].engine is not apps[1].extensions["intranet"].engine
    with apps[1].test_request_context():
        from flask import url_for

        assert url_for("intranet_feed.index") == "/news/"
    assert apps[0].test_client().get("/api/v1/feed").status_code == 401
    assert apps[1].test_client().get("/news/api/v1/feed").status_code == 401


def test_host_routes_keep_their_own_error_pages():
    """Beacon's error handlers answer only on Beacon's routes."""
    app = Flask("host")
    app.config.update(INTRANET_SECRET_KEY=STRONG_KEY, INTRANET_DATABASE_URL="sqlite://",
                      INTRANET_URL_PREFIX="/news")

    @app.get("/host")
    def host():  # type: ignore[no-untyped-def]
        from flask import abort

        abort(404)

    Intranet(app)
    response = app.test_client().get("/host")
    assert response.status_code == 404 and b"Back to your feed" not in response.data


def test_openapi_document_describes_the_feed(app):
    """/api/v1/openapi.json is an OpenAPI 3.1 document listing the feed and posts."""
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    assert {"/feed", "/posts/{post_id}", "/audiences/preview"} <= set(doc["paths"])


def test_security_headers_on_pages_and_api(make_employee, client_for):
    """CSP without inline scripts, nosniff, frame denial and no-store on signed-in responses."""
    client = client_for(make_employee())
    for url in ("/", "/api/v1/feed"):
        headers = client.get(url).headers
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "object-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store"


def test_every_page_exposes_the_csrf_token(app):
    """The sign-in page carries <meta name="csrf-token">."""
    assert b'<meta name="csrf-token" content="' in app.test_client().get("/auth/dev-login").data


def test_no_get_route_writes(app):
    """Every state-changing view is registered for POST/PUT/PATCH/DELETE only (GET is read-only)."""
    for rule in app.url_map.iter_rules():
        # Whole path segments: /analytics/reading-hours reads, /posts/<id>/read writes.
        if rule.endpoint.startswith("intranet") and {"acknowledge", "read", "join", "leave", "logout"} & set(
                rule.rule.split("/")):
            assert "GET" not in rule.methods, rule.rule


def test_development_mode_makes_and_keeps_a_secret_key(tmp_path, monkeypatch):
    """In development without a key, Beacon creates one in the instance folder and reuses it (as its own
    signing key: a host app's SECRET_KEY stays unset)."""
    keys = []
    for _ in range(2):
        app = Flask("dev", instance_path=str(tmp_path / "instance"))
        app.config.update(INTRANET_ENV="development", INTRANET_DATABASE_URL="sqlite://")
        Intranet(app)
        keys.append(app.extensions["intranet"].secret_key)
        assert app.config["SECRET_KEY"] is None
    assert keys[0] == keys[1] and len(keys[0]) >= 32


def test_every_route_declares_its_access_policy(app):
    """Each Beacon view is marked public or requires a role (route inventory, SECURITY C3)."""
    undeclared = [endpoint for endpoint, view in app.view_functions.items()
                  if endpoint.startswith("intranet") and endpoint != "intranet.static"
                  and not hasattr(view, "intranet_role")]
    assert undeclared == []


def test_trusted_proxy_makes_requests_https():
    """With INTRANET_TRUSTED_PROXIES=1 the forwarded protocol is honoured (Secure cookies work)."""
    app = create_app({"INTRANET_SECRET_KEY": STRONG_KEY, "INTRANET_DATABASE_URL": "sqlite://",
                      "INTRANET_TRUSTED_PROXIES": 1})

    @app.get("/scheme")
    def scheme():  # type: ignore[no-untyped-def]
        from flask import request

        return request.scheme

    response = app.test_client().get("/scheme", base_url="http://localhost", headers={"X-Forwarded-Proto": "https"})
    assert response.get_data(as_text=True) == "https"


def test_openapi_documents_every_api_route(app):
    """Every /api/v1 route and method appears in the OpenAPI document."""
    import re

    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule[len("/api/v1"):])
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method.lower() not in doc["paths"].get(path, {}):
                missing.append(f"{method} {path}")
    assert sorted(missing) == []


def test_every_api_route_is_declared_with_an_operation(app):
    """Each /api/v1 view carries its openapi.operation: the one place its shapes are described."""
    undeclared = [rule.rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1/")
                  and not hasattr(app.view_functions[rule.endpoint], "operation")]
    assert undeclared == []


def test_openapi_names_the_cookie_in_use_every_path_parameter_and_the_errors(tmp_path):
    """The session cookie is the one this app sets; {key} and {post_id} are declared; errors are listed."""
    import re

    app = create_app({"INTRANET_ENV": "development", "INTRANET_DATABASE_URL": "sqlite://",
                      "INTRANET_SECRET_KEY": STRONG_KEY})
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    assert doc["components"]["securitySchemes"]["session"]["name"] == "beacon_session"
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            declared = {p["name"] for p in operation.get("parameters", ()) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)
            codes = set(operation["responses"])
            if operation.get("security") != []:
                assert {"401", "403"} <= codes, (method, path)
            if "requestBody" in operation:
                assert {"400", "413", "422"} <= codes, (method, path)


def test_command_line_may_load_weak_config_but_never_serves_it(tmp_path):
    """Admin commands run without a secret key; every request, `serve` and `scheduler` are still refused."""
    import click

    with click.Context(click.Command("init-db")):
        app = create_app({"INTRANET_ENV": "production", "INTRANET_SECRET_KEY": None,
                          "INTRANET_DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}"})
    assert "INTRANET_SECRET_KEY" in app.extensions["intranet"].unsafe
    assert app.test_cli_runner().invoke(args=["intranet", "init-db"]).exit_code == 0
    refused = app.test_client().get("/auth/dev-login")
    assert refused.status_code == 503 and b"INTRANET_SECRET_KEY" in refused.data
    served = app.test_cli_runner().invoke(args=["intranet", "serve"])
    assert served.exit_code == 1 and "INTRANET_SECRET_KEY" in served.output
    scheduled = app.test_cli_runner().invoke(args=["intranet", "scheduler"])
    assert scheduled.exit_code == 1 and "INTRANET_SECRET_KEY" in scheduled.output


def test_unknown_urls_get_beacons_404(make_employee, client_for):
    """In the standalone app an unknown page is Beacon's 404 page, an unknown API path its JSON error."""
    client = client_for(make_employee())
    page = client.get("/no/such/page")
    assert page.status_code == 404 and b"Back to your feed" in page.data
    api = client.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.get_json()["error"]["code"] == "not_found"
