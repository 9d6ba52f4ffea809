"""The whole API, fuzzed from its own OpenAPI document: no input may get a 5xx.

Schemathesis generates requests for every operation in ``/api/v1/openapi.json``: the document's
boundary values (ids of 2^63, empty and odd strings, wrong types: its "coverage" phase), then
random ones that fit it or break it. They go through the app in process, signed in as an admin
who is also a comms manager, so every role check passes and the handlers behind it are reached;
the operations open to API keys are fuzzed a second time with a key holding every scope.
A bounded number of examples per operation keeps the run to well under a minute per database;
CI explores a fixed set (the hypothesis "ci" profile), local runs new ones each time.
"""
from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from intranet import api_keys, create_app

# A checkout whose virtualenv predates schemathesis in the test extra skips this file (and says how
# to fix it); under CI=true a missing fuzzer is a failure, as a missing PostgreSQL is.
if os.environ.get("CI", "").lower() != "true":
    pytest.importorskip("schemathesis", reason="run `make install` (pip install -e '.[test]') to fuzz the API")
import schemathesis  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

#: Random examples per operation and database (the boundary values come on top): about 30 s in all.
EXAMPLES = 10

# The document does not depend on the database, so it is read once from an app of its own; the
# requests go to each test's app (SQLite and PostgreSQL).
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", create_app({
    "INTRANET_ENV": "production", "INTRANET_SECRET_KEY": "d" * 64, "INTRANET_DATABASE_URL": "sqlite://"}))
# The fixtures send real credentials. Generated ones (a random session cookie or bearer key) could
# only be refused with a 401, keeping most requests from the handlers behind the check.
schema.config.generation.update(with_security_parameters=False)
#: The operations open to API keys (their document names the scope).
keyed = schema.include(lambda ctx: "x-beacon-scope" in ctx.operation.definition.raw)


@pytest.fixture
def signed_in(app, client_for, make_employee, make_group, make_post) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """What each request carries: an admin's and comms manager's session cookie and CSRF token.

    A little data exists, so that some generated ids and keys are found.
    """
    comms = make_employee(is_admin=True, is_comms=True, department="Comms")
    make_employee(department="Sales")
    make_group("sales-team", kind="managed", members=(comms,))
    make_post()
    make_post({"segments": [{"departments": ["Sales"]}]}, must_read=True)
    client = client_for(comms)
    name = app.session_interface.cookie_name(app)
    return {"cookies": {name: client.get_cookie(name).value}, "headers": {"X-CSRFToken": client.csrf}}


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_no_input_gets_a_server_error(case, app, signed_in):  # type: ignore[no-untyped-def]
    """Whatever is sent to this operation, the answer is never a 5xx."""
    case.call_and_validate(app=app, checks=[not_a_server_error], **signed_in)


@pytest.fixture
def with_key(db, clock, make_employee, make_group, make_post) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """What each keyed request carries: a key with every scope, acting for an admin and comms manager."""
    comms = make_employee(is_admin=True, is_comms=True, department="Comms")
    make_group("sales-team", kind="managed", members=(comms,))
    make_post()
    make_post({"segments": [{"departments": ["Comms"]}]}, must_read=True)
    data = api_keys.ApiKeyCreate(name="Fuzz", scopes=list(api_keys.SCOPES))
    _, key = api_keys.create(db, data, by=comms, now=clock.now)
    db.commit()
    return {"headers": {"Authorization": f"Bearer {key}", api_keys.ON_BEHALF_HEADER: comms.email}}


@keyed.parametrize()
@pytest.mark.settings(INTRANET_API_KEY_REQUESTS_PER_MINUTE=1_000_000)  # the fuzzer is not under test for 429s
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_no_input_with_an_api_key_gets_a_server_error(case, app, with_key):  # type: ignore[no-untyped-def]
    """Whatever a client holding a key sends to an operation open to keys, the answer is never a 5xx."""
    case.call_and_validate(app=app, checks=[not_a_server_error], **with_key)
